"""Test-time augmentation of segmenters: the views are undone exactly, a model that is
equivariant to the views gains nothing, and a random model gets the plain average of its
predictions on the flipped/turned images, mapped back."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from foveal.errors import ConfigError
from foveal.models import ModelCard
from foveal.segmentation.predict import TTA_VIEWS, predict_labels, predict_probabilities, unview, view

from .conftest import CLASSES

CARD = ModelCard("x", CLASSES, (32, 32, 3), task="segment", training={"stride": 16})


def conv_model(kernel: np.ndarray) -> keras.Model:
    """One 3x3 'same' convolution + softmax, with the given (3, 3, 3, K) kernel."""
    inputs = keras.Input((None, None, 3))
    conv = keras.layers.Conv2D(kernel.shape[-1], 3, padding="same", use_bias=False)
    x = conv(inputs / 255.0)
    model = keras.Model(inputs, keras.layers.Softmax()(x))
    conv.set_weights([kernel])
    return model


def random_kernel(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 3, (3, 3, 3, len(CLASSES))).astype("float32")


def symmetric_kernel() -> np.ndarray:
    """The D4 average of a random kernel: the same after any flip, quarter turn or transpose."""
    k = random_kernel(1)
    return np.mean([view(k, t, m) for t, m in TTA_VIEWS["d4"]], axis=0)


IMAGE = np.random.default_rng(2).integers(0, 256, (32, 48, 3)).astype(np.uint8)  # sides: multiples of 16


@pytest.mark.parametrize("turns, mirror", TTA_VIEWS["d4"])
def test_unview_undoes_view(turns, mirror):
    a = np.arange(2 * 3 * 2).reshape(2, 3, 2)
    np.testing.assert_array_equal(unview(view(a, turns, mirror), turns, mirror), a)


def test_views_are_distinct_and_flips_are_the_flips():
    a = np.arange(12).reshape(3, 4)
    assert len({view(a, t, m).tobytes() + bytes(view(a, t, m).shape) for t, m in TTA_VIEWS["d4"]}) == 8
    flips = [view(a, t, m) for t, m in TTA_VIEWS["flips"]]
    for got, want in zip(flips, (a, a[:, ::-1], a[::-1], a[::-1, ::-1])):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("tta", ["flips", "d4"])
def test_equivariant_model_gains_nothing(tta):
    model = conv_model(symmetric_kernel())
    plain = predict_probabilities(model, CARD, IMAGE)
    np.testing.assert_allclose(predict_probabilities(model, CARD, IMAGE, tta=tta), plain, atol=1e-5)


@pytest.mark.parametrize("tta", ["flips", "d4"])
def test_random_model_gets_the_average_of_the_views(tta):
    model = conv_model(random_kernel())
    x = IMAGE.astype("float32")

    def predict(pixels):
        return np.asarray(model(np.ascontiguousarray(pixels)[None]))[0]

    manual = [predict(x), predict(x[:, ::-1])[:, ::-1], predict(x[::-1])[::-1], predict(x[::-1, ::-1])[::-1, ::-1]]
    if tta == "d4":
        manual += [np.rot90(predict(np.rot90(x, k)), -k) for k in (1, 3)]
        def transpose(a):
            return np.swapaxes(a, 0, 1)

        def anti_transpose(a):
            return np.swapaxes(a, 0, 1)[::-1, ::-1]

        manual += [transpose(predict(transpose(x))), anti_transpose(predict(anti_transpose(x)))]
    expected = np.mean(manual, axis=0)
    got = predict_probabilities(model, CARD, IMAGE, tta=tta)
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert np.abs(got - predict_probabilities(model, CARD, IMAGE)).max() > 1e-3  # the views do differ
    np.testing.assert_array_equal(predict_labels(model, CARD, IMAGE, tta=tta), got.argmax(-1))


def test_tta_names_and_fixed_inputs():
    model = conv_model(random_kernel())
    with pytest.raises(ConfigError, match="unknown test-time augmentation 'd8'"):
        predict_probabilities(model, CARD, IMAGE, tta="d8")
    np.testing.assert_array_equal(predict_probabilities(model, CARD, IMAGE, tta=True),
                                  predict_probabilities(model, CARD, IMAGE, tta="flips"))
    inputs = keras.Input((32, 48, 3))
    fixed = keras.Model(inputs, model(inputs))
    assert predict_probabilities(fixed, CARD, IMAGE, tta="flips").shape == (32, 48, 3)
    with pytest.raises(ConfigError, match="quarter turns"):
        predict_probabilities(fixed, CARD, IMAGE, tta="d4")
