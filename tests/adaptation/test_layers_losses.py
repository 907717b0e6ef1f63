"""Gradient reversal, the DANN schedules and the CORAL/MMD losses against plain references."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from foveal.layers.reversal import DannAnnealing, GradientReversal, reversal_weight
from foveal.ops.domain import coral_loss, mmd_loss


@pytest.mark.parametrize("scale", [0.0, 0.3, 1.0, 2.5])
def test_gradient_reversal_flips_the_gradient(scale):
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(4, 5)).astype("float32"))
    w = tf.constant(rng.normal(size=(5, 1)).astype("float32"))
    layer = GradientReversal(scale)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        plain = tf.reduce_sum(tf.matmul(x, w) ** 2)
        reversed_ = tf.reduce_sum(tf.matmul(layer(x), w) ** 2)
    np.testing.assert_array_equal(layer(x).numpy(), x.numpy())  # identity forward
    np.testing.assert_allclose(tape.gradient(reversed_, x).numpy(), -scale * tape.gradient(plain, x).numpy(),
                               rtol=1e-6, atol=1e-7)


def test_gradient_reversal_scale_is_set_and_saved(tmp_path):
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(1)(GradientReversal(0.25, name="grl")(inputs)))
    model.get_layer("grl").scale.assign(0.75)
    x = tf.ones((2, 3))
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = tf.reduce_sum(model(x))
    kernel = model.layers[-1].kernel.numpy()[:, 0]
    np.testing.assert_allclose(tape.gradient(y, x).numpy(), np.tile(-0.75 * kernel, (2, 1)), rtol=1e-6)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert isinstance(loaded.get_layer("grl"), GradientReversal)
    assert float(loaded.get_layer("grl").scale.numpy()) == 0.75
    assert GradientReversal.from_config(loaded.get_layer("grl").get_config()).initial_scale == 0.25


def test_reversal_weight_is_the_papers_schedule():
    assert reversal_weight(0.0) == 0.0
    assert reversal_weight(1.0) == pytest.approx(2 / (1 + math.exp(-10)) - 1)
    assert reversal_weight(0.5, gamma=4.0) == pytest.approx(2 / (1 + math.exp(-2)) - 1)
    p = np.linspace(0, 1, 11).astype("float32")
    values = np.asarray(reversal_weight(tf.constant(p)))
    np.testing.assert_allclose(values, [reversal_weight(float(v)) for v in p], rtol=1e-5, atol=1e-6)
    assert np.all(np.diff(values) > 0)


def test_dann_learning_rate_annealing():
    schedule = DannAnnealing(0.01, 200)
    for step in (0, 50, 200, 400):
        p = min(step / 200, 1.0)
        assert float(schedule(step)) == pytest.approx(0.01 / (1 + 10 * p) ** 0.75, rel=1e-6)
    assert DannAnnealing.from_config(schedule.get_config()).total_steps == 200


def _coral_numpy(s, t):
    d = s.shape[1]
    return np.sum((np.cov(s, rowvar=False) - np.cov(t, rowvar=False)) ** 2) / (4 * d * d)


def _mmd_numpy(s, t, multipliers=(0.25, 0.5, 1.0, 2.0, 4.0)):
    both = np.concatenate([s, t])
    d2 = ((both[:, None, :] - both[None, :, :]) ** 2).sum(-1)
    n = len(both)
    bandwidth = d2.sum() / (n * n - n)
    k = sum(np.exp(-d2 / (m * bandwidth)) for m in multipliers)
    ns = len(s)
    return k[:ns, :ns].mean() + k[ns:, ns:].mean() - 2 * k[:ns, ns:].mean()


def test_coral_and_mmd_match_numpy():
    rng = np.random.default_rng(1)
    s = rng.normal(size=(24, 6))
    t = rng.normal(loc=0.5, scale=2.0, size=(16, 6))
    assert float(coral_loss(s.astype("float32"), t.astype("float32"))) == pytest.approx(_coral_numpy(s, t), rel=1e-4)
    assert float(mmd_loss(s.astype("float32"), t.astype("float32"))) == pytest.approx(_mmd_numpy(s, t), rel=1e-4)
    assert float(coral_loss(s.astype("float32"), s.astype("float32"))) == pytest.approx(0.0, abs=1e-9)
    assert float(mmd_loss(s.astype("float32"), s.astype("float32"))) == pytest.approx(0.0, abs=1e-5)


def test_normalised_coral_is_coral_over_the_features_scale_and_scale_free():
    rng = np.random.default_rng(2)
    s = rng.normal(size=(20, 5))
    t = rng.normal(loc=0.3, scale=1.7, size=(12, 5))
    scale2 = np.concatenate([s, t]).var(axis=0).mean()  # the mean (population) variance of both batches
    got = float(coral_loss(s.astype("float32"), t.astype("float32"), normalize=True))
    assert got == pytest.approx(_coral_numpy(s, t) / scale2 ** 2, rel=1e-4)
    # the same for features 30x larger (the raw CORAL is 30^4 = 810,000x larger)
    big = float(coral_loss((30 * s).astype("float32"), (30 * t).astype("float32"), normalize=True))
    assert big == pytest.approx(got, rel=1e-4)
    # the scale is not differentiated: the gradient is Deep CORAL's over scale^2
    x, y = tf.constant(s, tf.float32), tf.constant(t, tf.float32)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        plain, normalised = coral_loss(x, y), coral_loss(x, y, normalize=True)
    np.testing.assert_allclose(tape.gradient(normalised, x).numpy(), tape.gradient(plain, x).numpy() / scale2 ** 2,
                               rtol=1e-3, atol=1e-9)


def test_dann_mnist_architecture_matches_the_papers_table():
    from foveal.models import build_model

    model = build_model("dann_mnist", num_classes=10)
    shapes = {layer.name: tuple(layer.output.shape[1:]) for layer in model.layers}
    assert shapes["conv1"] == (24, 24, 32) and shapes["pool1"] == (12, 12, 32)
    assert shapes["conv2"] == (8, 8, 48) and shapes["pool2"] == (4, 4, 48)
    assert shapes["fc1_relu"] == (100,) and shapes["fc2_relu"] == (100,)
    assert model.count_params() == 2_432 + 38_448 + 76_900 + 10_100 + 1_010


def test_target_statistics_are_the_numpy_moments_layer_by_layer():
    from foveal.adaptation.statistics import target_statistics

    keras.utils.set_random_seed(0)
    inputs = keras.Input((6, 6, 2))
    x = keras.layers.Conv2D(3, 3, name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="bn1")(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(4, name="fc")(x)
    x = keras.layers.BatchNormalization(name="bn2")(x)
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(x))
    images = np.random.default_rng(0).uniform(0, 5, (37, 6, 6, 2)).astype("float32")
    assert target_statistics(model, images, batch_size=10) == 2
    conv_out = np.asarray(keras.Model(inputs, model.get_layer("conv").output)(images), np.float64)
    np.testing.assert_allclose(model.get_layer("bn1").moving_mean.numpy(), conv_out.mean(axis=(0, 1, 2)), rtol=1e-4)
    np.testing.assert_allclose(model.get_layer("bn1").moving_variance.numpy(), conv_out.var(axis=(0, 1, 2)), rtol=1e-3)
    # bn2 is measured after bn1 took its new statistics
    dense_in = np.asarray(keras.Model(inputs, model.get_layer("fc").output)(images, training=False), np.float64)
    np.testing.assert_allclose(model.get_layer("bn2").moving_mean.numpy(), dense_in.mean(axis=0), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(model.get_layer("bn2").moving_variance.numpy(), dense_in.var(axis=0), rtol=1e-3)


def test_gray_arrays_become_rgb_like_the_pipeline_makes_them():
    """Arrays already at the model's size skip the tf.data pipeline (it traced 3 pipelines, 0.75 to
    2.7 s, for the adapt run's source): gray -> RGB as TensorFlow's grayscale_to_rgb makes it."""
    import tensorflow as tf

    from foveal.adaptation.data import _arrays
    from foveal.data.source import LabeledImages

    rng = np.random.default_rng(0)
    part = LabeledImages(["a", "b"], (np.arange(6) % 2).astype(np.int32),
                         images=rng.integers(0, 256, (6, 8, 8, 1), dtype=np.uint8))
    fast = _arrays(part, part.labels, 0, (8, 8), 3, False)
    assert fast.images.shape == (6, 8, 8, 3) and fast.images.dtype == np.uint8
    np.testing.assert_array_equal(fast.images, tf.image.grayscale_to_rgb(tf.constant(part.images)).numpy())
    np.testing.assert_array_equal(fast.labels, part.labels)
