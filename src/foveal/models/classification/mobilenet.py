"""MobileNet v1 and v2: networks of depthwise separable convolutions for small devices.

- ``mobilenet``: Howard et al., "MobileNets: Efficient Convolutional Neural Networks for Mobile
  Vision Applications", arXiv 2017. A 3x3/2 convolution, then the 13 depthwise separable
  blocks of :data:`MOBILENET_V1_BLOCKS` (3x3 depthwise-BN-ReLU6, 1x1 pointwise-BN-ReLU6).
  The width multiplier ``alpha`` scales every layer's filters (``int(filters * alpha)``).
  At 224x224x3 with 1000 classes: 4,253,864 parameters for alpha 1.0, 2,601,976 for 0.75 and
  1,342,536 for 0.5 (incl. batch-norm statistics), keras.applications.MobileNet's counts;
  keras' 1x1-convolution classifier is a dense layer on the pooled features, the same
  parameters, and its dropout 1e-3 is the default ``dropout``.
- ``mobilenetv2``: Sandler, Howard, Zhu, Zhmoginov, Chen, "MobileNetV2: Inverted Residuals and
  Linear Bottlenecks", CVPR 2018. The paper's table 2 (:data:`MOBILENET_V2_STAGES`) of
  inverted residual units (:func:`~foveal.layers.residual.inverted_residual_unit`), then a
  1x1 convolution to 1280 channels (widened, never narrowed, by ``alpha``). Channel counts
  are rounded to multiples of 8. At 224x224x3 with 1000 classes: 3,538,984 parameters for
  alpha 1.0, keras.applications.MobileNetV2's count.

The feature maps by stride are measured on the built graph
(:func:`foveal.models.pyramid.feature_pyramid`): for MobileNetV2 they are the expansions
entering each downsampling unit, where the paper attaches SSDLite (section 6.2).
"""

from __future__ import annotations

from keras import layers

from foveal.errors import ConfigError
from foveal.layers.residual import inverted_residual_unit
from foveal.models.classification.lenet import classifier_output
from foveal.models.registry import MODELS

MOBILENET_V1_BLOCKS: tuple[tuple[int, int], ...] = (
    (64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
    (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1),
)
"""(pointwise filters, depthwise stride) of each depthwise separable block, before ``alpha``."""

MOBILENET_V2_STAGES: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1),
)
"""Rows (expansion t, channels c, repeats n, first stride s) of the MobileNetV2 paper's table 2."""


def _check_alpha(alpha: float) -> None:
    if not alpha > 0:
        raise ConfigError(f"alpha must be positive, got {alpha!r}")


@MODELS.register(
    "mobilenet",
    input_shape=(224, 224, 3),
    preprocessing="tf",
    paper="Howard et al., MobileNets: Efficient Convolutional Neural Networks for Mobile Vision Applications, 2017",
    description="MobileNet v1, 13 depthwise separable blocks, width multiplier alpha",
    smoke={"input_shape": (64, 64, 3), "options": {"alpha": 0.25}},
)
def mobilenet(x, *, num_classes: int, include_top: bool = True, alpha: float = 1.0, depth_multiplier: int = 1,
              dropout: float = 1e-3):
    """MobileNet v1 body on a preprocessed input ``x``.

    Args:
        alpha: width multiplier (1.0, 0.75, 0.5, 0.25 in the paper).
        depth_multiplier: depthwise outputs per input channel (1 in the paper).
        dropout: rate before the classifier (keras.applications' 1e-3 by default).

    Example:
        >>> from foveal.models import build_model
        >>> build_model("mobilenet", num_classes=1000).count_params()
        4253864
    """
    _check_alpha(alpha)
    if isinstance(depth_multiplier, bool) or not isinstance(depth_multiplier, int) or depth_multiplier < 1:
        raise ConfigError(f"depth_multiplier must be a positive integer, got {depth_multiplier!r}")
    x = layers.Conv2D(int(32 * alpha), 3, strides=2, padding="same", use_bias=False, name="conv1")(x)
    x = layers.BatchNormalization(name="conv1_bn")(x)
    x = layers.ReLU(6.0, name="conv1_relu")(x)
    for i, (filters, strides) in enumerate(MOBILENET_V1_BLOCKS, start=1):
        x = layers.DepthwiseConv2D(3, strides=strides, padding="same", depth_multiplier=depth_multiplier,
                                   use_bias=False, name=f"conv_dw_{i}")(x)
        x = layers.BatchNormalization(name=f"conv_dw_{i}_bn")(x)
        x = layers.ReLU(6.0, name=f"conv_dw_{i}_relu")(x)
        x = layers.Conv2D(int(filters * alpha), 1, use_bias=False, name=f"conv_pw_{i}")(x)
        x = layers.BatchNormalization(name=f"conv_pw_{i}_bn")(x)
        x = layers.ReLU(6.0, name=f"conv_pw_{i}_relu")(x)
    if not include_top:
        return x
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    if dropout:
        x = layers.Dropout(dropout, name="gap_dropout")(x)
    return classifier_output(x, num_classes)


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round ``value`` to the nearest multiple of ``divisor``, losing at most 10% of it.

    Example:
        >>> make_divisible(32 * 0.35), make_divisible(16 * 0.35)
        (16, 8)
    """
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def _v2_blocks():
    """(block index, expansion, channels, stride) of every inverted residual unit."""
    index = 0
    for expansion, channels, repeats, first_stride in MOBILENET_V2_STAGES:
        for repeat in range(repeats):
            yield index, expansion, channels, first_stride if repeat == 0 else 1
            index += 1


@MODELS.register(
    "mobilenetv2",
    input_shape=(224, 224, 3),
    preprocessing="tf",
    paper="Sandler et al., MobileNetV2: Inverted Residuals and Linear Bottlenecks, CVPR 2018",
    description="MobileNetV2, 17 inverted residual units, width multiplier alpha",
    smoke={"input_shape": (64, 64, 3), "options": {"alpha": 0.35}},
)
def mobilenetv2(x, *, num_classes: int, include_top: bool = True, alpha: float = 1.0, dropout: float = 0.0,
                bn_momentum: float = 0.99):
    """MobileNetV2 body on a preprocessed input ``x``.

    Args:
        alpha: width multiplier (0.35 to 1.4 in the paper); the 1280-channel head only grows.
        dropout: rate before the classifier (0 disables).
        bn_momentum: weight of the old value in the batch-norm moving averages (Keras'
            default 0.99). keras.applications.MobileNetV2 uses 0.999, fine after its ImageNet
            run of hundreds of thousands of steps, but after a short training from scratch
            the moving statistics still hold ``0.999 ** steps`` of their initial values
            (41% after 890 steps). Even 0.99 can lag a fast run's weights: recompute the
            statistics with :func:`foveal.training.precise_bn.recalibrate_batchnorm` when an
            inference-mode model predicts one class (recipes/deployment.md).

    Example:
        >>> from foveal.models import build_model
        >>> build_model("mobilenetv2", num_classes=1000).count_params()
        3538984
    """
    _check_alpha(alpha)
    if not 0.0 <= bn_momentum < 1.0:
        raise ConfigError(f"bn_momentum must be in [0, 1), got {bn_momentum!r}")
    bn = {"epsilon": 1e-3, "momentum": bn_momentum}
    x = layers.Conv2D(make_divisible(32 * alpha), 3, strides=2, padding="same", use_bias=False, name="stem_conv")(x)
    x = layers.BatchNormalization(name="stem_bn", **bn)(x)
    x = layers.ReLU(6.0, name="stem_relu")(x)
    for index, expansion, channels, strides in _v2_blocks():
        x = inverted_residual_unit(x, make_divisible(int(channels * alpha)), strides, expansion, f"block{index}", **bn)
    head = make_divisible(1280 * alpha) if alpha > 1.0 else 1280
    x = layers.Conv2D(head, 1, use_bias=False, name="head_conv")(x)
    x = layers.BatchNormalization(name="head_bn", **bn)(x)
    x = layers.ReLU(6.0, name="head_relu")(x)
    if not include_top:
        return x
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    if dropout:
        x = layers.Dropout(dropout, name="gap_dropout")(x)
    return classifier_output(x, num_classes)


__all__ = ["MOBILENET_V1_BLOCKS", "MOBILENET_V2_STAGES", "make_divisible", "mobilenet", "mobilenetv2"]
