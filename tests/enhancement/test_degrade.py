"""Corruptions, downscaling and random patches inside tf.data."""

from __future__ import annotations

import numpy as np
import pytest

from foveal.enhancement.data import ImageSet
from foveal.enhancement.degrade import corrupt, degrade, describe_corruption, downscale, parse_corruption
from foveal.errors import ConfigError


def test_parse_corruption_defaults_ranges_and_unknown_names():
    assert parse_corruption("gaussian") == (("gaussian", (0.5, 0.5)),)
    assert parse_corruption("none") == ()
    spec = parse_corruption("jpeg=20-40, salt-pepper=0.05,blur")
    assert spec == (("jpeg", (20.0, 40.0)), ("salt-pepper", (0.05, 0.05)), ("blur", (1.0, 1.0)))
    assert describe_corruption(spec) == "jpeg=20-40, salt-pepper=0.05, blur=1"
    with pytest.raises(ConfigError, match=r"--corruption 'gausian=0.5': unknown corruption 'gausian'") as info:
        parse_corruption("gausian=0.5")
    assert "gaussian" in info.value.hint
    with pytest.raises(ConfigError, match="jpeg takes the JPEG quality in"):
        parse_corruption("jpeg=0")
    with pytest.raises(ConfigError, match="is not a number"):
        parse_corruption("blur=abc")


@pytest.fixture(scope="module")
def gray():
    return np.full((64, 64, 1), 0.5, np.float32)


def test_gaussian_noise_has_its_sigma_and_repeats_with_its_seed(gray):
    a = corrupt(gray, parse_corruption("gaussian=0.1"), [1, 2]).numpy()
    b = corrupt(gray, parse_corruption("gaussian=0.1"), [1, 2]).numpy()
    c = corrupt(gray, parse_corruption("gaussian=0.1"), [1, 3]).numpy()
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert np.std(a - 0.5) == pytest.approx(0.1, rel=0.05)
    assert a.min() >= 0 and a.max() <= 1


def test_salt_pepper_sets_its_fraction_to_black_and_white(gray):
    out = corrupt(np.repeat(gray, 3, -1), parse_corruption("salt-pepper=0.2"), [0, 0]).numpy()
    changed = (out != 0.5).any(-1)
    assert changed.mean() == pytest.approx(0.2, abs=0.03)
    assert set(np.unique(out[changed])) <= {0.0, 1.0}
    assert ((out == 0).all(-1) == (out == 0).any(-1)).all()  # whole pixels, every channel alike


def test_blur_equals_scipy_gaussian_filter():
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(0)
    image = rng.uniform(0, 1, (20, 24, 3)).astype(np.float32)
    ours = corrupt(image, parse_corruption("blur=1.5"), [0, 0]).numpy()
    theirs = gaussian_filter(image, sigma=(1.5, 1.5, 0), mode="reflect", truncate=5 / 1.5)
    assert np.allclose(ours, theirs, atol=1e-5)


def test_jpeg_changes_a_noisy_image_and_keeps_its_shape():
    rng = np.random.default_rng(0)
    image = rng.uniform(0, 1, (32, 32, 1)).astype(np.float32)
    out = corrupt(image, parse_corruption("jpeg=10"), [0, 0]).numpy()
    assert out.shape == image.shape and np.abs(out - image).mean() > 0.05


def test_degrade_downscales_by_the_scale_and_rounds_to_8_bits():
    image = np.random.default_rng(0).uniform(0, 1, (30, 36, 3)).astype(np.float32)
    low = degrade(image, scale=3, corruption=(), seed=[0, 0]).numpy()
    assert low.shape == (10, 12, 3)
    assert np.allclose(low * 255, np.round(low * 255), atol=1e-4)
    assert np.allclose(downscale(np.ones((12, 12, 1), np.float32), 4).numpy(), 1.0, atol=1e-6)


def test_patches_are_windows_of_their_image_degraded_and_repeatable():
    from foveal.enhancement.pipeline import patch_dataset

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 40, 50, 1), dtype=np.uint8)
    data = ImageSet("arrays", 1, images=images, sizes=[(40, 50)] * 3)
    kwargs = dict(training=True, patch=12, scale=2, corruption=(), batch_size=4, seed=7, patches_per_image=2)
    x, y = next(iter(patch_dataset(data, augment=False, **kwargs)))
    assert x.shape == (4, 6, 6, 1) and y.shape == (4, 12, 12, 1)
    x2, y2 = next(iter(patch_dataset(data, augment=False, **kwargs)))
    assert np.array_equal(y.numpy(), y2.numpy()) and np.array_equal(x.numpy(), x2.numpy())
    windows = np.lib.stride_tricks.sliding_window_view(images, (12, 12), axis=(1, 2))  # (3, 29, 39, 1, 12, 12)
    windows = np.moveaxis(windows, 3, -1).reshape(-1, 12, 12, 1)
    for patch in np.round(y.numpy() * 255).astype(np.uint8):
        assert (windows == patch).all(axis=(1, 2, 3)).any()
    assert np.allclose(x.numpy()[0], np.round(downscale(y[0], 2).numpy() * 255))
