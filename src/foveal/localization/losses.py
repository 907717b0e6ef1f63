"""The box regression loss of the localizer.

The class head uses Keras' own cross-entropies (sparse categorical for two or more classes,
binary for the single-class presence output); the box head uses :class:`BoxMSE`: the squared
error of the encoded box ``(cx, cy, sqrt(w), sqrt(h))``, averaged over its four terms, and zero
for images without a box (their target is :data:`~foveal.localization.metrics.NO_BOX`), since
there is nothing to regress there.
"""

from __future__ import annotations

import keras
from keras import ops

from foveal.localization.metrics import has_box


@keras.saving.register_keras_serializable(package="foveal")
class BoxMSE(keras.losses.Loss):
    """Mean squared error of encoded boxes, masked where the target has no box.

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
