"""MobileNetV2's batch-norm momentum suits short runs from scratch (recipes/deployment.md: with
keras.applications' 0.999 a 2-epoch Fashion-MNIST model predicted one class for every image)."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from foveal.errors import ConfigError
from foveal.models import build_model


@pytest.fixture(scope="module")
def model():
    return build_model("mobilenetv2", num_classes=3, input_shape=(32, 32, 3), alpha=0.35)


def _norms(model):
    return [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]


def test_moving_statistics_follow_a_short_run(model):
    """After 300 training steps (one epoch of 38,400 images at batch 128) the moving mean and
    variance that inference uses must be within 10% of the batch statistics they track (0.999
    leaves 74% of the initial 0 and 1: 0.999 ** 300)."""
    norms = _norms(model)
    assert len(norms) == 52 and {layer.momentum for layer in norms} == {0.99}
    layer = model.get_layer("block5_dw_bn")
    keep = [w.numpy() for w in (layer.moving_mean, layer.moving_variance)]
    x = np.random.default_rng(0).normal(3.0, 2.0, (8, 4, 4, layer.moving_mean.shape[0])).astype("float32")
    for _ in range(300):
        layer(x, training=True)
    mean, var = x.mean(axis=(0, 1, 2)), x.var(axis=(0, 1, 2))
    try:
        np.testing.assert_allclose(layer.moving_mean.numpy(), mean, rtol=0.1)
        np.testing.assert_allclose(layer.moving_variance.numpy(), var, rtol=0.1)
    finally:
        layer.moving_mean.assign(keep[0])
        layer.moving_variance.assign(keep[1])


def test_bn_momentum_option():
    built = build_model("mobilenetv2", num_classes=3, input_shape=(32, 32, 3), alpha=0.35, bn_momentum=0.9)
    assert {layer.momentum for layer in _norms(built)} == {0.9}
    for bad in (1.0, -0.1):
        with pytest.raises(ConfigError, match="bn_momentum"):
            build_model("mobilenetv2", input_shape=(32, 32, 3), alpha=0.35, bn_momentum=bad)
