"""Faster R-CNN's box machinery (foveal.ops.rcnn) against NumPy references written from the papers."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from foveal.detection.postprocess import reference_nms
from foveal.ops import rcnn
from foveal.ops.boxes import iou_matrix


def random_boxes(rng, count, low=0.0, high=100.0, min_side=2.0):
    xy = rng.uniform(low, high - min_side, (count, 2))
    wh = rng.uniform(min_side, (high - low) / 2, (count, 2))
    return np.concatenate([xy, np.minimum(xy + wh, high)], axis=1).astype(np.float32)


def test_nine_anchors_have_the_sizes_and_ratios_asked_for():
    base = rcnn.base_anchors([32, 64, 128], [0.5, 1.0, 2.0])
    assert base.shape == (9, 4)
    w, h = base[:, 2] - base[:, 0], base[:, 3] - base[:, 1]
    np.testing.assert_allclose(np.sqrt(w * h), np.repeat([32, 64, 128], 3), rtol=1e-5)
    np.testing.assert_allclose(h / w, np.tile([0.5, 1.0, 2.0], 3), rtol=1e-5)
    np.testing.assert_allclose(base[:, :2] + base[:, 2:], 0, atol=1e-5)  # centred on 0


def test_anchor_grid_is_row_major_over_cells_then_anchors():
    base = rcnn.base_anchors([8, 16], [1.0, 2.0])
    grid = rcnn.anchor_grid(3, 5, 16, base).numpy()
    expected = [base[a] + [(j + 0.5) * 16, (i + 0.5) * 16] * 2 for i in range(3) for j in range(5) for a in range(4)]
    np.testing.assert_allclose(grid, np.array(expected), rtol=1e-6)


def test_encode_decode_follow_the_papers_parametrisation_and_invert():
    rng = np.random.default_rng(0)
    boxes, anchors = random_boxes(rng, 50), random_boxes(rng, 50)
    weights = (10.0, 10.0, 5.0, 5.0)
    t = rcnn.encode_boxes(boxes, anchors, weights).numpy()
    wa, ha = anchors[:, 2] - anchors[:, 0], anchors[:, 3] - anchors[:, 1]
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    xa, ya = anchors[:, 0] + wa / 2, anchors[:, 1] + ha / 2
    x, y = boxes[:, 0] + w / 2, boxes[:, 1] + h / 2
    expected = np.stack([10 * (x - xa) / wa, 10 * (y - ya) / ha, 5 * np.log(w / wa), 5 * np.log(h / ha)], axis=1)
    np.testing.assert_allclose(t, expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(rcnn.decode_boxes(t, anchors, weights).numpy(), boxes, atol=1e-3)
    huge = rcnn.decode_boxes(np.array([[0, 0, 50.0, 50.0]]), np.array([[0, 0, 10.0, 10.0]])).numpy()
    assert np.isfinite(huge).all()  # tw clamped at log(1000/16)


def reference_labels(anchors, gt, pos=0.7, neg=0.3):
    """Faster R-CNN sec. 3.1.2 in loops: > pos or best for some box -> 1; < neg -> 0; else -1."""
    labels = np.full(len(anchors), -1)
    if not len(gt):
        return np.zeros(len(anchors), int), np.zeros(len(anchors), int)
    iou = iou_matrix(anchors, gt).astype(np.float64)
    best, matched = iou.max(axis=1), iou.argmax(axis=1)
    labels[best < neg] = 0
    labels[best > pos] = 1
    for g in range(len(gt)):
        top = iou[:, g].max()
        if top > 0:
            labels[np.isclose(iou[:, g], top, rtol=0, atol=1e-6)] = 1
    return labels, matched


def test_anchor_labels_equal_the_reference():
    rng = np.random.default_rng(1)
    anchors = rcnn.anchor_grid(6, 6, 16, rcnn.base_anchors([24, 48], [0.5, 1.0, 2.0])).numpy()
    gt = np.zeros((3, 4, 4), np.float32)
    valid = np.zeros((3, 4), bool)
    for b, count in enumerate((1, 3, 0)):
        gt[b, :count] = random_boxes(rng, count, high=96, min_side=16)
        valid[b, :count] = True
    labels, matched = (v.numpy() for v in rcnn.label_anchors(anchors, gt, valid))
    for b in range(3):
        want, want_matched = reference_labels(anchors, gt[b][valid[b]])
        np.testing.assert_array_equal(labels[b], want)
        positive = want == 1
        np.testing.assert_array_equal(matched[b][positive], want_matched[positive])
    assert (labels[1] == 1).sum() >= 3 and (labels[2] == 1).sum() == 0  # every box has an anchor; none: no positive


def test_sampling_keeps_256_at_most_half_positive():
    tf.random.set_seed(0)
    labels = np.full((2, 3000), 0, np.int32)
    labels[0, :500] = 1  # many positives: capped at 128
    labels[1, :10] = 1  # few positives: negatives fill up to 256
    labels[:, -100:] = -1
    out = rcnn.sample_labels(labels, batch=256, positive_fraction=0.5).numpy()
    assert ((out == 1).sum(axis=1) == [128, 10]).all()
    assert ((out >= 0).sum(axis=1) == 256).all()
    assert ((out == 1) <= (labels == 1)).all() and ((out == 0) <= (labels == 0)).all()


def test_proposals_equal_decode_clip_filter_nms_in_numpy():
    rng = np.random.default_rng(2)
    anchors = rcnn.anchor_grid(4, 5, 16, rcnn.base_anchors([16, 40], [0.5, 1.0, 2.0])).numpy()
    count = len(anchors)
    logits = rng.normal(size=(2, count)).astype(np.float32)
    deltas = rng.normal(scale=0.3, size=(2, count, 4)).astype(np.float32)
    deltas[0, :5, 2] = -6  # a few tiny boxes, dropped by min_size
    boxes, scores, valid = (v.numpy() for v in rcnn.generate_proposals(
        logits, deltas, anchors, (64, 80), pre_nms=60, post_nms=25, nms_iou=0.7, min_size=2.0))
    assert boxes.shape == (2, 25, 4)
    for b in range(2):
        top = np.argsort(-logits[b], kind="stable")[:60]
        decoded = rcnn.decode_boxes(deltas[b][top], anchors[top]).numpy()
        decoded = np.clip(decoded, 0, [80, 64, 80, 64])
        keep = ((decoded[:, 2] - decoded[:, 0]) >= 2) & ((decoded[:, 3] - decoded[:, 1]) >= 2)
        cand, cand_scores = decoded[keep], 1 / (1 + np.exp(-logits[b][top][keep]))
        kept = reference_nms(cand, cand_scores, iou_threshold=0.7, score_threshold=-1, max_detections=25)
        n = len(kept)
        assert valid[b].sum() == n and valid[b][:n].all()
        np.testing.assert_allclose(boxes[b][:n], cand[kept], atol=1e-3)
        np.testing.assert_allclose(scores[b][:n], cand_scores[kept], atol=1e-5)
        np.testing.assert_array_equal(boxes[b][n:], 0)


def test_roi_sampling_takes_a_quarter_foreground_with_the_right_targets():
    tf.random.set_seed(1)
    rng = np.random.default_rng(4)
    gt = np.array([[[10, 10, 50, 60], [60, 20, 90, 40]], [[5, 5, 30, 30], [0, 0, 0, 0]]], np.float32)
    classes = np.array([[2, 0], [1, -1]], np.int32)
    proposals = np.stack([random_boxes(rng, 300), random_boxes(rng, 300)])
    proposals[0, :40] = gt[0, 0] + rng.normal(scale=2, size=(40, 4))  # near-copies: foreground
    valid = np.ones((2, 300), bool)
    valid[1, 250:] = False
    out = rcnn.sample_rois(proposals, valid, gt, classes, classes >= 0, batch=64, positive_fraction=0.25)
    rois, labels, targets = (out[k].numpy() for k in ("rois", "labels", "targets"))
    assert rois.shape == (2, 64, 4) and labels.shape == (2, 64)
    assert (labels[0] > 0).sum() == 16 and (labels[0] >= 0).sum() == 64  # a quarter of 64
    for b in range(2):
        real = gt[b][classes[b] >= 0]
        for roi, label, target in zip(rois[b], labels[b], targets[b]):
            if label < 0:
                continue
            iou = iou_matrix(roi[None], real)[0]
            if label == 0:
                assert iou.max() < 0.5
            else:
                assert iou.max() >= 0.5 and label == classes[b][iou.argmax()] + 1
                np.testing.assert_allclose(rcnn.decode_boxes(target, roi, (10, 10, 5, 5)).numpy(), real[iou.argmax()],
                                           atol=1e-2)
    assert (labels[1] == 2).sum() >= 1  # the ground-truth box itself is a candidate
    empty = rcnn.sample_rois(proposals[:1], valid[:1], np.zeros((1, 2, 4), np.float32), np.full((1, 2), -1),
                             np.zeros((1, 2), bool), batch=64)
    assert (empty["labels"].numpy() == 0).all()  # an image without boxes gives background RoIs only


def test_smooth_l1_is_quadratic_inside_and_linear_outside():
    x = np.array([-3.0, -1.0, -0.5, 0.0, 0.5, 2.0], np.float32)
    np.testing.assert_allclose(rcnn.smooth_l1(x).numpy(), [2.5, 0.5, 0.125, 0.0, 0.125, 1.5])


@pytest.mark.parametrize("fn", [rcnn.pairwise_iou])
def test_pairwise_iou_equals_the_numpy_one(fn):
    rng = np.random.default_rng(5)
    a, b = random_boxes(rng, 7), random_boxes(rng, 9)
    np.testing.assert_allclose(fn(a, b).numpy(), iou_matrix(a, b), atol=1e-6)
