"""IoU, the box encoding, the IoU metric and the box loss."""

from __future__ import annotations

import numpy as np
import pytest

from foveal.localization.losses import BoxMSE
from foveal.localization.metrics import NO_BOX, BoxIoU, decode_boxes, encode_boxes, iou


def numpy_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Reference: one pair at a time, in plain Python arithmetic."""
    out = []
    for (ax0, ay0, ax1, ay1), (bx0, by0, bx1, by1) in zip(a, b):
        iw = max(0.0, min(ax1, bx1) - max(ax0, bx0))
        ih = max(0.0, min(ay1, by1) - max(ay0, by0))
        inter = iw * ih
        union = (ax1 - ax0) * (ay1 - ay0) + (bx1 - bx0) * (by1 - by0) - inter
        out.append(inter / union if union > 0 else 0.0)
    return np.array(out)


def test_iou_by_hand():
    a = np.array([[0, 0, 4, 4], [0, 0, 4, 4], [0, 0, 4, 4], [0, 0, 2, 2], [1, 1, 3, 5]], np.float32)
    b = np.array([[0, 0, 4, 4], [2, 0, 6, 4], [4, 4, 8, 8], [1, 1, 3, 3], [0, 2, 4, 3]], np.float32)
    # identical; half overlap 8/(16+16-8); touching corners; 1/(4+4-1); 2x1 inside 8 and 4: 2/(8+4-2)
    expected = [1.0, 8 / 24, 0.0, 1 / 7, 2 / 10]
    np.testing.assert_allclose(np.asarray(iou(a, b)), expected, rtol=1e-6)


def test_iou_matches_numpy_reference_and_broadcasts():
    rng = np.random.default_rng(0)
    corners = rng.uniform(0, 100, (2, 500, 4)).astype(np.float32)
    boxes = np.concatenate([np.minimum(corners[..., :2], corners[..., 2:]),
                            np.maximum(corners[..., :2], corners[..., 2:])], axis=-1)
    a, b = boxes
    np.testing.assert_allclose(np.asarray(iou(a, b)), numpy_iou(a, b), rtol=1e-5, atol=1e-7)
    matrix = np.asarray(iou(a[:7, None], b[None, :5]))
    assert matrix.shape == (7, 5)
    np.testing.assert_allclose(matrix[3], numpy_iou(np.repeat(a[3:4], 5, 0), b[:5]), rtol=1e-5, atol=1e-7)
    assert float(np.asarray(iou(np.zeros(4), np.zeros(4)))) == 0.0  # empty boxes: 0, not NaN


def test_encode_decode_round_trip():
    rng = np.random.default_rng(1)
    low = rng.uniform(0, 0.5, (100, 2))
    boxes = np.concatenate([low, low + rng.uniform(0.01, 0.5, (100, 2))], axis=1).astype(np.float32)
    encoded = np.asarray(encode_boxes(boxes))
    np.testing.assert_allclose(encoded[:, 0], (boxes[:, 0] + boxes[:, 2]) / 2, rtol=1e-6)
    np.testing.assert_allclose(encoded[:, 3] ** 2, boxes[:, 3] - boxes[:, 1], rtol=1e-5)
    np.testing.assert_allclose(np.asarray(decode_boxes(encoded)), boxes, atol=1e-6)


def test_decode_clips_to_the_image():
    np.testing.assert_allclose(np.asarray(decode_boxes([[0.1, 0.9, 0.6, 0.6]])), [[0.0, 0.72, 0.28, 1.0]], atol=1e-6)


def test_box_iou_metric_skips_images_without_box():
    true = np.asarray(encode_boxes(np.array([[0, 0, 0.5, 0.5], [0.5, 0.5, 1, 1]], np.float32)))
    pred = np.asarray(encode_boxes(np.array([[0, 0, 0.5, 0.5], [0.5, 0.5, 0.75, 1]], np.float32)))
    metric = BoxIoU()
    metric.update_state(np.vstack([true, np.full((1, 4), NO_BOX)]), np.vstack([pred, pred[:1]]))
    assert float(metric.result()) == pytest.approx((1.0 + 0.5) / 2, abs=1e-5)
    metric.reset_state()
    assert float(metric.result()) == 0.0


def test_box_loss_is_masked_mse():
    true = np.array([[0.5, 0.5, 0.4, 0.4], [NO_BOX] * 4], np.float32)
    pred = np.array([[0.5, 0.7, 0.4, 0.4], [0.9, 0.9, 0.9, 0.9]], np.float32)
    # per-sample (0.2^2)/4 and 0 (no box), averaged over the batch of 2
    assert float(BoxMSE()(true, pred)) == pytest.approx(0.01 / 2, rel=1e-5)
