"""Stochastic gradient descent with (Nesterov) momentum, with Keras' update rule.

Keras (and this class) keep a velocity per parameter: ``v <- m v - lr g``, then ``w <- w + v``
(Nesterov: ``w <- w + m v - lr g``). With ``m = 0`` this is the texts' ``w <- w - eps g``.
"""

from __future__ import annotations

import numpy as np

from foveal.errors import ConfigError


class SGD:
    """Plain, momentum or Nesterov SGD over the parameters of a list of layers.

    Args:
        learning_rate: step size ``lr`` (the texts' epsilon).
        momentum: ``m`` in [0, 1).
        nesterov: use Nesterov's look-ahead form.

    Example:
        >>> from foveal.scratch.layers import Dense
        >>> layer = Dense(2, 1, rng=np.random.default_rng(0))
        >>> layer.grads = {"kernel": np.ones((2, 1)), "bias": np.ones(1)}
        >>> SGD(0.1).step([layer]); float(layer.params["bias"][0])
        -0.1
    """

    def __init__(self, learning_rate: float = 0.01, momentum: float = 0.0, nesterov: bool = False) -> None:
        if learning_rate <= 0:
            raise ConfigError(f"learning rate must be positive, got {learning_rate}")
        if not 0.0 <= momentum < 1.0:
            raise ConfigError(f"momentum must be in [0, 1), got {momentum}")
        self.learning_rate, self.momentum, self.nesterov = float(learning_rate), float(momentum), nesterov
        self.velocity: dict[tuple[int, str], np.ndarray] = {}

    def step(self, layers: list) -> None:
        """Update every parameter of ``layers`` in place from its stored gradient."""
        lr, m = self.learning_rate, self.momentum
        for index, layer in enumerate(layers):
            for key, value in layer.params.items():
                grad = layer.grads[key]
                if m == 0.0:
                    value -= lr * grad
                    continue
                v = self.velocity.get((index, key))
                v = -lr * grad if v is None else m * v - lr * grad
                self.velocity[(index, key)] = v
                value += (m * v - lr * grad) if self.nesterov else v
