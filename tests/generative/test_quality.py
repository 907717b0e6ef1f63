"""Frechet distance and KID against direct NumPy/SciPy computations."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import linalg

from foveal.generative.quality import frechet_distance, gaussian_stats, kernel_distance


def _reference_frechet(mu1, s1, mu2, s2):
    """The usual formula with scipy.linalg.sqrtm of the (non-symmetric) product."""
    covmean = linalg.sqrtm(s1 @ s2)
    covmean = covmean.real
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


@pytest.mark.parametrize("dim,n", [(3, 50), (16, 400), (64, 300)])
def test_frechet_equals_the_scipy_sqrtm_reference(dim, n):
    rng = np.random.default_rng(dim)
    a = rng.normal(size=(n, dim)) @ rng.normal(size=(dim, dim))
    b = rng.normal(loc=0.5, size=(n, dim)) @ rng.normal(size=(dim, dim))
    mine = frechet_distance(*gaussian_stats(a), *gaussian_stats(b))
    assert mine == pytest.approx(_reference_frechet(*gaussian_stats(a), *gaussian_stats(b)), rel=1e-6)


def test_frechet_of_known_gaussians():
    # 1-D: (m1 - m2)^2 + (s1 - s2)^2
    assert frechet_distance(np.array([1.0]), np.array([[4.0]]), np.array([3.0]), np.array([[1.0]])) == pytest.approx(5.0)
    f = np.random.default_rng(0).normal(size=(100, 5))
    assert frechet_distance(*gaussian_stats(f), *gaussian_stats(f)) == pytest.approx(0.0, abs=1e-9)


def _direct_kid(x, y):
    d = x.shape[1]
    k = lambda a, b: (a @ b / d + 1) ** 3  # noqa: E731
    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2 * xy


def test_kid_equals_a_direct_computation():
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(30, 6)), rng.normal(loc=0.3, size=(30, 6))
    value, std = kernel_distance(x, y)
    assert value == pytest.approx(_direct_kid(x, y), rel=1e-9)
    assert std == 0.0
    # subsets: the mean of the subsets' unbiased estimates, each a direct computation
    value, std = kernel_distance(x, y, subsets=3, subset_size=10, seed=1)
    sub = np.random.default_rng(1)
    expected = [_direct_kid(x[sub.choice(30, 10, replace=False)], y[sub.choice(30, 10, replace=False)]) for _ in range(3)]
    assert value == pytest.approx(np.mean(expected), rel=1e-9)
    assert std == pytest.approx(np.std(expected), rel=1e-9)


def test_kid_is_unbiased_near_zero_for_one_distribution():
    rng = np.random.default_rng(5)
    values = [kernel_distance(rng.normal(size=(50, 4)), rng.normal(size=(50, 4)))[0] for _ in range(20)]
    assert abs(np.mean(values)) < 3 * np.std(values) / np.sqrt(len(values)) + 1e-3


def test_inception_weights_that_are_missing_fail_clearly(tmp_path):
    from foveal.errors import ConfigError
    from foveal.generative.quality import inception_judge

    with pytest.raises(ConfigError, match="file not found") as info:
        inception_judge(str(tmp_path / "inception_v3_notop.h5"))
    assert "offline there is no download" in info.value.hint


def test_imagenet_inception_weights_offline_say_how_to_supply_them(monkeypatch):
    import keras

    from foveal.errors import ConfigError
    from foveal.generative.quality import INCEPTION_URL, inception_judge

    calls = []

    def offline(**kwargs):  # what keras.applications raises when get_file cannot reach the URL
        calls.append(kwargs)
        raise Exception(f"URL fetch failure on {INCEPTION_URL}: None -- [Errno -3] Temporary failure in name "
                        "resolution")

    monkeypatch.setattr(keras.applications, "InceptionV3", offline)
    with pytest.raises(ConfigError, match="could not be downloaded") as info:
        inception_judge("imagenet")
    assert INCEPTION_URL in info.value.hint and "--inception-weights FILE" in info.value.hint
    assert [c["include_top"] for c in calls] == [False]  # the headless file only: one attempt, not two
