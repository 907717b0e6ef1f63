"""Box geometry: intersection over union, the localizer's box encoding, and the IoU metric.

Boxes are in corner format ``[x_min, y_min, x_max, y_max]`` (any unit) on the last axis;
:func:`iou` is written with ``keras.ops``, so it runs on arrays and inside compiled graphs, and
broadcasts (``iou(a[:, None], b[None, :])`` is the pairwise matrix).

Example:
    >>> import numpy as np
    >>> float(iou(np.array([0., 0., 2., 2.]), np.array([1., 1., 3., 3.])))  # 1 / (4 + 4 - 1)
    0.14285714...
"""

from __future__ import annotations

import keras
from keras import ops

NO_BOX = -1.0
"""Encoded value of every coordinate of an image without a box (a negative example)."""


def box_area(boxes):
    """Area of corner-format boxes; inverted (degenerate) boxes count as 0."""
    boxes = ops.convert_to_tensor(boxes, dtype="float32")
    return ops.maximum(boxes[..., 2] - boxes[..., 0], 0.0) * ops.maximum(boxes[..., 3] - boxes[..., 1], 0.0)


def iou(boxes_a, boxes_b, eps: float = 1e-9):
    """Intersection over union of corner-format ``(..., 4)`` boxes, elementwise with broadcasting
    (float32, in [0, 1]; ``eps`` keeps two empty boxes at 0).

    Example:
        >>> import numpy as np
        >>> a = np.array([[0, 0, 10, 10], [0, 0, 10, 10]], "float32")
        >>> np.asarray(iou(a, np.array([[0, 0, 10, 10], [5, 0, 15, 10]], "float32")))
        array([1.        , 0.33333334], dtype=float32)
    """
    a = ops.convert_to_tensor(boxes_a, dtype="float32")
    b = ops.convert_to_tensor(boxes_b, dtype="float32")
    width = ops.maximum(ops.minimum(a[..., 2], b[..., 2]) - ops.maximum(a[..., 0], b[..., 0]), 0.0)
    height = ops.maximum(ops.minimum(a[..., 3], b[..., 3]) - ops.maximum(a[..., 1], b[..., 1]), 0.0)
    intersection = width * height
    union = box_area(a) + box_area(b) - intersection
    return intersection / ops.maximum(union, eps)


def encode_boxes(corners):
    """Normalised corners -> ``(cx, cy, sqrt(w), sqrt(h))``; the square roots (Géron ch. 14, YOLO)
    make a pixel error cost more the smaller the box, as it does to the IoU."""
    c = ops.convert_to_tensor(corners, dtype="float32")
    width = ops.maximum(c[..., 2] - c[..., 0], 0.0)
    height = ops.maximum(c[..., 3] - c[..., 1], 0.0)
    return ops.stack([(c[..., 0] + c[..., 2]) / 2, (c[..., 1] + c[..., 3]) / 2,
                      ops.sqrt(width), ops.sqrt(height)], axis=-1)


def decode_boxes(encoded, clip: bool = True):
    """``(cx, cy, sqrt(w), sqrt(h))`` -> normalised corners, clipped to the image by default."""
    e = ops.convert_to_tensor(encoded, dtype="float32")
    half_w, half_h = ops.square(e[..., 2]) / 2, ops.square(e[..., 3]) / 2
    corners = ops.stack([e[..., 0] - half_w, e[..., 1] - half_h, e[..., 0] + half_w, e[..., 1] + half_h], axis=-1)
    return ops.clip(corners, 0.0, 1.0) if clip else corners


def has_box(encoded_true):
    """True where an encoded target is a real box (not the :data:`NO_BOX` placeholder)."""
    return ops.convert_to_tensor(encoded_true, dtype="float32")[..., 2] >= 0.0


@keras.saving.register_keras_serializable(package="foveal")
class BoxIoU(keras.metrics.Metric):
    """Mean IoU of predicted and true encoded boxes; :data:`NO_BOX` targets are left out.

    Example:
        >>> m = BoxIoU()
        >>> m.update_state([[0.5, 0.5, 0.5, 0.5]], [[0.5, 0.5, 0.5, 0.5]])
        >>> float(m.result())
        1.0
    """

    def __init__(self, name: str = "iou", dtype=None, **kwargs):
        super().__init__(name=name, dtype=dtype, **kwargs)
        self.total = self.add_variable(shape=(), initializer="zeros", dtype="float32", name="total")
        self.count = self.add_variable(shape=(), initializer="zeros", dtype="float32", name="count")

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = ops.convert_to_tensor(y_true, dtype="float32")
        weight = ops.cast(has_box(y_true), "float32")
        if sample_weight is not None:
            weight = weight * ops.reshape(ops.cast(sample_weight, "float32"), ops.shape(weight))
        values = iou(decode_boxes(y_true), decode_boxes(y_pred))
        self.total.assign_add(ops.sum(values * weight))
        self.count.assign_add(ops.sum(weight))

    def result(self):
        return self.total / ops.maximum(self.count, 1.0)
