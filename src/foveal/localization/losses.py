"""The box loss of the localizer (its class head uses Keras' cross-entropies)."""

from __future__ import annotations

import keras
from keras import ops

from foveal.localization.metrics import has_box


@keras.saving.register_keras_serializable(package="foveal")
class BoxMSE(keras.losses.Loss):
    """Mean squared error of encoded boxes, zero where the target has no box.

    Example:
        >>> round(float(BoxMSE()([[0.5, 0.5, 0.2, 0.2]], [[0.5, 0.5, 0.4, 0.2]])), 6)  # (0.2 ** 2) / 4
        0.01
    """

    def __init__(self, name: str = "box_mse", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        y_true = ops.convert_to_tensor(y_true, dtype="float32")
        y_pred = ops.cast(y_pred, "float32")
        squared = ops.mean(ops.square(y_true - y_pred), axis=-1)
        return squared * ops.cast(has_box(y_true), "float32")
