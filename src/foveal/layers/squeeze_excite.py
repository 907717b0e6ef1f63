"""The squeeze-and-excitation block: channel attention that rescales each feature map.

Hu, Shen, Sun, "Squeeze-and-Excitation Networks", CVPR 2018. The block averages each channel
over space (squeeze), passes the C averages through a bottleneck of C/r units with ReLU and
back to C units with a sigmoid (excitation), and multiplies every channel of the input by its
gate in (0, 1). It adds ``2 * C * (C // r) + C // r + C`` parameters and changes no shapes, so
it can follow any residual or inception unit.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="foveal")
class SqueezeExcite(keras.layers.Layer):
    """Rescale the channels of a feature map by gates learned from their spatial means.

    Works on any channels-last input with at least one spatial axis (N, ..., C); the output
    has the input's shape.

    Args:
        ratio: reduction ratio r; the hidden layer has ``max(1, C // r)`` units (16 in the paper).

    Example:
        >>> se = SqueezeExcite(ratio=4)
        >>> tuple(se(keras.ops.ones((2, 8, 8, 16))).shape)
        (2, 8, 8, 16)
        >>> se.count_params()  # 16*4 + 4 + 4*16 + 16
        148
    """

    def __init__(self, ratio: int = 16, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if isinstance(ratio, bool) or not isinstance(ratio, int) or ratio < 1:
            raise ValueError(f"SqueezeExcite ratio must be a positive integer, got {ratio!r}")
        self.ratio = ratio

    def build(self, input_shape) -> None:
        if len(input_shape) < 3:
            raise ValueError(f"SqueezeExcite needs (batch, ..., channels) with a spatial axis, got {input_shape}")
        channels = input_shape[-1]
        if channels is None:
            raise ValueError("SqueezeExcite needs a known channel count")
        units = max(1, channels // self.ratio)
        self.squeeze_kernel = self.add_weight(shape=(channels, units), initializer="glorot_uniform",
                                              name="squeeze_kernel")
        self.squeeze_bias = self.add_weight(shape=(units,), initializer="zeros", name="squeeze_bias")
        self.excite_kernel = self.add_weight(shape=(units, channels), initializer="glorot_uniform",
                                             name="excite_kernel")
        self.excite_bias = self.add_weight(shape=(channels,), initializer="zeros", name="excite_bias")

    def call(self, inputs):
        spatial_axes = tuple(range(1, len(inputs.shape) - 1))
        squeezed = ops.mean(inputs, axis=spatial_axes, keepdims=True)
        hidden = ops.relu(ops.matmul(squeezed, self.squeeze_kernel) + self.squeeze_bias)
        gates = ops.sigmoid(ops.matmul(hidden, self.excite_kernel) + self.excite_bias)
        return inputs * gates

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update({"ratio": self.ratio})
        return config


def with_se(x, ratio: int = 16, name: str | None = None):
    """Apply a :class:`SqueezeExcite` block to the functional tensor ``x``.

    Example:
        >>> inputs = keras.Input((8, 8, 32))
        >>> with_se(inputs, ratio=16, name="unit1_se").shape
        (None, 8, 8, 32)
    """
    return SqueezeExcite(ratio, name=name)(x)


__all__ = ["SqueezeExcite", "with_se"]
