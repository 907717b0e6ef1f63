"""The Inception module of GoogLeNet (Inception v1) as one reusable layer.

Szegedy et al., "Going Deeper with Convolutions", CVPR 2015, figure 2(b): four parallel
branches on the same input, concatenated along the channels:

    1x1 conv                          (f1x1)
    1x1 conv (f3x3_reduce) -> 3x3 conv (f3x3)
    1x1 conv (f5x5_reduce) -> 5x5 conv (f5x5)
    3x3/1 max pool         -> 1x1 conv (pool_proj)

Every convolution has a bias and a ReLU, and uses "same" padding, so the spatial size is kept
and the output has ``f1x1 + f3x3 + f5x5 + pool_proj`` channels. The 1x1 "reduce" convolutions
are the module's point: they shrink the channels before the costly 3x3 and 5x5 filters.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import layers, ops

# (attribute name, kernel size); the order is the order of the output channels' branches.
_CONVS: tuple[tuple[str, int], ...] = (
    ("conv1x1", 1),
    ("conv3x3_reduce", 1),
    ("conv3x3", 3),
    ("conv5x5_reduce", 1),
    ("conv5x5", 5),
    ("pool_proj", 1),
)


@keras.saving.register_keras_serializable(package="foveal")
class InceptionModule(keras.layers.Layer):
    """An Inception v1 module (four branches, concatenated).

    Args:
        f1x1: filters of the 1x1 branch.
        f3x3_reduce, f3x3: filters of the 1x1 reduction and of the 3x3 convolution.
        f5x5_reduce, f5x5: filters of the 1x1 reduction and of the 5x5 convolution.
        pool_proj: filters of the 1x1 projection after the 3x3/1 max pool.
        kernel_initializer: initializer of every convolution kernel.
        kernel_regularizer: regularizer of every convolution kernel (settable later too).

    Example:
        >>> module = InceptionModule(64, 96, 128, 16, 32, 32, name="inception_3a")  # Table 1, 3a
        >>> tuple(module(keras.ops.zeros((1, 28, 28, 192))).shape)
        (1, 28, 28, 256)
        >>> module.count_params()
        163696
    """

    def __init__(
        self,
        f1x1: int,
        f3x3_reduce: int,
        f3x3: int,
        f5x5_reduce: int,
        f5x5: int,
        pool_proj: int,
        kernel_initializer: Any = "glorot_uniform",
        kernel_regularizer: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.filters = {
            "conv1x1": int(f1x1), "conv3x3_reduce": int(f3x3_reduce), "conv3x3": int(f3x3),
            "conv5x5_reduce": int(f5x5_reduce), "conv5x5": int(f5x5), "pool_proj": int(pool_proj),
        }
        if min(self.filters.values()) < 1:
            raise ValueError(f"every branch needs at least one filter, got {self.filters}")
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        regularizer = keras.regularizers.get(kernel_regularizer)
        for attr, size in _CONVS:
            conv = layers.Conv2D(
                self.filters[attr], size, padding="same", activation="relu",
                kernel_initializer=self.kernel_initializer, kernel_regularizer=regularizer, name=attr,
            )
            setattr(self, attr, conv)
        self.pool = layers.MaxPooling2D(3, strides=1, padding="same", name="pool")

    def _convs(self) -> list[layers.Conv2D]:
        return [getattr(self, attr) for attr, _ in _CONVS]

    @property
    def kernel_regularizer(self):
        """The regularizer shared by the module's convolution kernels."""
        return self.conv1x1.kernel_regularizer

    @kernel_regularizer.setter
    def kernel_regularizer(self, value: Any) -> None:
        regularizer = keras.regularizers.get(value)
        for conv in self._convs():
            conv.kernel_regularizer = regularizer
            if conv.built:  # the variable carries the penalty for this session
                conv.kernel.regularizer = regularizer

    def build(self, input_shape) -> None:
        self.conv1x1.build(input_shape)
        self.conv3x3_reduce.build(input_shape)
        self.conv3x3.build(self.conv3x3_reduce.compute_output_shape(input_shape))
        self.conv5x5_reduce.build(input_shape)
        self.conv5x5.build(self.conv5x5_reduce.compute_output_shape(input_shape))
        self.pool.build(input_shape)
        self.pool_proj.build(self.pool.compute_output_shape(input_shape))

    def call(self, inputs):
        branches = [
            self.conv1x1(inputs),
            self.conv3x3(self.conv3x3_reduce(inputs)),
            self.conv5x5(self.conv5x5_reduce(inputs)),
            self.pool_proj(self.pool(inputs)),
        ]
        return ops.concatenate(branches, axis=-1)

    @property
    def output_channels(self) -> int:
        f = self.filters
        return f["conv1x1"] + f["conv3x3"] + f["conv5x5"] + f["pool_proj"]

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.output_channels)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        f = self.filters
        config.update({
            "f1x1": f["conv1x1"], "f3x3_reduce": f["conv3x3_reduce"], "f3x3": f["conv3x3"],
            "f5x5_reduce": f["conv5x5_reduce"], "f5x5": f["conv5x5"], "pool_proj": f["pool_proj"],
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
        })
        return config


__all__ = ["InceptionModule"]
