"""The YOLO training loss, with its targets built in-graph from padded ground-truth boxes.

Redmon et al., "You Only Look Once", CVPR 2016 (the sum-squared loss with ``lambda_coord`` and
``lambda_noobj``); Redmon & Farhadi, "YOLO9000", CVPR 2017 (anchors, sigmoid/exp offsets) and
"YOLOv3: An Incremental Improvement", arXiv 2018 (one responsible anchor across all scales,
logistic objectness, predictions overlapping an object left out of the no-object term).

**Targets** (``{"boxes": [B, M, 4], "classes": [B, M]}``, normalised corners, padding class -1)
are assigned for whatever grid each batch produced (:func:`assign_targets`): a box's
*responsible anchor* is the one of highest shape IoU over the anchors of all scales (its scale
is the box's), its *responsible cell* the one holding its centre, and its encoding that of
:func:`foveal.ops.boxes.encode_yolo` (the centre's offset in the cell, ``log(size / anchor)``).

**Loss** (per image, summed over predictions, then averaged over the batch)::

    coord = sum_resp (2 - w*h) [(sig(tx) - x)^2 + (sig(ty) - y)^2 + (tw - tw*)^2 + (th - th*)^2]
    obj   = sum_resp BCE(1, sig(to))
    noobj = sum_{not resp, best IoU with any object < ignore_threshold} BCE(0, sig(to))
    class = sum_resp softmax cross-entropy(class, c)
    loss  = lambda_coord * coord + lambda_obj * obj + lambda_noobj * noobj + lambda_class * class

The ``2 - w*h`` weight (normalised sizes) favours small boxes, the job of the texts' square
roots; a prediction equal to the encoded target costs exactly zero. Classes use a softmax
cross-entropy (one label per box, as YOLOv2 and the texts), so a single class has no class term.
The ignore IoU is computed on the decoded predictions without gradient.

Example:
    >>> import numpy as np
    >>> loss = YoloLoss(np.array([[0.2, 0.2], [0.5, 0.5]], np.float32))
    >>> targets = {"boxes": np.array([[[0.1, 0.1, 0.3, 0.3]]], np.float32), "classes": np.array([[0]])}
    >>> raw = np.zeros((1, 4, 4, 2, 6), np.float32)
    >>> sorted(loss.components(targets, [raw]))
    ['class', 'coord', 'loss', 'noobj', 'obj']
"""

from __future__ import annotations

from typing import Any, Sequence

import keras
import numpy as np
import tensorflow as tf

from foveal.detection.postprocess import as_list, decode_scale, split_anchors
from foveal.ops.boxes import iou_matrix_tensor

COMPONENTS = ("coord", "obj", "noobj", "class")


def _shape_iou(wh, anchors):
    """IoU ``[..., R]`` of box sizes ``[..., 2]`` with anchor sizes ``[R, 2]`` sharing one centre."""
    wh = wh[..., None, :]
    inter = tf.minimum(wh[..., 0], anchors[:, 0]) * tf.minimum(wh[..., 1], anchors[:, 1])
    union = wh[..., 0] * wh[..., 1] + anchors[:, 0] * anchors[:, 1] - inter
    return inter / tf.maximum(union, 1e-9)


def assign_targets(boxes, classes, anchors, grid_sizes: Sequence[tuple[Any, Any]],
                   anchors_per_scale: int) -> list[dict[str, tf.Tensor]]:
    """Responsible anchor, cell and encoded box of every ground-truth box, per scale.

    Dense and static-shaped, so the loss compiles with XLA: every scale gets a row for every
    ``(image, box)`` pair, and ``mask`` says which rows are real boxes of that scale.

    Args:
        grid_sizes: ``(gh, gw)`` of each scale (ints or scalar tensors).

    Returns:
        One dict per scale, each value ``[B, M, ...]``: ``indices`` ``(image, row, col, anchor)``
        into that scale's prediction, ``mask``, ``xy`` (offset in the cell), ``twh`` (log size
        ratios), ``weight`` (``2 - w*h``) and ``classes`` (padding as 0).
    """
    boxes = tf.cast(tf.convert_to_tensor(boxes), tf.float32)
    classes = tf.cast(tf.convert_to_tensor(classes), tf.int32)
    anchors = tf.constant(np.asarray(anchors, np.float32).reshape(-1, 2))
    wh = boxes[..., 2:] - boxes[..., :2]
    centre = (boxes[..., :2] + boxes[..., 2:]) / 2
    valid = (classes >= 0) & (wh[..., 0] > 0) & (wh[..., 1] > 0)
    wh = tf.where(valid[..., None], wh, 1.0)  # keeps log() finite on padding rows
    best = tf.argmax(_shape_iou(wh, anchors), axis=-1, output_type=tf.int32)  # [B, M] over all scales
    shape = tf.shape(classes)
    image = tf.broadcast_to(tf.range(shape[0])[:, None], shape)
    twh = tf.math.log(wh / tf.gather(anchors, best))
    out = []
    for scale, (grid_h, grid_w) in enumerate(grid_sizes):
        mask = valid & (best // anchors_per_scale == scale)
        anchor = tf.clip_by_value(best - scale * anchors_per_scale, 0, anchors_per_scale - 1)
        grid = tf.cast(tf.stack([grid_w, grid_h]), tf.float32)
        scaled = centre * grid  # centre in grid units (x, y)
        cell = tf.clip_by_value(tf.cast(tf.floor(scaled), tf.int32), 0, tf.cast(grid, tf.int32) - 1)
        out.append({
            "indices": tf.stack([image, cell[..., 1], cell[..., 0], anchor], axis=-1),
            "mask": tf.cast(mask, tf.float32),
            "xy": scaled - tf.cast(cell, tf.float32),
            "twh": twh,
            "weight": 2.0 - wh[..., 0] * wh[..., 1],
            "classes": tf.maximum(classes, 0),
        })
    return out


@keras.saving.register_keras_serializable(package="foveal")
class YoloLoss:
    """The YOLOv2/v3 loss of the module docstring, on raw outputs ``[B, gh, gw, A, 5+K]``.

    Args:
        anchors: the model's ``[S*A, 2]`` normalised anchors, sorted by area.
        lambda_coord, lambda_noobj: 5 and 0.5 in the YOLO paper and the texts.
        ignore_threshold: predictions whose best IoU with a true box exceeds this add no
            no-object loss (YOLOv3: 0.5; the texts mention 0.6).

    Example:
        >>> YoloLoss([[0.1, 0.1], [0.3, 0.3]], lambda_noobj=1.0).get_config()["lambda_noobj"]
        1.0
    """

    def __init__(self, anchors, *, lambda_coord: float = 5.0, lambda_obj: float = 1.0, lambda_noobj: float = 0.5,
                 lambda_class: float = 1.0, ignore_threshold: float = 0.5) -> None:
        self.anchors = np.asarray(anchors, np.float32).reshape(-1, 2)
        self.lambda_coord = float(lambda_coord)
        self.lambda_obj = float(lambda_obj)
        self.lambda_noobj = float(lambda_noobj)
        self.lambda_class = float(lambda_class)
        self.ignore_threshold = float(ignore_threshold)

    def __call__(self, targets: dict[str, Any], raw_outputs) -> tf.Tensor:
        return self.components(targets, raw_outputs)["loss"]

    def components(self, targets: dict[str, Any], raw_outputs) -> dict[str, tf.Tensor]:
        """The four unweighted terms (per image) and the weighted total ``loss``."""
        outputs = [tf.cast(o, tf.float32) for o in as_list(raw_outputs)]
        groups = split_anchors(self.anchors, len(outputs))
        boxes = tf.cast(tf.convert_to_tensor(targets["boxes"]), tf.float32)
        classes = tf.cast(tf.convert_to_tensor(targets["classes"]), tf.int32)
        sizes = [(tf.shape(o)[1], tf.shape(o)[2]) for o in outputs]
        real = tf.cast(classes >= 0, tf.float32)[..., None, :]  # [B, 1, M]
        assigned = assign_targets(boxes, classes, self.anchors, sizes, len(groups[0]))
        terms = {name: tf.constant(0.0) for name in COMPONENTS}
        for raw, group, target in zip(outputs, groups, assigned):
            mask = target["mask"]
            picked = tf.gather_nd(raw, target["indices"])  # [B, M, 5+K]
            coord = (tf.reduce_sum(tf.square(tf.sigmoid(picked[..., :2]) - target["xy"]), -1)
                     + tf.reduce_sum(tf.square(picked[..., 2:4] - target["twh"]), -1))
            terms["coord"] += tf.reduce_sum(mask * target["weight"] * coord)
            terms["obj"] += tf.reduce_sum(mask * tf.nn.sigmoid_cross_entropy_with_logits(
                tf.ones_like(picked[..., 4]), picked[..., 4]))
            terms["class"] += tf.reduce_sum(mask * tf.nn.sparse_softmax_cross_entropy_with_logits(
                target["classes"], picked[..., 5:]))
            responsible = tf.scatter_nd(target["indices"], mask, tf.shape(raw)[:4])
            decoded = tf.stop_gradient(decode_scale(raw, group))
            flat = tf.reshape(decoded, [tf.shape(raw)[0], -1, 4])
            best_iou = tf.reduce_max(iou_matrix_tensor(flat, boxes) * real, axis=-1)
            keep = tf.cast(best_iou <= self.ignore_threshold, tf.float32)
            keep = tf.reshape(keep, tf.shape(raw)[:4]) * tf.cast(responsible == 0, tf.float32)
            terms["noobj"] += tf.reduce_sum(keep * tf.nn.sigmoid_cross_entropy_with_logits(
                tf.zeros_like(raw[..., 4]), raw[..., 4]))
        batch = tf.cast(tf.shape(outputs[0])[0], tf.float32)
        terms = {name: value / batch for name, value in terms.items()}
        terms["loss"] = (self.lambda_coord * terms["coord"] + self.lambda_obj * terms["obj"]
                         + self.lambda_noobj * terms["noobj"] + self.lambda_class * terms["class"])
        return terms

    def get_config(self) -> dict[str, Any]:
        return {"anchors": self.anchors.tolist(), "lambda_coord": self.lambda_coord, "lambda_obj": self.lambda_obj,
                "lambda_noobj": self.lambda_noobj, "lambda_class": self.lambda_class,
                "ignore_threshold": self.ignore_threshold}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "YoloLoss":
        config = dict(config)
        return cls(config.pop("anchors"), **config)
