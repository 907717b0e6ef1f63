"""Test-time augmentation: the views against NumPy, the weighting, and the CLI/API plumbing."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from foveal.errors import ConfigError
from foveal.evaluation.tta import predict_tta, shift, tta_views


def test_shift_moves_the_image_and_reflects_the_border():
    image = np.arange(25, dtype="float32").reshape(1, 5, 5, 1)
    moved = shift(image, 1, 1).numpy()[0, ..., 0]
    padded = np.pad(image[0, ..., 0], 1, mode="reflect")
    np.testing.assert_array_equal(moved, padded[:5, :5])  # content moved down-right by one
    np.testing.assert_array_equal(moved[1:, 1:], image[0, :4, :4, 0])
    np.testing.assert_array_equal(shift(image, -1, -1).numpy()[0, :4, :4, 0], image[0, 1:, 1:, 0])


@pytest.mark.parametrize("mode, count", [("none", 1), ("flip", 2), ("flip-shift", 6)])
def test_views_weights_sum_to_one(mode, count):
    views = tta_views(np.zeros((2, 6, 6, 3), "float32"), mode)
    assert len(views) == count
    assert sum(w for w, _ in views) == pytest.approx(1.0)


def test_flip_average_matches_numpy_and_is_mirror_invariant():
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((6, 6, 1)), keras.layers.Flatten(), keras.layers.Dense(3, activation="softmax")])
    images = np.random.default_rng(0).random((5, 6, 6, 1)).astype("float32")
    # the paper averages logits: the normalised geometric mean of the two views' probabilities
    expected = np.sqrt(model.predict(images, verbose=0) * model.predict(images[:, :, ::-1], verbose=0))
    expected /= expected.sum(axis=-1, keepdims=True)
    got = predict_tta(model, images, "flip", batch_size=2)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(predict_tta(model, images[:, :, ::-1], "flip"), got, rtol=1e-5, atol=1e-6)


def test_unknown_mode_is_a_config_error():
    with pytest.raises(ConfigError, match="flip-shift"):
        tta_views(np.zeros((1, 4, 4, 1), "float32"), "rotate")
