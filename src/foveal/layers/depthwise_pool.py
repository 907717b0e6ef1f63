"""Max pooling across channels ("depthwise pooling"), which Keras does not provide.

Spatial pooling keeps the channels and shrinks height and width; this layer keeps height and
width and takes the maximum over each group of ``pool_size`` consecutive channels, so a network
can learn features invariant to whatever the channels of a group encode (e.g. rotations of one
pattern). Output channel ``g`` is the maximum of input channels
``g * pool_size .. (g + 1) * pool_size - 1``; there are ``C // pool_size`` groups, which is why
``C`` must be a multiple of ``pool_size``.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="foveal")
class DepthwiseMaxPool(keras.layers.Layer):
    """Max-pool over groups of ``pool_size`` consecutive channels (channels last).

    Args:
        pool_size: channels per group; the input's channel count must be divisible by it.

    Raises:
        ValueError: when built on an input whose channel count is unknown or not a multiple of
            ``pool_size``.

    Example:
        >>> tuple(DepthwiseMaxPool(3)(keras.ops.ones((1, 4, 4, 12))).shape)
        (1, 4, 4, 4)
    """

    def __init__(self, pool_size: int = 2, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if isinstance(pool_size, bool) or not isinstance(pool_size, int) or pool_size < 1:
            raise ValueError(f"DepthwiseMaxPool pool_size must be a positive integer, got {pool_size!r}")
        self.pool_size = pool_size

    def build(self, input_shape) -> None:
        channels = input_shape[-1]
        if channels is None:
            raise ValueError("DepthwiseMaxPool needs a known channel count")
        if channels % self.pool_size:
            raise ValueError(
                f"DepthwiseMaxPool(pool_size={self.pool_size}) needs a channel count divisible by "
                f"{self.pool_size}, got {channels} channels; use a pool_size that divides it or "
                f"change the previous layer's filters"
            )

    def call(self, inputs):
        channels = inputs.shape[-1]
        shape = ops.shape(inputs)
        groups = channels // self.pool_size  # the number of outputs, not the channel count
        grouped = ops.reshape(inputs, (*shape[:-1], groups, self.pool_size))
        return ops.max(grouped, axis=-1)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], input_shape[-1] // self.pool_size)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update({"pool_size": self.pool_size})
        return config


__all__ = ["DepthwiseMaxPool"]
