"""Batch normalisation through TensorFlow's fused kernel (one op forward, one backward).

Ioffe & Szegedy, "Batch Normalization: Accelerating Deep Network Training by Reducing Internal
Covariate Shift", ICML 2015: ``y = (x - mean) / sqrt(var + eps) * gamma + beta``, with the
batch's mean and (biased) variance in training and moving averages of them at inference.

Keras 3's ``BatchNormalization`` computes this on the TensorFlow backend from separate ops:
a cast of a bfloat16 input to float32, ``tf.nn.moments`` (mean, squared difference, mean),
the normalisation's subtract / multiply / add, a cast back; and as many again in the backward
pass. On a CPU these element-wise kernels each read and write the whole activation, so under
bfloat16 mixed precision, where the convolutions run on the matrix units, they take a third or
more of a small CNN's step (recipes/fast-training.md). ``FusedBatchNormV3`` does the same
arithmetic in one pass (statistics in float32 for a bfloat16 input) and has a single fused
gradient op.

:class:`FusedBatchNormalization` is a drop-in subclass: same options, weights and saved
config; it takes the fused path for 4-D channels-last inputs on the TensorFlow backend and
falls back to Keras' own computation otherwise (masks, renorm, synchronized statistics, other
axes or backends).
"""

from __future__ import annotations

from typing import Any

import keras


@keras.saving.register_keras_serializable(package="foveal")
class FusedBatchNormalization(keras.layers.BatchNormalization):
    """``keras.layers.BatchNormalization`` computed by TensorFlow's ``FusedBatchNormV3``.

    The moving statistics follow Keras' rule (``moving = moving * momentum + batch * (1 -
    momentum)``, with the biased batch variance), so a model trains and infers as with the Keras
    layer up to float rounding.

    Example:
        >>> layer = FusedBatchNormalization(momentum=0.6, scale=False)
        >>> tuple(layer(keras.ops.ones((2, 4, 4, 8)), training=True).shape)
        (2, 4, 4, 8)
    """

    def _fusable(self, inputs: Any, mask: Any) -> bool:
        rank = len(inputs.shape)
        axes = list(self.axis) if isinstance(self.axis, (list, tuple)) else [self.axis]
        return (keras.backend.backend() == "tensorflow" and mask is None and rank == 4
                and axes in ([3], [-1]) and not self.renorm and not self.synchronized
                and inputs.shape[-1] is not None)

    def call(self, inputs: Any, training: Any = None, mask: Any = None) -> Any:
        if not self._fusable(inputs, mask):
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf

        x = tf.convert_to_tensor(inputs)
        if x.dtype not in (tf.float32, tf.bfloat16, tf.float16):
            x = tf.cast(x, tf.float32)
        channels = int(x.shape[-1])
        scale = tf.cast(self.gamma, tf.float32) if self.scale else tf.ones([channels], tf.float32)
        offset = tf.cast(self.beta, tf.float32) if self.center else tf.zeros([channels], tf.float32)
        if training and self.trainable:
            y, mean, variance, _, _, _ = tf.raw_ops.FusedBatchNormV3(
                x=x, scale=scale, offset=offset, mean=tf.zeros([0], tf.float32),
                variance=tf.zeros([0], tf.float32), epsilon=self.epsilon, exponential_avg_factor=1.0,
                data_format="NHWC", is_training=True)
            # the op returns the unbiased (n / (n - 1)) variance; Keras averages the biased one
            count = tf.cast(tf.reduce_prod(tf.shape(x)[:-1]), tf.float32)
            variance = variance * tf.maximum(count - 1.0, 1.0) / tf.maximum(count, 1.0)
            self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
            self.moving_variance.assign(self.moving_variance * self.momentum + variance * (1.0 - self.momentum))
        else:
            y, *_ = tf.raw_ops.FusedBatchNormV3(
                x=x, scale=scale, offset=offset, mean=tf.cast(self.moving_mean, tf.float32),
                variance=tf.cast(self.moving_variance, tf.float32), epsilon=self.epsilon,
                exponential_avg_factor=1.0, data_format="NHWC", is_training=False)
        return tf.cast(y, self.compute_dtype)


__all__ = ["FusedBatchNormalization"]
