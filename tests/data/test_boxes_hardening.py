"""Box datasets: a COCO file without annotations is refused; YOLO rounding never warns (issue #20)."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
from PIL import Image

from foveal.data.boxes.coco import read_coco
from foveal.data.boxes.source import check_box
from foveal.data.boxes.validate import validate_boxes
from foveal.data.boxes.yolo import yolo_lines
from foveal.errors import DataError


def _coco(tmp_path, **drop):
    Image.new("RGB", (20, 10)).save(tmp_path / "a.jpg")
    data = {"images": [{"id": 1, "file_name": "a.jpg", "width": 20, "height": 10}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 5, 5]}],
            "categories": [{"id": 1, "name": "cat"}]}
    for key in drop:
        del data[key]
    path = tmp_path / "instances_train.json"
    path.write_text(json.dumps(data))
    return path


def test_coco_without_annotations_key_is_refused(tmp_path):
    path = _coco(tmp_path, annotations=True)
    with pytest.raises(DataError, match="annotations"):
        read_coco(path, images=tmp_path)
    with pytest.raises(DataError, match="annotations"):
        validate_boxes(str(path))


def test_coco_with_annotations_still_reads(tmp_path):
    assert len(read_coco(_coco(tmp_path), images=tmp_path)) == 1


def _parse(line: str, width: int, height: int) -> tuple[float, float, float, float]:
    _, cx, cy, w, h = (float(v) for v in line.split())
    return ((cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height)


def test_yolo_round_trip_of_edge_boxes_never_warns(caplog):
    rng = np.random.default_rng(0)
    with caplog.at_level(logging.WARNING, logger="foveal"):
        for _ in range(300):
            width, height = (int(v) for v in rng.integers(97, 4000, 2))
            x0, y0 = (float(v) for v in rng.integers(0, 50, 2))
            box = np.array([[x0, y0, width, height]], np.float64)  # touches the right and bottom edges
            [line] = yolo_lines(box, np.array([0]), width, height)
            back = check_box(_parse(line, width, height), width, height, where="t")
            assert np.abs(back - box[0]).max() < 0.5
    assert "clipped" not in caplog.text


def test_half_a_pixel_is_tolerated_silently_more_is_reported(caplog):
    with caplog.at_level(logging.WARNING, logger="foveal"):
        assert check_box((-0.4, 0, 100.3, 50), 100, 50, where="t").tolist() == [0, 0, 100, 50]
        assert "clipped" not in caplog.text
        check_box((-2, 0, 100, 50), 100, 50, where="t")
    assert "clipped" in caplog.text
