"""Mask R-CNN: foveal's Faster R-CNN plus a mask head on RoI Align features.

He, Gkioxari, Dollár & Girshick, "Mask R-CNN", ICCV 2017. The detector is
:class:`foveal.detection.faster_rcnn.FasterRCNNModel` unchanged (backbone, RPN, proposals,
RoI Align, class and box head, their four losses and class-aware NMS); this subclass adds the
paper's third branch:

* **Mask head** (the paper's Fig. 4, on one feature map, or on the FPN level each RoI's size
  picks with ``fpn=True``): RoI Align to 14 x 14, a
  few 3x3 convolutions (ReLU), a 2x2 transposed convolution of stride 2 to 28 x 28 and a 1x1
  convolution to ``K`` mask logits, one 28 x 28 mask per class (mask and class are decoupled).
* **Loss** ``L_mask``: the mean per-pixel binary cross-entropy of the ground-truth class's mask
  only, on the positive (foreground) RoIs of the second stage's sample; the target is the RoI's
  ground-truth mask resampled to 28 x 28 (:func:`foveal.instance.masks.mask_targets`). ``fit``
  minimises ``rpn_cls_loss + rpn_box_loss + cls_loss + box_loss + mask_loss`` and logs each.
* **Inference**: the mask head runs on the detector's final boxes (after NMS, as the paper
  does at test time); ``predict`` adds ``masks [N, D, 28, 28]``, the predicted class's mask
  probabilities, to the detector's boxes, scores and classes.
  :func:`foveal.instance.masks.paste_masks` resizes each into its box in the original image
  and thresholds it at 0.5.

The targets ``fit`` takes are the detector's plus the instances' masks:
``{"boxes": [B, M, 4] normalised corners, "classes": [B, M] (-1 padding), "masks": [B, M, 64, 64]}``
(each mask's 0..255 coverage in its box's frame, :func:`foveal.instance.masks.box_mask`; see
:mod:`foveal.instance.pipeline`).

Example:
    >>> model = build_mask_rcnn("resnet18", 3, input_shape=(128, 128, 3), backbone_options={"width": 16},
    ...                         anchor_sizes=[16, 32, 64], head_width=64, mask_width=32)  # doctest: +SKIP
    >>> model.compile("adam"); model.fit(dataset)  # doctest: +SKIP
    >>> model.predict(images)["masks"].shape  # doctest: +SKIP
    (N, 100, 28, 28)
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf
from keras import layers

from foveal.detection.faster_rcnn import RPN_COMPONENTS, FasterRCNNModel, build_faster_rcnn
from foveal.errors import ConfigError
from foveal.instance.masks import mask_targets

MASK_COMPONENTS = (*RPN_COMPONENTS, "mask_loss")


def build_mask_rcnn(backbone: str, num_classes: int, *, mask_width: int = 256, mask_convs: int = 4,
                    mask_pool: int = 14, **options: Any) -> "MaskRCNNModel":
    """Build a Mask R-CNN on ``backbone``.

    Args:
        backbone, num_classes: as :func:`foveal.detection.faster_rcnn.build_faster_rcnn`.
        mask_width: channels of the mask head's convolutions (the paper: 256).
        mask_convs: 3x3 convolutions before the upsampling (the paper: 4).
        mask_pool: RoI Align side of the mask head (the paper: 14; masks are twice that).
        **options: every other option of :func:`~foveal.detection.faster_rcnn.build_faster_rcnn`
            (level, anchors, head width, post-processing, ...).
    """
    if min(mask_width, mask_convs, mask_pool) < 1:
        raise ConfigError("mask_width, mask_convs and mask_pool must be at least 1")
    return build_faster_rcnn(backbone, num_classes, model_class=MaskRCNNModel,
                             model_options={"mask_width": mask_width, "mask_convs": mask_convs,
                                            "mask_pool": mask_pool}, **options)


def mask_loss(logits, labels, targets) -> tf.Tensor:
    """Mask R-CNN's ``L_mask``: the mean per-pixel sigmoid cross-entropy of each foreground RoI's
    ground-truth class's mask, averaged over the foreground RoIs (0 without any).

    Args:
        logits: ``[B, R, m, m, K]`` mask logits; labels: ``[B, R]`` (class + 1, 0 background,
            -1 unused); targets: ``[B, R, m, m]`` 0/1.
    """
    labels = tf.cast(labels, tf.int32)
    chosen = tf.gather(tf.transpose(logits, [0, 1, 4, 2, 3]), tf.maximum(labels - 1, 0), batch_dims=2)  # [B, R, m, m]
    bce = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.cast(targets, tf.float32), logits=chosen),
                         axis=[2, 3])
    foreground = tf.cast(labels > 0, tf.float32)
    return tf.reduce_sum(bce * foreground) / tf.maximum(tf.reduce_sum(foreground), 1.0)


@keras.saving.register_keras_serializable(package="foveal")
class MaskRCNNModel(FasterRCNNModel):
    """A Faster R-CNN with a mask branch; see the module docstring.

    Args:
        *args, **kwargs: :class:`~foveal.detection.faster_rcnn.FasterRCNNModel`'s.
        mask_width, mask_convs, mask_pool: the mask head (see :func:`build_mask_rcnn`).

    ``predict(images)`` returns the detector's ``boxes``, ``scores``, ``classes``,
    ``num_detections`` and ``masks [N, D, 2 * mask_pool, 2 * mask_pool]`` (probabilities of the
    detected class, in the box's frame).
    """

    name_suffix = "mask_rcnn"

    def __init__(self, *args: Any, mask_width: int = 256, mask_convs: int = 4, mask_pool: int = 14,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.mask_width, self.mask_convs, self.mask_pool = int(mask_width), int(mask_convs), int(mask_pool)
        channels = self.pooled_channels
        self.mask_roi = self.roi_pooling(self.mask_pool, "align", "roi_align_mask")
        self.mask_layers = []
        width = channels
        for i in range(self.mask_convs):
            conv = layers.Conv2D(self.mask_width, 3, padding="same", activation="relu", name=f"head_mask_conv{i + 1}")
            conv.build((None, self.mask_pool, self.mask_pool, width))
            self.mask_layers.append(conv)
            width = self.mask_width
        self.mask_up = layers.Conv2DTranspose(self.mask_width, 2, strides=2, activation="relu", name="head_mask_up")
        self.mask_up.build((None, self.mask_pool, self.mask_pool, width))
        self.mask_logits = layers.Conv2D(self.num_classes, 1, dtype="float32", name="head_mask_logits")
        self.mask_logits.build((None, 2 * self.mask_pool, 2 * self.mask_pool, self.mask_width))
        self.active_losses = MASK_COMPONENTS
        self.mask_loss_tracker = keras.metrics.Mean(name="mask_loss")

    @property
    def mask_size(self) -> int:
        return 2 * self.mask_pool

    def mask_head(self, features, rois, training: bool = False) -> tf.Tensor:
        """Mask logits ``[B, R, m, m, K]`` of ``rois [B, R, 4]`` (input pixels), ``m = 2 * mask_pool``."""
        pooled = self.pool_rois(self.mask_roi, features, rois)  # [B, R, P, P, C]
        shape = tf.shape(rois)
        x = tf.reshape(pooled, [shape[0] * shape[1], self.mask_pool, self.mask_pool, pooled.shape[-1]])
        for conv in self.mask_layers:
            x = conv(x, training=training)
        x = self.mask_logits(self.mask_up(x, training=training))
        m = self.mask_size
        return tf.reshape(tf.cast(x, tf.float32), [shape[0], shape[1], m, m, self.num_classes])

    def losses_of(self, images, targets, out) -> dict[str, tf.Tensor]:
        """The detector's four losses and ``mask_loss`` (see the module docstring)."""
        parts, roi = self.losses_and_rois(images, targets, out)
        s = self.rcnn
        positives = max(1, int(s.roi_batch * s.roi_positive_fraction))  # foreground rows come first
        rois = roi["rois"][:, :positives]
        labels = roi["labels"][:, :positives]
        gt_index = roi["gt_index"][:, :positives]
        logits = self.mask_head(out["features"], rois, training=True)  # [B, P, m, m, K]
        hw = tf.cast(tf.shape(images)[1:3], tf.float32)
        gt_boxes = tf.cast(targets["boxes"], tf.float32) * tf.stack([hw[1], hw[0], hw[1], hw[0]])
        target = tf.stop_gradient(mask_targets(targets["masks"], rois, gt_index, self.mask_size, gt_boxes=gt_boxes))
        parts["mask_loss"] = mask_loss(logits, labels, target)
        return parts

    def set_training_step(self, step: int | None) -> None:
        """Joint training only: the paper trains Mask R-CNN end to end."""
        if step is not None:
            raise ConfigError("Mask R-CNN trains end to end (joint training); the 4-step alternating "
                              "scheme is Faster R-CNN's")
        super().set_training_step(None)
        self.active_losses = MASK_COMPONENTS

    def head_layers(self) -> list[keras.layers.Layer]:
        return [*super().head_layers(), *self.mask_layers, self.mask_up, self.mask_logits]

    def detections(self, images) -> dict[str, tf.Tensor]:
        """The detector's boxes, scores, classes and count, and each box's mask probabilities."""
        result, features = self.detections_and_features(images)
        shape = tf.shape(images)
        scale = tf.cast(tf.stack([shape[2], shape[1], shape[2], shape[1]]), tf.float32)
        logits = self.mask_head(features, result["boxes"] * scale)  # [B, D, m, m, K]
        channel = tf.maximum(tf.cast(result["classes"], tf.int32), 0)
        chosen = tf.gather(tf.transpose(logits, [0, 1, 4, 2, 3]), channel, batch_dims=2)
        return {**result, "masks": tf.sigmoid(chosen)}

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "mask_width": self.mask_width, "mask_convs": self.mask_convs,
                "mask_pool": self.mask_pool}


__all__ = ["MASK_COMPONENTS", "MaskRCNNModel", "build_mask_rcnn", "mask_loss"]
