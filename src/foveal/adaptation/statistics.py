"""Batch-normalisation statistics re-estimated on the target domain (AdaBN).

Li et al., "Revisiting Batch Normalization for Practical Domain Adaptation", ICLR workshop 2017:
a network's batch-norm layers hold the mean and variance of their inputs on the training data;
replacing them with the statistics on target images adapts the network to the target without
changing any learned weight. :func:`target_statistics` does it layer by layer, in graph order,
so each layer's statistics are measured with the earlier layers already adapted.

Example:
    >>> changed = target_statistics(classifier, target_images)  # doctest: +SKIP
    >>> changed  # doctest: +SKIP
    4
"""

from __future__ import annotations

from typing import Any

import numpy as np


def batch_norm_layers(model: Any) -> list[Any]:
    """The BatchNormalization layers of ``model`` (nested models included), in graph order."""
    import keras

    return [layer for layer in model._flatten_layers(include_self=False, recursive=True)
            if isinstance(layer, keras.layers.BatchNormalization)]


def target_statistics(model: Any, images: np.ndarray, batch_size: int = 500) -> int:
    """Set every batch-norm layer's moving mean and variance to those of its inputs on ``images``
    (float pixels, as the model takes them); returns how many layers changed. The model is
    changed in place; a model without batch normalisation is left as it is."""
    import keras

    layers = batch_norm_layers(model)
    for layer in layers:
        probe = keras.Model(model.input, layer.input)
        axes = tuple(i for i in range(len(layer.input.shape)) if i != (layer.axis if layer.axis >= 0
                                                                        else len(layer.input.shape) + layer.axis))
        total, total_sq, count = 0.0, 0.0, 0
        for start in range(0, len(images), batch_size):
            x = np.asarray(probe(images[start:start + batch_size].astype(np.float32), training=False), np.float64)
            total = total + x.sum(axis=axes)
            total_sq = total_sq + (x * x).sum(axis=axes)
            count += int(np.prod([x.shape[a] for a in axes]))
        mean = total / count
        variance = np.maximum(total_sq / count - mean * mean, 0.0)
        layer.moving_mean.assign(mean.astype(np.float32))
        layer.moving_variance.assign(variance.astype(np.float32))
    return len(layers)


__all__ = ["batch_norm_layers", "target_statistics"]
