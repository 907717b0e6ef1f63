"""COCO/YOLO/VOC readers and writers, conversion round trips, validation reports and the CLI."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

from conftest import requires_shared
from foveal.data.boxes import convert_boxes, load_boxes, validate_boxes
from foveal.data.boxes.cli import add_convert_arguments, convert_command
from foveal.errors import DataError

from .conftest import RACCOON, voc_xml, write_image


def _assert_same(a, b, atol=1e-3):
    assert a.class_names == b.class_names
    da = {p.rsplit("/", 1)[-1]: (x, y, d) for p, x, y, d in zip(a.paths, a.boxes, a.labels, a.difficult)}
    db = {p.rsplit("/", 1)[-1]: (x, y, d) for p, x, y, d in zip(b.paths, b.boxes, b.labels, b.difficult)}
    assert da.keys() == db.keys()
    for name, (boxes, labels, _) in da.items():
        np.testing.assert_allclose(db[name][0], boxes, atol=atol)
        np.testing.assert_array_equal(db[name][1], labels)


@pytest.fixture
def voc_set(tmp_path):
    root = tmp_path / "voc"
    specs = {"a": (64, 48, [("cat", 10, 5, 40, 30)]),
             "b": (80, 60, [("dog", 0, 0, 80, 60), ("cat", 5.5, 5, 15, 15.25)]),
             "c": (50, 50, [("dog", 20.5, 10, 45, 49.5)])}
    for stem, (w, h, objects) in specs.items():
        write_image(root / "images" / f"{stem}.jpg", w, h)
        (root / "annotations").mkdir(parents=True, exist_ok=True)
        (root / "annotations" / f"{stem}.xml").write_text(voc_xml(f"{stem}.jpg", w, h, objects))
    return root


def test_voc_coco_yolo_voc_round_trip(voc_set, tmp_path):
    original = load_boxes(voc_set)["train"]
    coco = convert_boxes(voc_set, tmp_path / "coco", to="coco")
    gt = json.loads((coco / "annotations" / "instances_train.json").read_text())
    assert gt["annotations"][0]["bbox"] == [10.0, 5.0, 30.0, 25.0]
    yolo = convert_boxes(coco, tmp_path / "yolo", to="yolo")
    assert (yolo / "classes.txt").read_text() == "cat\ndog\n" and (yolo / "data.yaml").is_file()
    voc = convert_boxes(yolo, tmp_path / "voc2", to="voc")
    _assert_same(original, load_boxes(voc)["train"])
    _assert_same(original, load_boxes(yolo)["train"])


@requires_shared("raccoon")
def test_round_trip_on_raccoon(tmp_path):
    original = load_boxes(RACCOON)
    voc = convert_boxes(convert_boxes(convert_boxes(RACCOON, tmp_path / "c", to="coco"), tmp_path / "y", to="yolo"),
                        tmp_path / "v", to="voc")
    back = load_boxes(voc)
    assert set(back) == set(original) == {"train", "test"}
    for split in original:
        _assert_same(original[split], back[split])


def test_coco_keeps_crowd_and_images_without_annotations(tmp_path):
    write_image(tmp_path / "images" / "x.jpg", 40, 30)
    write_image(tmp_path / "images" / "y.jpg", 40, 30)
    gt = {"images": [{"id": 7, "file_name": "x.jpg", "width": 40, "height": 30},
                     {"id": 9, "file_name": "y.jpg", "width": 40, "height": 30}],
          "annotations": [{"id": 1, "image_id": 7, "category_id": 3, "bbox": [1, 2, 10, 5], "iscrowd": 1}],
          "categories": [{"id": 3, "name": "person"}, {"id": 1, "name": "bike"}]}
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    data = load_boxes(tmp_path / "gt.json")["train"]
    assert data.class_names == ["bike", "person"] and data.info["category_ids"] == [1, 3]
    assert data.difficult[0].tolist() == [True] and len(data.boxes[1]) == 0
    np.testing.assert_allclose(data.boxes[0], [[1, 2, 11, 7]])
    report = validate_boxes(tmp_path / "gt.json")
    assert report.ok and report.images_without_boxes[0].endswith("y.jpg")


@pytest.mark.parametrize("ann, kind", [
    ({"image_id": 7, "category_id": 3, "bbox": [1, 2, 0, 5]}, "degenerate_box"),
    ({"image_id": 7, "category_id": 3, "bbox": [30, 2, 30, 5]}, "outside_image"),
    ({"image_id": 7, "category_id": 5, "bbox": [1, 2, 3, 5]}, "unknown_class"),
    ({"image_id": 99, "category_id": 3, "bbox": [1, 2, 3, 5]}, "annotation_without_image"),
])
def test_bad_coco_inputs_name_the_file(tmp_path, ann, kind):
    write_image(tmp_path / "images" / "x.jpg", 40, 30)
    write_image(tmp_path / "images" / "ok.jpg", 40, 30)
    gt = {"images": [{"id": 7, "file_name": "x.jpg"}, {"id": 8, "file_name": "ok.jpg"}],
          "annotations": [{"id": 1, **ann}], "categories": [{"id": 3, "name": "person"}]}
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(gt))
    with pytest.raises(DataError, match="bad.json"):
        load_boxes(path)
    report = validate_boxes(path)
    assert list(report.counts()) == [kind, "images_without_boxes"] and "bad.json" in report.problems[kind][0][0]


def test_missing_image_and_broken_json(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps({"images": [{"id": 1, "file_name": "gone.jpg"}],
                                                 "annotations": [], "categories": []}))
    with pytest.raises(DataError, match="gone.jpg"):
        load_boxes(tmp_path / "a.json")
    (tmp_path / "b.json").write_text("{not json")
    with pytest.raises(DataError, match="b.json"):
        load_boxes(tmp_path / "b.json")


def test_bad_yolo_inputs_name_the_file(tmp_path):
    root = tmp_path / "y"
    write_image(root / "images" / "a.jpg", 20, 10)
    (root / "labels").mkdir()
    (root / "classes.txt").write_text("cat\n")
    (root / "labels" / "a.txt").write_text("0 0.5 0.5 0.2\n")
    with pytest.raises(DataError, match="a.txt"):
        load_boxes(root)
    (root / "labels" / "a.txt").write_text("4 0.5 0.5 0.2 0.2\n")
    with pytest.raises(DataError, match="a.txt.*unknown class"):
        load_boxes(root)
    (root / "labels" / "a.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    (root / "labels" / "orphan.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    with pytest.raises(DataError, match="orphan.txt"):
        load_boxes(root)
    data = load_boxes(root, skip_invalid=True)["train"]
    np.testing.assert_allclose(data.boxes[0], [[8, 4, 12, 6]], atol=1e-5)
    assert validate_boxes(root).counts()["annotation_without_image"] == 1


def test_convert_command(voc_set, tmp_path, capsys):
    parser = argparse.ArgumentParser()
    add_convert_arguments(parser)
    args = parser.parse_args([str(voc_set), "--to", "yolo", "--output", str(tmp_path / "out")])
    assert convert_command(args) == 0
    assert (tmp_path / "out" / "labels" / "train" / "b.txt").read_text().count("\n") == 2
    with pytest.raises(DataError, match="unknown box format"):
        convert_boxes(voc_set, tmp_path / "z", to="tfrecord")
