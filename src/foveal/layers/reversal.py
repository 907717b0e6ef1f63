"""The gradient-reversal layer and the schedules of domain-adversarial training.

Ganin & Lempitsky, "Unsupervised Domain Adaptation by Backpropagation", ICML 2015, and Ganin et
al., "Domain-Adversarial Training of Neural Networks", JMLR 17 (2016): the domain classifier
sits behind a layer that is the identity going forward and multiplies the gradient by
``-lambda`` going back, so one minimisation trains the domain classifier to tell the domains
apart and the feature extractor to make that impossible. The paper raises ``lambda`` from 0 to
1 as ``2 / (1 + exp(-gamma p)) - 1`` (``gamma = 10``, ``p`` the training progress 0..1), and
anneals the learning rate as ``mu0 / (1 + alpha p) ** beta`` (``alpha = 10``, ``beta = 0.75``).
:func:`domain_classifier` builds the domain classifier itself (reversal, ReLU dense layers, one
logit). Shared by ``foveal adapt`` (classifiers) and ``foveal detect train --adapt-method dann``
(a per-position classifier on the detector's backbone map, as in Chen et al., "Domain Adaptive
Faster R-CNN for Object Detection in the Wild", CVPR 2018).

Example:
    >>> layer = GradientReversal(scale=0.5)
    >>> import numpy as np
    >>> np.asarray(layer(np.ones((1, 2), "float32")))
    array([[1., 1.]], dtype=float32)
    >>> round(float(reversal_weight(1.0)), 4)
    0.9999
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import keras
import tensorflow as tf


def reversal_weight(progress: Any, gamma: float = 10.0) -> Any:
    """The paper's reversal weight ``2 / (1 + exp(-gamma p)) - 1`` at progress ``p`` in [0, 1]
    (a float, a NumPy array or a tensor: the same expression)."""
    if isinstance(progress, (int, float)):
        return 2.0 / (1.0 + math.exp(-gamma * progress)) - 1.0
    return 2.0 / (1.0 + keras.ops.exp(-gamma * progress)) - 1.0


@tf.custom_gradient
def reverse_gradient(x: tf.Tensor, scale: tf.Tensor):
    """``x`` unchanged; its gradient multiplied by ``-scale`` (``scale`` gets none)."""

    def grad(upstream: tf.Tensor):
        return -tf.cast(scale, upstream.dtype) * upstream, tf.zeros_like(scale)

    return tf.identity(x), grad


@keras.saving.register_keras_serializable(package="foveal")
class GradientReversal(keras.layers.Layer):
    """Identity forward; gradient times ``-scale`` backward (Ganin & Lempitsky 2015).

    ``scale`` is a non-trainable weight, so a training step can set it from the schedule
    (``layer.scale.assign(value)``) and a saved model keeps its last value.

    Args:
        scale: the reversal weight ``lambda`` to start with.
    """

    def __init__(self, scale: float = 1.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.initial_scale = float(scale)
        self.scale = self.add_weight(name="scale", shape=(), trainable=False,
                                     initializer=keras.initializers.Constant(self.initial_scale))

    def call(self, inputs):
        return reverse_gradient(inputs, tf.convert_to_tensor(self.scale.value))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "scale": self.initial_scale}


@keras.saving.register_keras_serializable(package="foveal")
class DannAnnealing(keras.optimizers.schedules.LearningRateSchedule):
    """The DANN paper's learning rate ``mu0 / (1 + alpha p) ** beta``, ``p = step / total_steps``.

    Example:
        >>> float(DannAnnealing(0.01, 100)(100))  # 0.01 / 11 ** 0.75
        0.0016556...
    """

    def __init__(self, initial_learning_rate: float, total_steps: int, alpha: float = 10.0, beta: float = 0.75):
        self.initial_learning_rate = float(initial_learning_rate)
        self.total_steps = int(total_steps)
        self.alpha, self.beta = float(alpha), float(beta)

    def __call__(self, step):
        progress = keras.ops.minimum(keras.ops.cast(step, "float32") / float(max(self.total_steps, 1)), 1.0)
        return self.initial_learning_rate / (1.0 + self.alpha * progress) ** self.beta

    def get_config(self) -> dict[str, Any]:
        return {"initial_learning_rate": self.initial_learning_rate, "total_steps": self.total_steps,
                "alpha": self.alpha, "beta": self.beta}


def domain_classifier(features: int, units: Sequence[int] = (100,), name: str = "domain_head") -> keras.Model:
    """Gradient reversal (weight 0 to start: the training step sets it), ``units`` ReLU dense
    layers, one float32 logit "source (0) or target (1)?", on ``features``-long vectors.

    Example:
        >>> head = domain_classifier(8, (4,))
        >>> head.output_shape, head.get_layer("gradient_reversal").initial_scale
        ((None, 1), 0.0)
    """
    inputs = keras.Input((int(features),), name="domain_features")
    x = GradientReversal(0.0, name="gradient_reversal")(inputs)
    for i, n in enumerate(units):
        x = keras.layers.Dense(int(n), activation="relu", name=f"domain_dense{i + 1}")(x)
    out = keras.layers.Dense(1, dtype="float32", name="domain_logit")(x)
    return keras.Model(inputs, out, name=name)


__all__ = ["DannAnnealing", "GradientReversal", "domain_classifier", "reversal_weight", "reverse_gradient"]
