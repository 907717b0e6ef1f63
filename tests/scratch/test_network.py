"""Networks of NumPy layers: finite differences, the texts' API, and training beside the Keras twin."""

from __future__ import annotations

import numpy as np
import pytest

from foveal.scratch import (
    SGD,
    AvgPool2D,
    Conv2D,
    CrossEntropy,
    Dense,
    Flatten,
    MaxPool2D,
    Network,
    ReLU,
    Sigmoid,
    SimpleNetwork,
    Softmax,
    SoftmaxCrossEntropy,
    gradient_check,
    small_cnn,
)


@pytest.fixture(scope="module")
def digits():
    from foveal.data.readers import load_dataset

    part = load_dataset("digits")["train"]
    return part.images.astype(np.float64) / 255.0, part.labels.astype(np.int64)


def test_gradient_check_every_layer_kind():
    rng = np.random.default_rng(3)
    layers = [Conv2D(2, 3, 3, stride=2, padding=1, rng=rng), ReLU(),
              Conv2D(3, 4, (3, 2), padding="same", dilation=2, rng=rng), Sigmoid(),
              MaxPool2D(2, padding="same"), Conv2D(4, 4, 2, method="loops", rng=rng), AvgPool2D(2, 1),
              Flatten(), Dense(4 * 1 * 1, 5, rng=rng), Softmax()]
    for layer in layers:
        if "bias" in layer.params:
            layer.params["bias"] = rng.standard_normal(layer.params["bias"].shape) * 0.1
    net = Network(layers, (9, 9, 2), CrossEntropy())
    x, y = rng.standard_normal((4, 9, 9, 2)), rng.integers(0, 5, 4)
    assert gradient_check(net, x, y, entries=6) < 1e-6


def test_gradient_check_texts_network_and_cnn():
    rng = np.random.default_rng(0)
    simple = SimpleNetwork([12, 6, 4, 3], seed=1)
    assert gradient_check(simple, rng.random((5, 12)), rng.integers(0, 3, 5)) < 1e-6
    cnn = small_cnn((8, 8, 1), 4, filters=(2, 3), kernel_size=3, hidden=5, seed=2)
    assert gradient_check(cnn, rng.random((3, 8, 8, 1)), rng.integers(0, 4, 3)) < 1e-6


def test_gradient_check_detects_a_wrong_backward():
    class BrokenSigmoid(Sigmoid):
        def backward(self, dy):
            return dy * self.y  # forgets the (1 - y) factor

    net = Network([Dense(4, 3, rng=np.random.default_rng(0)), BrokenSigmoid()], (4,), SoftmaxCrossEntropy())
    assert gradient_check(net, np.ones((2, 4)), np.array([0, 1])) > 1e-3


def test_simple_network_has_the_texts_api(digits):
    x, y = digits
    x = x.reshape(len(x), -1)
    net = SimpleNetwork([64, 32, 16, 10], seed=0)
    assert [layer.name for layer in net.layers] == ["dense", "sigmoid"] * 3
    before = net.evaluate_accuracy(x[1500:], y[1500:])
    losses, accuracies = net.train(x[:1500], y[:1500], x[1500:], y[1500:], batch_size=30, num_epochs=8,
                                   learning_rate=5e-3)
    assert len(losses) == len(accuracies) == 8
    assert losses[-1] < losses[0] and accuracies[-1] > before + 0.2
    assert accuracies[-1] == net.evaluate_accuracy(x[1500:], np.eye(10)[y[1500:]])  # one-hot labels work too


@pytest.mark.parametrize("kind", ["simple", "cnn"])
def test_training_steps_equal_the_keras_twin(kind, digits):
    """Same initial weights, same batches: NumPy and Keras weights agree to 1e-10 after 8 SGD steps."""
    import tensorflow as tf

    from foveal.scratch.keras_twin import compile_twin, keras_floatx, to_keras, to_one_hot

    x, y = digits
    if kind == "simple":
        net, x, lr, momentum = SimpleNetwork([64, 16, 10], seed=0), x.reshape(len(x), -1), 5e-3, 0.0
    else:
        net, lr, momentum = small_cnn((8, 8, 1), 10, filters=(4, 8), kernel_size=3, seed=0), 0.05, 0.9
    with keras_floatx("float64"):
        model = compile_twin(to_keras(net), net.loss, lr, momentum)
        optimizer = SGD(lr, momentum)
        for step in range(8):
            xb, yb = x[step * 30:(step + 1) * 30], y[step * 30:(step + 1) * 30]
            net.train_step(xb, yb, optimizer)
            model.train_on_batch(tf.constant(xb), tf.constant(to_one_hot(yb, 10, "float64")))
    for ours, theirs in zip(net.get_weights(), model.get_weights()):
        np.testing.assert_allclose(ours, theirs, atol=1e-10, rtol=0)


def test_float32_network_stays_float32():
    net = small_cnn((8, 8, 1), 3, filters=(2,), kernel_size=3, dtype=np.float32)
    out = net.forward(np.zeros((2, 8, 8, 1)))
    assert out.dtype == np.float32 and all(v.dtype == np.float32 for v in net.get_weights())


def test_set_weights_checks_shapes():
    from foveal.scratch import ShapeError

    net = SimpleNetwork([4, 3, 2])
    with pytest.raises(ShapeError):
        net.set_weights([np.zeros((3, 4))] + net.get_weights()[1:])
