"""Recompute batch-norm moving statistics with the final weights ("precise BN").

Wu & Johnson, "Rethinking 'Batch' in BatchNorm", arXiv 2105.07576, 2021, section 3: the
exponential moving averages that inference uses mix statistics of many past weights; when the
weights move fast (a short run, a high learning rate) they no longer describe the model that was
saved. Recomputing them as plain averages of batch statistics over a few training batches, with
the weights fixed, gives the population statistics of the final model. (AdaBN,
:func:`foveal.adaptation.statistics.target_statistics`, measures exact statistics on another
domain layer by layer, one pass per layer; this is one training-mode pass per batch.)

A case measured in recipes/deployment.md: a MobileNetV2 trained one epoch on Fashion-MNIST at
32x32 reached 78% training accuracy but predicted one class in inference mode; its depthwise
convolutions' moving variances were up to 12x the batch variances of the final weights.

Example:
    >>> import keras, numpy as np
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.BatchNormalization()])
    >>> recalibrate_batchnorm(model, [np.full((8, 4), 3.0, "float32")])
    1
    >>> float(model.layers[0].moving_mean.numpy()[0])
    3.0
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import keras
import numpy as np

from foveal.adaptation.statistics import batch_norm_layers


def recalibrate_batchnorm(model: keras.Model, batches: Iterable[Any], max_batches: int | None = None) -> int:
    """Set every trainable batch norm's moving mean and variance to the average batch statistics.

    Each batch goes through the model in training mode with the weights fixed (no gradient step)
    and dropout off; the ``k``-th batch is folded in with momentum ``k / (k + 1)``, so after
    ``n`` batches the moving statistics are the plain means of the ``n`` batch means and
    (biased) batch variances. Frozen batch norms (``trainable=False``) keep theirs.

    Args:
        model: a Keras model (nested models' batch norms included).
        batches: inputs the model takes (arrays, or ``(inputs, labels)`` pairs whose labels
            are ignored), typically 20-100 training batches without augmentation.
        max_batches: stop after this many.

    Returns:
        The number of batches used (0 leaves the statistics as they were).
    """
    norms = [layer for layer in batch_norm_layers(model) if layer.trainable]
    dropouts = [layer for layer in model._flatten_layers(include_self=False, recursive=True)
                if isinstance(layer, keras.layers.Dropout)]
    if not norms:
        return 0
    momenta, rates = [layer.momentum for layer in norms], [layer.rate for layer in dropouts]
    used = 0
    try:
        for layer in dropouts:
            layer.rate = 0.0
        for batch in batches:
            if max_batches is not None and used >= max_batches:
                break
            inputs = batch[0] if isinstance(batch, tuple) else batch
            for layer in norms:
                layer.momentum = used / (used + 1)
            model(inputs, training=True)
            used += 1
    finally:
        for layer, momentum in zip(norms, momenta):
            layer.momentum = momentum
        for layer, rate in zip(dropouts, rates):
            layer.rate = rate
    return used


def recalibrate_best(model: keras.Model, card: Any, run_dir: Path, batches: Iterable[Any]) -> None:
    """``--recalibrate-bn N``: precise statistics for the best weights over ``batches``, written back
    to ``run_dir``'s best.keras (with ``card``) before they are scored."""
    from foveal.models.io import save_model
    from foveal.training.runs import say

    used = recalibrate_batchnorm(model, batches)
    if used:
        save_model(model, run_dir / "best.keras", card)
        say(f"batch-norm statistics recomputed over {used} training batches (best.keras rewritten)")


def batch_statistics(model: keras.Model, inputs: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per batch norm (by name): the mean and variance of its input on ``inputs`` (training mode
    upstream), to compare with its moving statistics."""
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    probe = keras.Model(model.inputs, [layer.input for layer in norms])
    outputs = probe(inputs, training=True)
    outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
    stats = {}
    for layer, value in zip(norms, outputs):
        flat = np.asarray(value).reshape(-1, value.shape[-1])
        stats[layer.name] = (flat.mean(axis=0), flat.var(axis=0))
    return stats


__all__ = ["batch_statistics", "recalibrate_batchnorm", "recalibrate_best"]
