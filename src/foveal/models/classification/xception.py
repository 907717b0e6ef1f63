"""Xception: residual stacks of depthwise separable convolutions.

Chollet, "Xception: Deep Learning with Depthwise Separable Convolutions", CVPR 2017. Two
regular 3x3 convolutions (32 and 64 filters, the first with stride 2, both unpadded), then:

- entry flow: three downsampling blocks of 128, 256 and 728 filters;
- middle flow: eight blocks of three ReLU-SeparableConv-BN at 728 filters, identity shortcut;
- exit flow: one downsampling block (728 then 1024 filters), then separable convolutions of
  1536 and 2048 filters with ReLU, global average pooling and the classifier.

A downsampling block is [ReLU]-SepConv-BN-ReLU-SepConv-BN-MaxPool(3, stride 2) added to a
strided 1x1 convolution + BN of its input (the first block has no leading ReLU since the stem
ends with one). Separable convolutions carry no bias (batch norm follows). At 299x299x3 with
1000 classes the model has 22,910,480 parameters (incl. batch-norm statistics), exactly
keras.applications.Xception's.

The feature maps by stride (the ``add`` of the last block at strides 4, 8 and 16, the final
activation at 32) are measured on the built graph by :func:`foveal.models.pyramid.feature_pyramid`,
so they follow ``middle_blocks`` and ``alpha``.
"""

from __future__ import annotations

from keras import layers

from foveal.errors import ConfigError
from foveal.models.classification.lenet import classifier_output
from foveal.models.registry import MODELS

ENTRY_FLOW: tuple[tuple[int, int], ...] = ((128, 128), (256, 256), (728, 728))
"""Filters of the two separable convolutions of each entry-flow downsampling block."""
MIDDLE_FILTERS = 728
EXIT_BLOCK: tuple[int, int] = (728, 1024)
EXIT_CONVS: tuple[int, ...] = (1536, 2048)
STEM: tuple[tuple[int, int], ...] = ((32, 2), (64, 1))
"""(filters, stride) of the two regular 3x3 convolutions."""


def _separable(x, filters: int, name: str, relu_before: bool):
    if relu_before:
        x = layers.Activation("relu", name=f"{name}_act")(x)
    x = layers.SeparableConv2D(filters, 3, padding="same", use_bias=False, name=name)(x)
    return layers.BatchNormalization(name=f"{name}_bn")(x)


def _downsampling_block(x, filters: tuple[int, int], name: str, relu_first: bool):
    residual = layers.Conv2D(filters[-1], 1, strides=2, padding="same", use_bias=False, name=f"{name}_proj_conv")(x)
    residual = layers.BatchNormalization(name=f"{name}_proj_bn")(residual)
    x = _separable(x, filters[0], f"{name}_sepconv1", relu_before=relu_first)
    x = _separable(x, filters[1], f"{name}_sepconv2", relu_before=True)
    x = layers.MaxPooling2D(3, strides=2, padding="same", name=f"{name}_pool")(x)
    return layers.Add(name=f"{name}_add")([x, residual])


def _middle_block(x, filters: int, name: str):
    y = x
    for i in range(1, 4):
        y = _separable(y, filters, f"{name}_sepconv{i}", relu_before=True)
    return layers.Add(name=f"{name}_add")([y, x])


@MODELS.register(
    "xception",
    input_shape=(299, 299, 3),
    preprocessing="tf",
    paper="Chollet, Xception: Deep Learning with Depthwise Separable Convolutions, CVPR 2017",
    description="Xception, entry/middle (8x)/exit flows of separable convolutions",
    smoke={"input_shape": (64, 64, 3), "options": {"alpha": 0.0625, "middle_blocks": 1}},
)
def xception(x, *, num_classes: int, include_top: bool = True, alpha: float = 1.0, middle_blocks: int = 8,
             dropout: float = 0.0):
    """Xception body on a preprocessed input ``x``.

    Args:
        alpha: width multiplier applied to every layer's filters (1.0 is the paper's network).
        middle_blocks: number of middle-flow blocks (8 in the paper).
        dropout: rate before the classifier (0 disables).

    Example:
        >>> from foveal.models import build_model
        >>> build_model("xception", num_classes=1000).count_params()
        22910480
    """
    if not alpha > 0:
        raise ConfigError(f"alpha must be positive, got {alpha!r}")
    if isinstance(middle_blocks, bool) or not isinstance(middle_blocks, int) or middle_blocks < 0:
        raise ConfigError(f"middle_blocks must be a non-negative integer, got {middle_blocks!r}")

    def scaled(filters: int) -> int:
        return max(1, round(filters * alpha))

    for i, (filters, strides) in enumerate(STEM, start=1):
        x = layers.Conv2D(scaled(filters), 3, strides=strides, use_bias=False, name=f"block1_conv{i}")(x)
        x = layers.BatchNormalization(name=f"block1_conv{i}_bn")(x)
        x = layers.Activation("relu", name=f"block1_conv{i}_act")(x)
    block = 2
    for i, filters in enumerate(ENTRY_FLOW):
        x = _downsampling_block(x, tuple(map(scaled, filters)), f"block{block}", relu_first=i > 0)
        block += 1
    for _ in range(middle_blocks):
        x = _middle_block(x, scaled(MIDDLE_FILTERS), f"block{block}")
        block += 1
    x = _downsampling_block(x, tuple(map(scaled, EXIT_BLOCK)), f"block{block}", relu_first=True)
    block += 1
    for i, filters in enumerate(EXIT_CONVS, start=1):
        x = layers.SeparableConv2D(scaled(filters), 3, padding="same", use_bias=False,
                                   name=f"block{block}_sepconv{i}")(x)
        x = layers.BatchNormalization(name=f"block{block}_sepconv{i}_bn")(x)
        x = layers.Activation("relu", name=f"block{block}_sepconv{i}_act")(x)
    if not include_top:
        return x
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    if dropout:
        x = layers.Dropout(dropout, name="gap_dropout")(x)
    return classifier_output(x, num_classes)


__all__ = ["xception"]
