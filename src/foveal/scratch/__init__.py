"""Neural networks from scratch in NumPy, checked against Keras (Planche & Andres ch. 1 and 3).

Small, readable layers with explicit forward and backward passes (:mod:`.layers`,
:mod:`.conv`), losses (:mod:`.losses`), SGD with momentum (:mod:`.optim`), the texts'
``SimpleNetwork`` and a small CNN (:mod:`.network`), the output-size and parameter formulas
(:mod:`.shapes`), a finite-difference check (:mod:`.gradcheck`), and each network's Keras twin
(:mod:`.keras_twin`). Only :func:`train` (the run folder and report) and the twin import
TensorFlow, and only when called.

Example:
    >>> import numpy as np
    >>> from foveal.scratch import SimpleNetwork
    >>> net = SimpleNetwork([784, 64, 32, 10])
    >>> net.evaluate_accuracy(np.zeros((3, 784)), np.array([0, 1, 2])) <= 1.0
    True
"""

from __future__ import annotations

from typing import Any

from foveal.scratch.conv import Conv2D, col2im, im2col
from foveal.scratch.gradcheck import gradient_check
from foveal.scratch.layers import AvgPool2D, Dense, Flatten, Layer, MaxPool2D, ReLU, Sigmoid, Softmax
from foveal.scratch.losses import CrossEntropy, L2Loss, SoftmaxCrossEntropy
from foveal.scratch.network import Network, SimpleNetwork, small_cnn
from foveal.scratch.optim import SGD
from foveal.scratch.shapes import ShapeError, conv_param_count, output_size

__all__ = [
    "AvgPool2D", "Conv2D", "CrossEntropy", "Dense", "Flatten", "L2Loss", "Layer", "MaxPool2D", "Network", "ReLU",
    "SGD", "ShapeError", "Sigmoid", "SimpleNetwork", "Softmax", "SoftmaxCrossEntropy", "col2im", "conv_param_count",
    "gradient_check", "im2col", "output_size", "small_cnn", "train",
]


def train(config: Any = None, **overrides: Any) -> Any:
    """Train a NumPy network and its Keras twin; see :func:`foveal.scratch.run.train`."""
    from foveal.scratch.run import train as _train

    return _train(config, **overrides)
