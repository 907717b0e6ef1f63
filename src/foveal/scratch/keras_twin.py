"""The Keras twin of a NumPy network: the same layers, weights, loss and optimizer in Keras.

Used by the tests (layer-by-layer equality), by ``foveal scratch train`` (both networks trained
from the same initial weights on the same batches) and by the benchmark (time per step).
TensorFlow and Keras are imported only when these functions run.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

import numpy as np

from foveal.errors import ModelError
from foveal.scratch import layers as L
from foveal.scratch.conv import Conv2D
from foveal.scratch.losses import CrossEntropy, L2Loss, Loss, SoftmaxCrossEntropy
from foveal.scratch.network import Network


def keras_layer(layer: L.Layer, dtype: str) -> list[Any]:
    """Keras layers computing what the NumPy ``layer`` computes (not yet holding its weights)."""
    import keras

    if isinstance(layer, Conv2D):
        pre = []
        padding = layer.padding
        if isinstance(padding, int):
            pre = [keras.layers.ZeroPadding2D(padding, dtype=dtype)] if padding else []
            padding = "valid"
        return pre + [keras.layers.Conv2D(layer.filters, layer.kernel_size, strides=layer.stride, padding=padding,
                                          dilation_rate=layer.dilation, dtype=dtype)]
    if isinstance(layer, (L.MaxPool2D, L.AvgPool2D)):
        if isinstance(layer.padding, int) and layer.padding:
            raise ModelError(f"{layer.name}: Keras pooling has no integer padding; use 'valid' or 'same' for a twin")
        cls = keras.layers.MaxPooling2D if isinstance(layer, L.MaxPool2D) else keras.layers.AveragePooling2D
        padding = "valid" if layer.padding == 0 else layer.padding
        return [cls(layer.k, strides=layer.s, padding=padding, dtype=dtype)]
    simple = {L.Dense: lambda: keras.layers.Dense(layer.units, dtype=dtype),
              L.Flatten: lambda: keras.layers.Flatten(dtype=dtype),
              L.ReLU: lambda: keras.layers.ReLU(dtype=dtype),
              L.Sigmoid: lambda: keras.layers.Activation("sigmoid", dtype=dtype),
              L.Softmax: lambda: keras.layers.Softmax(dtype=dtype)}
    for cls, make in simple.items():
        if type(layer) is cls:
            return [make()]
    raise ModelError(f"no Keras twin for layer {layer.name!r}")


def to_keras(network: Network) -> Any:
    """A ``keras.Sequential`` with the network's layers and a copy of its current weights."""
    import keras

    dtype = network.dtype.name
    stack = [k for layer in network.layers for k in keras_layer(layer, dtype)]
    model = keras.Sequential([keras.Input(network.input_shape, dtype=dtype), *stack])
    model.set_weights(network.get_weights())
    return model


def keras_loss(loss: Loss, dtype: str = "float64") -> Any:
    """The Keras loss with the same value and gradient as the NumPy ``loss``, computed in ``dtype``."""
    import keras

    kw = {"reduction": "sum" if loss.reduction == "sum" else "sum_over_batch_size", "dtype": dtype}
    if isinstance(loss, SoftmaxCrossEntropy):
        return keras.losses.CategoricalCrossentropy(from_logits=True, **kw)
    if isinstance(loss, CrossEntropy):
        return keras.losses.CategoricalCrossentropy(**kw)
    if isinstance(loss, L2Loss):
        return _l2_class()(name="l2", **kw)
    raise ModelError(f"no Keras twin for loss {loss.name!r}")


def _l2_class() -> type:
    """The texts' L2 loss as a ``keras.losses.Loss``: the sum of squares of each sample."""
    import keras
    from keras import ops

    class SumOfSquares(keras.losses.Loss):
        def call(self, y_true: Any, y_pred: Any) -> Any:
            return ops.sum(ops.square(y_pred - y_true), axis=-1)

    return SumOfSquares


def compile_twin(model: Any, loss: Loss, learning_rate: float, momentum: float = 0.0, nesterov: bool = False) -> Any:
    """Compile ``model`` with the twin loss and Keras SGD (same update rule as :class:`~foveal.scratch.optim.SGD`)."""
    import keras

    dtype = model.inputs[0].dtype
    # A plain Python 0.9 becomes a float32 constant inside Keras' compiled step (0.89999998);
    # a NumPy float64 keeps the twin's momentum exact.
    model.compile(optimizer=keras.optimizers.SGD(learning_rate, momentum=np.float64(momentum), nesterov=nesterov),
                  loss=keras_loss(loss, dtype), metrics=["categorical_accuracy"])
    return model


@contextlib.contextmanager
def keras_floatx(dtype: str) -> Iterator[None]:
    """Keras' default float type set to ``dtype`` inside the block (restored after).

    The optimizer's learning rate and the metrics are created in the default float type; in
    float32 they would round the twin's float64 updates (5e-3 is not a float32 number).
    """
    import keras

    before = keras.config.floatx()
    keras.config.set_floatx(dtype)
    try:
        yield
    finally:
        keras.config.set_floatx(before)


def to_one_hot(y: np.ndarray, num_classes: int, dtype: str) -> np.ndarray:
    """Labels as one-hot rows for Keras' categorical losses."""
    return np.eye(num_classes, dtype=dtype)[np.asarray(y)] if np.ndim(y) == 1 else np.asarray(y, dtype=dtype)
