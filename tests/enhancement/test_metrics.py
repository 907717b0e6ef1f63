"""PSNR and SSIM (RGB and Y, border cropped) against TensorFlow and scikit-image."""

from __future__ import annotations

import math

import numpy as np
import pytest

from foveal.enhancement.metrics import crop_border, mean_quality, psnr, quality, rgb_to_y, ssim

skimage_metrics = pytest.importorskip("skimage.metrics")


@pytest.fixture(scope="module")
def pair():
    rng = np.random.default_rng(3)
    y, x = np.mgrid[:40, :52]
    ref = np.stack([np.sin(x / 6) * 0.4 + 0.5, np.cos(y / 5) * 0.4 + 0.5, (x + y) / 92], -1)
    noisy = np.clip(ref + rng.normal(0, 0.08, ref.shape), 0, 1)
    return ref, noisy


def test_psnr_equals_tf_and_skimage(pair):
    import tensorflow as tf

    ref, noisy = pair
    ours = psnr(ref, noisy)
    assert ours == pytest.approx(float(tf.image.psnr(ref.astype(np.float32), noisy.astype(np.float32), 1.0)), abs=1e-4)
    assert ours == pytest.approx(skimage_metrics.peak_signal_noise_ratio(ref, noisy, data_range=1.0), abs=1e-9)
    assert psnr(ref, ref) == math.inf


def test_ssim_equals_tf_and_skimage(pair):
    import tensorflow as tf

    ref, noisy = pair
    ours = ssim(ref, noisy)
    theirs = skimage_metrics.structural_similarity(ref, noisy, data_range=1.0, channel_axis=-1, gaussian_weights=True,
                                                   sigma=1.5, use_sample_covariance=False)
    assert ours == pytest.approx(theirs, abs=1e-9)
    assert ours == pytest.approx(float(tf.image.ssim(ref.astype(np.float32), noisy.astype(np.float32), 1.0)), abs=1e-5)
    gray = ssim(ref[..., :1], noisy[..., :1])
    assert gray == pytest.approx(skimage_metrics.structural_similarity(
        ref[..., 0], noisy[..., 0], data_range=1.0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False))
    assert math.isnan(ssim(ref[:10], noisy[:10]))  # under the 11x11 window


def test_y_channel_is_matlab_rgb2ycbcr_and_border_is_cropped(pair):
    from skimage.color import rgb2ycbcr

    ref, noisy = pair
    assert np.allclose(rgb_to_y(ref)[..., 0] * 255, rgb2ycbcr(ref)[..., 0], atol=1e-9)
    q = quality(ref, noisy, border=3)
    r, n = ref[3:-3, 3:-3], noisy[3:-3, 3:-3]
    assert crop_border(ref, 3).shape == (34, 46, 3)
    assert q["psnr"] == pytest.approx(skimage_metrics.peak_signal_noise_ratio(r, n, data_range=1.0))
    yr, yn = rgb2ycbcr(r)[..., 0] / 255, rgb2ycbcr(n)[..., 0] / 255
    assert q["psnr_y"] == pytest.approx(skimage_metrics.peak_signal_noise_ratio(yr, yn, data_range=1.0), abs=1e-9)
    assert q["ssim_y"] == pytest.approx(skimage_metrics.structural_similarity(
        yr, yn, data_range=1.0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False), abs=1e-9)
    assert quality(ref[..., :1], noisy[..., :1])["psnr_y"] is None


def test_mean_quality_leaves_out_undefined_values():
    rows = [{"psnr": 20.0, "ssim": math.nan, "psnr_y": None, "ssim_y": None}, {"psnr": math.inf, "ssim": 0.5}]
    assert mean_quality(rows) == {"psnr": 20.0, "ssim": 0.5, "psnr_y": None, "ssim_y": None}
