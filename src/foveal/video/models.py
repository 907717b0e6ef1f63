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


def feature_stats(sequences: Any, mask: Any = None) -> tuple[list[float], list[float]]:
    """Per-feature mean and standard deviation over the real (unmasked) steps of ``(N, T, D)``."""
    import numpy as np

    x = np.asarray(sequences, np.float64)
    rows = x[mask] if mask is not None else x[np.any(x != 0, axis=-1)]
    std = rows.std(axis=0)
    return rows.mean(axis=0).tolist(), np.where(std > 1e-6, std, 1.0).tolist()


def build_sequence_model(name: str, *, steps: int | None, dim: int, num_classes: int, units: int = 512,
                         dense: int = 256, dropout: float = 0.5, deltas: bool = False,
                         stats: tuple[list[float], list[float]] | None = None) -> Any:
    """A Keras classifier of ``(steps, dim)`` feature sequences (zero rows = padding).

    Args:
        name: one of :data:`SEQUENCE_MODELS`.
        steps: sequence length (None: any length).
        dim: feature size per frame.
        units: recurrent units (the texts: 512).
        dense: units of the Dense layer after it (the texts: 256; 0 leaves it out).
        dropout: dropout of the recurrent layer's inputs and after the Dense layer (the texts: 0.5).
        deltas: append to each step the absolute change of its features since the previous step
            (a motion cue), inside the model (zero for the first step).
        stats: (mean, std) per feature from the training clips: the model standardises its
            input with them (padded steps stay masked).
    """
    import keras
    from keras import layers

    if name not in SEQUENCE_MODELS:
        raise ConfigError(f"unknown video model {name!r}", hint=f"choose one of {', '.join(SEQUENCE_MODELS)}")
    inputs = keras.Input((steps, dim), name="features")
    x = layers.Masking(mask_value=0.0, name="masking")(inputs)
    if stats is not None:
        x = Standardize(stats[0], stats[1], name="standardize")(x)
    if deltas:
        x = TemporalDeltas(name="deltas")(x)
    if name == "avgpool":
        x = layers.GlobalAveragePooling1D(name="temporal_mean")(x)
        # Clip means vary far less than frames: standardise them too, or the softmax needs weights
        # many times larger than Adam reaches in a few hundred steps.
        x = layers.BatchNormalization(name="pool_norm")(x)
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
        """``[x_t, |x_t - x_{t-1}|]`` per step (0 for the first step and across padded steps); keeps the mask."""

        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.supports_masking = True

        def call(self, x, mask=None):
            from keras import ops

            previous = ops.concatenate([x[:, :1], x[:, :-1]], axis=1)
            delta = ops.abs(x - previous)
            if mask is not None:
                m = ops.cast(mask, x.dtype)[..., None]
                prev_m = ops.concatenate([m[:, :1], m[:, :-1]], axis=1)
                delta = delta * m * prev_m
            return ops.concatenate([x, delta], axis=-1)

        def compute_output_shape(self, shape):
            return (*shape[:-1], None if shape[-1] is None else 2 * shape[-1])

        def compute_mask(self, x, mask=None):
            return mask

    @keras.saving.register_keras_serializable(package="foveal")
    class Standardize(keras.layers.Layer):
        """``(x - mean) / std`` with fixed per-feature statistics of the training data; keeps the mask."""

        def __init__(self, mean: list[float], std: list[float], **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.mean, self.std = [float(v) for v in mean], [float(v) for v in std]
            self.supports_masking = True

        def call(self, x, mask=None):
            from keras import ops

            mean = ops.convert_to_tensor(self.mean, dtype=x.dtype)
            std = ops.convert_to_tensor(self.std, dtype=x.dtype)
            return (x - mean) / std

        def compute_mask(self, x, mask=None):
            return mask

        def get_config(self) -> dict:
            return {**super().get_config(), "mean": self.mean, "std": self.std}

    return TemporalDeltas, Standardize


TemporalDeltas, Standardize = _register()

__all__ = ["SEQUENCE_MODELS", "Standardize", "TemporalDeltas", "build_sequence_model", "feature_stats"]
