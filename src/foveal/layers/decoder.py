"""Decoder building blocks for dense prediction: argmax pooling/unpooling, upsampling, dilation.

* :class:`MaxPoolingWithArgmax` and :class:`MaxUnpooling` — Badrinarayanan, Kendall, Cipolla,
  "SegNet: A Deep Convolutional Encoder-Decoder Architecture for Image Segmentation", IEEE
  TPAMI 2017: the encoder remembers where each maximum came from and the decoder puts values
  back at exactly those positions (zeros elsewhere), with no learned upsampling.
* :func:`upsample` — transposed convolution (optionally initialised as bilinear interpolation,
  as in Long, Shelhamer, Darrell, "Fully Convolutional Networks for Semantic Segmentation",
  CVPR 2015), nearest-neighbour or bilinear resizing.
* :class:`DilatedConvBlock` — stacked 3x3 convolutions with growing dilation rates (Yu, Koltun,
  "Multi-Scale Context Aggregation by Dilated Convolutions", ICLR 2016): the receptive field
  grows without losing resolution.

Example:
    >>> import keras
    >>> x = keras.Input((8, 8, 3))
    >>> pooled, argmax = MaxPoolingWithArgmax()(x)
    >>> MaxUnpooling()([pooled, argmax, x]).shape
    (None, 8, 8, 3)
"""

from __future__ import annotations

from typing import Any, Sequence

import keras
import numpy as np
import tensorflow as tf
from keras import layers


@keras.saving.register_keras_serializable(package="foveal")
class MaxPoolingWithArgmax(keras.layers.Layer):
    """Max pooling that also returns the flat position of every maximum (SegNet, TPAMI 2017).

    Returns ``[pooled, argmax]``; ``argmax`` (int64) indexes each example's own flattened
    ``H*W*C`` input, which is what :class:`MaxUnpooling` expects.

    Args:
        pool_size: pooling window (and stride), an int or a pair.
        padding: ``"valid"`` or ``"same"``.

    Example:
        >>> pooled, where = MaxPoolingWithArgmax(2)(np.arange(16.0).reshape(1, 4, 4, 1))
        >>> pooled.numpy().ravel().tolist(), where.numpy().ravel().tolist()
        ([5.0, 7.0, 13.0, 15.0], [5, 7, 13, 15])
    """

    def __init__(self, pool_size: int | Sequence[int] = 2, padding: str = "valid", **kwargs: Any):
        super().__init__(**kwargs)
        self.pool_size = _pair(pool_size)
        self.padding = padding.lower()
        if self.padding not in ("valid", "same"):
            raise ValueError(f"padding must be 'valid' or 'same', got {padding!r}")

    def call(self, inputs):
        size = [1, *self.pool_size, 1]
        pooled, argmax = tf.nn.max_pool_with_argmax(
            inputs, ksize=size, strides=size, padding=self.padding.upper(), include_batch_in_index=False
        )
        return [pooled, tf.stop_gradient(argmax)]

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        ph, pw = self.pool_size

        def out(d, p):
            if d is None:
                return None
            return -(-d // p) if self.padding == "same" else d // p

        shape = (n, out(h, ph), out(w, pw), c)
        return [shape, shape]

    def compute_output_spec(self, inputs):
        shape = self.compute_output_shape(inputs.shape)
        return [keras.KerasTensor(shape[0], dtype=inputs.dtype), keras.KerasTensor(shape[1], dtype="int64")]

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "pool_size": list(self.pool_size), "padding": self.padding}


@keras.saving.register_keras_serializable(package="foveal")
class MaxUnpooling(keras.layers.Layer):
    """Place pooled values back at their argmax positions, zeros elsewhere (SegNet, TPAMI 2017).

    Call on ``[values, argmax]`` (output size = pooled size x ``pool_size``) or on
    ``[values, argmax, reference]`` where ``reference`` is the tensor that was pooled, whose
    height and width the output takes (needed for odd sizes).

    Example:
        >>> x = np.array([[[[1.0], [4.0]], [[3.0], [2.0]]]])      # 1x2x2x1
        >>> pooled, where = MaxPoolingWithArgmax(2)(x)
        >>> MaxUnpooling(2)([pooled, where]).numpy().ravel().tolist()
        [0.0, 4.0, 0.0, 0.0]
    """

    def __init__(self, pool_size: int | Sequence[int] = 2, **kwargs: Any):
        super().__init__(**kwargs)
        self.pool_size = _pair(pool_size)

    def _target_hw(self, inputs):
        if len(inputs) == 3:
            ref = tf.shape(inputs[2])
            return ref[1], ref[2]
        shape = tf.shape(inputs[0])
        return shape[1] * self.pool_size[0], shape[2] * self.pool_size[1]

    def call(self, inputs):
        values, argmax = inputs[0], tf.cast(inputs[1], tf.int64)
        height, width = self._target_hw(inputs)
        shape = tf.shape(values, out_type=tf.int64)
        batch, channels = shape[0], shape[3]
        per_example = tf.cast(height, tf.int64) * tf.cast(width, tf.int64) * channels
        # argmax indexes each example separately: offset it into one flat batch buffer.
        offsets = tf.reshape(tf.range(batch, dtype=tf.int64) * per_example, [-1, 1, 1, 1])
        flat_index = tf.reshape(argmax + offsets, [-1, 1])
        flat = tf.scatter_nd(flat_index, tf.reshape(values, [-1]), [batch * per_example])
        return tf.reshape(flat, tf.stack([batch, tf.cast(height, tf.int64), tf.cast(width, tf.int64), channels]))

    def compute_output_shape(self, input_shapes):
        n, h, w, c = input_shapes[0]
        if len(input_shapes) == 3:
            return (n, input_shapes[2][1], input_shapes[2][2], c)
        ph, pw = self.pool_size
        return (n, None if h is None else h * ph, None if w is None else w * pw, c)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "pool_size": list(self.pool_size)}


@keras.saving.register_keras_serializable(package="foveal")
class BilinearKernel(keras.initializers.Initializer):
    """Initialise a ``Conv2DTranspose`` kernel as bilinear interpolation, channel by channel.

    FCN (Long et al., CVPR 2015, section 3.3) starts its learned upsampling layers from
    bilinear interpolation; channels are not mixed (off-diagonal kernels are zero).

    Example:
        >>> k = BilinearKernel()((4, 4, 1, 1))
        >>> float(np.asarray(k).sum())   # each input pixel spreads over factor**2 outputs
        4.0
    """

    def __call__(self, shape, dtype=None):
        return keras.ops.convert_to_tensor(bilinear_kernel(shape), dtype=dtype or "float32")

    def get_config(self) -> dict[str, Any]:
        return {}


def bilinear_kernel(shape: Sequence[int]) -> np.ndarray:
    """A (kh, kw, out, in) transposed-convolution kernel that performs bilinear upsampling."""
    kh, kw, out_channels, in_channels = shape

    def profile(k: int) -> np.ndarray:
        factor = (k + 1) // 2
        centre = factor - 1 if k % 2 == 1 else factor - 0.5
        return 1 - np.abs(np.arange(k) - centre) / factor

    kernel = np.zeros((kh, kw, out_channels, in_channels), dtype=np.float32)
    weights = np.outer(profile(kh), profile(kw))
    for c in range(min(out_channels, in_channels)):
        kernel[:, :, c, c] = weights
    return kernel


def upsample(
    x,
    factor: int = 2,
    method: str = "transposed",
    filters: int | None = None,
    bilinear_init: bool = True,
    trainable: bool = True,
    name: str | None = None,
):
    """Upsample ``x`` by ``factor`` with a transposed convolution, nearest or bilinear resizing.

    Args:
        x: a (batch, H, W, C) tensor.
        factor: integer scale.
        method: ``"transposed"`` (learned, kernel 2*factor, stride factor, as FCN),
            ``"nearest"`` or ``"bilinear"`` (fixed).
        filters: output channels of the transposed convolution (default: C).
        bilinear_init: start the transposed convolution as bilinear interpolation.
        trainable: False freezes the transposed convolution (FCN's final x8/x16/x32 layer).
        name: the layer name.

    Returns:
        A tensor of shape (batch, H*factor, W*factor, channels).

    Example:
        >>> upsample(keras.Input((4, 4, 3)), 2, "bilinear").shape
        (None, 8, 8, 3)
    """
    if method == "transposed":
        filters = filters or x.shape[-1]
        size = 2 * factor if factor > 1 else 1
        layer = layers.Conv2DTranspose(
            filters, size, strides=factor, padding="same", use_bias=False,
            kernel_initializer=BilinearKernel() if bilinear_init else "glorot_uniform",
            trainable=trainable, name=name,
        )
        return layer(x)
    if method in ("nearest", "bilinear"):
        return layers.UpSampling2D(factor, interpolation=method, name=name)(x)
    raise ValueError(f"upsample method must be transposed, nearest or bilinear, got {method!r}")


@keras.saving.register_keras_serializable(package="foveal")
class DilatedConvBlock(keras.layers.Layer):
    """3x3 convolutions with the given dilation rates, each followed by (batch norm and) ReLU.

    Yu & Koltun (ICLR 2016): rates 1, 2, 4, ... grow the receptive field exponentially while
    the feature map keeps its size ("same" padding).

    Args:
        filters: channels of every convolution.
        rates: one dilation rate per convolution.
        batch_norm: add batch normalisation before each ReLU.

    Example:
        >>> DilatedConvBlock(8, rates=(1, 2, 4))(keras.Input((16, 16, 3))).shape
        (None, 16, 16, 8)
    """

    def __init__(self, filters: int, rates: Sequence[int] = (1, 2, 4), batch_norm: bool = False, **kwargs: Any):
        super().__init__(**kwargs)
        self.filters, self.rates, self.batch_norm = int(filters), tuple(int(r) for r in rates), bool(batch_norm)
        self.convs = [
            layers.Conv2D(self.filters, 3, padding="same", dilation_rate=r, use_bias=not batch_norm, name=f"conv_d{r}_{i}")
            for i, r in enumerate(self.rates)
        ]
        self.norms = [layers.BatchNormalization(name=f"bn_{i}") for i in range(len(self.rates))] if batch_norm else []

    def build(self, input_shape):
        shape = tuple(input_shape)
        for i, conv in enumerate(self.convs):
            conv.build(shape)
            shape = conv.compute_output_shape(shape)
            if self.norms:
                self.norms[i].build(shape)
        self.built = True

    def call(self, x, training=None):
        for i, conv in enumerate(self.convs):
            x = conv(x)
            if self.norms:
                x = self.norms[i](x, training=training)
            x = keras.ops.relu(x)
        return x

    def compute_output_shape(self, input_shape):
        return (*tuple(input_shape)[:-1], self.filters)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "filters": self.filters, "rates": list(self.rates), "batch_norm": self.batch_norm}


def _pair(value: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(value, int):
        return (value, value)
    a, b = value
    return (int(a), int(b))


__all__ = ["BilinearKernel", "DilatedConvBlock", "MaxPoolingWithArgmax", "MaxUnpooling", "bilinear_kernel", "upsample"]
