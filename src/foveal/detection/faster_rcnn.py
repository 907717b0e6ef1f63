"""Faster R-CNN on any foveal backbone: a region proposal network and a Fast R-CNN head.

Ren, He, Girshick & Sun, "Faster R-CNN: Towards Real-Time Object Detection with Region Proposal
Networks", NeurIPS 2015; Girshick, "Fast R-CNN", ICCV 2015; RoI Align from He et al., "Mask
R-CNN", ICCV 2017. The pieces (all in :mod:`foveal.ops.rcnn` and :mod:`foveal.layers.roi`):

1. **Backbone**: a zoo architecture cut at one pyramid level (``P4``, stride 16, by default,
   as the paper's VGG-16 conv5), measured by :func:`foveal.models.pyramid.feature_pyramid`.
2. **RPN**: a 3x3 convolution (ReLU) on that map, then two sibling 1x1 convolutions: ``k``
   objectness logits and ``4k`` box deltas per cell, for ``k`` anchors (3 sizes x 3 ratios).
   Loss (the paper's eq. 1): ``1/N_cls sum_i L_cls(p_i, p_i*) + lambda 1/N_reg sum_i p_i*
   smooth_L1(t_i - t_i*)`` over 256 sampled anchors per image (at most half positive), with
   ``N_cls`` the number of sampled anchors, ``N_reg`` the number of anchor locations (cells)
   and ``lambda = 10`` (``rpn_box_norm="sampled"``: ``N_reg`` is the sampled anchors instead,
   Detectron's practice, for use with ``lambda = 1``); ``L_cls`` is the log loss of one sigmoid
   per anchor (the paper's two-way softmax has the same expressive power).
3. **Proposals**: decode, clip, drop tiny boxes, keep the best ``pre_nms``, NMS at 0.7, keep
   ``post_nms`` (2000/2000 in training, 1000/300 at inference).
4. **Second stage**: in training 512 RoIs per image (a quarter foreground, IoU >= 0.5; the
   ground-truth boxes join the proposals); RoI Align (default) or RoI max pooling to 7x7, two
   fully connected layers, ``K + 1`` class logits (0 = background) and ``4K`` class-specific box
   refinements. Loss (Fast R-CNN eq. 1): softmax log loss + ``[u >= 1]`` smooth L1 on the true
   class's refinement, averaged over the sampled RoIs.

Training is the paper's *approximate joint training* by default: one ``fit`` minimises the sum
of the four losses; no gradient flows through the proposals' coordinates. The paper's 4-step
alternating training is :meth:`FasterRCNNModel.set_training_step` (``--rcnn-training
alternating`` plans the four steps as phases of the run engine). ``model(x)`` always returns the
backbone's feature map and the RPN's outputs (the shape never changes with ``training``);
the losses are built in :meth:`FasterRCNNModel.compute_loss` from those and the targets, and
``fit`` logs them as ``rpn_cls_loss``, ``rpn_box_loss``, ``cls_loss`` and ``box_loss``.
``predict`` runs the whole detector and class-aware NMS in the graph and returns
``{"boxes", "scores", "classes", "num_detections"}`` like the YOLO detectors
(:class:`~foveal.detection.model.DetectionOutputs`), so foveal's detection scoring, reports,
``predict`` and ``serve`` treat both alike.

Example:
    >>> model = build_faster_rcnn("resnet18", 2, input_shape=(64, 64, 3), backbone_options={"width": 16},
    ...                           anchor_sizes=(16, 32, 48), head_width=32)  # doctest: +SKIP
    >>> model.compile("adam"); model.fit(dataset)  # (images, {"boxes", "classes"})  # doctest: +SKIP
    >>> model.predict(images)["boxes"]  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Sequence

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from foveal.detection.adapt import DomainAdaptiveDetector
from foveal.detection.model import DetectionOutputs
from foveal.errors import ConfigError
from foveal.layers.roi import PyramidRoIPool, RoIAlign, RoIMaxPool
from foveal.ops import rcnn

RPN_COMPONENTS = ("rpn_cls_loss", "rpn_box_loss", "cls_loss", "box_loss")
ROI_POOLS = ("align", "max")
RPN_BOX_NORMS = ("locations", "sampled")
#: RetinaNet's octave scales (Lin et al., "Focal Loss for Dense Object Detection", 2017, sec. 4):
#: three anchor sizes per pyramid level, a third of an octave apart
OCTAVE_SCALES = (1.0, 2.0 ** (1 / 3), 2.0 ** (2 / 3))
#: with an FPN, the anchor size of level ``P_k`` is ``FPN_ANCHOR_STRIDES x 2^k`` (RetinaNet's 4 x
#: stride; the FPN paper's is 8 x stride, 32 on P2)
FPN_ANCHOR_STRIDES = 4.0
#: the FPN's RoI level rule (Lin et al. 2017, eq. 1): a box of side ``ROI_CANONICAL`` (ImageNet's
#: 224) is pooled from ``P4``, in images of about ``ROI_CANONICAL_IMAGE`` pixels (the paper's
#: 800-pixel shorter side); ``roi_canonical="scaled"`` keeps that ratio to the input instead
ROI_CANONICAL = 224.0
ROI_CANONICAL_IMAGE = 800.0


def scaled_roi_canonical(image_hw: Sequence[int]) -> float:
    """The FPN's canonical RoI side scaled to an input: ``224 x min(H, W) / 800`` (35.84 for
    128-pixel images, where the paper's 224 sends every box under 112 pixels to ``P2``)."""
    return ROI_CANONICAL * min(int(v) for v in image_hw[:2]) / ROI_CANONICAL_IMAGE


def fpn_anchor_sizes(levels: Sequence[int], factor: float = FPN_ANCHOR_STRIDES) -> list[float]:
    """One anchor size per RPN level ``P_k``: ``factor x 2^k`` (default RetinaNet's 4 x stride:
    16, 32, 64, 128, 256 on ``P2``..``P6``)."""
    return [float(factor * 2**k) for k in levels]


@dataclass
class RCNNSettings:
    """Anchors, sampling, proposal and loss settings of a Faster R-CNN (the papers' defaults).

    Attributes:
        anchor_sizes: square roots of the anchor areas, in input pixels (with an FPN: one per RPN level).
        anchor_scales: factors applied to every size (RetinaNet's octave scales ``2^0, 2^(1/3),
            2^(2/3)`` give three anchors per size; ``[1]``: the sizes alone, as Faster R-CNN).
        anchor_ratios: height / width of the anchors.
        rpn_batch, rpn_positive_fraction: anchors sampled per image, and the positives' most.
        rpn_positive_iou, rpn_negative_iou: anchor labelling thresholds.
        rpn_lambda: weight of the RPN's box term.
        rpn_box_norm: what the RPN's box term is divided by: ``locations`` (Faster R-CNN's
            ``N_reg``: the anchor positions, the cells of every RPN map) or ``sampled`` (the anchors
            sampled for the loss, ``rpn_batch`` per image, Detectron's practice; there with
            ``rpn_lambda`` 1 the two terms weigh alike, as the paper's ``N_reg ~ 2400, lambda 10``).
        pre_nms_train, post_nms_train, pre_nms_test, post_nms_test: proposals kept before and
            after NMS in training and at inference.
        rpn_nms_iou: the proposals' NMS overlap.
        min_size: proposals narrower or lower than this many input pixels are dropped.
        roi_batch, roi_positive_fraction, roi_positive_iou: the second stage's RoI sampling.
        roi_lambda: weight of the second stage's box term.
        box_weights: scale of the second stage's box targets (Fast R-CNN's 10, 10, 5, 5).
        roi_canonical: with an FPN, the box side (input pixels) whose RoIs are pooled from ``P4``:
            ``k = floor(4 + log2(sqrt(w h) / roi_canonical))`` (the FPN paper's eq. 1 with 224,
            the default, which Detectron2, torchvision and mmdetection keep for every input
            size), or ``"scaled"``: ``224 x min(H, W) / 800`` of the model's input size
            (:func:`scaled_roi_canonical`), resolved to that number when the model is built.
    """

    anchor_sizes: list[float] = field(default_factory=lambda: [32.0, 64.0, 128.0])
    anchor_ratios: list[float] = field(default_factory=lambda: [0.5, 1.0, 2.0])
    anchor_scales: list[float] = field(default_factory=lambda: [1.0])
    rpn_batch: int = 256
    rpn_positive_fraction: float = 0.5
    rpn_positive_iou: float = 0.7
    rpn_negative_iou: float = 0.3
    rpn_lambda: float = 10.0
    rpn_box_norm: str = "locations"
    pre_nms_train: int = 2000
    post_nms_train: int = 2000
    pre_nms_test: int = 1000
    post_nms_test: int = 300
    rpn_nms_iou: float = 0.7
    min_size: float = 1.0
    roi_batch: int = 512
    roi_positive_fraction: float = 0.25
    roi_positive_iou: float = 0.5
    roi_lambda: float = 1.0
    box_weights: list[float] = field(default_factory=lambda: [10.0, 10.0, 5.0, 5.0])
    roi_canonical: float | str = ROI_CANONICAL

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None) -> "RCNNSettings":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values or {}) - known)
        if unknown:
            raise ConfigError(f"unknown Faster R-CNN setting(s): {', '.join(unknown)}",
                              hint=f"known: {', '.join(sorted(known))}")
        settings = cls(**(values or {}))
        settings.validate()
        return settings

    def validate(self) -> None:
        checks = [
            (len(self.anchor_sizes) >= 1 and all(s > 0 for s in self.anchor_sizes),
             "anchor sizes must be positive pixels"),
            (len(self.anchor_ratios) >= 1 and all(r > 0 for r in self.anchor_ratios), "anchor ratios must be positive"),
            (len(self.anchor_scales) >= 1 and all(c > 0 for c in self.anchor_scales), "anchor scales must be positive"),
            (self.rpn_box_norm in RPN_BOX_NORMS, f"rpn_box_norm must be one of {', '.join(RPN_BOX_NORMS)}, got "
             f"{self.rpn_box_norm!r}"),
            (self.rpn_batch >= 1 and self.roi_batch >= 1, "rpn_batch and roi_batch must be at least 1"),
            (0 < self.rpn_positive_fraction <= 1 and 0 < self.roi_positive_fraction <= 1,
             "the positive fractions must be in (0, 1]"),
            (0 <= self.rpn_negative_iou <= self.rpn_positive_iou <= 1, "need 0 <= rpn_negative_iou <= "
             "rpn_positive_iou <= 1"),
            (0 < self.roi_positive_iou <= 1 and 0 < self.rpn_nms_iou <= 1, "IoU thresholds must be in (0, 1]"),
            (min(self.pre_nms_train, self.post_nms_train, self.pre_nms_test, self.post_nms_test) >= 1,
             "proposal counts must be at least 1"),
            (self.rpn_lambda >= 0 and self.roi_lambda >= 0 and self.min_size >= 0,
             "loss weights and min_size must not be negative"),
            (len(self.box_weights) == 4 and all(w > 0 for w in self.box_weights), "box_weights must be 4 positive numbers"),
            (self.roi_canonical == "scaled" or (isinstance(self.roi_canonical, (int, float)) and
                                                not isinstance(self.roi_canonical, bool) and self.roi_canonical > 0),
             f"roi_canonical must be a positive box side in pixels or 'scaled', got {self.roi_canonical!r}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"Faster R-CNN: {message}")
        self.anchor_sizes = [float(s) for s in self.anchor_sizes]
        self.anchor_ratios = [float(r) for r in self.anchor_ratios]
        self.anchor_scales = [float(c) for c in self.anchor_scales]
        self.box_weights = [float(w) for w in self.box_weights]
        if self.roi_canonical != "scaled":
            self.roi_canonical = float(self.roi_canonical)

    @property
    def num_anchors(self) -> int:
        """Anchor shapes in all: sizes x scales x ratios (with an FPN, over every level)."""
        return len(self.anchor_sizes) * len(self.anchor_scales) * len(self.anchor_ratios)

    def scaled_sizes(self, sizes: Sequence[float] | None = None) -> list[float]:
        """``sizes`` (default: all) times every scale, size after size (the order of the RPN's anchors)."""
        return [s * c for s in (self.anchor_sizes if sizes is None else sizes) for c in self.anchor_scales]


def build_faster_rcnn(
    backbone: str,
    num_classes: int,
    *,
    input_shape: tuple[int, int, int] = (512, 512, 3),
    level: str = "P4",
    preprocessing: str | None = None,
    backbone_options: dict[str, Any] | None = None,
    rpn_width: int | None = None,
    head_width: int = 256,
    pool_size: int = 7,
    roi_pool: str = "align",
    score_threshold: float = 0.25,
    iou_threshold: float = 0.45,
    max_detections: int = 100,
    class_aware: bool = True,
    fpn: bool = False,
    fpn_width: int = 256,
    model_class: type | None = None,
    model_options: dict[str, Any] | None = None,
    **settings: Any,
) -> "FasterRCNNModel":
    """Build a Faster R-CNN on ``backbone`` (see the module docstring).

    Args:
        backbone: a registered architecture (see ``foveal models``), built without its top.
        num_classes: object classes ``K`` (background is added).
        input_shape: nominal ``(H, W, C)`` recorded on the model; any size works.
        level: the pyramid level the RPN and RoI pooling read (``P4``: stride 16); a backbone
            without it is refused, naming the levels it has.
        preprocessing, backbone_options: for the backbone (see :func:`foveal.models.build_model`).
        rpn_width: filters of the RPN's 3x3 convolution (None: the feature map's channels, as
            the paper's 512 on VGG-16).
        head_width: units of the second stage's two fully connected layers.
        pool_size: RoI pooling output side.
        roi_pool: ``align`` (RoI Align) or ``max`` (the texts' RoI max pooling).
        score_threshold, iou_threshold, max_detections, class_aware: ``predict``'s
            post-processing (change it later with ``set_postprocess``).
        fpn: read a feature pyramid (Lin et al. 2017) built on the backbone's levels ``P2``..``P5``
            instead of the one map ``level``: the RPN runs on ``P2``..``P6`` with one anchor size
            per level times ``anchor_scales`` (default RetinaNet's: ``4 x stride``, 16 ... 256, times
            ``2^0, 2^(1/3), 2^(2/3)``, 9 anchors per cell; ``anchor_sizes`` may give one per level,
            e.g. the FPN paper's 32 ... 512 with one scale) and RoIs are pooled from the level
            their size picks (``roi_canonical``: the side pooled from ``P4``, default 224); the
            RPN's box term is divided by the sampled anchors (``rpn_box_norm="sampled"``, unless
            given). Older models' anchors (one size per level), normalisation (the anchor
            locations) and level rule (224) load as they were.
        fpn_width: channels of the pyramid's maps (the paper: 256).
        model_class, model_options: a subclass of :class:`FasterRCNNModel` to build instead (Mask
            R-CNN) and its own keyword arguments.
        **settings: :class:`RCNNSettings` fields (anchor sizes and ratios, sampling, proposals).

    Returns:
        An uncompiled :class:`FasterRCNNModel`.
    """
    from foveal.models import build_model
    from foveal.models.pyramid import feature_pyramid, level_stride

    if num_classes < 1:
        raise ConfigError(f"num_classes must be at least 1, got {num_classes}")
    if roi_pool not in ROI_POOLS:
        raise ConfigError(f"roi_pool must be one of {', '.join(ROI_POOLS)}, got {roi_pool!r}")
    if min(head_width, pool_size) < 1 or (rpn_width is not None and rpn_width < 1):
        raise ConfigError("head_width, rpn_width and pool_size must be at least 1")
    rcnn_settings = RCNNSettings.from_dict(settings)
    input_shape = tuple(int(d) for d in input_shape)
    base = build_model(backbone, num_classes=max(num_classes, 2), input_shape=(None, None, input_shape[2]),
                       include_top=False, preprocessing=preprocessing, **(backbone_options or {}))
    pyramid = feature_pyramid(base, min_level=1, input_size=input_shape[:2])
    if level not in pyramid:
        raise ConfigError(f"backbone {backbone!r} has no feature map {level} (it has {', '.join(pyramid) or 'none'})",
                          hint="pick one of those with --rcnn-level")
    fpn_levels = None
    if fpn:
        fpn_levels = _fpn_levels(backbone, pyramid)
        rpn_count = len(fpn_levels) + 1
        rpn_levels = range(fpn_levels[0], fpn_levels[-1] + 2)
        if "anchor_sizes" not in settings:  # RetinaNet's anchors: 4 x stride, three octave scales
            rcnn_settings.anchor_sizes = fpn_anchor_sizes(rpn_levels)
            if "anchor_scales" not in settings:
                rcnn_settings.anchor_scales = list(OCTAVE_SCALES)
        elif len(rcnn_settings.anchor_sizes) != rpn_count:
            raise ConfigError(f"with an FPN, give one anchor size per RPN level (P{fpn_levels[0]}..P{fpn_levels[-1] + 1}:"
                              f" {rpn_count}), got {len(rcnn_settings.anchor_sizes)}",
                              hint=f"e.g. --anchor-sizes {' '.join(f'{v:g}' for v in fpn_anchor_sizes(rpn_levels))} "
                                   "(4 x stride; the FPN paper's: 8 x stride), or leave it out")
        if "rpn_box_norm" not in settings:  # measured better on small shapes (recipes/instance-segmentation.md)
            rcnn_settings.rpn_box_norm = "sampled"
        if fpn_width < 1:
            raise ConfigError("fpn_width must be at least 1")
        outputs, level = [pyramid[f"P{k}"] for k in fpn_levels], f"FPN P{fpn_levels[0]}-P{fpn_levels[-1] + 1}"
        stride = 2 ** fpn_levels[0]
    else:
        outputs, stride = pyramid[level], level_stride(level)
    features = keras.Model(base.input, outputs, name=f"{backbone}_backbone")
    cls = model_class or FasterRCNNModel
    return cls(features, num_classes, stride=stride, level=level, fpn_levels=fpn_levels, fpn_width=fpn_width,
               rpn_width=rpn_width, head_width=head_width, pool_size=pool_size, roi_pool=roi_pool,
               settings=asdict(rcnn_settings), input_size=input_shape,
               score_threshold=score_threshold, iou_threshold=iou_threshold,
               max_detections=max_detections, class_aware=class_aware,
               name=f"{backbone}_{getattr(cls, 'name_suffix', 'faster_rcnn')}", **(model_options or {}))


def _fpn_levels(backbone: str, pyramid: dict[str, Any]) -> list[int]:
    """The consecutive levels among ``P2``..``P5`` a backbone has, the deepest included (at least two)."""
    levels = [k for k in range(2, 6) if f"P{k}" in pyramid]
    while len(levels) > 1 and levels[-1] - levels[-2] != 1:
        levels.pop()
    run = levels[-1:]
    for k in reversed(levels[:-1]):
        if k != run[0] - 1:
            break
        run.insert(0, k)
    if len(run) < 2:
        raise ConfigError(f"backbone {backbone!r} has no multi-scale outputs for an FPN (levels: "
                          f"{', '.join(pyramid) or 'none'}; an FPN needs at least two consecutive of P2..P5)",
                          hint="pick a backbone with strided stages (e.g. resnet18), or leave out --fpn")
    return run


def _normal(std: float) -> keras.initializers.Initializer:
    return keras.initializers.RandomNormal(stddev=std)


@keras.saving.register_keras_serializable(package="foveal")
class FasterRCNNModel(DomainAdaptiveDetector, DetectionOutputs, keras.Model):
    """A Faster R-CNN: ``fit`` trains both stages jointly, ``predict`` returns detections.

    Args:
        backbone: a functional model, raw pixels -> one feature map of stride ``stride``.
        num_classes: ``K``.
        stride: input pixels per feature cell.
        level: the feature map's pyramid level (for reports).
        rpn_width, head_width, pool_size, roi_pool: see :func:`build_faster_rcnn`.
        settings: :class:`RCNNSettings` as a dict.
        input_size: nominal ``(H, W, C)``.
        score_threshold, iou_threshold, max_detections, class_aware: post-processing.
        adaptation: :class:`~foveal.detection.adapt.DomainAdapter` settings (``--adapt-target``:
            the backbone's feature map adapted to target images), restored by ``from_config``.

    ``predict(images)`` returns NumPy ``boxes [N, D, 4]`` (normalised corners clipped to the
    image), ``scores [N, D]`` (the class's softmax probability), ``classes [N, D]`` (``-1`` for
    padding) and ``num_detections [N]``, ``D = max_detections``.
    """

    def __init__(self, backbone: keras.Model, num_classes: int, *, stride: int = 16, level: str = "P4",
                 rpn_width: int | None = None, head_width: int = 256, pool_size: int = 7, roi_pool: str = "align",
                 settings: dict[str, Any] | None = None, input_size: Sequence[int] | None = None,
                 score_threshold: float = 0.25, iou_threshold: float = 0.45, max_detections: int = 100,
                 class_aware: bool = True, fpn_levels: Sequence[int] | None = None, fpn_width: int = 256,
                 adaptation: dict[str, Any] | None = None, name: str | None = None, trainable: bool = True) -> None:
        super().__init__(name=name, trainable=trainable)
        self.backbone = backbone
        self.num_classes = int(num_classes)
        self.stride = int(stride)
        self.level = str(level)
        self.rcnn = RCNNSettings.from_dict(settings)
        self.fpn_levels = [int(k) for k in fpn_levels] if fpn_levels else None
        self.fpn_width = int(fpn_width)
        self.fpn_lateral: list[keras.layers.Layer] = []
        self.fpn_output: list[keras.layers.Layer] = []
        if self.fpn_levels:
            #: the RPN's levels: the pyramid's and one more (P6, by max-pooling the coarsest)
            self.rpn_levels = [*self.fpn_levels, self.fpn_levels[-1] + 1]
            if len(self.rcnn.anchor_sizes) != len(self.rpn_levels):
                raise ConfigError(f"an FPN needs one anchor size per RPN level ({len(self.rpn_levels)}), got "
                                  f"{len(self.rcnn.anchor_sizes)}")
            self.level_anchors = [rcnn.base_anchors(self.rcnn.scaled_sizes([size]), self.rcnn.anchor_ratios)
                                  for size in self.rcnn.anchor_sizes]
            self.anchors_per_cell = len(self.rcnn.anchor_scales) * len(self.rcnn.anchor_ratios)
            for k, tensor in zip(self.fpn_levels, backbone.outputs):
                lateral = layers.Conv2D(self.fpn_width, 1, name=f"fpn_lateral_P{k}")
                lateral.build((None, None, None, int(tensor.shape[-1])))
                output = layers.Conv2D(self.fpn_width, 3, padding="same", name=f"fpn_output_P{k}")
                output.build((None, None, None, self.fpn_width))
                self.fpn_lateral.append(lateral)
                self.fpn_output.append(output)
            channels = self.fpn_width
        else:
            self.rpn_levels = None
            self.anchors_per_cell = self.rcnn.num_anchors
            channels = int(backbone.output.shape[-1])
        #: channels of the map(s) the RoIs are pooled from
        self.pooled_channels = channels
        self.base_anchors = rcnn.base_anchors(self.rcnn.scaled_sizes(), self.rcnn.anchor_ratios)
        self.input_size = tuple(int(d) for d in input_size) if input_size is not None else None
        if self.rcnn.roi_canonical == "scaled":  # resolved once, so the saved model keeps the number
            if not self.input_size:
                raise ConfigError("roi_canonical='scaled' needs the model's input size", hint="give input_size")
            self.rcnn.roi_canonical = scaled_roi_canonical(self.input_size)
        self.score_threshold = float(score_threshold)
        self.iou_threshold = float(iou_threshold)
        self.max_detections = int(max_detections)
        self.class_aware = bool(class_aware)
        self._detect_fn = None
        self.rpn_width = int(rpn_width or channels)
        self.head_width = int(head_width)
        self.pool_size = int(pool_size)
        self.roi_pool = str(roi_pool)
        k, classes = self.anchors_per_cell, self.num_classes
        self.rpn_conv = layers.Conv2D(self.rpn_width, 3, padding="same", activation="relu",
                                      kernel_initializer=_normal(0.01), name="head_rpn_conv")
        self.rpn_objectness = layers.Conv2D(k, 1, kernel_initializer=_normal(0.01), dtype="float32",
                                            name="head_rpn_objectness")
        self.rpn_deltas = layers.Conv2D(4 * k, 1, kernel_initializer=_normal(0.01), dtype="float32",
                                        name="head_rpn_deltas")
        self.roi_layer = self.roi_pooling(self.pool_size, self.roi_pool, f"roi_{self.roi_pool}")
        self.fc1 = layers.Dense(self.head_width, activation="relu", name="head_fc1")
        self.fc2 = layers.Dense(self.head_width, activation="relu", name="head_fc2")
        self.class_logits = layers.Dense(classes + 1, kernel_initializer=_normal(0.01), dtype="float32",
                                         name="head_class")
        self.box_deltas = layers.Dense(4 * classes, kernel_initializer=_normal(0.001), dtype="float32",
                                       name="head_box")
        self.rpn_conv.build((None, None, None, channels))
        self.rpn_objectness.build((None, None, None, self.rpn_width))
        self.rpn_deltas.build((None, None, None, self.rpn_width))
        self.fc1.build((None, self.pool_size * self.pool_size * channels))
        self.fc2.build((None, self.head_width))
        self.class_logits.build((None, self.head_width))
        self.box_deltas.build((None, self.head_width))
        #: the losses ``fit`` minimises (all four; a step of alternating training picks some)
        self.active_losses: tuple[str, ...] = RPN_COMPONENTS
        for component in RPN_COMPONENTS:  # one attribute each, so Keras tracks and logs them
            setattr(self, f"{component}_tracker", keras.metrics.Mean(name=component))
        if adaptation:
            self.enable_adaptation(**adaptation)
        self.built = True

    # -- the graph ---------------------------------------------------------------------------

    def roi_pooling(self, pool_size: int, kind: str, name: str) -> keras.layers.Layer:
        """A RoI pooling layer on the model's feature map(s): one map at ``stride``, or the
        pyramid's levels (:class:`~foveal.layers.roi.PyramidRoIPool`)."""
        if self.fpn_levels:
            return PyramidRoIPool(pool_size, levels=self.fpn_levels, kind=kind, name=name,
                                  canonical_size=float(self.rcnn.roi_canonical))
        pool_class = RoIAlign if kind == "align" else RoIMaxPool
        return pool_class(pool_size, stride=self.stride, name=name)

    def pool_rois(self, layer: keras.layers.Layer, features, rois) -> tf.Tensor:
        """``layer`` (from :meth:`roi_pooling`) on ``call``'s ``features`` and ``rois [B, R, 4]``."""
        if self.fpn_levels:
            maps = [tf.cast(f, tf.float32) for f in features[:len(self.fpn_levels)]]
            return layer([*maps, rois])
        return layer([tf.cast(features, tf.float32), rois])

    def pyramid(self, maps: Sequence[tf.Tensor]) -> list[tf.Tensor]:
        """The FPN (Lin et al. 2017, sec. 3): 1x1 lateral convolutions of ``C2``..``C5``, the
        top-down path (nearest-neighbour upsampling of the coarser map, added), a 3x3
        convolution on each sum, and ``P6`` as a stride-2 subsampling (max-pool of 1) of ``P5``."""
        laterals = [conv(c) for conv, c in zip(self.fpn_lateral, maps)]
        merged = [laterals[-1]]
        for lateral in reversed(laterals[:-1]):
            up = tf.image.resize(merged[0], tf.shape(lateral)[1:3], method="nearest")
            merged.insert(0, lateral + tf.cast(up, lateral.dtype))
        outputs = [conv(m) for conv, m in zip(self.fpn_output, merged)]
        return [*outputs, tf.nn.max_pool2d(outputs[-1], 1, 2, "VALID")]

    def call(self, images, training: bool = False) -> dict[str, tf.Tensor]:
        """Feature map ``[B, Hf, Wf, C]``, objectness logits ``[B, Hf, Wf, k]`` and box deltas
        ``[B, Hf, Wf, 4k]`` (float32). With an FPN: ``features`` is the list ``P2``..``P6`` and
        the RPN's outputs are flattened level after level: ``[B, A]`` and ``[B, A, 4]``."""
        features = self.backbone(images, training=training)
        if not self.fpn_levels:
            hidden = self.rpn_conv(features)
            return {"features": features, "rpn_objectness": self.rpn_objectness(hidden),
                    "rpn_deltas": self.rpn_deltas(hidden)}
        levels = self.pyramid(features if isinstance(features, (list, tuple)) else [features])
        batch = tf.shape(images)[0]
        objectness, deltas = [], []
        for level in levels:  # one RPN shared by every level
            hidden = self.rpn_conv(level)
            objectness.append(tf.reshape(tf.cast(self.rpn_objectness(hidden), tf.float32), [batch, -1]))
            deltas.append(tf.reshape(tf.cast(self.rpn_deltas(hidden), tf.float32), [batch, -1, 4]))
        return {"features": levels, "rpn_objectness": tf.concat(objectness, 1), "rpn_deltas": tf.concat(deltas, 1)}

    @property
    def input_shape(self) -> tuple[int | None, ...]:
        return (None, None, None, int(self.backbone.input.shape[-1]))

    def anchors_for(self, feature_map) -> tf.Tensor:
        """``[Hf * Wf * k, 4]`` anchors (input pixels) of a feature map ``[B, Hf, Wf, C]`` (with
        an FPN: of every level's map, ``P2``..``P6``, level after level, each level's size times
        the scales)."""
        if self.fpn_levels:
            return tf.concat([rcnn.anchor_grid(tf.shape(f)[1], tf.shape(f)[2], 2**k, base)
                              for k, f, base in zip(self.rpn_levels, feature_map, self.level_anchors)], 0)
        shape = tf.shape(feature_map)
        return rcnn.anchor_grid(shape[1], shape[2], self.stride, self.base_anchors)

    def anchors_for_image(self, image_hw: tuple[int, int]) -> np.ndarray:
        """All the anchors (pixels, NumPy ``[A, 4]``) of an ``image_hw`` input, in the RPN's order:
        the maps' sides are ``ceil(side / stride)`` (the backbones' "same" padding)."""
        h, w = (int(v) for v in image_hw)
        if self.fpn_levels:
            return np.concatenate([rcnn.anchor_grid(-(-h // 2**k), -(-w // 2**k), 2**k, base).numpy()
                                   for k, base in zip(self.rpn_levels, self.level_anchors)])
        return rcnn.anchor_grid(-(-h // self.stride), -(-w // self.stride), self.stride, self.base_anchors).numpy()

    def level_counts(self, features) -> list[tf.Tensor] | None:
        """Anchors of each RPN level (FPN), or None for one map."""
        if not self.fpn_levels:
            return None
        return [tf.shape(f)[1] * tf.shape(f)[2] * self.anchors_per_cell for f in features]

    def _flat_rpn(self, out) -> tuple[tf.Tensor, tf.Tensor]:
        batch = tf.shape(out["rpn_objectness"])[0]
        return (tf.reshape(tf.cast(out["rpn_objectness"], tf.float32), [batch, -1]),
                tf.reshape(tf.cast(out["rpn_deltas"], tf.float32), [batch, -1, 4]))

    def proposals(self, out, image_hw, *, training: bool) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """``(boxes [B, N, 4] pixels, scores [B, N], valid [B, N])`` from ``call``'s outputs."""
        objectness, deltas = self._flat_rpn(out)
        pre, post = ((self.rcnn.pre_nms_train, self.rcnn.post_nms_train) if training
                     else (self.rcnn.pre_nms_test, self.rcnn.post_nms_test))
        boxes, scores, valid = rcnn.generate_proposals(
            tf.stop_gradient(objectness), tf.stop_gradient(deltas), self.anchors_for(out["features"]), image_hw,
            pre_nms=pre, post_nms=post, nms_iou=self.rcnn.rpn_nms_iou, min_size=self.rcnn.min_size,
            level_counts=self.level_counts(out["features"]))
        return boxes, scores, valid

    def head(self, features, rois, training: bool = False) -> tuple[tf.Tensor, tf.Tensor]:
        """Class logits ``[B, R, K + 1]`` and box deltas ``[B, R, K, 4]`` of ``rois [B, R, 4]``."""
        pooled = self.pool_rois(self.roi_layer, features, rois)
        shape = tf.shape(rois)
        flat = tf.reshape(pooled, [shape[0] * shape[1], self.pool_size * self.pool_size * pooled.shape[-1]])
        hidden = self.fc2(self.fc1(flat, training=training), training=training)
        logits = tf.reshape(tf.cast(self.class_logits(hidden), tf.float32), [shape[0], shape[1], self.num_classes + 1])
        deltas = tf.reshape(tf.cast(self.box_deltas(hidden), tf.float32), [shape[0], shape[1], self.num_classes, 4])
        return logits, deltas

    # -- training ----------------------------------------------------------------------------

    def compile(self, optimizer="adam", loss=None, **kwargs) -> None:
        """Compile; the model owns its losses (``loss`` must be None). Never XLA: proposals
        and sampling have data-dependent sizes."""
        if loss is not None:
            raise ConfigError(f"a Faster R-CNN trains with its own losses, got loss={loss!r}")
        kwargs["jit_compile"] = False
        super().compile(optimizer=optimizer, loss=None, **kwargs)

    def compile_from_config(self, config: dict[str, Any]) -> None:
        config = keras.saving.deserialize_keras_object(config)
        config.pop("loss", None)
        self.compile(**config)
        if self.built and getattr(self, "optimizer", None) is not None:
            self.optimizer.build(self.trainable_variables)

    def losses_of(self, images, targets, out) -> dict[str, tf.Tensor]:
        """The four losses of a batch (see the module docstring); ``targets`` are the pipeline's
        ``{"boxes": [B, M, 4] normalised corners, "classes": [B, M]}`` (-1 on padding)."""
        return self.losses_and_rois(images, targets, out)[0]

    def losses_and_rois(self, images, targets, out) -> tuple[dict[str, tf.Tensor], dict[str, tf.Tensor]]:
        """:meth:`losses_of` and the second stage's sampled RoIs (:func:`foveal.ops.rcnn.sample_rois`:
        ``rois``, ``labels``, ``targets``, ``gt_index``, foreground rows first), for heads that
        learn on the same RoIs (Mask R-CNN's mask head)."""
        s = self.rcnn
        shape = tf.shape(images)
        height, width = shape[1], shape[2]
        scale = tf.cast(tf.stack([width, height, width, height]), tf.float32)
        gt_classes = tf.cast(targets["classes"], tf.int32)
        gt_valid = gt_classes >= 0
        gt_boxes = tf.cast(targets["boxes"], tf.float32) * scale
        # RPN
        objectness, deltas = self._flat_rpn(out)
        anchors = self.anchors_for(out["features"])
        labels, matched = rcnn.label_anchors(anchors, gt_boxes, gt_valid, positive_iou=s.rpn_positive_iou,
                                             negative_iou=s.rpn_negative_iou)
        labels = rcnn.sample_labels(labels, batch=s.rpn_batch, positive_fraction=s.rpn_positive_fraction)
        sampled = tf.cast(labels >= 0, tf.float32)
        positive = tf.cast(labels == 1, tf.float32)
        bce = tf.nn.sigmoid_cross_entropy_with_logits(labels=positive, logits=objectness)
        rpn_cls = tf.reduce_sum(bce * sampled) / tf.maximum(tf.reduce_sum(sampled), 1.0)
        anchor_targets = rcnn.encode_boxes(tf.gather(gt_boxes, matched, batch_dims=1), anchors[None])
        reg = tf.reduce_sum(rcnn.smooth_l1(deltas - tf.stop_gradient(anchor_targets)), axis=-1)
        if s.rpn_box_norm == "sampled":  # Detectron: the sampled anchors, as the class term
            n_reg = tf.maximum(tf.reduce_sum(sampled), 1.0)
        else:  # Faster R-CNN's N_reg: the anchor locations (cells of every RPN map)
            n_reg = tf.cast(shape[0] * (tf.shape(anchors)[0] // self.anchors_per_cell), tf.float32)
        rpn_box = s.rpn_lambda * tf.reduce_sum(reg * positive) / n_reg
        # second stage
        proposals, _, valid = self.proposals(out, (height, width), training=True)
        roi = rcnn.sample_rois(proposals, valid, gt_boxes, gt_classes, gt_valid, batch=s.roi_batch,
                               positive_fraction=s.roi_positive_fraction, positive_iou=s.roi_positive_iou,
                               weights=s.box_weights)
        logits, box_deltas = self.head(out["features"], roi["rois"], training=True)
        roi_labels = roi["labels"]
        used = tf.cast(roi_labels >= 0, tf.float32)
        count = tf.maximum(tf.reduce_sum(used), 1.0)
        ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tf.maximum(roi_labels, 0), logits=logits)
        cls_loss = tf.reduce_sum(ce * used) / count
        foreground = roi_labels > 0
        true_deltas = tf.gather(box_deltas, tf.maximum(roi_labels - 1, 0), batch_dims=2)  # [B, R, 4]
        box_reg = tf.reduce_sum(rcnn.smooth_l1(true_deltas - roi["targets"]), axis=-1)
        box_loss = s.roi_lambda * tf.reduce_sum(tf.where(foreground, box_reg, 0.0)) / count
        return {"rpn_cls_loss": rpn_cls, "rpn_box_loss": rpn_box, "cls_loss": cls_loss, "box_loss": box_loss}, roi

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        parts = self.losses_of(x, y, y_pred)
        total = tf.add_n([parts[name] for name in self.active_losses])
        for name in parts:  # RPN_COMPONENTS, and a subclass's own (Mask R-CNN's mask_loss)
            getattr(self, f"{name}_tracker").update_state(parts[name])
        for extra in self.losses:  # weight penalties
            total = total + tf.cast(tf.reduce_sum(extra), total.dtype)
        return total

    def rpn_layers(self) -> list[keras.layers.Layer]:
        return [self.rpn_conv, self.rpn_objectness, self.rpn_deltas]

    def head_layers(self) -> list[keras.layers.Layer]:
        return [self.fc1, self.fc2, self.class_logits, self.box_deltas]

    def set_training_step(self, step: int | None) -> None:
        """Trainable parts and minimised losses of a step of the paper's 4-step alternating training
        (Faster R-CNN, sec. 3.2), or everything (``None``: approximate joint training).

        1. the backbone and the RPN learn the RPN's losses;
        2. the backbone and the detection head learn the head's losses on the RPN's proposals, the
           RPN layers frozen. The paper trains a second backbone here on fixed proposals; foveal's
           model has one backbone, shared from the start, so the proposals move a little as it
           learns: the steps' order, trainable parts and losses are the paper's;
        3. the backbone frozen, the RPN layers are fine-tuned;
        4. the backbone frozen, the head layers are fine-tuned.
        The caller recompiles afterwards (trainable flags take effect in a fresh compile).
        """
        plan = {None: ((True, True, True), RPN_COMPONENTS),
                1: ((True, True, False), RPN_COMPONENTS[:2]), 2: ((True, False, True), RPN_COMPONENTS[2:]),
                3: ((False, True, False), RPN_COMPONENTS[:2]), 4: ((False, False, True), RPN_COMPONENTS[2:])}
        if step not in plan:
            raise ConfigError(f"alternating training has steps 1 to 4, got {step!r}")
        (backbone, rpn, head), self.active_losses = plan[step]
        self.backbone.trainable = backbone
        for layer in [*self.fpn_lateral, *self.fpn_output]:  # the pyramid is shared, as the backbone
            layer.trainable = backbone
        for layer in self.rpn_layers():
            layer.trainable = rpn
        for layer in self.head_layers():
            layer.trainable = head

    # -- domain adaptation (foveal.detection.adapt) ------------------------------------------

    def feature_channels(self) -> int:
        return int(self.backbone.output.shape[-1])

    def enable_adaptation(self, method: str, **kwargs: Any):
        if self.fpn_levels:
            raise ConfigError("domain adaptation reads one backbone map; a Faster R-CNN with an FPN has several",
                              hint="leave out --fpn or --adapt-target")
        return super().enable_adaptation(method, **kwargs)

    def outputs_and_features(self, images):
        out = self(images, training=True)
        return out, out["features"]

    def feature_map(self, images, training: bool = True):
        return self.backbone(images, training=training)

    def batch_norm_model(self) -> keras.Model:
        return self.backbone  # the heads have no batch normalisation; the backbone takes raw images

    # -- inference ---------------------------------------------------------------------------

    def detections(self, images) -> dict[str, tf.Tensor]:
        """The whole detector on a batch of raw images: proposals, head, class-aware NMS."""
        return self.detections_and_features(images)[0]

    def detections_and_features(self, images) -> tuple[dict[str, tf.Tensor], tf.Tensor]:
        """:meth:`detections` and the backbone's feature map they came from (for heads that read
        the final boxes' features, as Mask R-CNN's mask head does)."""
        from foveal.detection.postprocess import non_max_suppression

        images = tf.convert_to_tensor(images)
        out = self(images, training=False)
        shape = tf.shape(images)
        height, width = shape[1], shape[2]
        rois, _, valid = self.proposals(out, (height, width), training=False)
        logits, deltas = self.head(out["features"], rois)
        probs = tf.nn.softmax(logits, axis=-1)[..., 1:] * tf.cast(valid, tf.float32)[..., None]  # [B, R, K]
        boxes = rcnn.clip_to_image(rcnn.decode_boxes(deltas, rois[:, :, None, :], self.rcnn.box_weights),
                                   height, width)  # [B, R, K, 4]
        scale = tf.cast(tf.stack([width, height, width, height]), tf.float32)
        batch, count = shape[0], tf.shape(rois)[1]
        classes = tf.broadcast_to(tf.range(self.num_classes, dtype=tf.int32), [batch, count, self.num_classes])
        result = non_max_suppression(
            tf.reshape(boxes / scale, [batch, -1, 4]), tf.reshape(probs, [batch, -1]), tf.reshape(classes, [batch, -1]),
            **self.postprocess_config())
        return {"boxes": tf.clip_by_value(result["boxes"], 0.0, 1.0), "scores": result["scores"],
                "classes": result["classes"], "num_detections": result["num_detections"]}, out["features"]

    # -- serialisation -----------------------------------------------------------------------

    def get_config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "trainable": self.trainable,
            "backbone": keras.saving.serialize_keras_object(self.backbone),
            "num_classes": self.num_classes,
            "stride": self.stride,
            "level": self.level,
            "rpn_width": self.rpn_width,
            "head_width": self.head_width,
            "pool_size": self.pool_size,
            "roi_pool": self.roi_pool,
            "settings": asdict(self.rcnn),
            "input_size": list(self.input_size) if self.input_size else None,
            "fpn_levels": list(self.fpn_levels) if self.fpn_levels else None,
            "fpn_width": self.fpn_width,
            **self.postprocess_config(),
            **({"adaptation": self.adaptation_config()} if self.adapter is not None else {}),
        }

    @classmethod
    def from_config(cls, config: dict[str, Any], custom_objects=None) -> "FasterRCNNModel":
        config = dict(config)
        backbone = keras.saving.deserialize_keras_object(config.pop("backbone"), custom_objects=custom_objects)
        return cls(backbone, **config)


def anchor_sizes_from_boxes(data: Any, image_hw: tuple[int, int], count: int = 3) -> list[float]:
    """``count`` anchor sizes from a dataset's boxes: quantiles of ``sqrt(w h)`` (in input pixels,
    images stretched to ``image_hw``) at ``1/(2 count), 3/(2 count), ...`` ("chosen from the data")."""
    from foveal.errors import DataError

    h, w = image_hw
    sizes = []
    for boxes, (iw, ih) in zip(data.boxes, data.image_sizes):
        if len(boxes):
            b = np.asarray(boxes, np.float64)
            sizes.append(np.sqrt((b[:, 2] - b[:, 0]) * w / iw * (b[:, 3] - b[:, 1]) * h / ih))
    if not sizes:
        raise DataError(f"{data.origin}: no boxes to choose anchor sizes from")
    values = np.concatenate(sizes)
    quantiles = (np.arange(count) + 0.5) / count
    return [round(float(v), 1) for v in np.maximum(np.quantile(values, quantiles), 1.0)]


__all__ = ["FPN_ANCHOR_STRIDES", "FasterRCNNModel", "OCTAVE_SCALES", "RCNNSettings", "ROI_CANONICAL",
           "ROI_CANONICAL_IMAGE", "RPN_BOX_NORMS", "RPN_COMPONENTS", "anchor_sizes_from_boxes", "build_faster_rcnn", "fpn_anchor_sizes",
           "scaled_roi_canonical"]
