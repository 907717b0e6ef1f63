"""YOLO-style detectors on any foveal backbone, with decoding and NMS inside ``predict``.

Redmon & Farhadi, "YOLO9000: Better, Faster, Stronger", CVPR 2017 (one output scale, anchor
boxes, sigmoid centre offsets, exp size scales) and "YOLOv3: An Incremental Improvement",
arXiv 2018 (three scales fed by a top-down path: upsample, concatenate, convolve). The
backbone's maps come from :func:`foveal.models.pyramid.feature_pyramid` (strides measured on
the built graph). Each output is ``[B, gh, gw, A, 5 + K]`` raw logits, finest scale first; the
model is fully convolutional, so any input whose sides are multiples of the largest stride
works (multi-scale training). :class:`DetectorModel` trains on the raw outputs with
:class:`~foveal.detection.loss.YoloLoss` (logging ``coord_loss``, ``obj_loss``, ``noobj_loss``,
``class_loss``; XLA allowed) and decodes and suppresses in ``predict`` (never XLA: NMS keeps a
data-dependent number of boxes).

Example:
    >>> import numpy as np
    >>> anchors = np.array([[0.1, 0.1], [0.3, 0.3], [0.6, 0.6]], np.float32)
    >>> model = build_detector("resnet18", 3, anchors, input_shape=(64, 64, 3),
    ...                        backbone_options={"width": 8})
    >>> [tuple(o.shape) for o in model.outputs]
    [(None, None, None, 3, 8)]
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops

from foveal.detection.adapt import LayerFeaturesDetector
from foveal.detection.loss import COMPONENTS, YoloLoss
from foveal.detection.postprocess import as_list, clipped_detections
from foveal.errors import ConfigError
from foveal.training.distribute import per_replica_loss

#: Objectness probability the output bias starts at, so the many empty cells do not swamp the
#: first steps with no-object loss (the prior-probability initialisation of Lin et al.,
#: "Focal Loss for Dense Object Detection", ICCV 2017).
OBJECTNESS_PRIOR = 0.01


@keras.saving.register_keras_serializable(package="foveal")
class AnchorReshape(layers.Layer):
    """``[B, H, W, A * D]`` -> ``[B, H, W, A, D]`` for any (dynamic) H and W.

    Example:
        >>> AnchorReshape(3, 7)(np.zeros((1, 2, 2, 21), np.float32)).shape
        TensorShape([1, 2, 2, 3, 7])
    """

    def __init__(self, num_anchors: int, depth: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.num_anchors = int(num_anchors)
        self.depth = int(depth)

    def call(self, x):
        shape = ops.shape(x)
        return ops.reshape(x, (shape[0], shape[1], shape[2], self.num_anchors, self.depth))

    def compute_output_shape(self, input_shape):
        return (*input_shape[:3], self.num_anchors, self.depth)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "num_anchors": self.num_anchors, "depth": self.depth}


def _conv(x, filters: int, kernel: int, name: str):
    """Convolution, batch norm, LeakyReLU(0.1): YOLO's building block."""
    x = layers.Conv2D(filters, kernel, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return layers.LeakyReLU(0.1, name=f"{name}_leaky")(x)


def _output(x, num_anchors: int, depth: int, level: str):
    x = layers.Conv2D(num_anchors * depth, 1, dtype="float32", name=f"head_{level}_out")(x)
    return AnchorReshape(num_anchors, depth, dtype="float32", name=f"output_{level}")(x)


def _head_maps(base: keras.Model, backbone: str, scales: int, input_shape: tuple[int, ...]) -> dict[str, Any]:
    """The backbone maps the head uses, level name -> tensor, finest first (measured strides)."""
    from foveal.models.pyramid import feature_pyramid, level_stride

    pyramid = feature_pyramid(base, min_level=1, input_size=input_shape[:2])
    if not pyramid:
        raise ConfigError(f"backbone {backbone!r} has no feature map with a stride of 2 or more",
                          hint="pick a backbone that downsamples (see `foveal models`)")
    names = list(pyramid)[-scales:]
    strides = [level_stride(name) for name in names]
    if len(names) < scales or any(b != 2 * a for a, b in zip(strides, strides[1:])):
        raise ConfigError(f"backbone {backbone!r} has feature maps {', '.join(pyramid)} (measured); 3 scales need "
                          "three consecutive levels, e.g. P3, P4, P5",
                          hint="use scales=1, or a backbone with P3-P5 (see `foveal models`)")
    return {name: pyramid[name] for name in names}


def build_detector(
    backbone: str,
    num_classes: int,
    anchors,
    *,
    scales: int = 1,
    input_shape: tuple[int, int, int] = (416, 416, 3),
    preprocessing: str | None = None,
    head_width: int | None = None,
    backbone_options: dict[str, Any] | None = None,
    score_threshold: float = 0.25,
    iou_threshold: float = 0.45,
    max_detections: int = 100,
    class_aware: bool = True,
) -> "DetectorModel":
    """Build a YOLOv2-style (1 scale) or YOLOv3-style (3 scales) detector on ``backbone``.

    One scale: the backbone's coarsest map, an optional 3x3 conv-BN-LeakyReLU and the 1x1
    output. Three scales (three consecutive levels, e.g. P3-P5): at the coarsest, 1x1, 3x3, 1x1
    convolutions (the *route*), a 3x3 and the output; at each finer level the route reduced,
    upsampled x2 and concatenated with the backbone map, then the same block at half width.

    Args:
        num_classes: ``K`` (1 is fine: the score is then the objectness).
        anchors: ``[S*A, 2]`` normalised ``(w, h)`` sizes (:func:`foveal.ops.anchors.anchors_for`
            divided by the input size), sorted here by area: the smallest go to the finest scale.
        input_shape: nominal ``(H, W, C)``; sides multiples of the largest stride.
        head_width: filters of the head at the coarsest scale, halved at each finer one (None:
            the map's channels, at most 512; ``0`` with one scale: only the 1x1 output).
        score_threshold, iou_threshold, max_detections, class_aware: ``predict``'s
            post-processing (:meth:`DetectorModel.set_postprocess` changes them).

    Raises:
        ConfigError: bad ``scales``, anchors or input size, or a backbone without the needed maps.
    """
    from foveal.models import build_model
    from foveal.models.pyramid import level_stride

    if scales not in (1, 3):
        raise ConfigError(f"scales must be 1 (YOLOv2) or 3 (YOLOv3), got {scales}")
    if num_classes < 1:
        raise ConfigError(f"num_classes must be at least 1, got {num_classes}")
    anchors = np.asarray(anchors, np.float32)
    if anchors.ndim == 2:  # the grouping by scale relies on it: smallest anchors on the finest map
        anchors = anchors[np.argsort(anchors[:, 0] * anchors[:, 1], kind="stable")]
    if anchors.ndim != 2 or anchors.shape[1] != 2 or len(anchors) % scales or not len(anchors):
        raise ConfigError(f"anchors must be [scales * A, 2] normalised (w, h), got shape {anchors.shape}")
    if np.any(anchors <= 0) or np.any(anchors > 4):
        raise ConfigError("anchors must be normalised sizes (fractions of the image), all > 0",
                          hint="divide pixel anchors by the input width and height")
    if scales == 3 and head_width == 0:
        raise ConfigError("head_width=0 is only possible with one scale (the neck needs convolutions)")
    input_shape = tuple(int(d) for d in input_shape)
    base = build_model(backbone, num_classes=max(num_classes, 2), input_shape=(None, None, input_shape[2]),
                       include_top=False, preprocessing=preprocessing, **(backbone_options or {}))
    maps = _head_maps(base, backbone, scales, input_shape)
    coarsest = list(maps.values())[-1]
    width = min(int(coarsest.shape[-1]), 512) if head_width is None else int(head_width)
    num_anchors, depth = len(anchors) // scales, 5 + num_classes

    outputs = []
    if scales == 1:
        (level, x), = maps.items()
        if width:
            x = _conv(x, width, 3, f"head_{level}")
        outputs.append(_output(x, num_anchors, depth, level))
    else:
        route = None
        for i, level in enumerate(reversed(maps)):
            filters = max(width >> i, 8)
            x = maps[level]
            if route is not None:
                up = _conv(route, filters, 1, f"neck_{level}_reduce")
                up = layers.UpSampling2D(2, name=f"neck_{level}_up")(up)
                x = layers.Concatenate(name=f"neck_{level}_concat")([up, x])
            for j, (f, k) in enumerate(((filters, 1), (2 * filters, 3), (filters, 1))):
                x = _conv(x, f, k, f"neck_{level}_{j + 1}")
            route = x
            x = _conv(x, 2 * filters, 3, f"head_{level}")
            outputs.insert(0, _output(x, num_anchors, depth, level))
    levels = list(maps)
    strides = [level_stride(level) for level in levels]
    largest = max(strides)
    if input_shape[0] % largest or input_shape[1] % largest:
        raise ConfigError(f"input sides must be multiples of {largest} for this detector, got "
                          f"{input_shape[0]}x{input_shape[1]}", hint=f"e.g. {-(-input_shape[0] // largest) * largest}")
    model = DetectorModel(
        base.input, outputs, anchors=anchors, num_classes=num_classes, levels=levels, strides=strides,
        input_size=input_shape, score_threshold=score_threshold, iou_threshold=iou_threshold,
        max_detections=max_detections, class_aware=class_aware, name=f"{backbone}_yolo{'v3' if scales == 3 else 'v2'}",
        feature_layer=coarsest._keras_history.operation.name,
    )
    model.init_objectness()
    return model


class DetectionOutputs:
    """What every foveal detector model shares (YOLO, Faster R-CNN): ``predict`` returns boxes,
    scores and classes after NMS, with post-processing settings that can change after training.

    A subclass (also a ``keras.Model``) implements :meth:`detections` and sets the four
    settings of :meth:`postprocess_config` and ``_detect_fn = None`` in its ``__init__``.
    """

    def detections(self, images) -> dict[str, tf.Tensor]:
        """In-graph ``boxes`` (normalised corners in [0, 1]), ``scores``, ``classes``, ``num_detections``."""
        raise NotImplementedError

    def predict_step(self, data):
        x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        return self.detections(x)

    def make_predict_function(self, force: bool = False):
        # NMS (data-dependent shapes) cannot be XLA-compiled: predict never uses jit_compile,
        # training still may where the loss is static-shaped.
        jit, self._jit_compile = self._jit_compile, False
        try:
            return super().make_predict_function(force=force)
        finally:
            self._jit_compile = jit

    def detect(self, images) -> dict[str, np.ndarray]:
        """Detections for a batch of raw images ``[N, H, W, C]`` (0..255), as NumPy arrays (one
        traced graph serves every input size)."""
        if self._detect_fn is None:
            # not converted by AutoGraph, as Keras traces predict: the same graph, traced faster
            # (AutoGraph converted the whole post-processing call tree)
            self._detect_fn = tf.function(self.detections, reduce_retracing=True, autograph=False)
        images = tf.cast(tf.convert_to_tensor(images), tf.float32)
        return {k: v.numpy() for k, v in self._detect_fn(images).items()}

    def set_postprocess(self, *, score_threshold: float | None = None, iou_threshold: float | None = None,
                        max_detections: int | None = None, class_aware: bool | None = None) -> None:
        """Change the post-processing settings; the next ``predict``/``detect`` uses them."""
        if max_detections is not None and int(max_detections) < 1:
            raise ConfigError(f"max_detections must be at least 1, got {max_detections}")
        for key, cast, value in (("score_threshold", float, score_threshold), ("iou_threshold", float, iou_threshold),
                                 ("max_detections", int, max_detections), ("class_aware", bool, class_aware)):
            if value is not None:
                setattr(self, key, cast(value))
        self.predict_function = None  # the thresholds are constants of the traced graphs
        self._detect_fn = None

    def postprocess_config(self) -> dict[str, Any]:
        """The current post-processing settings."""
        return {"score_threshold": self.score_threshold, "iou_threshold": self.iou_threshold,
                "max_detections": self.max_detections, "class_aware": self.class_aware}


@keras.saving.register_keras_serializable(package="foveal")
class DetectorModel(LayerFeaturesDetector, DetectionOutputs, keras.Model):
    """A YOLO detector: raw outputs for training, boxes/scores/classes from ``predict``.

    ``predict(images)`` returns ``boxes [N, D, 4]`` (normalised corners clipped to the image),
    ``scores [N, D]``, ``classes [N, D]`` (-1 pads) and ``num_detections [N]``, ``D = max_detections``.

    Args:
        levels: the pyramid level of each output (``"P3"``...).
        loss_config: a :class:`~foveal.detection.loss.YoloLoss` config restored by ``compile``.
        feature_layer: the backbone layer the head reads at the coarsest scale (the map
            :meth:`enable_adaptation` adapts).
        adaptation: :class:`~foveal.detection.adapt.DomainAdapter` settings, restored by ``from_config``.
    """

    def __init__(self, inputs, outputs, *, anchors, num_classes: int, levels=None, strides=None,
                 input_size=None, score_threshold: float = 0.25, iou_threshold: float = 0.45,
                 max_detections: int = 100, class_aware: bool = True, loss_config: dict | None = None,
                 feature_layer: str | None = None, adaptation: dict[str, Any] | None = None,
                 name: str | None = None, trainable: bool = True) -> None:
        super().__init__(inputs=inputs, outputs=outputs, name=name, trainable=trainable)
        self.feature_layer = feature_layer
        self.anchors = np.asarray(anchors, np.float32).reshape(-1, 2)
        self.num_classes = int(num_classes)
        count = len(as_list(outputs))
        self.levels = list(levels) if levels is not None else [f"S{i}" for i in range(count)]
        self.strides = [int(s) for s in strides] if strides is not None else []
        self.input_size = tuple(int(d) for d in input_size) if input_size is not None else None
        self.score_threshold = float(score_threshold)
        self.iou_threshold = float(iou_threshold)
        self.max_detections = int(max_detections)
        self.class_aware = bool(class_aware)
        self.yolo_loss: YoloLoss | None = YoloLoss.from_config(loss_config) if loss_config else None
        self.coord_loss_tracker = keras.metrics.Mean(name="coord_loss")
        self.obj_loss_tracker = keras.metrics.Mean(name="obj_loss")
        self.noobj_loss_tracker = keras.metrics.Mean(name="noobj_loss")
        self.class_loss_tracker = keras.metrics.Mean(name="class_loss")
        self._detect_fn = None
        if adaptation:
            self.enable_adaptation(**adaptation)

    @property
    def num_anchors(self) -> int:
        """Anchors per scale."""
        return len(self.anchors) // len(self.outputs)

    # -- training ----------------------------------------------------------------------------

    def compile(self, optimizer="adam", loss: YoloLoss | None = None, **kwargs) -> None:
        """Compile with :class:`YoloLoss`: the one given, else the restored one, else the defaults."""
        if isinstance(loss, YoloLoss):
            self.yolo_loss = loss
        elif loss is not None:
            raise ConfigError(f"a detector trains with YoloLoss, got loss={loss!r}")
        elif self.yolo_loss is None:
            self.yolo_loss = YoloLoss(self.anchors)
        super().compile(optimizer=optimizer, loss=None, **kwargs)

    def compile_from_config(self, config: dict[str, Any]) -> None:
        # Keras skips models whose compile() is overridden; ours restores the same settings.
        config = keras.saving.deserialize_keras_object(config)
        self.compile(**config)
        if self.built and getattr(self, "optimizer", None) is not None:
            self.optimizer.build(self.trainable_variables)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        if self.yolo_loss is None:
            self.yolo_loss = YoloLoss(self.anchors)
        parts = self.yolo_loss.components(y, as_list(y_pred))
        for name, tracker in zip(COMPONENTS, self._component_trackers()):
            tracker.update_state(parts[name])
        total = parts["loss"]
        for extra in self.losses:  # weight penalties
            total = total + ops.cast(ops.sum(extra), total.dtype)
        return per_replica_loss(total)

    def _component_trackers(self) -> list[keras.metrics.Mean]:
        return [self.coord_loss_tracker, self.obj_loss_tracker, self.noobj_loss_tracker, self.class_loss_tracker]

    def init_objectness(self, prior: float = OBJECTNESS_PRIOR) -> None:
        """Set every output bias to 0 except objectness, at ``logit(prior)``."""
        depth = 5 + self.num_classes
        for level in self.levels:
            layer = self.get_layer(f"head_{level}_out")
            bias = np.zeros((self.num_anchors, depth), np.float32)
            bias[:, 4] = np.log(prior / (1 - prior))
            layer.bias.assign(bias.reshape(-1))

    # -- inference ---------------------------------------------------------------------------

    def postprocess(self, raw_outputs) -> dict[str, tf.Tensor]:
        """Decode and suppress raw outputs (in-graph); boxes are clipped to [0, 1]."""
        return clipped_detections(as_list(raw_outputs), self.anchors, **self.postprocess_config())

    def detections(self, images) -> dict[str, tf.Tensor]:
        return self.postprocess(self(images, training=False))

    # -- serialisation -----------------------------------------------------------------------

    def get_config(self) -> dict[str, Any]:
        graph = keras.Model(self.inputs, self.outputs, name=self.name)
        return {
            "name": self.name,
            "trainable": self.trainable,
            "graph": graph.get_config(),
            "anchors": self.anchors.tolist(),
            "num_classes": self.num_classes,
            "levels": self.levels,
            "strides": self.strides,
            "input_size": list(self.input_size) if self.input_size else None,
            **self.postprocess_config(),
            "loss_config": self.yolo_loss.get_config() if self.yolo_loss is not None else None,
            "feature_layer": self.feature_layer,
            "adaptation": self.adaptation_config(),
        }

    @classmethod
    def from_config(cls, config: dict[str, Any], custom_objects=None) -> "DetectorModel":
        config = dict(config)
        graph = keras.Model.from_config(config.pop("graph"), custom_objects=custom_objects)
        return cls(graph.input, graph.outputs, **config)
