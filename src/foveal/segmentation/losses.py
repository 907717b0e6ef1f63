"""Per-pixel losses for semantic segmentation, all blind to the ignore label.

* :class:`PixelCrossEntropy`, optionally weighted per class and per pixel, with
  :func:`unet_weight_map`, the pixel weights of Ronneberger, Fischer, Brox, "U-Net", MICCAI 2015, eq. 2;
* :class:`SoftDiceLoss` (Milletari, Navab, Ahmadi, "V-Net", 3DV 2016) and :class:`CrossEntropyDice`.

``y_true`` is a (B, H, W[, 1]) label map, or (B, H, W, 2) with the labels in channel 0 and a
pixel weight in channel 1 (how a weight map travels through ``fit``); ``y_pred`` is (B, H, W, K)
probabilities.

Example:
    >>> loss = CrossEntropyDice(num_classes=2, class_weights=[1.0, 2.0])
    >>> float(loss(np.zeros((1, 2, 2)), np.full((1, 2, 2, 2), 0.5)))   # doctest: +ELLIPSIS
    1.16...
"""

from __future__ import annotations

from typing import Any, Sequence

import keras
import numpy as np
from keras import ops


def split_target(y_true, ignore_label: int):
    """(B,H,W[,1|2]) target -> (int labels with ignored set to 0, valid 0/1 mask, pixel weights)."""
    y_true = ops.convert_to_tensor(y_true)
    labels = y_true[..., 0] if len(y_true.shape) == 4 else y_true
    labels = ops.cast(ops.round(ops.cast(labels, "float32")), "int32")
    valid = ops.cast(ops.not_equal(labels, ignore_label), "float32")
    weighted = len(y_true.shape) == 4 and y_true.shape[-1] == 2
    weights = ops.cast(y_true[..., 1], "float32") if weighted else ops.ones_like(valid)
    return ops.where(labels == ignore_label, 0, labels), valid, weights


@keras.saving.register_keras_serializable(package="foveal")
class PixelCrossEntropy(keras.losses.Loss):
    """Per-pixel cross-entropy with class and pixel weights, ignoring a label.

    ``sum_x v(x) w(x) cw[y(x)] (-log p_y(x)) / sum_x v(x)``: ``v`` 0 at ignored pixels, ``w`` the
    pixel weights (1 without), ``cw`` the class weights; probabilities clipped to [eps, 1].
    """

    def __init__(self, class_weights: Sequence[float] | None = None, ignore_label: int = 255, eps: float = 1e-7,
                 name: str = "pixel_cross_entropy", **kwargs: Any):
        super().__init__(name=name, **kwargs)
        self.class_weights = None if class_weights is None else [float(w) for w in class_weights]
        self.ignore_label, self.eps = int(ignore_label), float(eps)

    def call(self, y_true, y_pred):
        labels, valid, weights = split_target(y_true, self.ignore_label)
        y_pred = ops.cast(y_pred, "float32")
        onehot = ops.one_hot(labels, y_pred.shape[-1])
        nll = -ops.log(ops.clip(ops.sum(onehot * y_pred, axis=-1), self.eps, 1.0))
        if self.class_weights is not None:
            weights = weights * ops.take(ops.convert_to_tensor(self.class_weights, "float32"), labels)
        total = ops.sum(nll * weights * valid)
        # One scalar per batch: Keras then averages nothing further.
        return total / ops.maximum(ops.sum(valid), 1.0)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "class_weights": self.class_weights, "ignore_label": self.ignore_label, "eps": self.eps}


@keras.saving.register_keras_serializable(package="foveal")
class SoftDiceLoss(keras.losses.Loss):
    """``1 - mean over classes of (2 sum p g + eps) / (sum p + sum g + eps)`` over the batch's
    labelled pixels (one Dice per class, as V-Net); ``eps`` keeps an absent class at Dice 1."""

    def __init__(self, num_classes: int | None = None, include_background: bool = True, ignore_label: int = 255,
                 eps: float = 1.0, name: str = "soft_dice", **kwargs: Any):
        super().__init__(name=name, **kwargs)
        self.num_classes, self.include_background = num_classes, bool(include_background)
        self.ignore_label, self.eps = int(ignore_label), float(eps)

    def call(self, y_true, y_pred):
        labels, valid, _ = split_target(y_true, self.ignore_label)
        y_pred = ops.cast(y_pred, "float32")
        onehot = ops.one_hot(labels, self.num_classes or y_pred.shape[-1])
        v = valid[..., None]
        axes = tuple(range(len(y_pred.shape) - 1))
        inter = ops.sum(onehot * y_pred * v, axis=axes)
        denom = ops.sum(y_pred * v, axis=axes) + ops.sum(onehot * v, axis=axes)
        dice = (2 * inter + self.eps) / (denom + self.eps)
        if not self.include_background:
            dice = dice[1:]
        return 1.0 - ops.mean(dice)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "num_classes": self.num_classes, "include_background": self.include_background,
                "ignore_label": self.ignore_label, "eps": self.eps}


@keras.saving.register_keras_serializable(package="foveal")
class CrossEntropyDice(keras.losses.Loss):
    """``PixelCrossEntropy + dice_weight * SoftDiceLoss`` (same ignore label for both)."""

    def __init__(self, num_classes: int | None = None, class_weights: Sequence[float] | None = None,
                 dice_weight: float = 1.0, ignore_label: int = 255, eps: float = 1.0,
                 name: str = "cross_entropy_dice", **kwargs: Any):
        super().__init__(name=name, **kwargs)
        self.num_classes, self.dice_weight = num_classes, float(dice_weight)
        self.class_weights, self.ignore_label, self.eps = class_weights, int(ignore_label), float(eps)
        self._ce = PixelCrossEntropy(class_weights, ignore_label)
        self._dice = SoftDiceLoss(num_classes, ignore_label=ignore_label, eps=eps)

    def call(self, y_true, y_pred):
        return self._ce.call(y_true, y_pred) + self.dice_weight * self._dice.call(y_true, y_pred)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "num_classes": self.num_classes, "class_weights": self.class_weights,
                "dice_weight": self.dice_weight, "ignore_label": self.ignore_label, "eps": self.eps}


def balanced_weights(counts: np.ndarray) -> np.ndarray:
    """``total / (K * count_c)`` per class from pixel counts (absent classes get 0)."""
    counts = np.asarray(counts, np.float64)
    return np.where(counts > 0, counts.sum() / (len(counts) * np.maximum(counts, 1)), 0.0)


def unet_weight_map(
    mask: np.ndarray,
    *,
    w0: float = 10.0,
    sigma: float = 5.0,
    foreground: int = 1,
    class_weights: Sequence[float] | str | None = "balanced",
    instances: np.ndarray | None = None,
    ignore_label: int = 255,
) -> np.ndarray:
    """The U-Net pixel weight map (Ronneberger et al., MICCAI 2015, eq. 2) of one HxW label mask.

    ``w(x) = w_c(x) + w0 * exp(-(d1(x) + d2(x))**2 / (2 sigma**2))`` with ``d1``, ``d2`` the
    distances to the nearest and second-nearest object: the connected components of
    ``mask == foreground`` (or the ids > 0 of ``instances``). The border term is added on
    background pixels only (inside an object it would inflate the whole object); ignored pixels
    weigh 0. ``class_weights``: ``"balanced"``, a sequence, or None (all 1).

    Example:
        >>> m = np.zeros((5, 7), np.uint8); m[:, :3] = 1; m[:, 4:] = 1
        >>> w = unet_weight_map(m, class_weights=None)
        >>> round(float(w[2, 3]), 4)                 # the one-pixel gap: d1 = d2 = 1
        10.2312
    """
    from scipy import ndimage

    mask = np.asarray(mask)
    num_classes = int(max(mask[mask != ignore_label].max(initial=0), foreground)) + 1
    if isinstance(class_weights, str):
        cw = balanced_weights(np.bincount(mask[mask != ignore_label].ravel(), minlength=num_classes)[:num_classes])
    elif class_weights is None:
        cw = np.ones(num_classes)
    else:
        cw = np.asarray(class_weights, dtype=np.float64)
    safe = np.where(mask == ignore_label, 0, mask).astype(np.int64)
    weights = cw[np.minimum(safe, len(cw) - 1)].astype(np.float64)
    if instances is None:
        instances, count = ndimage.label(mask == foreground)
    else:
        count = int(instances.max())
    if count >= 2:
        ids = [i for i in np.unique(instances) if i > 0]
        distances = np.stack([ndimage.distance_transform_edt(instances != i) for i in ids])
        distances.sort(axis=0)
        d1, d2 = distances[0], distances[1]
        border = w0 * np.exp(-((d1 + d2) ** 2) / (2 * sigma**2))
        weights += np.where(instances == 0, border, 0.0)
    weights[mask == ignore_label] = 0.0
    return weights.astype(np.float32)


def pack_target(mask: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Stack labels and pixel weights into the (..., H, W, 2) float target the losses accept."""
    return np.stack([np.asarray(mask, np.float32), np.asarray(weights, np.float32)], axis=-1)
