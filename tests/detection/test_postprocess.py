"""Decoding and non-max suppression against NumPy references."""

from __future__ import annotations

import numpy as np
import pytest

from foveal.detection.postprocess import (
    decode_predictions,
    decode_scale,
    detect_from_outputs,
    grid_cells,
    nms_image,
    non_max_suppression,
    reference_nms,
    split_anchors,
)
from foveal.ops.boxes import center_to_corners, decode_yolo


def _random_boxes(rng, n: int, scale: float = 1.0) -> np.ndarray:
    xy = rng.uniform(0, 0.8, (n, 2))
    wh = rng.uniform(0.05, 0.3, (n, 2))
    return (np.concatenate([xy, xy + wh], -1) * scale).astype(np.float32)


def test_decode_matches_numpy_decode_yolo():
    rng = np.random.default_rng(0)
    anchors = np.array([[0.05, 0.08], [0.1, 0.1], [0.2, 0.15], [0.3, 0.4], [0.5, 0.5], [0.6, 0.8]], np.float32)
    raw = [rng.normal(0, 1.5, (2, g, w, 3, 7)).astype(np.float32) for g, w in ((6, 4), (3, 2))]
    out = decode_predictions(raw, anchors)
    assert out["boxes"].shape == (2, 6 * 4 * 3 + 3 * 2 * 3, 4) and out["class_probs"].shape[-1] == 2
    expected = []
    for t, group in zip(raw, split_anchors(anchors, 2)):
        gh, gw = t.shape[1:3]
        cells = np.stack(np.meshgrid(np.arange(gw), np.arange(gh)), -1)[:, :, None, :].astype(np.float32)
        centre = np.asarray(decode_yolo(t[..., :4], cells, group * [gw, gh])) / [gw, gh, gw, gh]
        expected.append(center_to_corners(centre).reshape(2, -1, 4))
    np.testing.assert_allclose(np.asarray(out["boxes"]), np.concatenate(expected, 1), atol=1e-6)
    logits = np.concatenate([t[..., 5:].reshape(2, -1, 2) for t in raw], 1)
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    objectness = 1 / (1 + np.exp(-np.concatenate([t[..., 4].reshape(2, -1) for t in raw], 1)))
    np.testing.assert_allclose(np.asarray(out["scores"]), objectness * probs.max(-1), rtol=1e-5)
    np.testing.assert_array_equal(np.asarray(out["classes"]), probs.argmax(-1))


def test_keras_corner_conversion_gives_the_hand_written_floats():
    """Decoding uses keras' ``center_xywh -> xyxy``; it replaced ``xy -/+ wh / grid / 2`` bit for bit."""
    rng = np.random.default_rng(5)
    anchors = np.array([[0.07, 0.1], [0.3, 0.2], [0.6, 0.9]], np.float32)
    for grid_h, grid_w in ((13, 13), (7, 5)):
        raw = rng.normal(0, 2, (2, grid_h, grid_w, 3, 6)).astype(np.float32)
        grid = np.array([grid_w, grid_h], np.float32)
        centre = decode_yolo(raw[..., :4], grid_cells(grid_h, grid_w), anchors * grid)
        xy, half = centre[..., :2] / grid, centre[..., 2:] / grid / 2
        np.testing.assert_array_equal(np.asarray(decode_scale(raw, anchors)),
                                      np.concatenate([xy - half, xy + half], axis=-1))


def test_decode_is_size_independent_in_normalised_units():
    """A zero logit puts the box on the cell centre with exactly the anchor's (normalised) size."""
    anchors = np.array([[0.25, 0.5]], np.float32)
    for grid in (2, 5):
        boxes = np.asarray(decode_predictions(np.zeros((1, grid, grid, 1, 6), np.float32), anchors)["boxes"])[0]
        np.testing.assert_allclose(boxes[0], [0.5 / grid - 0.125, 0.5 / grid - 0.25, 0.5 / grid + 0.125,
                                              0.5 / grid + 0.25], atol=1e-6)


@pytest.mark.parametrize("class_aware", [True, False])
def test_nms_equals_greedy_reference(class_aware):
    rng = np.random.default_rng(1 if class_aware else 2)
    boxes = np.stack([_random_boxes(rng, 300) for _ in range(3)])
    # overlapping clusters: copies jittered around a few boxes
    boxes[:, 150:] = boxes[:, :150] + rng.normal(0, 0.02, (3, 150, 4)).astype(np.float32)
    scores = rng.uniform(0, 1, (3, 300)).astype(np.float32)
    classes = rng.integers(0, 3, (3, 300)).astype(np.int32)
    out = non_max_suppression(boxes, scores, classes, iou_threshold=0.45, score_threshold=0.3,
                              max_detections=60, class_aware=class_aware)
    for b in range(3):
        kept = reference_nms(boxes[b], scores[b], classes[b], iou_threshold=0.45, score_threshold=0.3,
                             max_detections=60, class_aware=class_aware)
        count = int(out["num_detections"][b])
        assert count == len(kept) > 5
        np.testing.assert_array_equal(np.asarray(out["indices"][b, :count]), kept)
        np.testing.assert_array_equal(np.asarray(out["boxes"][b, :count]), boxes[b, kept])
        np.testing.assert_array_equal(np.asarray(out["classes"][b, :count]), classes[b, kept])
        assert np.all(np.asarray(out["classes"][b, count:]) == -1) and not np.asarray(out["scores"][b, count:]).any()


def test_nms_thresholds_are_strict():
    boxes = np.array([[0, 0, 1, 1], [0, 0, 1, 0.5], [2, 2, 3, 3], [5, 5, 6, 6]], np.float32)
    scores = np.array([0.9, 0.8, 0.25, 0.26], np.float32)
    kept = nms_image(boxes, scores, iou_threshold=0.5, score_threshold=0.25)
    # box 1 overlaps box 0 by exactly 0.5 (kept); box 2 scores exactly the threshold (dropped)
    assert kept["indices"].tolist() == [0, 1, 3]
    assert reference_nms(boxes, scores, iou_threshold=0.5, score_threshold=0.25).tolist() == [0, 1, 3]


def test_class_aware_keeps_overlapping_boxes_of_other_classes_in_pixels():
    boxes = np.array([[100, 100, 300, 300], [105, 100, 300, 305], [110, 110, 290, 290]], np.float32)
    scores = np.array([0.9, 0.8, 0.7], np.float32)
    classes = np.array([0, 1, 0])
    assert nms_image(boxes, scores, classes)["indices"].tolist() == [0, 1]
    assert nms_image(boxes, scores, classes, class_aware=False)["indices"].tolist() == [0]
    per_class = np.zeros((3, 2), np.float32)
    per_class[np.arange(3), classes] = scores
    out = non_max_suppression(boxes, per_class, max_detections=5)  # [N, K] scores: best class per box
    assert int(out["num_detections"]) == 2 and np.asarray(out["classes"]).tolist() == [0, 1, -1, -1, -1]


def test_nms_with_no_candidates_and_the_cap():
    rng = np.random.default_rng(3)
    boxes = _random_boxes(rng, 50)
    empty = nms_image(boxes, np.zeros(50, np.float32))
    assert all(len(v) == 0 for v in empty.values())
    far = np.array([[i * 2.0, 0, i * 2.0 + 1, 1] for i in range(50)], np.float32)
    assert len(nms_image(far, np.linspace(0.3, 0.9, 50), max_detections=7)["indices"]) == 7


@pytest.mark.parametrize("class_aware", [True, False])
def test_fused_detection_equals_decode_then_nms(class_aware):
    """Decoding only the candidates whose objectness passes the threshold changes nothing."""
    rng = np.random.default_rng(4)
    anchors = np.array([[0.05, 0.06], [0.1, 0.1], [0.2, 0.15], [0.3, 0.4], [0.5, 0.5], [0.7, 0.6]], np.float32)
    raw = [rng.normal(0, 1, (3, g, g + 1, 2, 9)).astype(np.float32) for g in (8, 4, 2)]
    for r in raw:
        r[..., 4] = rng.normal(-1, 2, r.shape[:4])
    settings = {"iou_threshold": 0.4, "score_threshold": 0.2, "max_detections": 25, "class_aware": class_aware}
    fused = detect_from_outputs(raw, anchors, **settings)
    decoded = decode_predictions(raw, anchors)
    plain = non_max_suppression(decoded["boxes"], decoded["scores"], decoded["classes"], **settings)
    assert int(np.asarray(fused["num_detections"]).min()) > 3
    for key in plain:
        np.testing.assert_allclose(np.asarray(fused[key]), np.asarray(plain[key]), atol=1e-6)
