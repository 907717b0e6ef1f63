"""Segmentation scores from one K x K confusion matrix over the labelled pixels (rows: true
class, columns: predicted): pixel accuracy, IoU ``TP / (TP + FP + FN)`` and Dice
``2 TP / (2 TP + FP + FN)`` per class. A class absent from both truth and prediction has no
score (NaN) and is left out of the means. :class:`StreamingConfusion` is the Keras metric.

Example:
    >>> t = np.array([[0, 1], [1, 255]]); p = np.array([[0, 1], [0, 0]])
    >>> scores = segmentation_scores(t, p, num_classes=2)
    >>> scores["pixel_accuracy"], scores["iou"].round(3).tolist()
    (0.6666666666666666, [0.5, 0.5])
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import ops


def confusion_matrix(y_true, y_pred, num_classes: int, ignore_label: int = 255) -> np.ndarray:
    """K x K int64 counts; ``[i, j]`` = pixels of true class i predicted as j (ignored left out);
    ``y_pred`` may be labels or probabilities (one more axis)."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_pred.ndim == y_true.ndim + 1:
        y_pred = y_pred.argmax(-1)
    y_true = y_true.ravel().astype(np.int64)
    y_pred = y_pred.ravel().astype(np.int64)
    keep = y_true != ignore_label
    y_true, y_pred = y_true[keep], y_pred[keep]
    if y_true.size and (y_true.min() < 0 or y_true.max() >= num_classes):
        raise ValueError(f"true labels outside 0..{num_classes - 1} (and not the ignore label {ignore_label})")
    if y_pred.size and (y_pred.min() < 0 or y_pred.max() >= num_classes):
        raise ValueError(f"predicted labels outside 0..{num_classes - 1}")
    return np.bincount(y_true * num_classes + y_pred, minlength=num_classes**2).reshape(num_classes, num_classes)


def pixel_accuracy(cm: np.ndarray) -> float:
    """Correct pixels / labelled pixels."""
    total = cm.sum()
    return float(np.trace(cm) / total) if total else float("nan")


def per_class_iou(cm: np.ndarray) -> np.ndarray:
    """IoU per class (NaN where the class is in neither truth nor prediction)."""
    tp = np.diag(cm).astype(np.float64)
    union = cm.sum(0) + cm.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, tp / union, np.nan)


def per_class_dice(cm: np.ndarray) -> np.ndarray:
    """Dice (F1) per class (NaN where the class is in neither truth nor prediction)."""
    tp = np.diag(cm).astype(np.float64)
    denom = cm.sum(0) + cm.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, 2 * tp / denom, np.nan)


def segmentation_scores(y_true, y_pred, num_classes: int, ignore_label: int = 255) -> dict[str, Any]:
    """Confusion matrix, pixel accuracy, per-class and mean IoU and Dice in one dict."""
    cm = confusion_matrix(y_true, y_pred, num_classes, ignore_label)
    iou, dice = per_class_iou(cm), per_class_dice(cm)
    return {
        "confusion_matrix": cm, "pixel_accuracy": pixel_accuracy(cm),
        "iou": iou, "mean_iou": float(np.nanmean(iou)), "dice": dice, "mean_dice": float(np.nanmean(dice)),
    }


@keras.saving.register_keras_serializable(package="foveal")
class StreamingConfusion(keras.metrics.Metric):
    """A Keras metric that accumulates the confusion matrix and reports one ``score`` from it:
    ``mean_iou``, ``pixel_accuracy``, ``mean_dice``, or ``iou_<c>`` / ``dice_<c>`` of class c."""

    def __init__(self, num_classes: int, score: str = "mean_iou", ignore_label: int = 255, name: str | None = None, **kwargs: Any):
        super().__init__(name=name or score, **kwargs)
        self.num_classes, self.score, self.ignore_label = int(num_classes), score, int(ignore_label)
        self.matrix = self.add_variable(shape=(num_classes, num_classes), initializer="zeros", dtype="float64", name="matrix")

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = ops.convert_to_tensor(y_true)
        if len(y_true.shape) == 4:
            y_true = y_true[..., 0]  # labels (a weight map may ride in channel 1)
        labels = ops.reshape(ops.cast(ops.round(ops.cast(y_true, "float32")), "int32"), (-1,))
        pred = ops.reshape(ops.cast(ops.argmax(y_pred, axis=-1), "int32"), (-1,))
        valid = ops.cast(ops.not_equal(labels, self.ignore_label), "float64")
        k = self.num_classes
        index = ops.where(labels == self.ignore_label, 0, labels) * k + pred
        counts = ops.segment_sum(valid, index, num_segments=k * k)
        self.matrix.assign_add(ops.reshape(counts, (k, k)))

    def result(self):
        cm = self.matrix
        tp = ops.diagonal(cm)
        rows, cols = ops.sum(cm, axis=1), ops.sum(cm, axis=0)
        if self.score == "pixel_accuracy":
            return ops.cast(ops.sum(tp) / ops.maximum(ops.sum(cm), 1.0), "float32")
        cls = self.score.partition("_")[2]
        if "dice" in self.score:
            num, denom = 2 * tp, rows + cols
        else:
            num, denom = tp, rows + cols - tp
        per_class = num / ops.maximum(denom, 1e-12)
        if cls.isdigit():
            return ops.cast(per_class[int(cls)], "float32")
        present = ops.cast(denom > 0, "float64")
        return ops.cast(ops.sum(per_class * present) / ops.maximum(ops.sum(present), 1.0), "float32")

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "num_classes": self.num_classes, "score": self.score, "ignore_label": self.ignore_label}
