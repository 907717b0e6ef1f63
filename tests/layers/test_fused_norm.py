"""FusedBatchNormalization against Keras' own BatchNormalization: same outputs, gradients and
moving statistics, in float32 and under bfloat16 mixed precision, and one fused op per call."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from foveal.layers.fused_norm import FusedBatchNormalization


def _pair(scale: bool = True, **kwargs):
    """A Keras layer and a fused one with the same non-trivial weights, built for 3 channels."""
    rng = np.random.default_rng(0)
    layers = [keras.layers.BatchNormalization(scale=scale, **kwargs), FusedBatchNormalization(scale=scale, **kwargs)]
    weights = None
    for layer in layers:
        layer.build((None, 5, 5, 3))
        if weights is None:
            weights = [rng.uniform(0.5, 1.5, w.shape).astype("float32") for w in layer.get_weights()]
        layer.set_weights(weights)
    return layers


@pytest.fixture(scope="module")
def x():
    return tf.constant(np.random.default_rng(1).normal(2.0, 3.0, (2, 5, 5, 3)).astype("float32"))


@pytest.mark.parametrize("scale", [True, False])
def test_training_step_matches_keras(x, scale):
    keras_bn, fused = _pair(scale=scale, momentum=0.6, epsilon=1e-5)
    results = []
    for layer in (keras_bn, fused):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=True)
            loss = tf.reduce_sum(y * tf.range(1.0, 4.0))  # unequal weights per channel
        grads = tape.gradient(loss, [x, *layer.trainable_weights])
        results.append((y, grads, [w.numpy() for w in layer.non_trainable_weights]))
    (y0, g0, m0), (y1, g1, m1) = results
    np.testing.assert_allclose(y1, y0, rtol=1e-5, atol=1e-5)
    for a, b in zip(g0, g1):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-4)
    # moving mean and the biased variance (n = 50 here: the unbiased one would differ by 2%)
    for a, b in zip(m0, m1):
        np.testing.assert_allclose(b, a, rtol=1e-5)
    # ... and against NumPy: n = 50 values a channel, so the unbiased variance would be 2% off
    initial = _pair(scale=scale)[1].moving_variance.numpy()
    np.testing.assert_allclose(m1[-1], 0.6 * initial + 0.4 * np.var(x.numpy(), axis=(0, 1, 2)), rtol=1e-5)


def test_inference_uses_moving_statistics(x):
    keras_bn, fused = _pair(momentum=0.9, epsilon=1e-3)
    np.testing.assert_allclose(fused(x, training=False), keras_bn(x, training=False), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(fused(x), keras_bn(x), rtol=1e-5, atol=1e-5)


def test_bfloat16_runs_one_fused_op_with_float32_statistics(x):
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        keras_bn, fused = _pair(momentum=0.6)
    finally:
        keras.config.set_dtype_policy("float32")
    xb = tf.cast(x, tf.bfloat16)
    y_fused = fused(xb, training=True)
    y_keras = keras_bn(xb, training=True)
    assert y_fused.dtype == tf.bfloat16 and fused.moving_mean.dtype == "float32"
    np.testing.assert_allclose(tf.cast(y_fused, tf.float32), tf.cast(y_keras, tf.float32), atol=0.05)
    np.testing.assert_allclose(fused.moving_variance.numpy(), keras_bn.moving_variance.numpy(), rtol=1e-2)
    graph = tf.function(lambda t: fused(t, training=True)).get_concrete_function(xb).graph
    op_types = {op.type for op in graph.get_operations()}
    assert "FusedBatchNormV3" in op_types and "Mean" not in op_types


def test_other_shapes_fall_back_to_keras():
    keras_bn, fused = keras.layers.BatchNormalization(), FusedBatchNormalization()
    flat = tf.constant(np.random.default_rng(2).normal(size=(8, 3)).astype("float32"))
    np.testing.assert_allclose(fused(flat, training=True), keras_bn(flat, training=True), rtol=1e-5, atol=1e-5)


def test_serializes_and_is_a_batch_normalization():
    layer = FusedBatchNormalization(momentum=0.6, epsilon=1e-12, scale=False, name="bn")
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(restored) is FusedBatchNormalization and isinstance(restored, keras.layers.BatchNormalization)
    assert (restored.momentum, restored.epsilon, restored.scale) == (0.6, 1e-12, False)


def test_airbench_models_take_the_fused_layer_as_an_option():
    from foveal.models import build_model

    options = {"stem": 0, "widths": [8, 16, 16]}
    plain = build_model("airbench28", num_classes=10, input_shape=(28, 28, 1), **options)
    fused = build_model("airbench28", num_classes=10, input_shape=(28, 28, 1), fused_bn=True, **options)
    assert fused.count_params() == plain.count_params()
    kinds = [type(layer) for layer in fused.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(kinds) == 6 and set(kinds) == {FusedBatchNormalization}
    small = build_model("airbench", num_classes=10, width=8, wide=16, fused_bn=True)
    assert sum(isinstance(layer, FusedBatchNormalization) for layer in small.layers) == 6
