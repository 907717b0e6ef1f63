"""Box geometry, the YOLO box encoding and k-means anchors."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import requires_shared
from foveal.ops import (
    anchors_for,
    center_to_corners,
    clip_boxes,
    corners_to_center,
    decode_yolo,
    encode_yolo,
    iou_matrix,
    kmeans_anchors,
)
from foveal.ops.boxes import iou_matrix_tensor

from .conftest import RACCOON


def test_conversions_and_iou():
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 50, (3, 5, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(1, 20, (3, 5, 2))], -1)
    np.testing.assert_allclose(center_to_corners(corners_to_center(boxes)), boxes)
    a, b = boxes[0], boxes[1]
    m = iou_matrix(a, b)
    assert m.shape == (5, 5) and np.allclose(np.diag(iou_matrix(a, a)), 1)
    np.testing.assert_allclose(np.asarray(iou_matrix_tensor(a, b)), m, atol=1e-5)
    np.testing.assert_array_equal(clip_boxes([[-5, 2, 70, 9]], 64, 48), [[0, 2, 64, 9]])


def test_yolo_encoding_round_trip():
    rng = np.random.default_rng(1)
    cells = rng.integers(0, 13, (20, 2)).astype(float)
    anchors = rng.uniform(0.5, 5, (20, 2))
    boxes = np.concatenate([cells + rng.uniform(0.01, 0.99, (20, 2)), rng.uniform(0.2, 8, (20, 2))], -1)
    np.testing.assert_allclose(np.asarray(decode_yolo(encode_yolo(boxes, cells, anchors), cells, anchors)),
                               boxes, rtol=1e-4)


def test_kmeans_anchors_are_seeded_and_sorted():
    rng = np.random.default_rng(2)
    wh = np.concatenate([rng.normal(s, s / 10, (50, 2)) for s in (10, 40, 120)])
    anchors, mean_iou = kmeans_anchors(wh, 3, seed=0)
    again, _ = kmeans_anchors(wh, 3, seed=0)
    np.testing.assert_array_equal(anchors, again)
    assert np.all(np.diff(anchors.prod(1)) > 0) and mean_iou > 0.75
    np.testing.assert_allclose(anchors[:, 0], [10, 40, 120], rtol=0.1)
    with pytest.raises(Exception, match="distinct"):
        kmeans_anchors(wh[:2], 3)


@requires_shared("raccoon")
def test_anchors_for_raccoon():
    from foveal.data.boxes import load_boxes

    anchors, mean_iou = anchors_for(load_boxes(RACCOON)["train"], 5, 416, seed=0)
    assert anchors.shape == (5, 2) and 0.5 < mean_iou <= 1 and anchors.max() <= 416
