"""Magnitude pruning for Keras 3 models (the TF Model Optimization Toolkit does not support them).

Zhu & Gupta, "To prune, or not to prune: exploring the efficacy of pruning for model
compression", ICLR workshop 2018: during fine-tuning, the sparsity of each prunable kernel
rises from ``initial`` to ``final`` along a cubic curve, ``s_t = s_f + (s_i - s_f)(1 - t/T)^3``,
updated every ``frequency`` steps; at each update the smallest-magnitude weights of each
kernel are set to zero and kept there (a mask re-applied after every step). No wrapper layers:
the model keeps its architecture and saves as an ordinary ``.keras`` file whose kernels contain
zeros (compressible, and ready for sparse runtimes).

Example:
    >>> report = prune_model(model, train_ds, final_sparsity=0.8, epochs=2)  # doctest: +SKIP
    >>> report["overall_sparsity"]  # doctest: +SKIP
    0.8
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import keras
import numpy as np

PRUNABLE_ATTRIBUTES = ("kernel", "depthwise_kernel", "pointwise_kernel")


@dataclass(frozen=True)
class PolynomialSparsity:
    """Sparsity ``s(step)`` rising from ``initial`` to ``final`` between ``begin`` and ``end``."""

    initial: float
    final: float
    begin_step: int
    end_step: int
    power: float = 3.0

    def __call__(self, step: int) -> float:
        if step <= self.begin_step:
            return self.initial
        if step >= self.end_step:
            return self.final
        progress = (step - self.begin_step) / max(1, self.end_step - self.begin_step)
        return self.final + (self.initial - self.final) * (1.0 - progress) ** self.power


def prunable_variables(model: keras.Model, min_size: int = 256) -> list[tuple[str, Any]]:
    """(name, variable) of every conv/dense kernel with at least ``min_size`` weights.

    Small kernels (e.g. a first conv on a gray image) are left dense: pruning them saves
    little and costs accuracy. (A generative model's networks are nested models: prune the one
    that is deployed, its ``generator`` or ``decoder``, by passing it as ``model``.)
    """
    found = []
    for layer in model.layers:
        for attr in PRUNABLE_ATTRIBUTES:
            var = getattr(layer, attr, None)
            if var is not None and int(np.prod(var.shape)) >= min_size and getattr(layer, "trainable", True):
                found.append((f"{layer.name}/{attr}", var))
    return found


class MagnitudePruning(keras.callbacks.Callback):
    """Apply the schedule during ``fit``: recompute masks every ``frequency`` steps, re-apply
    them after every step so the optimizer cannot revive pruned weights."""

    def __init__(self, schedule: PolynomialSparsity, frequency: int = 100, min_size: int = 256,
                 target: keras.Model | None = None) -> None:
        super().__init__()
        self.schedule, self.frequency, self.min_size = schedule, frequency, min_size
        self.target = target  # the network whose kernels are pruned (default: the model being fit)
        self.step = 0
        self.masks: dict[str, np.ndarray] = {}
        self._variables: list[tuple[str, Any]] = []

    def on_train_begin(self, logs=None):
        self._variables = prunable_variables(self.target or self.model, self.min_size)
        self._update_masks()

    def _update_masks(self) -> None:
        target = self.schedule(self.step)
        for name, var in self._variables:
            weights = np.asarray(var)
            k = int(round(target * weights.size))
            if k <= 0:
                self.masks[name] = np.ones_like(weights, dtype=bool)
                continue
            threshold = np.partition(np.abs(weights).ravel(), k - 1)[k - 1]
            mask = np.abs(weights) > threshold
            previous = self.masks.get(name)
            self.masks[name] = mask if previous is None else (mask & previous)

    def _apply(self) -> None:
        for name, var in self._variables:
            var.assign(np.where(self.masks[name], np.asarray(var), 0.0).astype(var.dtype))

    def on_train_batch_end(self, batch, logs=None):
        self.step += 1
        if self.step % self.frequency == 0:
            self._update_masks()
        self._apply()

    def on_train_end(self, logs=None):
        self._update_masks()
        self._apply()


def sparsity_report(model: keras.Model, min_size: int = 256) -> dict[str, Any]:
    """Fraction of exact zeros per prunable kernel and overall (weighted by size)."""
    layers = {}
    zeros = total = 0
    for name, var in prunable_variables(model, min_size):
        w = np.asarray(var)
        layers[name] = {"weights": int(w.size), "sparsity": float((w == 0).mean())}
        zeros += int((w == 0).sum())
        total += int(w.size)
    return {"layers": layers, "overall_sparsity": zeros / max(total, 1), "pruned_weights": total}


def prune_model(model: keras.Model, train_data, *, learning_rate: float = 1e-4, **options: Any) -> dict[str, Any]:
    """Fine-tune ``model`` in place while pruning it to ``final_sparsity``; return the report.

    The model is (re)compiled with Adam at ``learning_rate`` and categorical cross-entropy
    (one-hot labels, as foveal pipelines give), then fine-tuned by :func:`prune_during_fit`
    with ``options`` (``final_sparsity=0.8``, ``initial_sparsity``, ``epochs=2``,
    ``steps_per_epoch``, ``frequency=50``, ``validation_data``, ``min_size=256``, ``verbose``).
    Sparsity reaches its final value at 75% of the fine-tuning steps, leaving the rest to
    recover accuracy with the mask fixed.
    """
    model.compile(keras.optimizers.Adam(learning_rate), keras.losses.CategoricalCrossentropy(),
                  metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")])
    return prune_during_fit(model, train_data, **options)


def prune_during_fit(
    model: keras.Model,
    train_data,
    *,
    target: keras.Model | None = None,
    final_sparsity: float = 0.8,
    initial_sparsity: float = 0.0,
    epochs: int = 2,
    steps_per_epoch: int | None = None,
    frequency: int = 50,
    validation_data=None,
    min_size: int = 256,
    verbose: int = 0,
) -> dict[str, Any]:
    """Fine-tune the **compiled** ``model`` with its own loss (or its own ``train_step``: a GAN's
    adversarial step, a VAE's ELBO) while pruning ``target``'s kernels (default: the model's) to
    ``final_sparsity``; return :func:`sparsity_report` of ``target`` with the ``history``.

    Example:
        >>> gan.compile(optimizer=keras.optimizers.Adam(1e-4), d_optimizer=keras.optimizers.Adam(1e-4))  # doctest: +SKIP
        >>> prune_during_fit(gan, images, target=gan.generator, final_sparsity=0.5, steps_per_epoch=100)  # doctest: +SKIP
    """
    if not 0.0 <= initial_sparsity <= final_sparsity < 1.0:
        raise ValueError("need 0 <= initial_sparsity <= final_sparsity < 1")
    if steps_per_epoch is None:
        steps_per_epoch = int(train_data.cardinality())
        if steps_per_epoch <= 0:
            raise ValueError("steps_per_epoch is needed for a dataset of unknown size")
    total = steps_per_epoch * epochs
    schedule = PolynomialSparsity(initial_sparsity, final_sparsity, 0, max(1, int(0.75 * total)))
    callback = MagnitudePruning(schedule, frequency=min(frequency, max(1, total // 10)), min_size=min_size,
                                target=target)
    history = model.fit(train_data, epochs=epochs, steps_per_epoch=steps_per_epoch,
                        validation_data=validation_data, callbacks=[callback], verbose=verbose)
    report = sparsity_report(target or model, min_size)
    report["history"] = {k: [float(v) for v in vals] for k, vals in history.history.items()}
    return report
