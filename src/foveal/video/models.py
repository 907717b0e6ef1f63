"""Sequence classifiers on per-frame features: the texts' masked LSTM, GRU, bidirectional LSTM,
and temporal average pooling (the baseline every video report shows next to them).

Planche & Andres ch. 8 (after Donahue et al., "Long-term recurrent convolutional networks",
CVPR 2015) classify a clip from its frames' CNN features with
``Masking -> LSTM(512, dropout=0.5) -> Dense(256) -> Dropout(0.5) -> softmax``. The zero-padded
steps of shorter clips are skipped by the ``Masking`` layer, so a padded sequence gives the
same prediction as the unpadded one (tested). ``avgpool`` replaces the recurrent layer by the
masked mean over time (order-free), which tells how much the temporal model adds.

Example:
    >>> model = build_sequence_model("lstm", steps=16, dim=256, num_classes=2)  # doctest: +SKIP
    >>> model.output_shape  # doctest: +SKIP
    (None, 2)
"""

from __future__ import annotations

from typing import Any

from foveal.errors import ConfigError

SEQUENCE_MODELS = ("lstm", "gru", "bilstm", "bigru", "avgpool")


def build_sequence_model(name: str, *, steps: int | None, dim: int, num_classes: int, units: int = 512,
                         dense: int = 256, dropout: float = 0.5, deltas: bool = False) -> Any:
    """A Keras classifier of ``(steps, dim)`` feature sequences (zero rows = padding).

    Args:
        name: one of :data:`SEQUENCE_MODELS`.
        steps: sequence length (None: any length).
        dim: feature size per frame.
        units: recurrent units (the texts: 512).
        dense: units of the Dense layer after it (the texts: 256; 0 leaves it out).
        dropout: dropout of the recurrent layer's inputs and after the Dense layer (the texts: 0.5).
        deltas: append each step's difference from the previous step (temporal change) to its
            features, inside the model (the first step's difference is zero).
    """
    import keras
    from keras import layers

    if name not in SEQUENCE_MODELS:
        raise ConfigError(f"unknown video model {name!r}", hint=f"choose one of {', '.join(SEQUENCE_MODELS)}")
    inputs = keras.Input((steps, dim), name="features")
    x = layers.Masking(mask_value=0.0, name="masking")(inputs)
    if deltas:
        x = TemporalDeltas(name="deltas")(x)
    if name == "avgpool":
        x = layers.GlobalAveragePooling1D(name="temporal_mean")(x)
        x = layers.Dropout(dropout, name="pool_dropout")(x)
    else:
        cell = layers.LSTM if name in ("lstm", "bilstm") else layers.GRU
        recurrent = cell(units, dropout=dropout, name=name.removeprefix("bi"))
        x = layers.Bidirectional(recurrent, name=name)(x) if name.startswith("bi") else recurrent(x)
    if dense:
        x = layers.Dense(dense, activation="relu", name="head_dense")(x)
        x = layers.Dropout(dropout, name="head_dropout")(x)
    outputs = layers.Dense(num_classes, activation="softmax", dtype="float32", name="probabilities")(x)
    return keras.Model(inputs, outputs, name=f"video_{name}")


def _register():
    import keras

    @keras.saving.register_keras_serializable(package="foveal")
    class TemporalDeltas(keras.layers.Layer):
        """``[x_t, x_t - x_{t-1}]`` per step (0 for the first step and across padded steps); keeps the mask."""

        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.supports_masking = True

        def call(self, x, mask=None):
            from keras import ops

            previous = ops.concatenate([x[:, :1], x[:, :-1]], axis=1)
            delta = x - previous
            if mask is not None:
                m = ops.cast(mask, x.dtype)[..., None]
                prev_m = ops.concatenate([m[:, :1], m[:, :-1]], axis=1)
                delta = delta * m * prev_m
            return ops.concatenate([x, delta], axis=-1)

        def compute_output_shape(self, shape):
            return (*shape[:-1], None if shape[-1] is None else 2 * shape[-1])

        def compute_mask(self, x, mask=None):
            return mask

    return TemporalDeltas


TemporalDeltas = _register()

__all__ = ["SEQUENCE_MODELS", "TemporalDeltas", "build_sequence_model"]
