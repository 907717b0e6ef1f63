"""RoI max pooling and RoI Align against NumPy references written from the papers' definitions."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest

from foveal.layers.roi import RoIAlign, RoIMaxPool

# The texts' RoI pooling figure: an 8x8 activation map, the RoI B3:E7 (5 rows x 4 columns)
# pooled to 2x2 (bins of 3x2 and 2x2 cells).
FIGURE = np.array([
    [0.16, 1.00, 0.26, 0.11, 0.14, 0.90, 0.06, 0.15],
    [0.13, 0.05, 0.58, 0.34, 0.58, 0.13, 0.78, 0.53],
    [0.89, 0.35, 0.38, 0.65, 0.01, 0.56, 0.97, 0.06],
    [0.47, 0.97, 0.78, 0.99, 0.82, 0.90, 0.32, 0.89],
    [0.58, 0.13, 0.12, 0.50, 0.99, 0.35, 0.83, 0.39],
    [0.21, 0.59, 0.96, 0.93, 0.08, 0.55, 0.13, 0.89],
    [0.03, 0.83, 0.63, 0.46, 0.09, 0.03, 0.68, 0.13],
    [0.82, 0.35, 0.20, 0.48, 0.80, 0.41, 0.46, 0.08]], np.float32)


def test_roi_max_pool_reproduces_the_texts_figure():
    rois = np.array([[[1, 2, 5, 7]]], np.float32)  # columns B..E, rows 3..7, stride 1
    out = RoIMaxPool(2, stride=1)([FIGURE[None, :, :, None], rois]).numpy()
    np.testing.assert_allclose(out[0, 0, :, :, 0], [[0.97, 0.99], [0.96, 0.93]])


def reference_max_pool(fmap: np.ndarray, box, pool: int, stride: float) -> np.ndarray:
    """Snap to cells, split into bins whose edges are rounded up, max per bin (loops)."""
    h, w, c = fmap.shape
    c0 = min(max(math.floor(box[0] / stride), 0), w - 1)
    r0 = min(max(math.floor(box[1] / stride), 0), h - 1)
    c1 = min(max(math.ceil(box[2] / stride), c0 + 1), w)
    r1 = min(max(math.ceil(box[3] / stride), r0 + 1), h)
    out = np.zeros((pool, pool, c), np.float32)

    def edges(extent, i):
        lo = min(math.ceil(i * extent / pool), extent - 1)
        return lo, max(math.ceil((i + 1) * extent / pool), lo + 1)

    for i in range(pool):
        a, b = edges(r1 - r0, i)
        for j in range(pool):
            e, f = edges(c1 - c0, j)
            out[i, j] = fmap[r0 + a:r0 + b, c0 + e:c0 + f].reshape(-1, c).max(axis=0)
    return out


def bilinear(fmap: np.ndarray, y: float, x: float) -> np.ndarray:
    """crop_and_resize's sampling: 0 outside [0, H-1] x [0, W-1], else bilinear."""
    h, w, _ = fmap.shape
    if y < 0 or y > h - 1 or x < 0 or x > w - 1:
        return np.zeros(fmap.shape[-1], np.float64)
    y0, x0 = int(math.floor(y)), int(math.floor(x))
    y1, x1 = min(y0 + 1, h - 1), min(x0 + 1, w - 1)
    dy, dx = y - y0, x - x0
    top = fmap[y0, x0] * (1 - dx) + fmap[y0, x1] * dx
    bottom = fmap[y1, x0] * (1 - dx) + fmap[y1, x1] * dx
    return top * (1 - dy) + bottom * dy


def reference_align(fmap: np.ndarray, box, pool: int, stride: float, ratio: int) -> np.ndarray:
    """RoI Align (Mask R-CNN): per bin, the mean of ratio x ratio bilinear samples at the
    regular points of the bin; feature coordinate = pixel / stride - 0.5 (aligned)."""
    x0, y0, x1, y1 = (v / stride - 0.5 for v in box)
    bin_h, bin_w = (y1 - y0) / pool, (x1 - x0) / pool
    out = np.zeros((pool, pool, fmap.shape[-1]))
    for i in range(pool):
        for j in range(pool):
            samples = [bilinear(fmap.astype(np.float64), y0 + (i + (a + 0.5) / ratio) * bin_h,
                                x0 + (j + (b + 0.5) / ratio) * bin_w)
                       for a in range(ratio) for b in range(ratio)]
            out[i, j] = np.mean(samples, axis=0)
    return out


@pytest.fixture(scope="module")
def case():
    rng = np.random.default_rng(3)
    features = rng.normal(size=(2, 9, 11, 3)).astype(np.float32)
    corners = rng.uniform(-8, 90, size=(2, 6, 2, 2))
    rois = np.concatenate([corners.min(axis=2), corners.max(axis=2)], axis=-1).astype(np.float32)
    rois[0, 0] = [10, 10, 11, 11]  # smaller than a cell
    rois[1, 0] = [0, 0, 88, 72]  # the whole map
    return features, rois


def test_roi_max_pool_equals_the_numpy_reference(case):
    features, rois = case
    out = RoIMaxPool(3, stride=8)([features, rois]).numpy()
    assert out.shape == (2, 6, 3, 3, 3)
    for b in range(2):
        for r in range(6):
            np.testing.assert_allclose(out[b, r], reference_max_pool(features[b], rois[b, r], 3, 8), rtol=1e-6)


@pytest.mark.parametrize("ratio", [1, 2])
def test_roi_align_equals_the_numpy_reference(case, ratio):
    features, rois = case
    out = RoIAlign(4, stride=8, sampling_ratio=ratio)([features, rois]).numpy()
    assert out.shape == (2, 6, 4, 4, 3)
    for b in range(2):
        for r in range(6):
            np.testing.assert_allclose(out[b, r], reference_align(features[b], rois[b, r], 4, 8, ratio), atol=1e-5)


def test_roi_layers_round_trip_their_config_and_pass_gradients(case):
    import tensorflow as tf

    features, rois = case
    for layer in (RoIAlign(2, stride=4.0, sampling_ratio=3), RoIMaxPool(5, stride=16.0)):
        clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
        assert type(clone) is type(layer)
        assert clone.get_config() == layer.get_config()
        x = tf.Variable(features)
        with tf.GradientTape() as tape:
            total = tf.reduce_sum(layer([x, rois]))
        assert float(tf.reduce_sum(tf.abs(tape.gradient(total, x)))) > 0
    with pytest.raises(ValueError, match="pool_size"):
        RoIAlign(0)


def test_vectorised_roi_max_pool_equals_the_reference_on_many_bins_in_a_graph():
    """Bins of 1 to 5 cells, overlapping bins (regions smaller than the grid), inside tf.function."""
    import tensorflow as tf

    from foveal.layers.roi import roi_max_pool

    rng = np.random.default_rng(7)
    features = rng.normal(size=(2, 23, 30, 4)).astype(np.float32)
    corners = rng.uniform(-4, 124, size=(2, 20, 2, 2))
    rois = np.concatenate([corners.min(axis=2), corners.max(axis=2)], axis=-1).astype(np.float32)
    out = tf.function(lambda f, r: roi_max_pool(f, r, pool_size=5, stride=4.0))(features, rois).numpy()
    for b in range(2):
        for r in range(20):
            np.testing.assert_array_equal(out[b, r], reference_max_pool(features[b], rois[b, r], 5, 4.0))


def _autodiff_and_custom(features: np.ndarray, rois: np.ndarray, pool: int, stride: float, seed: int):
    """(TF autodiff of the max passes, the layer's custom gradient, the upstream gradient)."""
    import tensorflow as tf

    from foveal.layers.roi import _bin_edges, _flat, _max_pool_cells, _snap_to_cells, roi_max_pool

    # whole numbers: every sum of them is exact in float32, so the order of the sums cannot matter
    upstream = tf.constant(np.random.default_rng(seed).choice(
        [-3.0, -2.0, -1.0, 1.0, 2.0, 3.0], size=(*rois.shape[:2], pool, pool, features.shape[-1])).astype(np.float32))
    x = tf.constant(features)

    @tf.function
    def both():
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(x)
            fmap, flat, index, _, _ = _flat(x, rois)
            c0, r0, c1, r1 = _snap_to_cells(flat, stride, tf.shape(x)[1], tf.shape(x)[2])
            plain = _max_pool_cells(fmap, index, *_bin_edges(r0, r1 - r0, pool), *_bin_edges(c0, c1 - c0, pool))
            plain_total = tf.reduce_sum(tf.reshape(plain, tf.shape(upstream)) * upstream)
            total = tf.reduce_sum(roi_max_pool(x, rois, pool_size=pool, stride=stride) * upstream)
        return tape.gradient(plain_total, x), tape.gradient(total, x)

    reference, custom = both()
    return reference.numpy(), custom.numpy(), upstream.numpy()


def test_roi_max_pool_gradient_goes_to_each_bins_maximum_exactly():
    """The custom gradient equals TF's autodiff of the max passes, ties included (a map of a few
    integer values, overlapping bins), and the NumPy rule (each bin's gradient to its argmax)."""
    rng = np.random.default_rng(11)
    corners = rng.uniform(-4, 124, size=(2, 10, 2, 2))
    rois = np.concatenate([corners.min(axis=2), corners.max(axis=2)], axis=-1).astype(np.float32)
    rois[0, 0] = [3, 3, 5, 5]  # one cell: every bin reads it
    ties = rng.integers(0, 3, size=(2, 23, 30, 4)).astype(np.float32)
    reference, custom, _ = _autodiff_and_custom(ties, rois, 5, 4.0, seed=1)
    np.testing.assert_array_equal(custom, reference)
    assert np.abs(custom).sum() > 0
    features = rng.normal(size=(2, 23, 30, 4)).astype(np.float32)  # no ties: one argmax per bin
    reference, custom, upstream = _autodiff_and_custom(features, rois, 5, 4.0, seed=2)
    np.testing.assert_array_equal(custom, reference)
    expected = np.zeros_like(features, np.float64)
    for b in range(2):
        for r in range(10):
            pooled = reference_max_pool(features[b], rois[b, r], 5, 4.0)
            for i in range(5):
                for j in range(5):
                    for c in range(4):
                        hit = np.argwhere(features[b, :, :, c] == pooled[i, j, c])
                        assert len(hit) == 1
                        expected[b, hit[0][0], hit[0][1], c] += upstream[b, r, i, j, c]
    np.testing.assert_array_equal(custom, expected)
