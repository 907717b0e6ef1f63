"""Image quality of an enhanced image against its reference: PSNR and SSIM, on RGB and on Y.

* PSNR: ``10 log10(1 / MSE)`` for pixels in [0, 1] (the same as ``tf.image.psnr`` with
  ``max_val=1`` and scikit-image's ``peak_signal_noise_ratio`` with ``data_range=1``).
* SSIM: Wang, Bovik, Sheikh, Simoncelli, "Image Quality Assessment: From Error Visibility to
  Structural Similarity", IEEE TIP 2004: an 11x11 Gaussian window (sigma 1.5), K1 = 0.01,
  K2 = 0.03, population statistics, the map kept where the window fits inside the image and
  averaged, then averaged over channels; this is ``tf.image.ssim`` and scikit-image's
  ``structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False)``
  (tested against both). Images with a side under 11 pixels have no SSIM (NaN).
* Y channel: the luma of ITU-R BT.601 as MATLAB's ``rgb2ycbcr`` computes it
  (``Y = 16/255 + (65.481 R + 128.553 G + 24.966 B) / 255``, scikit-image's ``rgb2ycbcr``),
  which the super-resolution literature scores on, after cropping ``border`` pixels (the
  scale factor) off every side (e.g. Lim et al., EDSR, CVPRW 2017).

Example:
    >>> a = np.zeros((16, 16, 3)); b = a + 0.1
    >>> round(psnr(a, b), 6)
    20.0
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

WINDOW, SIGMA, K1, K2 = 11, 1.5, 0.01, 0.03
#: BT.601 luma weights on [0, 1] RGB, and the offset, as MATLAB's rgb2ycbcr (Y in [16, 235] / 255)
Y_WEIGHTS = np.array([65.481, 128.553, 24.966]) / 255.0
Y_OFFSET = 16.0 / 255.0


def _float(image: Any) -> np.ndarray:
    array = np.asarray(image, np.float64)
    return array[..., None] if array.ndim == 2 else array


def crop_border(image: np.ndarray, border: int) -> np.ndarray:
    """``image`` without ``border`` pixels on each side."""
    return image[border:image.shape[0] - border, border:image.shape[1] - border] if border else image


def rgb_to_y(image: Any) -> np.ndarray:
    """The BT.601 luma (HxWx1, in [16/255, 235/255]) of an RGB image in [0, 1]."""
    rgb = _float(image)
    return (rgb @ Y_WEIGHTS + Y_OFFSET)[..., None]


def psnr(reference: Any, image: Any, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB (inf when the images are equal)."""
    mse = float(np.mean((_float(reference) - _float(image)) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(data_range ** 2 / mse)


def _gaussian(size: int = WINDOW, sigma: float = SIGMA) -> np.ndarray:
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2
    g = np.exp(-x ** 2 / (2 * sigma ** 2))
    return g / g.sum()


def _filter_valid(image: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Separable 'valid' filtering of HxW by the 1-D window ``g`` on both axes."""
    n = len(g)
    rows = sum(g[k] * image[k:image.shape[0] - n + 1 + k] for k in range(n))
    return sum(g[k] * rows[:, k:rows.shape[1] - n + 1 + k] for k in range(n))


def ssim(reference: Any, image: Any, data_range: float = 1.0) -> float:
    """Mean structural similarity (see the module docstring); NaN for sides under 11 pixels."""
    x, y = _float(reference), _float(image)
    if min(x.shape[:2]) < WINDOW:
        return math.nan
    g = _gaussian()
    c1, c2 = (K1 * data_range) ** 2, (K2 * data_range) ** 2
    values = []
    for c in range(x.shape[-1]):
        a, b = x[..., c], y[..., c]
        mu_a, mu_b = _filter_valid(a, g), _filter_valid(b, g)
        var_a = _filter_valid(a * a, g) - mu_a ** 2
        var_b = _filter_valid(b * b, g) - mu_b ** 2
        cov = _filter_valid(a * b, g) - mu_a * mu_b
        smap = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
        values.append(smap.mean())
    return float(np.mean(values))


def quality(reference: Any, image: Any, *, border: int = 0) -> dict[str, float | None]:
    """PSNR and SSIM of ``image`` against ``reference`` (both HxWxC in [0, 1]), after cropping
    ``border`` pixels; with three channels also on the Y channel (``psnr_y``, ``ssim_y``).

    Example:
        >>> q = quality(np.zeros((32, 32, 3)), np.full((32, 32, 3), 0.1), border=2)
        >>> sorted(q)
        ['psnr', 'psnr_y', 'ssim', 'ssim_y']
    """
    ref, out = crop_border(_float(reference), border), crop_border(_float(image), border)
    result: dict[str, float | None] = {"psnr": psnr(ref, out), "ssim": ssim(ref, out)}
    if ref.shape[-1] == 3:
        ry, oy = rgb_to_y(ref), rgb_to_y(out)
        result["psnr_y"], result["ssim_y"] = psnr(ry, oy), ssim(ry, oy)
    else:
        result["psnr_y"] = result["ssim_y"] = None
    return result


def mean_quality(rows: list[dict[str, float | None]]) -> dict[str, float | None]:
    """The mean of each measure over images (NaN and None left out; infinite PSNR too, counted
    apart as it would swamp the mean)."""
    out: dict[str, float | None] = {}
    for key in ("psnr", "ssim", "psnr_y", "ssim_y"):
        values = [v for r in rows if (v := r.get(key)) is not None and math.isfinite(v)]
        out[key] = round(float(np.mean(values)), 4) if values else None
    return out


__all__ = ["crop_border", "mean_quality", "psnr", "quality", "rgb_to_y", "ssim"]
