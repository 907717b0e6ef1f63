"""Residual units as functions that add named, plain Keras layers to a functional graph.

Each function takes a tensor and a ``name`` prefix and returns the unit's output tensor; every
layer it adds is named ``{name}_...``, so models stay flat graphs that are easy to inspect,
cut and explain (Grad-CAM). The unit's output layer is always ``{name}_out`` for the ResNet
units (``{name}_add``/``{name}_project_bn`` for the inverted residual).

- :func:`basic_residual_unit` and :func:`bottleneck_residual_unit`: ResNet v1 (He, Zhang,
  Ren, Sun, "Deep Residual Learning for Image Recognition", CVPR 2016): conv-BN-ReLU stacks
  added to a shortcut, then ReLU.
- :func:`preact_basic_unit` and :func:`preact_bottleneck_unit`: ResNet v2 (He, Zhang, Ren,
  Sun, "Identity Mappings in Deep Residual Networks", ECCV 2016): BN-ReLU before each
  convolution, nothing after the addition, so the shortcut path is a pure identity.
- :func:`inverted_residual_unit`: MobileNetV2 (Sandler, Howard, Zhu, Zhmoginov, Chen,
  "MobileNetV2: Inverted Residuals and Linear Bottlenecks", CVPR 2018).

Every ResNet unit takes ``se_ratio``: a positive value puts a squeeze-and-excitation block
(:class:`~foveal.layers.squeeze_excite.SqueezeExcite`) on the residual branch just before the
addition, as in SE-ResNet.
"""

from __future__ import annotations

from keras import layers

from foveal.layers.squeeze_excite import SqueezeExcite


def conv_bn(x, filters: int, kernel: int, strides: int, name: str, *, relu: bool = True,
            use_bias: bool = False, epsilon: float = 1e-5):
    """Conv ("same" padding, He-normal) -> batch norm -> optional ReLU, named ``{name}_conv/_bn/_relu``."""
    x = layers.Conv2D(
        filters, kernel, strides=strides, padding="same", use_bias=use_bias,
        kernel_initializer="he_normal", name=f"{name}_conv",
    )(x)
    x = layers.BatchNormalization(epsilon=epsilon, name=f"{name}_bn")(x)
    return layers.Activation("relu", name=f"{name}_relu")(x) if relu else x


def _squeeze_excite(y, se_ratio: int, name: str):
    return SqueezeExcite(se_ratio, name=f"{name}_se")(y) if se_ratio else y


def basic_residual_unit(x, filters: int, strides: int, name: str, *, use_bias: bool = False,
                        epsilon: float = 1e-5, se_ratio: int = 0):
    """Two 3x3 convolutions plus a shortcut (a 1x1 projection when the shape changes).

    Args:
        x: input tensor (N, H, W, C).
        filters: output channels.
        strides: stride of the first convolution and of the projection.
        name: prefix of the layer names.
        use_bias: biases in the convolutions (redundant before batch norm; off by default).
        epsilon: batch-norm epsilon.
        se_ratio: squeeze-and-excitation reduction ratio on the branch (0: none).

    Example:
        >>> import keras
        >>> basic_residual_unit(keras.Input((8, 8, 16)), 32, 2, "unit").shape
        (None, 4, 4, 32)
    """
    shortcut = x
    if strides != 1 or x.shape[-1] != filters:
        shortcut = conv_bn(x, filters, 1, strides, f"{name}_proj", relu=False, use_bias=use_bias, epsilon=epsilon)
    y = conv_bn(x, filters, 3, strides, f"{name}_a", relu=True, use_bias=use_bias, epsilon=epsilon)
    y = conv_bn(y, filters, 3, 1, f"{name}_b", relu=False, use_bias=use_bias, epsilon=epsilon)
    y = _squeeze_excite(y, se_ratio, name)
    y = layers.Add(name=f"{name}_add")([shortcut, y])
    return layers.Activation("relu", name=f"{name}_out")(y)


def bottleneck_residual_unit(x, filters: int, strides: int, name: str, *, expansion: int = 4,
                             stride_on: str = "middle", use_bias: bool = False, epsilon: float = 1e-5,
                             se_ratio: int = 0):
    """1x1 (reduce) -> 3x3 -> 1x1 (expand to ``expansion * filters``) plus a shortcut.

    Args:
        filters: channels of the bottleneck; the unit outputs ``expansion * filters``.
        strides: stride of the unit (on the projection too).
        stride_on: ``"first"`` puts the stride on the first 1x1 convolution (the paper's and
            keras.applications' layout), ``"middle"`` on the 3x3 (torchvision's "v1.5").
        use_bias, epsilon, se_ratio: as in :func:`basic_residual_unit`.

    Example:
        >>> import keras
        >>> bottleneck_residual_unit(keras.Input((8, 8, 64)), 16, 1, "unit").shape
        (None, 8, 8, 64)
    """
    if stride_on not in ("first", "middle"):
        raise ValueError(f"stride_on must be 'first' or 'middle', got {stride_on!r}")
    out = expansion * filters
    shortcut = x
    if strides != 1 or x.shape[-1] != out:
        shortcut = conv_bn(x, out, 1, strides, f"{name}_proj", relu=False, use_bias=use_bias, epsilon=epsilon)
    first, middle = (strides, 1) if stride_on == "first" else (1, strides)
    y = conv_bn(x, filters, 1, first, f"{name}_a", use_bias=use_bias, epsilon=epsilon)
    y = conv_bn(y, filters, 3, middle, f"{name}_b", use_bias=use_bias, epsilon=epsilon)
    y = conv_bn(y, out, 1, 1, f"{name}_c", relu=False, use_bias=use_bias, epsilon=epsilon)
    y = _squeeze_excite(y, se_ratio, name)
    y = layers.Add(name=f"{name}_add")([shortcut, y])
    return layers.Activation("relu", name=f"{name}_out")(y)


def bn_relu(x, name: str, epsilon: float = 1.001e-5):
    """Batch norm -> ReLU, named ``{name}_bn`` and ``{name}_relu`` (the v2 pre-activation)."""
    x = layers.BatchNormalization(epsilon=epsilon, name=f"{name}_bn")(x)
    return layers.Activation("relu", name=f"{name}_relu")(x)


def _conv(x, filters: int, kernel: int, strides: int, name: str, use_bias: bool):
    return layers.Conv2D(
        filters, kernel, strides=strides, padding="same", use_bias=use_bias,
        kernel_initializer="he_normal", name=name,
    )(x)


def _preact_shortcut(x, preact, out: int, strides: int, name: str, use_bias: bool):
    # A projection sees the pre-activated input; a plain shortcut stays the raw identity
    # (subsampled by a 1x1 max pool when the unit has a stride), as in the v2 paper.
    if x.shape[-1] != out:
        return _conv(preact, out, 1, strides, f"{name}_proj_conv", use_bias)
    if strides != 1:
        return layers.MaxPooling2D(1, strides=strides, name=f"{name}_skip_pool")(x)
    return x


def preact_basic_unit(x, filters: int, strides: int, name: str, *, use_bias: bool = True,
                      epsilon: float = 1.001e-5, se_ratio: int = 0):
    """Pre-activation basic unit: BN-ReLU-conv3x3-BN-ReLU-conv3x3, added to the shortcut.

    Args:
        use_bias: biases on the convolutions that no batch norm follows (the last one and the
            projection); the others never have one.
        strides, epsilon, se_ratio: as in :func:`basic_residual_unit`.

    Example:
        >>> import keras
        >>> preact_basic_unit(keras.Input((8, 8, 16)), 16, 2, "unit").shape
        (None, 4, 4, 16)
    """
    preact = bn_relu(x, f"{name}_preact", epsilon)
    shortcut = _preact_shortcut(x, preact, filters, strides, name, use_bias)
    y = _conv(preact, filters, 3, strides, f"{name}_a_conv", use_bias=False)
    y = bn_relu(y, f"{name}_a", epsilon)
    y = _conv(y, filters, 3, 1, f"{name}_b_conv", use_bias)
    y = _squeeze_excite(y, se_ratio, name)
    return layers.Add(name=f"{name}_out")([shortcut, y])


def preact_bottleneck_unit(x, filters: int, strides: int, name: str, *, expansion: int = 4,
                           use_bias: bool = True, epsilon: float = 1.001e-5, se_ratio: int = 0):
    """Pre-activation bottleneck: BN-ReLU-1x1-BN-ReLU-3x3(stride)-BN-ReLU-1x1, plus the shortcut.

    Args:
        filters: bottleneck channels; the unit outputs ``expansion * filters``.
        use_bias, strides, epsilon, se_ratio: as in :func:`preact_basic_unit`.

    Example:
        >>> import keras
        >>> preact_bottleneck_unit(keras.Input((8, 8, 16)), 8, 1, "unit").shape
        (None, 8, 8, 32)
    """
    out = expansion * filters
    preact = bn_relu(x, f"{name}_preact", epsilon)
    shortcut = _preact_shortcut(x, preact, out, strides, name, use_bias)
    y = _conv(preact, filters, 1, 1, f"{name}_a_conv", use_bias=False)
    y = bn_relu(y, f"{name}_a", epsilon)
    y = _conv(y, filters, 3, strides, f"{name}_b_conv", use_bias=False)
    y = bn_relu(y, f"{name}_b", epsilon)
    y = _conv(y, out, 1, 1, f"{name}_c_conv", use_bias)
    y = _squeeze_excite(y, se_ratio, name)
    return layers.Add(name=f"{name}_out")([shortcut, y])


def inverted_residual_unit(x, filters: int, strides: int, expansion: int, name: str, *,
                           epsilon: float = 1e-3, momentum: float = 0.99):
    """MobileNetV2 unit: 1x1 expand (ReLU6) -> 3x3 depthwise (ReLU6) -> 1x1 linear projection.

    The shortcut is added only when stride is 1 and the channel count is unchanged; the
    projection has no activation (the paper's "linear bottleneck"). With ``expansion == 1``
    the expansion convolution is left out.

    Example:
        >>> import keras
        >>> inverted_residual_unit(keras.Input((8, 8, 16)), 16, 1, 6, "block1").shape
        (None, 8, 8, 16)
    """
    in_channels = x.shape[-1]
    y = x
    if expansion != 1:
        y = layers.Conv2D(expansion * in_channels, 1, use_bias=False, name=f"{name}_expand_conv")(y)
        y = layers.BatchNormalization(epsilon=epsilon, momentum=momentum, name=f"{name}_expand_bn")(y)
        y = layers.ReLU(6.0, name=f"{name}_expand_relu")(y)
    y = layers.DepthwiseConv2D(3, strides=strides, padding="same", use_bias=False, name=f"{name}_dw_conv")(y)
    y = layers.BatchNormalization(epsilon=epsilon, momentum=momentum, name=f"{name}_dw_bn")(y)
    y = layers.ReLU(6.0, name=f"{name}_dw_relu")(y)
    y = layers.Conv2D(filters, 1, use_bias=False, name=f"{name}_project_conv")(y)
    y = layers.BatchNormalization(epsilon=epsilon, momentum=momentum, name=f"{name}_project_bn")(y)
    if strides == 1 and in_channels == filters:
        y = layers.Add(name=f"{name}_add")([x, y])
    return y


__all__ = [
    "basic_residual_unit", "bn_relu", "bottleneck_residual_unit", "conv_bn", "inverted_residual_unit",
    "preact_basic_unit", "preact_bottleneck_unit",
]
