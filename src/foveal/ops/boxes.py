"""Box geometry for detection, vectorised over any leading axes.

Formats (last axis of 4): *corners* ``[x_min, y_min, x_max, y_max]`` and *centre*
``[cx, cy, w, h]``, in any unit. Every function here takes NumPy arrays and returns NumPy
arrays (keeping a float64 input float64), except :func:`decode_yolo` and the ``*_tensor``
variants, written with ``keras.ops`` so they also run inside a model or a compiled loss.

The YOLO encoding (Redmon & Farhadi, "YOLO9000: Better, Faster, Stronger", CVPR 2017, sec. 2
"Direct location prediction") expresses a box relative to the grid cell ``(cx, cy)`` (its
top-left corner, in cell units) and an anchor prior of size ``(pw, ph)``::

    bx = sigmoid(tx) + cx        by = sigmoid(ty) + cy
    bw = pw * exp(tw)            bh = ph * exp(th)

so the predicted centre cannot leave its cell; :func:`encode_yolo` is the exact inverse.

Example:
    >>> import numpy as np
    >>> corners_to_center(np.array([0., 0., 4., 2.]))
    array([2., 1., 4., 2.])
"""

from __future__ import annotations

import numpy as np
from keras import ops

_EPS = 1e-9


def _float(a) -> np.ndarray:
    a = np.asarray(a)
    return a if a.dtype in (np.float32, np.float64) else a.astype(np.float32)


def corners_to_center(boxes) -> np.ndarray:
    """``[x0, y0, x1, y1]`` -> ``[cx, cy, w, h]``."""
    b = _float(boxes)
    return np.stack([(b[..., 0] + b[..., 2]) / 2, (b[..., 1] + b[..., 3]) / 2,
                     b[..., 2] - b[..., 0], b[..., 3] - b[..., 1]], axis=-1)


def center_to_corners(boxes) -> np.ndarray:
    """``[cx, cy, w, h]`` -> ``[x0, y0, x1, y1]``."""
    b = _float(boxes)
    half_w, half_h = b[..., 2] / 2, b[..., 3] / 2
    return np.stack([b[..., 0] - half_w, b[..., 1] - half_h, b[..., 0] + half_w, b[..., 1] + half_h], axis=-1)


def corners_to_xywh(boxes) -> np.ndarray:
    """``[x0, y0, x1, y1]`` -> COCO's ``[x, y, w, h]`` (top-left corner and size)."""
    b = _float(boxes)
    return np.concatenate([b[..., :2], b[..., 2:] - b[..., :2]], axis=-1)


def xywh_to_corners(boxes) -> np.ndarray:
    """COCO's ``[x, y, w, h]`` -> ``[x0, y0, x1, y1]``."""
    b = _float(boxes)
    return np.concatenate([b[..., :2], b[..., :2] + b[..., 2:]], axis=-1)


def box_area(boxes) -> np.ndarray:
    """Areas of corner boxes; inverted (degenerate) boxes count 0."""
    b = _float(boxes)
    return np.clip(b[..., 2] - b[..., 0], 0, None) * np.clip(b[..., 3] - b[..., 1], 0, None)


def iou_matrix(boxes_a, boxes_b) -> np.ndarray:
    """Pairwise IoU (N, M) of corner boxes (N, 4) and (M, 4); 0 where the union is empty.

    Example:
        >>> iou_matrix(np.array([[0., 0., 2., 2.]]), np.array([[1., 1., 3., 3.], [0., 0., 2., 2.]]))
        array([[0.14285714, 1.        ]])
    """
    a = _float(boxes_a).reshape(-1, 4)[:, None, :]
    b = _float(boxes_b).reshape(-1, 4)[None, :, :]
    w = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    h = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = w * h
    union = box_area(a) + box_area(b) - inter
    return np.where(union > 0, inter / np.maximum(union, _EPS), 0.0).astype(np.result_type(a, b))


def wh_iou(wh_a, wh_b) -> np.ndarray:
    """Pairwise IoU (N, M) of sizes ``(w, h)`` as if the boxes shared a centre (anchor matching)."""
    a = _float(wh_a).reshape(-1, 2)[:, None, :]
    b = _float(wh_b).reshape(-1, 2)[None, :, :]
    inter = np.minimum(a[..., 0], b[..., 0]) * np.minimum(a[..., 1], b[..., 1])
    union = a[..., 0] * a[..., 1] + b[..., 0] * b[..., 1] - inter
    return inter / np.maximum(union, _EPS)


def clip_boxes(boxes, width: float, height: float) -> np.ndarray:
    """Corner boxes clipped to a ``width`` x ``height`` image."""
    b = _float(boxes)
    limits = np.array([width, height, width, height], b.dtype)
    return np.clip(b, 0, limits)


def encode_yolo(boxes, cells, anchors, eps: float = 1e-6) -> np.ndarray:
    """Centre boxes ``[bx, by, bw, bh]`` (grid units) -> ``[tx, ty, tw, th]``, the YOLOv2 targets.

    Args:
        boxes: ``(..., 4)`` centre boxes in grid-cell units.
        cells: ``(..., 2)`` the responsible cell's top-left ``(cx, cy)``.
        anchors: ``(..., 2)`` the anchor ``(pw, ph)`` in grid-cell units.
        eps: keeps the logit finite for a centre on a cell edge.

    Example:
        >>> t = encode_yolo(np.array([2.5, 1.5, 2., 1.]), np.array([2., 1.]), np.array([1., 1.]))
        >>> np.round(t, 4)
        array([0.    , 0.    , 0.6931, 0.    ])
    """
    b, c, p = _float(boxes), _float(cells), _float(anchors)
    offset = np.clip(b[..., :2] - c, eps, 1 - eps)
    txy = np.log(offset / (1 - offset))
    twh = np.log(np.maximum(b[..., 2:], eps) / p)
    return np.concatenate([txy, twh], axis=-1)


def decode_yolo(t, cells, anchors):
    """``[tx, ty, tw, th]`` -> centre boxes ``[bx, by, bw, bh]`` in grid units (``keras.ops``).

    Works on tensors and arrays, inside a graph too; see the module docstring for the formula.
    """
    t = ops.convert_to_tensor(t, dtype="float32")
    c = ops.convert_to_tensor(cells, dtype="float32")
    p = ops.convert_to_tensor(anchors, dtype="float32")
    return ops.concatenate([ops.sigmoid(t[..., :2]) + c, p * ops.exp(t[..., 2:])], axis=-1)


def match_boxes(ref_boxes: np.ndarray, got_boxes: np.ndarray, min_iou: float = 0.5,
                max_corner_diff: float = 0.0) -> list[tuple[int, int, float]]:
    """Greedy one-to-one matching by IoU (highest first): ``(ref index, got index, IoU)``.

    Boxes whose corners differ by at most ``max_corner_diff`` also match whatever their IoU:
    on a box a few thousandths of the image wide, a rounding-level shift drops IoU below 0.5.
    """
    if not len(ref_boxes) or not len(got_boxes):
        return []
    ious = np.asarray(iou_matrix(ref_boxes, got_boxes), np.float64)
    corner = np.abs(np.asarray(ref_boxes, np.float64)[:, None] - np.asarray(got_boxes, np.float64)[None]).max(-1)
    # Pairs by IoU first, then the tiny ones close in corners (ranked below every IoU pair).
    affinity = np.where(ious >= min_iou, ious, np.where(corner <= max_corner_diff, -1.0 - corner, -np.inf))
    pairs, used_ref, used_got = [], set(), set()
    for flat in np.argsort(-affinity, axis=None, kind="stable"):
        r, g = divmod(int(flat), ious.shape[1])
        if affinity[r, g] == -np.inf:
            break
        if r not in used_ref and g not in used_got:
            pairs.append((r, g, float(ious[r, g])))
            used_ref.add(r)
            used_got.add(g)
    return pairs


def iou_matrix_tensor(boxes_a, boxes_b):
    """:func:`iou_matrix` with ``keras.ops`` (float32), for use inside a model or loss."""
    a = ops.expand_dims(ops.convert_to_tensor(boxes_a, dtype="float32"), -2)
    b = ops.expand_dims(ops.convert_to_tensor(boxes_b, dtype="float32"), -3)
    w = ops.maximum(ops.minimum(a[..., 2], b[..., 2]) - ops.maximum(a[..., 0], b[..., 0]), 0.0)
    h = ops.maximum(ops.minimum(a[..., 3], b[..., 3]) - ops.maximum(a[..., 1], b[..., 1]), 0.0)
    inter = w * h
    area_a = ops.maximum(a[..., 2] - a[..., 0], 0.0) * ops.maximum(a[..., 3] - a[..., 1], 0.0)
    area_b = ops.maximum(b[..., 2] - b[..., 0], 0.0) * ops.maximum(b[..., 3] - b[..., 1], 0.0)
    return inter / ops.maximum(area_a + area_b - inter, _EPS)


__all__ = ["box_area", "center_to_corners", "clip_boxes", "corners_to_center", "corners_to_xywh", "decode_yolo",
           "encode_yolo", "iou_matrix", "iou_matrix_tensor", "match_boxes", "wh_iou", "xywh_to_corners"]
