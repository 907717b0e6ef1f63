"""End-to-end clip classifiers on raw frames: a CNN fine-tuned through ``TimeDistributed``, a
``ConvLSTM2D`` network and a (2+1)D convolutional network.

The feature route (:mod:`foveal.video.models`) computes each frame's features once with a frozen
backbone; these models instead learn from the pixels of the sampled frames, so the engine trains
them like any other task model (mixed precision, time budget, resume, a frozen-backbone phase).

* ``cnn-lstm`` (Donahue et al., "Long-term recurrent convolutional networks", CVPR 2015): the
  ``--backbone`` CNN cut at its global pooling (a zoo name, or a classifier ``.keras`` file whose
  weights are then fine-tuned) applied to every frame through ``TimeDistributed``, then a masked
  LSTM of ``--units``. ``--freeze-backbone-epochs N`` trains only the LSTM head first.
* ``convlstm`` (Shi et al., "Convolutional LSTM Network", NeurIPS 2015): a strided per-frame
  convolution, then ``ConvLSTM2D`` (the LSTM's matrix products replaced by convolutions, so the
  state keeps its spatial layout), global pooling of its last state.
* ``r2plus1d`` (Tran et al., "A Closer Look at Spatiotemporal Convolutions for Action
  Recognition", CVPR 2018): every ``t x d x d`` 3D convolution factorised into a ``1 x d x d``
  spatial convolution and a ``t x 1 x 1`` temporal one with batch normalisation and a ReLU
  between them; the number of intermediate channels
  ``M = floor(t d^2 N_in N_out / (d^2 N_in + t N_out))`` makes the pair's weights as many as the
  3D convolution's (:func:`r2plus1d_mid_channels`, tested against the 3D count).

Padding: clips sampled to fewer frames than the batch's length are padded with frames of
:data:`PAD_VALUE` (-1, never a pixel value); :class:`FrameMask` turns them into zero frames and a
``(batch, time)`` mask that the LSTM, the ConvLSTM and the masked temporal mean honour, and the
(2+1)D blocks zero the padded steps after every block, so a padded clip gets the same
prediction as the same clip unpadded (tested for each model).

Example:
    >>> model = build_end_to_end("r2plus1d", steps=8, frame_hw=(32, 32), num_classes=2, filters=8)  # doctest: +SKIP
    >>> model.output_shape  # doctest: +SKIP
    (None, 2)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from foveal.errors import ConfigError

END_TO_END_MODELS = ("cnn-lstm", "convlstm", "r2plus1d")
#: the value of every pixel of a padding frame (real pixels are 0..255)
PAD_VALUE = -1.0
#: batch-norm momentum of the models' own normalisation layers: Keras' 0.99 leaves the moving statistics
#: far from the data's after the few hundred steps a small clip set gives (a 12-clip set fitted to 100%
#: in training mode scored 50% in inference mode), 0.9 follows them within ~50 steps
BN_MOMENTUM = 0.9
#: the TimeDistributed layer that holds the per-frame CNN of ``cnn-lstm`` (what a frozen phase freezes)
FRAME_CNN = "frame_cnn"


def r2plus1d_mid_channels(n_in: int, n_out: int, t: int = 3, d: int = 3) -> int:
    """Tran et al.'s intermediate channels of a (2+1)D block replacing a ``t x d x d`` 3D convolution
    from ``n_in`` to ``n_out`` channels: ``floor(t d^2 n_in n_out / (d^2 n_in + t n_out))``, so that
    ``d^2 n_in M + t M n_out`` (the pair's kernel weights) is at most ``t d^2 n_in n_out``.

    Example:
        >>> r2plus1d_mid_channels(64, 64)
        144
    """
    return (t * d * d * n_in * n_out) // (d * d * n_in + t * n_out)


def padded_input(frames: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Model input of zero-padded uint8 clips ``(N, T, H, W, C)`` with ``lengths`` real frames each:
    float32 pixels, the padding frames set to :data:`PAD_VALUE`."""
    x = np.asarray(frames, np.float32).copy()
    steps = np.arange(x.shape[1])[None, :] >= np.asarray(lengths)[:, None]
    x[steps] = PAD_VALUE
    return x


def pad_clips(clips: list[np.ndarray], length: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Stack ``(T_i, H, W, C)`` uint8 clips into ``(N, T, H, W, C)`` zero-padded at the end, with
    the real frames per clip; longer clips are cut to ``length`` (default: the longest)."""
    if not clips:
        raise ValueError("no clips to pad")
    length = int(length or max(len(c) for c in clips))
    out = np.zeros((len(clips), length, *clips[0].shape[1:]), np.uint8)
    lengths = np.zeros(len(clips), np.int64)
    for i, clip in enumerate(clips):
        t = min(len(clip), length)
        out[i, :t] = clip[:t]
        lengths[i] = t
    return out, lengths


def build_end_to_end(name: str, *, steps: int, frame_hw: tuple[int, int], num_classes: int,
                     backbone: Any = None, units: int = 128, dense: int = 0, dropout: float = 0.5,
                     filters: int = 16) -> Any:
    """A Keras classifier of raw clips ``(steps, H, W, 3)`` (pixels 0..255, padding frames -1).

    Args:
        name: one of :data:`END_TO_END_MODELS`.
        steps: frames per clip (fixed: Keras' ``TimeDistributed`` maps a variable time axis with
            ``vectorized_map``, which gave wrong outputs here; a static one is a loop over steps).
        backbone: ``cnn-lstm`` only: a Keras model mapping a ``(H, W, 3)`` frame of raw pixels to
            a feature vector (e.g. :class:`~foveal.video.features.FeatureExtractor`'s model).
        units: LSTM units of ``cnn-lstm``.
        dense: units of a Dense layer before the softmax (0: none).
        dropout: dropout before the Dense layers (and of the LSTM's inputs).
        filters: channels of the first convolution of ``convlstm`` and ``r2plus1d`` (doubled per
            (2+1)D stage).
    """
    import keras
    from keras import layers

    if not steps or int(steps) < 1:
        raise ConfigError("end-to-end video models need a fixed number of frames per clip")
    if name not in END_TO_END_MODELS:
        raise ConfigError(f"unknown end-to-end video model {name!r}", hint=f"choose one of {', '.join(END_TO_END_MODELS)}")
    h, w = (int(v) for v in frame_hw)
    inputs = keras.Input((int(steps), h, w, 3), name="frames")
    x, mask = FrameMask(name="frame_mask")(inputs)
    if name == "cnn-lstm":
        if backbone is None:
            raise ConfigError("cnn-lstm needs a frame backbone")
        feats = layers.TimeDistributed(backbone, name=FRAME_CNN)(x)
        x = layers.LSTM(units, dropout=dropout, name="head_lstm")(feats, mask=mask)
    elif name == "convlstm":
        x = layers.Rescaling(1.0 / 255, name="rescale")(x)
        x = layers.TimeDistributed(layers.Conv2D(filters, 3, strides=2, padding="same", activation="relu"),
                                   name="frame_stem")(x)
        x = layers.ConvLSTM2D(2 * filters, 3, padding="same", dropout=0.0, name="convlstm")(x, mask=mask)
        x = layers.BatchNormalization(momentum=BN_MOMENTUM, name="state_norm")(x)
        x = layers.GlobalAveragePooling2D(name="spatial_mean")(x)
        x = layers.Dropout(dropout, name="head_dropout0")(x)
    else:
        x = layers.Rescaling(1.0 / 255, name="rescale")(x)
        channels = 3
        for stage, out in enumerate((filters, 2 * filters, 4 * filters)):
            x = _r2plus1d_block(x, mask, channels, out, stride=2, name=f"r21d_{stage + 1}")
            channels = out
        x = layers.TimeDistributed(layers.GlobalAveragePooling2D(), name="spatial_mean")(x)
        x = layers.GlobalAveragePooling1D(name="temporal_mean")(x, mask=mask)
        x = layers.Dropout(dropout, name="head_dropout0")(x)
    if dense:
        x = layers.Dense(dense, activation="relu", name="head_dense")(x)
        x = layers.Dropout(dropout, name="head_dropout")(x)
    outputs = layers.Dense(num_classes, activation="softmax", dtype="float32", name="probabilities")(x)
    return keras.Model(inputs, outputs, name=f"video_{name.replace('-', '_')}")


def _r2plus1d_block(x: Any, mask: Any, n_in: int, n_out: int, *, stride: int, name: str, t: int = 3, d: int = 3):
    """One (2+1)D convolution: spatial ``1 x d x d`` (stride in space) -> BN -> ReLU -> temporal
    ``t x 1 x 1`` -> BN -> ReLU, the padded steps zeroed after each half."""
    from keras import layers

    mid = r2plus1d_mid_channels(n_in, n_out, t, d)
    x = layers.Conv3D(mid, (1, d, d), strides=(1, stride, stride), padding="same", use_bias=False,
                      name=f"{name}_spatial")(x)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_spatial_bn")(x)
    x = layers.ReLU(name=f"{name}_spatial_relu")(x)
    x = ZeroPadded(name=f"{name}_spatial_mask")(x, mask)
    x = layers.Conv3D(n_out, (t, 1, 1), padding="same", use_bias=False, name=f"{name}_temporal")(x)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_temporal_bn")(x)
    x = layers.ReLU(name=f"{name}_temporal_relu")(x)
    return ZeroPadded(name=f"{name}_mask")(x, mask)


def _register():
    import keras

    @keras.saving.register_keras_serializable(package="foveal")
    class FrameMask(keras.layers.Layer):
        """``(frames with padding frames zeroed, (batch, time) bool mask of the real frames)``; a
        padding frame is one whose pixels are all :data:`PAD_VALUE` (negative)."""

        def call(self, x):
            from keras import ops

            real = ops.max(x, axis=(2, 3, 4)) >= 0
            zeroed = ops.where(real[:, :, None, None, None], x, ops.zeros_like(x))
            return zeroed, real

        def compute_output_shape(self, shape):
            return shape, shape[:2]

        def compute_output_spec(self, x):
            return (keras.KerasTensor(x.shape, x.dtype), keras.KerasTensor(x.shape[:2], "bool"))

    @keras.saving.register_keras_serializable(package="foveal")
    class ZeroPadded(keras.layers.Layer):
        """``x`` (batch, time, ...) with the steps outside ``real`` (batch, time; bool) set to zero."""

        def call(self, x, real):
            from keras import ops

            m = ops.cast(real, x.dtype)
            return x * ops.reshape(m, (ops.shape(m)[0], ops.shape(m)[1]) + (1,) * (len(x.shape) - 2))

        def compute_output_shape(self, x_shape, real_shape):
            return x_shape

    return FrameMask, ZeroPadded


FrameMask, ZeroPadded = _register()

__all__ = ["END_TO_END_MODELS", "FRAME_CNN", "PAD_VALUE", "FrameMask", "ZeroPadded", "build_end_to_end",
           "pad_clips", "padded_input", "r2plus1d_mid_channels"]
