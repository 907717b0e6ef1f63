"""Local response normalization across channels (AlexNet, GoogLeNet).

Krizhevsky, Sutskever, Hinton, "ImageNet Classification with Deep Convolutional Neural
Networks", NeurIPS 2012, section 3.3: each activation is divided by a power of the summed
squares of its neighbours along the channel axis,

    b_c = a_c / (k + alpha * sum_{j = c - r}^{c + r} a_j^2) ** beta,

where the window is clipped at the first and last channel. The paper writes the window size as
``n = 2r + 1`` (n = 5, k = 2, alpha = 1e-4, beta = 0.75).

Convention: ``alpha`` multiplies the plain sum, as in the paper and in
``tf.nn.local_response_normalization``. Caffe and PyTorch's ``LocalResponseNorm`` divide
their alpha by ``n`` first, so their ``alpha`` equals ``n`` times ours; use
``alpha = their_alpha / n`` to reproduce them.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="foveal")
class LocalResponseNormalization(keras.layers.Layer):
    """Divide each activation by ``(bias + alpha * sum of squares of nearby channels) ** beta``.

    Args:
        depth_radius: ``r``, channels on each side of the centre channel in the sum
            (the paper's ``n = 5`` is ``depth_radius=2``).
        bias: ``k``, added before the power (2 in AlexNet).
        alpha: scale of the sum of squares, applied to the plain sum (not divided by ``n``).
        beta: exponent.

    Works on channels-last tensors of any rank; it has no weights.

    Example:
        >>> layer = LocalResponseNormalization(depth_radius=2, bias=2.0, alpha=1e-4, beta=0.75)
        >>> tuple(layer(keras.ops.ones((1, 4, 4, 8))).shape)
        (1, 4, 4, 8)
    """

    def __init__(
        self,
        depth_radius: int = 2,
        bias: float = 2.0,
        alpha: float = 1e-4,
        beta: float = 0.75,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if int(depth_radius) < 0:
            raise ValueError(f"depth_radius must be >= 0, got {depth_radius}")
        self.depth_radius = int(depth_radius)
        self.bias = float(bias)
        self.alpha = float(alpha)
        self.beta = float(beta)

    def build(self, input_shape) -> None:
        if input_shape[-1] is None:
            raise ValueError("LocalResponseNormalization needs a known number of channels")

    def call(self, inputs):
        r = self.depth_radius
        channels = inputs.shape[-1]
        squares = ops.square(inputs)
        padding = [(0, 0)] * (len(inputs.shape) - 1) + [(r, r)]
        padded = ops.pad(squares, padding)
        # The window sum as 2r+1 shifted slices: exact, cheap for the small radii in use.
        window = padded[..., 0:channels]
        for offset in range(1, 2 * r + 1):
            window = window + padded[..., offset : offset + channels]
        return inputs / ops.power(self.bias + self.alpha * window, self.beta)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {"depth_radius": self.depth_radius, "bias": self.bias, "alpha": self.alpha, "beta": self.beta}
        )
        return config


__all__ = ["LocalResponseNormalization"]
