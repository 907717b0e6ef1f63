"""The input-normalisation layer every foveal model starts with.

Putting preprocessing inside the model means a saved model takes raw pixel values (0..255,
RGB or gray) and needs nothing else to predict: no silent mismatch between the
``preprocess_input`` used in training and at inference (the opposite of keras#10279).

Modes (the conventions of keras.applications):
    ``rescale``  x / 255 -> [0, 1]
    ``tf``       x / 127.5 - 1 -> [-1, 1]  (Inception, Xception, MobileNet)
    ``torch``    (x / 255 - ImageNet mean) / ImageNet std  (DenseNet, torchvision)
    ``caffe``    RGB -> BGR, minus the ImageNet BGR mean, no scaling  (VGG, ResNet v1)
    ``standardize``  (x - mean) / std with a per-channel mean/std given by the user
                     (e.g. measured on the training set)
    ``none``     identity
"""

from __future__ import annotations

from typing import Any, Sequence

import keras
from keras import ops

PREPROCESSING_MODES = ("rescale", "tf", "torch", "caffe", "standardize", "none")

_IMAGENET_MEAN_RGB = (0.485, 0.456, 0.406)
_IMAGENET_STD_RGB = (0.229, 0.224, 0.225)
_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)


@keras.saving.register_keras_serializable(package="foveal")
class Preprocess(keras.layers.Layer):
    """Map raw pixel values (0..255) to what the network was trained on.

    Args:
        mode: one of :data:`PREPROCESSING_MODES`.
        mean, std: per-channel statistics in pixel units (0..255), for ``standardize``.

    Example:
        >>> layer = Preprocess("tf")
        >>> float(layer(keras.ops.ones((1, 2, 2, 3)) * 255.0)[0, 0, 0, 0])
        1.0
    """

    def __init__(
        self,
        mode: str = "rescale",
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if mode not in PREPROCESSING_MODES:
            raise ValueError(f"unknown preprocessing {mode!r}; choose from {PREPROCESSING_MODES}")
        if mode == "standardize" and (mean is None or std is None):
            raise ValueError("preprocessing 'standardize' needs mean and std")
        self.mode = mode
        self.mean = None if mean is None else [float(m) for m in mean]
        self.std = None if std is None else [float(s) for s in std]

    def call(self, inputs):
        x = ops.cast(inputs, self.compute_dtype)
        channels = x.shape[-1]
        if self.mode == "rescale":
            return x / 255.0
        if self.mode == "tf":
            return x / 127.5 - 1.0
        if self.mode == "torch":
            mean = [255.0 * m for m in _IMAGENET_MEAN_RGB]
            std = [255.0 * s for s in _IMAGENET_STD_RGB]
            return (x - self._per_channel(mean, channels)) / self._per_channel(std, channels)
        if self.mode == "caffe":
            if channels == 3:
                x = ops.flip(x, axis=-1)
            return x - self._per_channel(_CAFFE_MEAN_BGR, channels)
        if self.mode == "standardize":
            return (x - self._per_channel(self.mean, channels)) / self._per_channel(self.std, channels)
        return x

    def _per_channel(self, values: Sequence[float], channels: int | None):
        values = list(values)
        if channels == 1 and len(values) == 3:
            values = [sum(values) / 3.0]  # gray input: use the mean of the RGB statistics
        return ops.convert_to_tensor(values, dtype=self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update({"mode": self.mode, "mean": self.mean, "std": self.std})
        return config
