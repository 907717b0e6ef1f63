"""The "before and after adaptation" picture (foveal.visualize.features): PCA as scikit-learn's,
one panel per model."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from foveal.visualize.features import feature_picture, project


def test_pca_projection_and_one_panel_per_model():
    rng = np.random.default_rng(0)
    source = rng.normal(size=(30, 6))
    target = rng.normal(size=(30, 6)) + np.array([8, 0, 0, 0, 0, 0])  # apart along the first axis
    both = np.concatenate([source, target])
    xy = project(both, "pca", seed=0)
    centred = both - both.mean(0)
    axis = np.linalg.svd(centred, full_matrices=False)[2][0]  # the first principal axis, by NumPy
    np.testing.assert_allclose(np.abs(xy[:, 0]), np.abs(centred @ axis), rtol=1e-6, atol=1e-9)
    assert min(xy[:30, 0].max(), xy[30:, 0].max()) < max(xy[:30, 0].min(), xy[30:, 0].min())  # split on x
    png = feature_picture({"before": (source, target), "after": (source, source + 0.1)}, "pca")
    width, height = Image.open(io.BytesIO(png)).size
    assert abs(width - 2 * height) <= 2  # two square panels side by side
