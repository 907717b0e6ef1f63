"""The YOLO loss: targets built in-graph, responsible anchors, the ignore threshold."""

from __future__ import annotations

import numpy as np
import pytest

from foveal.detection.loss import YoloLoss, assign_targets
from foveal.ops.boxes import corners_to_center, encode_yolo, wh_iou

ANCHORS_3 = np.array([[0.04, 0.05], [0.08, 0.1], [0.12, 0.08], [0.2, 0.25], [0.3, 0.2], [0.25, 0.4],
                      [0.5, 0.45], [0.6, 0.8], [0.9, 0.85]], np.float32)
GRIDS_3 = [(8, 10), (4, 5), (2, 3)]  # (gh, gw) per scale, finest first; not square on purpose


def _targets():
    boxes = np.array([
        [[0.10, 0.10, 0.15, 0.16], [0.40, 0.30, 0.70, 0.50], [0.05, 0.05, 0.95, 0.90], [0, 0, 0, 0]],
        [[0.60, 0.60, 0.85, 0.99], [0.00, 0.50, 0.13, 0.58], [0, 0, 0, 0], [0, 0, 0, 0]],
    ], np.float32)
    classes = np.array([[0, 2, 1, -1], [1, 0, -1, -1]], np.int32)
    return boxes, classes


def _expected_assignment(boxes, classes, anchors, grids, per_scale):
    """NumPy: (scale, image, row, col, anchor, encoded target) of every real box."""
    rows = []
    for b, m in zip(*np.nonzero(classes >= 0)):
        centre = corners_to_center(boxes[b, m])
        best = int(np.argmax(wh_iou(centre[2:], anchors)[0]))
        scale, anchor = divmod(best, per_scale)
        gh, gw = grids[scale]
        col, row = int(centre[0] * gw), int(centre[1] * gh)
        grid_box = centre * [gw, gh, gw, gh]
        t = encode_yolo(grid_box, np.array([col, row], float), anchors[best] * [gw, gh])
        rows.append((scale, b, row, col, anchor, t, classes[b, m]))
    return rows


def _assigned(target: dict) -> dict[str, np.ndarray]:
    """The rows of one scale's dense assignment that are real boxes."""
    real = np.asarray(target["mask"]) > 0
    return {k: np.asarray(v)[real] for k, v in target.items() if k != "mask"}


def _raw(grids, per_scale, classes_k, fill=0.0):
    return [np.full((2, gh, gw, per_scale, 5 + classes_k), fill, np.float32) for gh, gw in grids]


def test_responsible_anchor_is_best_shape_across_scales():
    boxes, classes = _targets()
    got = [_assigned(g) for g in assign_targets(boxes, classes, ANCHORS_3, GRIDS_3, 3)]
    expected = _expected_assignment(boxes, classes, ANCHORS_3, GRIDS_3, 3)
    assert sum(len(g["indices"]) for g in got) == 5
    scales_used = {e[0] for e in expected}
    assert scales_used == {0, 1, 2}  # small, medium and large boxes land on different scales
    for scale in range(3):
        mine = sorted(map(tuple, got[scale]["indices"].tolist()))
        theirs = sorted((b, r, c, a) for s, b, r, c, a, *_ in expected if s == scale)
        assert mine == theirs
    # the big box goes to the coarsest scale's biggest anchor
    assert (2, 0, 0, 1, 2) in {(e[0], *e[1:5]) for e in expected}


def test_targets_follow_the_grid_size():
    boxes, classes = _targets()
    one_scale = ANCHORS_3[3:6]
    for grid in ((13, 13), (19, 11)):
        (got,) = [_assigned(g) for g in assign_targets(boxes, classes, one_scale, [grid], 3)]
        expected = _expected_assignment(boxes, classes, one_scale, [grid], 3)
        order = np.lexsort(got["indices"].T[::-1])
        want = sorted(expected, key=lambda e: e[1:5])
        np.testing.assert_array_equal(got["indices"][order], [e[1:5] for e in want])
        np.testing.assert_array_equal(got["classes"][order], [e[6] for e in want])
        np.testing.assert_allclose(got["twh"][order], [e[5][2:] for e in want], rtol=1e-5, atol=1e-6)
        xy = got["xy"][order]
        np.testing.assert_allclose(np.log(xy / (1 - xy)), [e[5][:2] for e in want], rtol=1e-4, atol=1e-4)


def _perfect_raw(boxes, classes, anchors, grids, per_scale, k):
    raw = _raw(grids, per_scale, k, fill=0.0)
    for scale, b, row, col, anchor, t, cls in _expected_assignment(boxes, classes, anchors, grids, per_scale):
        raw[scale][b, row, col, anchor, :4] = t
        raw[scale][b, row, col, anchor, 4] = 30.0
        raw[scale][b, row, col, anchor, 5 + cls] = 30.0
    for r in raw:  # every other prediction: confident background
        background = r[..., 4] == 0
        r[..., 4][background] = -30.0
    return raw


def test_loss_is_zero_for_predictions_equal_to_encoded_targets():
    boxes, classes = _targets()
    loss = YoloLoss(ANCHORS_3)
    raw = _perfect_raw(boxes, classes, ANCHORS_3, GRIDS_3, 3, 3)
    parts = {k: float(v) for k, v in loss.components({"boxes": boxes, "classes": classes}, raw).items()}
    assert parts["coord"] < 1e-6 and parts["obj"] < 1e-6 and parts["noobj"] < 1e-6 and parts["class"] < 1e-6
    raw[2][0, 0, 1, 2, 2] += 0.5  # the big box's width logit off by 0.5
    worse = loss.components({"boxes": boxes, "classes": classes}, raw)
    weight = 2 - 0.9 * 0.85
    assert float(worse["coord"]) == pytest.approx(weight * 0.25 / 2, rel=1e-4)  # averaged over 2 images


def test_ignore_threshold_leaves_good_non_responsible_predictions_alone():
    """A confident prediction overlapping a ground truth above the threshold costs no no-object loss."""
    anchors = np.array([[0.2, 0.2], [0.3, 0.3]], np.float32)
    boxes = np.array([[[0.3, 0.3, 0.6, 0.6]]], np.float32)
    classes = np.array([[0]], np.int32)
    loss = YoloLoss(anchors, ignore_threshold=0.5)

    def noobj(box, logit):
        raw = np.full((1, 4, 4, 2, 6), 0.0, np.float32)
        raw[..., 4] = -30.0
        centre = corners_to_center(np.array(box, np.float32)) * 4
        cell = np.floor(centre[:2])
        # anchor 0 is not responsible (anchor 1 matches the 0.3x0.3 box exactly)
        raw[0, int(cell[1]), int(cell[0]), 0, :4] = encode_yolo(centre, cell, anchors[0] * 4)
        raw[0, int(cell[1]), int(cell[0]), 0, 4] = logit
        return float(loss.components({"boxes": boxes, "classes": classes}, [raw])["noobj"])

    baseline = noobj([0.3, 0.3, 0.6, 0.6], -30.0)
    assert noobj([0.32, 0.31, 0.6, 0.61], 5.0) == pytest.approx(baseline, abs=1e-5)  # IoU ~0.87: ignored
    far = noobj([0.0, 0.0, 0.2, 0.2], 5.0)  # IoU 0: a false positive
    assert far - baseline == pytest.approx(np.log1p(np.exp(5.0)), rel=1e-4)


def test_a_stricter_ignore_threshold_penalises_the_close_prediction():
    anchors = np.array([[0.2, 0.2], [0.3, 0.3]], np.float32)
    boxes = np.array([[[0.3, 0.3, 0.6, 0.6]]], np.float32)
    classes = np.array([[0]], np.int32)
    raw = np.full((1, 4, 4, 2, 6), -30.0, np.float32)
    raw[..., :4] = 0.0
    centre = corners_to_center(np.array([0.32, 0.31, 0.6, 0.61], np.float32)) * 4
    raw[0, 1, 1, 0, :4] = encode_yolo(centre, np.array([1.0, 1.0]), anchors[0] * 4)
    raw[0, 1, 1, 0, 4] = 5.0
    targets = {"boxes": boxes, "classes": classes}
    lenient = float(YoloLoss(anchors, ignore_threshold=0.5).components(targets, [raw])["noobj"])
    strict = float(YoloLoss(anchors, ignore_threshold=0.95).components(targets, [raw])["noobj"])
    assert strict - lenient == pytest.approx(np.log1p(np.exp(5.0)), rel=1e-4)


def test_padding_only_batch_and_weights():
    anchors = np.array([[0.2, 0.2]], np.float32)
    raw = np.zeros((2, 3, 3, 1, 7), np.float32)
    empty = {"boxes": np.zeros((2, 3, 4), np.float32), "classes": -np.ones((2, 3), np.int32)}
    for targets in (empty, {"boxes": np.zeros((2, 0, 4), np.float32), "classes": np.zeros((2, 0), np.int32)}):
        parts = YoloLoss(anchors).components(targets, [raw])
        assert float(parts["coord"]) == float(parts["obj"]) == float(parts["class"]) == 0.0
        # every one of the 9 predictions is background: BCE(0, logit 0) = log 2 each
        assert float(parts["noobj"]) == pytest.approx(9 * np.log(2), rel=1e-5)
    assert float(YoloLoss(anchors, lambda_noobj=2.0)(empty, [raw])) == pytest.approx(18 * np.log(2), rel=1e-5)
    config = YoloLoss(anchors, lambda_coord=3.0).get_config()
    assert YoloLoss.from_config(config).get_config() == config
