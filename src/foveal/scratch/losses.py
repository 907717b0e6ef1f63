"""Losses with their gradients: the texts' L2 loss and cross-entropy (on probabilities or logits).

Each loss object has ``forward(pred, target) -> float`` and ``backward() -> dL/dpred`` for the
last forward call. Targets may be integer labels ``(B,)`` or one-hot rows ``(B, C)``.

``reduction="mean"`` divides by the batch size in the value *and* the gradient, as Keras does.
The texts' first network (Planche & Andres ch. 1) prints the mean L2 loss but back-propagates
``2 (y - y_true)`` per sample, i.e. the gradient of the *sum* over the batch; ``reduction="sum"``
gives that gradient (the value is still reported per sample, as the texts print it).
"""

from __future__ import annotations

import numpy as np

from foveal.scratch.layers import softmax
from foveal.scratch.shapes import ShapeError

REDUCTIONS = ("mean", "sum")


def one_hot(target: np.ndarray, num_classes: int, dtype: np.dtype = np.float64) -> np.ndarray:
    """Integer labels ``(B,)`` as one-hot rows; one-hot input is checked and returned as ``dtype``."""
    target = np.asarray(target)
    if target.ndim == 1:
        if len(target) and (target.min() < 0 or target.max() >= num_classes):
            raise ShapeError(f"labels span {target.min()}..{target.max()} but the output has {num_classes} classes")
        return np.eye(num_classes, dtype=dtype)[target]
    if target.ndim != 2 or target.shape[1] != num_classes:
        raise ShapeError(f"targets of shape {target.shape} do not match predictions with {num_classes} classes")
    return target.astype(dtype, copy=False)


class Loss:
    """Base: checks shapes, turns labels into one-hot rows, applies the reduction."""

    name = "loss"

    def __init__(self, reduction: str = "mean") -> None:
        if reduction not in REDUCTIONS:
            raise ShapeError(f"{self.name}: unknown reduction {reduction!r}", hint="use 'mean' or 'sum'")
        self.reduction = reduction

    def _prepare(self, pred: np.ndarray, target: np.ndarray) -> np.ndarray:
        if pred.ndim != 2:
            raise ShapeError(f"{self.name}: predictions must be (batch, classes), got {pred.shape}")
        t = one_hot(target, pred.shape[1], pred.dtype)
        if len(t) != len(pred):
            raise ShapeError(f"{self.name}: {len(pred)} predictions but {len(t)} targets")
        self.pred, self.target = pred, t
        return t

    def _scale(self) -> float:
        return 1.0 / len(self.pred) if self.reduction == "mean" else 1.0


class L2Loss(Loss):
    """``sum_i (y_i - y_true_i)^2`` per sample, averaged over the batch (Planche & Andres ch. 1)."""

    name = "l2"

    def forward(self, pred: np.ndarray, target: np.ndarray) -> float:
        t = self._prepare(pred, target)
        return float(np.sum(np.square(pred - t)) / len(pred))

    def backward(self) -> np.ndarray:
        return 2.0 * (self.pred - self.target) * self._scale()


class CrossEntropy(Loss):
    """``-sum_i y_true_i log(p_i)`` on probabilities (e.g. after :class:`~foveal.scratch.layers.Softmax`).

    As in Keras, each row is first divided by its sum and clipped to ``[eps, 1 - eps]``; the
    gradient is zero where the clip is active. For rows that already sum to one the value is
    the textbook one, and the normalisation adds a constant to each row of the gradient, which
    a softmax before the loss cancels.
    """

    name = "cross_entropy"
    eps = 1e-7

    def forward(self, pred: np.ndarray, target: np.ndarray) -> float:
        t = self._prepare(pred, target)
        self.total = pred.sum(axis=-1, keepdims=True)
        self.q = pred / self.total
        self.clipped = np.clip(self.q, self.eps, 1 - self.eps)
        return float(-np.sum(t * np.log(self.clipped)) / len(pred))

    def backward(self) -> np.ndarray:
        inside = (self.q >= self.eps) & (self.q <= 1 - self.eps)
        dq = np.where(inside, -self.target / self.clipped, 0.0)
        dp = (dq - (dq * self.q).sum(axis=-1, keepdims=True)) / self.total
        return dp * self._scale()


class SoftmaxCrossEntropy(Loss):
    """Cross-entropy of ``softmax(logits)``, fused: value from log-sum-exp, gradient ``p - y_true``."""

    name = "softmax_cross_entropy"

    def forward(self, pred: np.ndarray, target: np.ndarray) -> float:
        t = self._prepare(pred, target)
        shifted = pred - pred.max(axis=-1, keepdims=True)
        log_p = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
        self.probs = np.exp(log_p)
        return float(-np.sum(t * log_p) / len(pred))

    def backward(self) -> np.ndarray:
        return (self.probs - self.target) * self._scale()

    @staticmethod
    def probabilities(logits: np.ndarray) -> np.ndarray:
        return softmax(logits)


LOSSES = {"l2": L2Loss, "cross_entropy": CrossEntropy, "softmax_cross_entropy": SoftmaxCrossEntropy}


def get_loss(name: str, reduction: str = "mean") -> Loss:
    """A loss by name: ``l2``, ``cross_entropy`` or ``softmax_cross_entropy``."""
    if name not in LOSSES:
        raise ShapeError(f"unknown loss {name!r}", hint=f"use one of {', '.join(LOSSES)}")
    return LOSSES[name](reduction)
