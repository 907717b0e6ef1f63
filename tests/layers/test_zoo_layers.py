"""SqueezeExcite and DepthwiseMaxPool against NumPy, their errors and their configs."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from foveal.layers import DepthwiseMaxPool, SqueezeExcite, with_se


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def test_squeeze_excite_matches_numpy():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 5, 4, 32)).astype("float32")
    layer = SqueezeExcite(ratio=8)
    layer.build(x.shape)
    w1, b1, w2, b2 = (rng.normal(size=w.shape).astype("float32") for w in layer.weights)
    layer.set_weights([w1, b1, w2, b2])

    squeezed = x.mean(axis=(1, 2))  # (3, 32)
    gates = _sigmoid(np.maximum(squeezed @ w1 + b1, 0.0) @ w2 + b2)  # (3, 32)
    expected = x * gates[:, None, None, :]
    np.testing.assert_allclose(np.asarray(layer(x)), expected, rtol=1e-5, atol=1e-5)


def test_squeeze_excite_only_rescales_channels():
    x = np.random.default_rng(1).uniform(0.5, 2.0, (2, 6, 6, 16)).astype("float32")
    y = np.asarray(SqueezeExcite(ratio=4)(x))
    gates = y / x  # one gate per (image, channel), the same at every position, in (0, 1)
    np.testing.assert_allclose(gates, np.broadcast_to(gates[:, :1, :1, :], gates.shape), rtol=1e-5)
    assert np.all((gates > 0) & (gates < 1))


@pytest.mark.parametrize("channels, ratio, hidden", [(64, 16, 4), (8, 16, 1), (48, 4, 12)])
def test_squeeze_excite_parameters(channels, ratio, hidden):
    layer = SqueezeExcite(ratio)
    layer.build((None, 7, 7, channels))
    assert layer.count_params() == 2 * channels * hidden + hidden + channels
    assert layer.compute_output_shape((None, 7, 7, channels)) == (None, 7, 7, channels)


def test_squeeze_excite_config_and_errors():
    layer = SqueezeExcite(ratio=4, name="se")
    assert SqueezeExcite.from_config(layer.get_config()).get_config() == layer.get_config()
    for bad in (0, -2, 1.5, True):
        with pytest.raises(ValueError, match="ratio"):
            SqueezeExcite(bad)
    with pytest.raises(ValueError, match="spatial"):
        SqueezeExcite()(np.ones((2, 16), "float32"))


def test_with_se_round_trip(tmp_path):
    inputs = keras.Input((8, 8, 16))
    outputs = with_se(keras.layers.Conv2D(16, 3, padding="same")(inputs), ratio=4, name="unit_se")
    model = keras.Model(inputs, outputs)
    assert isinstance(model.get_layer("unit_se"), SqueezeExcite)
    x = np.random.default_rng(2).normal(size=(2, 8, 8, 16)).astype("float32")
    path = tmp_path / "se.keras"
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    np.testing.assert_array_equal(model.predict_on_batch(x), loaded.predict_on_batch(x))


@pytest.mark.parametrize("channels, pool", [(12, 3), (12, 2), (8, 8), (5, 1)])
def test_depthwise_max_pool_matches_numpy(channels, pool):
    x = np.random.default_rng(3).normal(size=(2, 4, 3, channels)).astype("float32")
    expected = np.stack(
        [x[..., g * pool:(g + 1) * pool].max(axis=-1) for g in range(channels // pool)], axis=-1
    )
    layer = DepthwiseMaxPool(pool)
    y = np.asarray(layer(x))
    assert y.shape == (2, 4, 3, channels // pool)
    np.testing.assert_array_equal(y, expected)
    assert layer.compute_output_shape((None, 4, 3, channels)) == (None, 4, 3, channels // pool)


def test_depthwise_max_pool_in_a_model_with_unknown_spatial_size(tmp_path):
    inputs = keras.Input((None, None, 6))
    model = keras.Model(inputs, DepthwiseMaxPool(3, name="dpool")(inputs))
    assert model.output_shape == (None, None, None, 2)
    x = np.arange(2 * 5 * 7 * 6, dtype="float32").reshape(2, 5, 7, 6)
    np.testing.assert_array_equal(model.predict_on_batch(x), x[..., [2, 5]])  # increasing: last of each group
    path = tmp_path / "dpool.keras"
    model.save(path)
    np.testing.assert_array_equal(keras.models.load_model(path, safe_mode=True).predict_on_batch(x), x[..., [2, 5]])


def test_depthwise_max_pool_errors_and_config():
    with pytest.raises(ValueError, match="divisible by 4, got 10 channels"):
        DepthwiseMaxPool(4)(np.ones((1, 2, 2, 10), "float32"))
    for bad in (0, -1, 2.0, True):
        with pytest.raises(ValueError, match="pool_size"):
            DepthwiseMaxPool(bad)
    layer = DepthwiseMaxPool(3, name="dp")
    assert DepthwiseMaxPool.from_config(layer.get_config()).get_config() == layer.get_config()
