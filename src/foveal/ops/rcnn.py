"""The box machinery of two-stage detectors (Faster R-CNN), in TensorFlow, batched.

Ren, He, Girshick & Sun, "Faster R-CNN: Towards Real-Time Object Detection with Region
Proposal Networks", NeurIPS 2015 (sec. 3.1: anchors, their labels, the box parametrisation,
mini-batches of 256 anchors; sec. 3.2: proposals and NMS), and Girshick, "Fast R-CNN",
ICCV 2015 (sec. 2.3: RoI mini-batches, a quarter foreground at IoU >= 0.5). Boxes are corners
``(x_min, y_min, x_max, y_max)`` in pixels of the model input; every function works on a batch
of images with ground truth padded to ``M`` rows (``valid`` says which rows are real), so the
whole training step keeps static shapes where it can.

* :func:`base_anchors` and :func:`anchor_grid`: ``k = len(sizes) * len(ratios)`` anchors
  (9 by default: 3 sizes x 3 aspect ratios) centred on every feature-map cell, row-major
  ``(row, column, anchor)``, the order the RPN's outputs are flattened in.
* :func:`encode_boxes` / :func:`decode_boxes`: ``tx = (x - xa) / wa``, ``ty = (y - ya) / ha``,
  ``tw = log(w / wa)``, ``th = log(h / ha)`` (the paper's eq. 2), times optional weights
  (Fast R-CNN's head uses 10, 10, 5, 5, the inverse of the targets' usual spread).
* :func:`label_anchors`: positive when the IoU with a ground-truth box is above 0.7, or when
  the anchor is (one of) the best for some box; negative below 0.3; the rest ignored.
* :func:`sample_labels`: at most ``batch`` labelled anchors per image, at most
  ``positive_fraction`` of them positive, the rest negatives; others become "ignored".
* :func:`generate_proposals`: decode, clip to the image, drop boxes smaller than
  ``min_size``, keep the ``pre_nms`` best, NMS at 0.7, keep the ``post_nms`` best.
* :func:`sample_rois`: the second stage's training RoIs (proposals plus the ground truth),
  their classes (0 = background) and box targets.

Randomness (which anchors and RoIs are sampled) comes from ``tf.random`` with the global seed,
so a seeded run repeats.

Example:
    >>> import numpy as np
    >>> base_anchors([64], [0.5, 1.0, 2.0]).round(1).tolist()[1]
    [-32.0, -32.0, 32.0, 32.0]
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import tensorflow as tf

from foveal.ops.boxes import iou_matrix

#: the largest ``tw``/``th`` decoded (``log(1000 / 16)``, Detectron's clamp): exp() stays finite
MAX_LOG_SCALE = float(np.log(1000.0 / 16))


def base_anchors(sizes: Sequence[float], ratios: Sequence[float]) -> np.ndarray:
    """``[len(sizes) * len(ratios), 4]`` anchors centred on 0: for each size ``s`` (the square
    root of the area, in pixels) and each ratio ``r = h / w``: ``w = s / sqrt(r)``, ``h = s * sqrt(r)``.

    Sizes vary slowest: anchor ``i`` has size ``sizes[i // len(ratios)]`` and ratio
    ``ratios[i % len(ratios)]``.
    """
    rows = []
    for size in sizes:
        for ratio in ratios:
            w, h = float(size) / np.sqrt(ratio), float(size) * np.sqrt(ratio)
            rows.append([-w / 2, -h / 2, w / 2, h / 2])
    return np.asarray(rows, np.float32).reshape(-1, 4)


def anchor_grid(height, width, stride: float, base: np.ndarray) -> tf.Tensor:
    """Every anchor of a ``height`` x ``width`` feature map, ``[height * width * k, 4]`` pixels.

    Cell ``(i, j)`` is centred at ``((j + 0.5) * stride, (i + 0.5) * stride)`` in the input; the
    order is row-major over ``(i, j, anchor)``, as ``reshape`` flattens ``[B, H, W, k]``.
    """
    xs = (tf.cast(tf.range(width), tf.float32) + 0.5) * float(stride)
    ys = (tf.cast(tf.range(height), tf.float32) + 0.5) * float(stride)
    cx, cy = tf.meshgrid(xs, ys)  # [H, W]
    centres = tf.stack([cx, cy, cx, cy], axis=-1)[:, :, None, :]  # [H, W, 1, 4]
    return tf.reshape(centres + tf.constant(base, tf.float32)[None, None], [-1, 4])


def best_anchor_iou(anchors, boxes) -> np.ndarray:
    """For each box, the highest IoU of any anchor: how well a set of anchors fits the objects
    (an RPN learns from the anchors above its positive IoU, 0.7; below it only each box's best
    anchor is positive). NumPy, in chunks of boxes.

    Args:
        anchors: ``[A, 4]`` corners in pixels (e.g. a model's ``anchors_for_image``).
        boxes: ``[N, 4]`` corners in the same pixels.

    Returns:
        ``[N]`` float64 best IoUs (0 for an empty box).

    Example:
        >>> best_anchor_iou(np.array([[0, 0, 10, 10], [0, 0, 20, 20]]), np.array([[0, 0, 10, 5]])).tolist()
        [0.5]
    """
    anchors = np.asarray(anchors, np.float64).reshape(-1, 4)
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    best = np.zeros(len(boxes))
    for start in range(0, len(boxes), 64):  # chunks: [64, A] IoUs at a time (A ~ 200,000 anchors)
        best[start:start + 64] = iou_matrix(boxes[start:start + 64], anchors).max(axis=1, initial=0.0)
    return best


def _centre_size(boxes):
    w = boxes[..., 2] - boxes[..., 0]
    h = boxes[..., 3] - boxes[..., 1]
    return boxes[..., 0] + 0.5 * w, boxes[..., 1] + 0.5 * h, w, h


def encode_boxes(boxes, reference, weights: Sequence[float] = (1.0, 1.0, 1.0, 1.0)) -> tf.Tensor:
    """Deltas ``(tx, ty, tw, th)`` that move ``reference`` boxes (anchors, RoIs) onto ``boxes``.

    Both are corners ``[..., 4]`` of broadcastable shapes; sizes are floored at 1e-6 pixels.
    """
    boxes = tf.convert_to_tensor(boxes, tf.float32)
    reference = tf.convert_to_tensor(reference, tf.float32)
    x, y, w, h = _centre_size(boxes)
    xa, ya, wa, ha = _centre_size(reference)
    wa, ha = tf.maximum(wa, 1e-6), tf.maximum(ha, 1e-6)
    wx, wy, ww, wh = (float(v) for v in weights)
    return tf.stack([wx * (x - xa) / wa, wy * (y - ya) / ha,
                     ww * tf.math.log(tf.maximum(w, 1e-6) / wa), wh * tf.math.log(tf.maximum(h, 1e-6) / ha)], axis=-1)


def decode_boxes(deltas, reference, weights: Sequence[float] = (1.0, 1.0, 1.0, 1.0)) -> tf.Tensor:
    """The inverse of :func:`encode_boxes` (``tw``, ``th`` clamped at :data:`MAX_LOG_SCALE`)."""
    deltas = tf.convert_to_tensor(deltas, tf.float32)
    reference = tf.convert_to_tensor(reference, tf.float32)
    xa, ya, wa, ha = _centre_size(reference)
    wx, wy, ww, wh = (float(v) for v in weights)
    x = deltas[..., 0] / wx * wa + xa
    y = deltas[..., 1] / wy * ha + ya
    w = tf.exp(tf.minimum(deltas[..., 2] / ww, MAX_LOG_SCALE)) * wa
    h = tf.exp(tf.minimum(deltas[..., 3] / wh, MAX_LOG_SCALE)) * ha
    return tf.stack([x - 0.5 * w, y - 0.5 * h, x + 0.5 * w, y + 0.5 * h], axis=-1)


def pairwise_iou(boxes_a, boxes_b) -> tf.Tensor:
    """IoU of every pair: ``[..., N, 4]`` x ``[..., M, 4]`` -> ``[..., N, M]`` (0 for empty unions)."""
    a = tf.expand_dims(tf.convert_to_tensor(boxes_a, tf.float32), -2)
    b = tf.expand_dims(tf.convert_to_tensor(boxes_b, tf.float32), -3)
    w = tf.maximum(tf.minimum(a[..., 2], b[..., 2]) - tf.maximum(a[..., 0], b[..., 0]), 0.0)
    h = tf.maximum(tf.minimum(a[..., 3], b[..., 3]) - tf.maximum(a[..., 1], b[..., 1]), 0.0)
    inter = w * h
    area_a = tf.maximum(a[..., 2] - a[..., 0], 0.0) * tf.maximum(a[..., 3] - a[..., 1], 0.0)
    area_b = tf.maximum(b[..., 2] - b[..., 0], 0.0) * tf.maximum(b[..., 3] - b[..., 1], 0.0)
    union = area_a + area_b - inter
    return tf.where(union > 0, inter / tf.maximum(union, 1e-9), 0.0)


def _matched_iou(boxes, gt_boxes, gt_valid):
    """IoU ``[B, N, M]`` with the padding columns at -1, and each row's best value and column."""
    iou = pairwise_iou(boxes, gt_boxes)
    iou = tf.where(gt_valid[:, None, :], iou, -1.0)
    return iou, tf.reduce_max(iou, axis=-1), tf.argmax(iou, axis=-1, output_type=tf.int32)


def label_anchors(anchors, gt_boxes, gt_valid, *, positive_iou: float = 0.7,
                  negative_iou: float = 0.3) -> tuple[tf.Tensor, tf.Tensor]:
    """The RPN's anchor labels (Faster R-CNN, sec. 3.1.2).

    Args:
        anchors: ``[A, 4]`` pixels.
        gt_boxes: ``[B, M, 4]`` pixels; gt_valid: ``[B, M]`` bool (False on padding rows).
        positive_iou: an anchor whose best IoU is above this is positive.
        negative_iou: an anchor whose best IoU is below this (and that is not positive) is negative.

    Returns:
        ``(labels, matched)``: int32 ``[B, A]`` (1 positive, 0 negative, -1 ignored) and the
        index of each anchor's ground-truth box (its best IoU; meaningful where positive).
        Anchors with the highest IoU of some box are positive too (ties all count), so every
        box has at least one positive anchor even when no IoU passes ``positive_iou``.
    """
    anchors = tf.convert_to_tensor(anchors, tf.float32)
    gt_valid = tf.cast(gt_valid, tf.bool)
    batch = tf.shape(gt_boxes)[0]
    iou, best, matched = _matched_iou(tf.broadcast_to(anchors[None], [batch, tf.shape(anchors)[0], 4]),
                                      gt_boxes, gt_valid)
    per_gt_best = tf.reduce_max(iou, axis=1, keepdims=True)  # [B, 1, M]
    is_best = tf.reduce_any((iou >= per_gt_best) & (per_gt_best > 0) & gt_valid[:, None, :], axis=-1)
    labels = tf.fill(tf.shape(best), -1)
    labels = tf.where(best < negative_iou, 0, labels)
    labels = tf.where((best > positive_iou) | is_best, 1, labels)
    return labels, matched


def _rank_within(mask, priority):
    """For each True of ``mask [B, N]``, its rank 0, 1, ... by descending ``priority`` among the
    Trues of its row (False entries rank after every True)."""
    keys = tf.where(mask, priority, -1.0)
    order = tf.argsort(keys, axis=-1, direction="DESCENDING", stable=True)
    return tf.argsort(order, axis=-1, stable=True)


def sample_labels(labels, *, batch: int = 256, positive_fraction: float = 0.5, seed: int | None = None) -> tf.Tensor:
    """Keep at most ``batch`` labels per image, at most ``positive_fraction`` of them positive.

    Positives are drawn at random (at most ``int(batch * positive_fraction)``), then negatives
    fill the rest; all other entries become -1 (ignored). With fewer positives than the quota,
    more negatives are taken (the paper's "padded with negatives").
    """
    labels = tf.convert_to_tensor(labels, tf.int32)
    max_pos = int(batch * positive_fraction)
    pos, neg = labels == 1, labels == 0
    priority = tf.random.uniform(tf.shape(labels), seed=seed)
    keep_pos = pos & (_rank_within(pos, priority) < max_pos)
    count_pos = tf.reduce_sum(tf.cast(keep_pos, tf.int32), axis=-1, keepdims=True)
    keep_neg = neg & (_rank_within(neg, priority) < batch - count_pos)
    return tf.where(keep_pos, 1, tf.where(keep_neg, 0, -1))


def clip_to_image(boxes, height, width) -> tf.Tensor:
    """Corner boxes clipped to a ``height`` x ``width`` image."""
    limits = tf.cast(tf.stack([width, height, width, height]), tf.float32)
    return tf.clip_by_value(boxes, 0.0, limits)


def _top_indices(logits, pre_nms: int, level_counts) -> tf.Tensor:
    """Indices of the ``pre_nms`` highest ``logits [A]``, or of each level's ``pre_nms`` highest
    when ``level_counts`` (anchors per level, in order) is given (FPN: per-level top-k)."""
    if level_counts is None:
        return tf.math.top_k(logits, k=tf.minimum(int(pre_nms), tf.shape(logits)[0])).indices
    chosen, offset = [], tf.constant(0, tf.int32)
    for size in level_counts:
        size = tf.cast(size, tf.int32)
        part = logits[offset:offset + size]
        chosen.append(tf.math.top_k(part, k=tf.minimum(int(pre_nms), size)).indices + offset)
        offset = offset + size
    return tf.concat(chosen, 0)


def generate_proposals(objectness, deltas, anchors, image_hw, *, pre_nms: int = 2000, post_nms: int = 300,
                       nms_iou: float = 0.7, min_size: float = 1.0,
                       level_counts: Sequence | None = None) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Region proposals from the RPN's outputs (Faster R-CNN, sec. 3.3 "Implementation details").

    Per image: the ``pre_nms`` anchors of highest objectness are decoded, clipped to the image,
    boxes narrower or lower than ``min_size`` pixels dropped, greedy NMS at ``nms_iou``, and the
    ``post_nms`` best kept. With ``level_counts`` (a feature pyramid's anchors, level after
    level), the ``pre_nms`` best are taken from each level, then NMS runs over all of them
    together (Lin et al., "Feature Pyramid Networks", sec. 5.1).

    Args:
        objectness: ``[B, A]`` logits; deltas: ``[B, A, 4]``; anchors: ``[A, 4]`` pixels.
        image_hw: ``(height, width)`` of the input (tensors or ints).
        level_counts: anchors of each pyramid level (ints or scalar tensors), summing to ``A``.

    Returns:
        ``(boxes [B, post_nms, 4], scores [B, post_nms], valid [B, post_nms])``, best first,
        padded with zero boxes, score 0 and ``valid`` False.
    """
    height, width = image_hw
    anchors = tf.convert_to_tensor(anchors, tf.float32)
    post_nms = int(post_nms)

    def one(args):
        logits, d = args
        top = _top_indices(logits, pre_nms, level_counts)
        boxes = clip_to_image(decode_boxes(tf.gather(d, top), tf.gather(anchors, top)), height, width)
        scores = tf.sigmoid(tf.gather(logits, top))
        big = ((boxes[:, 2] - boxes[:, 0]) >= min_size) & ((boxes[:, 3] - boxes[:, 1]) >= min_size)
        keep = tf.where(big)[:, 0]
        boxes, scores = tf.gather(boxes, keep), tf.gather(scores, keep)
        selected = tf.image.non_max_suppression(boxes, scores, post_nms, iou_threshold=nms_iou)
        count = tf.shape(selected)[0]
        pad = post_nms - count
        return (tf.pad(tf.gather(boxes, selected), [[0, pad], [0, 0]]), tf.pad(tf.gather(scores, selected), [[0, pad]]),
                tf.pad(tf.ones([count], tf.bool), [[0, pad]]))

    signature = (tf.TensorSpec([post_nms, 4], tf.float32), tf.TensorSpec([post_nms], tf.float32),
                 tf.TensorSpec([post_nms], tf.bool))
    return tf.map_fn(one, (tf.cast(objectness, tf.float32), tf.cast(deltas, tf.float32)), fn_output_signature=signature)


def sample_rois(proposals, proposal_valid, gt_boxes, gt_classes, gt_valid, *, batch: int = 512,
                positive_fraction: float = 0.25, positive_iou: float = 0.5, negative_iou_low: float = 0.0,
                weights: Sequence[float] = (10.0, 10.0, 5.0, 5.0), seed: int | None = None) -> dict[str, tf.Tensor]:
    """The second stage's training RoIs (Fast R-CNN, sec. 2.3 "Mini-batch sampling").

    The candidates are the proposals and the ground-truth boxes themselves (so that early in
    training, when proposals are poor, the head still sees foreground). A candidate is
    foreground when its best IoU with a ground-truth box is at least ``positive_iou``, background
    when it is in ``[negative_iou_low, positive_iou)``. At most ``positive_fraction`` of ``batch``
    are foreground, drawn at random; background fills the rest.

    Returns:
        A dict of ``R = min(batch, P + M)`` rows per image: ``rois [B, R, 4]``, ``labels [B, R]``
        int32 (class + 1 for foreground, 0 background, -1 for unused rows), ``targets [B, R, 4]``
        (the ground truth encoded against the RoI with ``weights``; meaningful on foreground) and
        ``gt_index [B, R]`` (the row of the ground-truth box each RoI matched best). Foreground
        rows come first: at most ``int(batch * positive_fraction)`` of them.
    """
    gt_valid = tf.cast(gt_valid, tf.bool)
    candidates = tf.concat([tf.cast(proposals, tf.float32), tf.cast(gt_boxes, tf.float32)], axis=1)
    valid = tf.concat([tf.cast(proposal_valid, tf.bool), gt_valid], axis=1)
    _, best, matched = _matched_iou(candidates, gt_boxes, gt_valid)
    best = tf.maximum(best, 0.0)  # an image without boxes: every candidate is background (IoU 0)
    fg = valid & (best >= positive_iou)
    bg = valid & (best < positive_iou) & (best >= negative_iou_low)
    priority = tf.random.uniform(tf.shape(best), seed=seed)
    keep_fg = fg & (_rank_within(fg, priority) < int(batch * positive_fraction))
    count_fg = tf.reduce_sum(tf.cast(keep_fg, tf.int32), axis=-1, keepdims=True)
    keep_bg = bg & (_rank_within(bg, priority) < batch - count_fg)
    total = candidates.shape[1]
    rows = min(int(batch), int(total)) if total is not None else int(batch)
    key = tf.where(keep_fg, 2.0 + priority, tf.where(keep_bg, 1.0 + priority, -1.0))
    picked = tf.math.top_k(key, k=rows, sorted=True).indices
    rois = tf.gather(candidates, picked, batch_dims=1)
    key = tf.gather(key, picked, batch_dims=1)
    gt_index = tf.gather(matched, picked, batch_dims=1)
    classes = tf.gather(tf.cast(gt_classes, tf.int32), gt_index, batch_dims=1)
    labels = tf.where(key >= 2.0, classes + 1, tf.where(key >= 1.0, 0, -1))
    targets = encode_boxes(tf.gather(tf.cast(gt_boxes, tf.float32), gt_index, batch_dims=1), rois, weights)
    return {"rois": tf.stop_gradient(rois), "labels": labels, "targets": tf.stop_gradient(targets),
            "gt_index": gt_index}


def smooth_l1(x, beta: float = 1.0) -> tf.Tensor:
    """``0.5 x^2 / beta`` where ``|x| < beta``, else ``|x| - 0.5 beta`` (Fast R-CNN, eq. 3; beta 1)."""
    ax = tf.abs(x)
    return tf.where(ax < beta, 0.5 * ax * ax / beta, ax - 0.5 * beta)


__all__ = ["MAX_LOG_SCALE", "anchor_grid", "base_anchors", "best_anchor_iou", "clip_to_image", "decode_boxes",
           "encode_boxes", "generate_proposals", "label_anchors", "pairwise_iou", "sample_labels", "sample_rois",
           "smooth_l1"]
