"""Every NumPy layer, loss and the optimizer against Keras/TensorFlow on the same weights (float64)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from foveal.scratch import layers as L
from foveal.scratch.conv import Conv2D
from foveal.scratch.keras_twin import keras_layer
from foveal.scratch.losses import CrossEntropy, L2Loss, SoftmaxCrossEntropy
from foveal.scratch.optim import SGD
from foveal.scratch.shapes import ShapeError, output_size

TOL = 1e-6


def keras_forward_backward(klayers, x, dy):
    """Output of the Keras layers on ``x`` and the gradients of ``sum(y * dy)`` wrt x and weights."""
    import tensorflow as tf

    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        y = xt
        for k in klayers:
            y = k(y)
        objective = tf.reduce_sum(y * tf.constant(dy))
    weights = [w for k in klayers for w in k.trainable_weights]
    grads = tape.gradient(objective, [xt, *weights])
    return y.numpy(), grads[0].numpy(), [g.numpy() for g in grads[1:]]


def check_layer(layer, x, rng):
    """Forward output, dL/dx and dL/dweights of ``layer`` equal Keras' twin to 1e-6."""
    klayers = keras_layer(layer, "float64")
    shape = x.shape[1:]
    for k in klayers:
        k.build((None, *shape))
        shape = k.compute_output_shape((None, *shape))[1:]
    weights = list(layer.params.values())
    if weights:
        klayers[-1].set_weights(weights)
    y = layer.forward(x)
    dy = rng.standard_normal(y.shape)
    dx = layer.backward(dy)
    ky, kdx, kgrads = keras_forward_backward(klayers, x, dy)
    assert y.shape == ky.shape
    np.testing.assert_allclose(y, ky, atol=TOL, rtol=0)
    np.testing.assert_allclose(dx, kdx, atol=TOL, rtol=0)
    assert len(kgrads) == len(layer.grads)
    for ours, theirs in zip(layer.grads.values(), kgrads):
        np.testing.assert_allclose(ours, theirs, atol=TOL, rtol=0)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def test_dense(rng):
    check_layer(L.Dense(7, 4, rng=rng), rng.standard_normal((5, 7)), rng)
    layer = L.Dense(7, 4, init="normal", rng=rng)
    check_layer(layer, rng.standard_normal((3, 7)), rng)
    assert np.any(layer.params["bias"] != 0)


@pytest.mark.parametrize("layer", [L.ReLU(), L.Sigmoid(), L.Softmax(), L.Flatten()], ids=lambda l: l.name)
def test_activations_and_flatten(layer, rng):
    x = rng.standard_normal((4, 5, 3, 2)) * 3
    if layer.name in ("sigmoid", "softmax"):
        x = x.reshape(4, -1)
    check_layer(layer, x, rng)


# A representative handful runs by default; the whole grid with -m slow.
FAST_CONV = {(3, 1, "valid", 1), (3, (2, 1), "same", 1), ((3, 2), 1, 1, 2), (3, 1, "same", 2), (1, (2, 1), 1, 1)}
CONV_GRID = [
    pytest.param(k, s, p, d, marks=() if (k, s, p, d) in FAST_CONV else pytest.mark.slow)
    for k, s, p, d in itertools.product([1, 3, (3, 2)], [1, (2, 1)], ["valid", "same", 1], [1, 2])
    if not (d > 1 and s != 1)
]


@pytest.mark.parametrize("kernel,stride,padding,dilation", CONV_GRID)
def test_conv2d_im2col(kernel, stride, padding, dilation, rng):
    layer = Conv2D(3, 4, kernel, stride=stride, padding=padding, dilation=dilation, rng=rng)
    layer.params["bias"] = rng.standard_normal(4)
    x = rng.standard_normal((2, 9, 8, 3))
    try:
        layer.output_shape(x.shape[1:])
    except ShapeError:
        pytest.skip("output size not an integer for this combination (tested in test_shapes)")
    check_layer(layer, x, rng)


@pytest.mark.parametrize("kernel,stride,padding,dilation", [(3, 1, "valid", 1), (3, 2, 1, 1), (2, 1, "same", 2),
                                                            ((3, 2), (2, 1), "same", 1)])
def test_conv2d_loops_equal_im2col_and_keras(kernel, stride, padding, dilation, rng):
    x = rng.standard_normal((2, 7, 7, 2))
    loops = Conv2D(2, 3, kernel, stride=stride, padding=padding, dilation=dilation, method="loops", rng=rng)
    loops.params["bias"] = rng.standard_normal(3)
    check_layer(loops, x, rng)
    fast = Conv2D(2, 3, kernel, stride=stride, padding=padding, dilation=dilation, method="im2col")
    fast.params = {k: v.copy() for k, v in loops.params.items()}
    dy = rng.standard_normal(loops.forward(x).shape)
    np.testing.assert_allclose(fast.forward(x), loops.forward(x), atol=1e-12)
    np.testing.assert_allclose(fast.backward(dy), loops.backward(dy), atol=1e-12)
    for key in loops.grads:
        np.testing.assert_allclose(fast.grads[key], loops.grads[key], atol=1e-12)


@pytest.mark.parametrize("cls", [L.MaxPool2D, L.AvgPool2D], ids=["max", "avg"])
@pytest.mark.parametrize("pool,stride,padding", [(2, None, "valid"), (3, 2, "valid"), (3, 1, "same"),
                                                 (2, 2, "same"), (3, 2, "same")])
def test_pooling(cls, pool, stride, padding, rng):
    x = rng.standard_normal((2, 7, 9, 3))
    layer = cls(pool, stride, padding)
    try:
        layer.output_shape(x.shape[1:])
    except ShapeError:
        x = x[:, :6, :8]  # valid windows need an exact tiling; use a size that has one
    check_layer(layer, x, rng)


def _keras_loss_and_grad(loss, pred, target):
    import tensorflow as tf

    p = tf.constant(pred)
    with tf.GradientTape() as tape:
        tape.watch(p)
        value = loss(tf.constant(target), p)
    return float(value), tape.gradient(value, p).numpy()


def test_losses_match_keras(rng):
    import keras

    labels = rng.integers(0, 5, size=6)
    target = np.eye(5)[labels]
    logits = rng.standard_normal((6, 5))
    probs = L.softmax(logits)
    from foveal.scratch.keras_twin import keras_loss

    cases = [(SoftmaxCrossEntropy(), logits, keras.losses.CategoricalCrossentropy(from_logits=True, dtype="float64")),
             (CrossEntropy(), probs, keras.losses.CategoricalCrossentropy(dtype="float64")),
             (L2Loss(), probs, keras_loss(L2Loss())),
             (L2Loss("sum"), probs, keras_loss(L2Loss("sum")))]
    for ours, pred, theirs in cases:
        value = ours.forward(pred, labels)
        grad = ours.backward()
        k_value, k_grad = _keras_loss_and_grad(theirs, pred, target)
        if ours.reduction == "sum":
            k_value /= len(pred)  # reported per sample, like the texts
        assert value == pytest.approx(k_value, abs=1e-12)
        np.testing.assert_allclose(grad, k_grad, atol=1e-12)
    # The texts' L2 loss: sum of squares per sample, averaged over the batch = C x Keras' MSE.
    mse = float(keras.losses.MeanSquaredError(dtype="float64")(target, probs))
    assert L2Loss().forward(probs, labels) == pytest.approx(5 * mse, abs=1e-12)


@pytest.mark.parametrize("momentum,nesterov", [(0.0, False), (0.9, False), (0.9, True)])
def test_sgd_matches_keras(momentum, nesterov, rng):
    import keras

    layer = L.Dense(3, 2, rng=rng)
    kvars = [keras.Variable(v.copy()) for v in layer.params.values()]
    opt, kopt = SGD(0.1, momentum, nesterov), keras.optimizers.SGD(0.1, momentum=momentum, nesterov=nesterov)
    for _ in range(4):
        grads = [rng.standard_normal(v.shape) for v in layer.params.values()]
        layer.grads = dict(zip(layer.params, grads))
        opt.step([layer])
        kopt.apply_gradients(zip(grads, kvars))
    for ours, theirs in zip(layer.params.values(), kvars):
        np.testing.assert_allclose(ours, theirs.numpy(), atol=1e-12)


def test_output_size_examples():
    assert output_size(28, 5) == 24
    assert output_size(28, 5, padding="same") == 28
    assert output_size(31, 3, 2, 1) == 16
