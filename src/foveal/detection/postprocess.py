"""From raw YOLO head outputs to final detections: decoding and non-max suppression, in-graph.

**Decoding** (Redmon & Farhadi, "YOLO9000", CVPR 2017, sec. 2, "Direct location prediction"; the
same in YOLOv3): each output ``[B, gh, gw, A, 5 + K]`` holds per cell and anchor ``(tx, ty, tw,
th, to, c_1..c_K)``; the box is :func:`foveal.ops.boxes.decode_yolo` divided by the grid size
(normalised corners, as the anchors are normalised), its score ``sigmoid(to) * softmax(c)[k]``
for its most probable class ``k``.

**Non-max suppression** is the texts' greedy one after dropping scores not above
``score_threshold``, by TensorFlow's kernel (``tf.image.non_max_suppression``) on the candidates
of each image; class-aware suppression shifts each class's boxes to a region of its own, so one
call serves all classes and the kept indices come back (``combined_non_max_suppression`` gives
no indices). :func:`detect_from_outputs` decodes only the candidates whose objectness passes the
threshold: the results of :func:`decode_predictions` then :func:`non_max_suppression`, faster
(``benchmarks/nms_speed.py``; numbers in ``docs/architecture.md``). :func:`reference_nms` is the
plain NumPy greedy algorithm, the tests' yardstick.

Example:
    >>> import numpy as np
    >>> boxes = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30]], np.float32)
    >>> kept = nms_image(boxes, np.array([0.9, 0.8, 0.7]), np.array([0, 0, 1]))
    >>> kept["indices"].tolist(), kept["classes"].tolist()
    ([0, 2], [0, 1])
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import tensorflow as tf
from keras.utils import bounding_boxes

from foveal.ops.boxes import decode_yolo, iou_matrix

KEYS = ("boxes", "scores", "classes", "indices", "num_detections")


def as_list(outputs: Any) -> list:
    """A model's outputs as a list (one scale's tensor alone, or the list of them)."""
    return list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]


def split_anchors(anchors, num_scales: int) -> list[np.ndarray]:
    """Anchors ``[S*A, 2]`` (sorted by area) -> one ``[A, 2]`` group per scale, finest first."""
    anchors = np.asarray(anchors, np.float32).reshape(-1, 2)
    if num_scales < 1 or len(anchors) % num_scales:
        raise ValueError(f"{len(anchors)} anchors cannot be split over {num_scales} scales")
    return list(anchors.reshape(num_scales, -1, 2))


def grid_cells(grid_h, grid_w):
    """``[gh, gw, 1, 2]`` float32 top-left corners ``(col, row)`` of each cell (broadcasts over anchors)."""
    cols = tf.cast(tf.range(grid_w), tf.float32)
    rows = tf.cast(tf.range(grid_h), tf.float32)
    cx, cy = tf.meshgrid(cols, rows)  # [gh, gw] each
    return tf.stack([cx, cy], axis=-1)[:, :, None, :]


def decode_scale(raw, anchors) -> tf.Tensor:
    """Boxes of one scale's raw output ``[B, gh, gw, A, 5+K]`` with its ``[A, 2]`` anchors, as
    normalised corners ``[B, gh, gw, A, 4]``."""
    raw = tf.cast(raw, tf.float32)
    shape = tf.shape(raw)
    grid_h, grid_w = shape[1], shape[2]
    grid = tf.cast(tf.stack([grid_w, grid_h]), tf.float32)  # (x, y) order
    anchors_cells = tf.constant(np.asarray(anchors, np.float32)) * grid  # anchors in grid units
    centre = decode_yolo(raw[..., :4], grid_cells(grid_h, grid_w), anchors_cells)
    return bounding_boxes.convert_format(centre / tf.tile(grid, [2]), "center_xywh", "xyxy")


def decode_predictions(raw_outputs: Sequence[Any] | Any, anchors) -> dict[str, tf.Tensor]:
    """Decode the raw outputs of every scale (finest first; anchors ``[S*A, 2]`` sorted by area)
    into one flat list of ``N`` candidates per image.

    Returns:
        ``boxes [B, N, 4]`` normalised corners, ``objectness [B, N]``, ``class_probs [B, N, K]``,
        ``scores [B, N]`` (objectness times the best class probability) and ``classes [B, N]``.
    """
    outputs = as_list(raw_outputs)
    groups = split_anchors(anchors, len(outputs))
    boxes, objectness, probs = [], [], []
    for raw, group in zip(outputs, groups):
        raw = tf.cast(raw, tf.float32)
        batch, depth = tf.shape(raw)[0], raw.shape[-1]
        boxes.append(tf.reshape(decode_scale(raw, group), [batch, -1, 4]))
        objectness.append(tf.reshape(tf.sigmoid(raw[..., 4]), [batch, -1]))
        probs.append(tf.reshape(tf.nn.softmax(raw[..., 5:], axis=-1), [batch, -1, depth - 5]))
    class_probs = tf.concat(probs, axis=1)
    obj = tf.concat(objectness, axis=1)
    return {
        "boxes": tf.concat(boxes, axis=1),
        "objectness": obj,
        "class_probs": class_probs,
        "scores": obj * tf.reduce_max(class_probs, axis=-1),
        "classes": tf.argmax(class_probs, axis=-1, output_type=tf.int32),
    }


def _nms_one(boxes, scores, classes, iou_threshold: float, score_threshold: float, max_detections: int,
             class_aware: bool) -> tuple[tf.Tensor, ...]:
    """Greedy NMS of one image; returns padded (boxes, scores, classes, indices, count)."""
    keep = tf.cast(tf.where(scores > score_threshold)[:, 0], tf.int32)
    cand_boxes = tf.gather(boxes, keep)
    cand_scores = tf.gather(scores, keep)
    cand_classes = tf.gather(classes, keep)
    if class_aware:
        # Shift each class to its own region: boxes of two classes can then never overlap.
        low = tf.reduce_min(cand_boxes)
        span = tf.reduce_max(cand_boxes) - low + 1.0
        shifted = cand_boxes - low + tf.cast(cand_classes, cand_boxes.dtype)[:, None] * span
    else:
        shifted = cand_boxes
    selected = tf.image.non_max_suppression(shifted, cand_scores, max_detections, iou_threshold=iou_threshold)
    count = tf.shape(selected)[0]
    pad = max_detections - count
    out_boxes = tf.pad(tf.gather(cand_boxes, selected), [[0, pad], [0, 0]])
    out_scores = tf.pad(tf.gather(cand_scores, selected), [[0, pad]])
    out_classes = tf.pad(tf.gather(cand_classes, selected), [[0, pad]], constant_values=-1)
    out_indices = tf.pad(tf.gather(keep, selected), [[0, pad]], constant_values=-1)
    return out_boxes, out_scores, out_classes, out_indices, count


def non_max_suppression(
    boxes,
    scores,
    classes=None,
    *,
    iou_threshold: float = 0.45,
    score_threshold: float = 0.25,
    max_detections: int = 100,
    class_aware: bool = True,
) -> dict[str, tf.Tensor]:
    """Score threshold and greedy (optionally class-aware) non-max suppression, in TensorFlow.

    Works on a batch (``boxes [B, N, 4]``, corners in any unit) or on one image (``[N, 4]``:
    no batch axis out). A box is dropped when its score is not above ``score_threshold`` or
    its IoU with a kept box of its class (any class unless ``class_aware``) is above
    ``iou_threshold``.

    Args:
        scores: ``[B, N]``, or ``[B, N, K]`` per class (each box keeps its best; no ``classes``).
        classes: ``[B, N]`` class of each box; None: one class.

    Returns:
        ``boxes [B, D, 4]``, ``scores [B, D]``, ``classes [B, D]``, ``indices [B, D]`` (into the
        input), padded with 0 / 0 / -1 / -1, and ``num_detections [B]``; ``D = max_detections``.
    """
    boxes = tf.cast(tf.convert_to_tensor(boxes), tf.float32)
    scores = tf.cast(tf.convert_to_tensor(scores), tf.float32)
    single = boxes.shape.rank == 2
    if single:
        boxes, scores = boxes[None], scores[None]
        classes = None if classes is None else tf.convert_to_tensor(classes)[None]
    if scores.shape.rank == 3:
        if classes is not None:
            raise ValueError("pass per-class scores [B, N, K] or scores [B, N] with classes, not both")
        classes = tf.argmax(scores, axis=-1, output_type=tf.int32)
        scores = tf.reduce_max(scores, axis=-1)
    classes = tf.zeros_like(scores, tf.int32) if classes is None else tf.cast(classes, tf.int32)
    max_detections = int(max_detections)

    def one(args):
        return _nms_one(*args, float(iou_threshold), float(score_threshold), max_detections, bool(class_aware))

    out = tf.map_fn(one, (boxes, scores, classes), fn_output_signature=_signature(max_detections))
    result = dict(zip(KEYS, out))
    return {k: v[0] for k, v in result.items()} if single else result


def detect_from_outputs(
    raw_outputs: Sequence[Any] | Any,
    anchors,
    *,
    iou_threshold: float = 0.45,
    score_threshold: float = 0.25,
    max_detections: int = 100,
    class_aware: bool = True,
) -> dict[str, tf.Tensor]:
    """:func:`decode_predictions` then :func:`non_max_suppression`, with the same results, faster:
    only the candidates whose objectness passes ``score_threshold`` are decoded (module docstring).

    Returns:
        The dict of :func:`non_max_suppression` (``indices`` index the flattened candidates,
        scales in order, each ``(row, col, anchor)`` row-major).
    """
    outputs = [tf.cast(o, tf.float32) for o in as_list(raw_outputs)]
    groups = split_anchors(anchors, len(outputs))
    max_detections = int(max_detections)
    settings = (float(iou_threshold), float(score_threshold), max_detections, bool(class_aware))

    def one(per_scale):
        boxes, scores, classes, where = [], [], [], []
        offset = 0
        for raw, group in zip(per_scale, groups):
            grid_h, grid_w, num_anchors, _ = tf.unstack(tf.shape(raw))
            flat = tf.reshape(raw, [-1, raw.shape[-1]])
            objectness = tf.sigmoid(flat[:, 4])
            cand = tf.cast(tf.where(objectness > settings[1])[:, 0], tf.int32)
            picked = tf.gather(flat, cand)
            cell, anchor = cand // num_anchors, cand % num_anchors
            cells = tf.cast(tf.stack([cell % grid_w, cell // grid_w], axis=-1), tf.float32)
            grid = tf.cast(tf.stack([grid_w, grid_h]), tf.float32)
            # the operations of decode_scale, on the candidates only: the same numbers
            centre = decode_yolo(picked[:, :4], cells, tf.gather(tf.constant(group) * grid, anchor))
            boxes.append(bounding_boxes.convert_format(centre / tf.tile(grid, [2]), "center_xywh", "xyxy"))
            probs = tf.nn.softmax(picked[:, 5:], axis=-1)
            scores.append(tf.gather(objectness, cand) * tf.reduce_max(probs, axis=-1))
            classes.append(tf.argmax(probs, axis=-1, output_type=tf.int32))
            where.append(cand + offset)
            offset += grid_h * grid_w * num_anchors
        *kept, count = _nms_one(tf.concat(boxes, 0), tf.concat(scores, 0), tf.concat(classes, 0), *settings)
        where = tf.concat(where, 0)
        kept[3] = tf.where(kept[3] >= 0, tf.gather(where, tf.maximum(kept[3], 0)), -1)
        return (*kept, count)

    out = tf.map_fn(one, tuple(outputs), fn_output_signature=_signature(max_detections))
    return dict(zip(KEYS, out))


def clipped_detections(raw_outputs: Sequence[Any] | Any, anchors, **settings: Any) -> dict[str, tf.Tensor]:
    """:func:`detect_from_outputs` as a detector's ``predict`` returns it: boxes clipped to [0, 1],
    no ``indices``."""
    out = detect_from_outputs(raw_outputs, anchors, **settings)
    return {"boxes": tf.clip_by_value(out["boxes"], 0.0, 1.0), "scores": out["scores"], "classes": out["classes"],
            "num_detections": out["num_detections"]}


def _signature(max_detections: int) -> tuple[tf.TensorSpec, ...]:
    return (tf.TensorSpec([max_detections, 4], tf.float32), tf.TensorSpec([max_detections], tf.float32),
            tf.TensorSpec([max_detections], tf.int32), tf.TensorSpec([max_detections], tf.int32),
            tf.TensorSpec([], tf.int32))


def nms_image(boxes, scores, classes=None, **options) -> dict[str, np.ndarray]:
    """:func:`non_max_suppression` of one image's ``[N, 4]`` boxes, NumPy in and out, padding removed."""
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    options.setdefault("max_detections", max(len(boxes), 1))
    out = non_max_suppression(boxes, np.asarray(scores, np.float32).reshape(-1),
                              None if classes is None else np.asarray(classes, np.int32).reshape(-1), **options)
    count = int(out["num_detections"])
    return {k: np.asarray(out[k])[:count] for k in ("boxes", "scores", "classes", "indices")}


def reference_nms(boxes, scores, classes=None, *, iou_threshold: float = 0.45, score_threshold: float = 0.25,
                  max_detections: int = 100, class_aware: bool = True) -> np.ndarray:
    """Plain greedy NMS in NumPy (slow; the tests' reference): kept indices, best first (ties in input order)."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    scores = np.asarray(scores, np.float64).reshape(-1)
    classes = np.zeros(len(scores), int) if classes is None else np.asarray(classes).reshape(-1)
    order = [i for i in np.argsort(-scores, kind="stable") if scores[i] > score_threshold]
    kept: list[int] = []
    for i in order:
        if len(kept) == max_detections:
            break
        rivals = [j for j in kept if classes[j] == classes[i]] if class_aware else kept
        if not rivals or iou_matrix(boxes[i:i + 1], boxes[rivals]).max() <= iou_threshold:
            kept.append(i)
    return np.asarray(kept, np.int64)
