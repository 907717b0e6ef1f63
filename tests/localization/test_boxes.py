"""Box annotation readers: Pascal VOC and CSV, each bad input a DataError naming the file."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from conftest import requires_shared
from foveal.data.boxes import load_boxes, read_box_csv, read_voc, split_boxed
from foveal.data.boxes.voc import load_voc
from foveal.errors import DataError

from .conftest import RACCOON, voc_xml, write_image


def test_voc_folder_with_list_files(voc_root):
    splits = load_voc(voc_root)
    assert set(splits) == {"train", "test"}
    train, test = splits["train"], splits["test"]
    assert train.class_names == test.class_names == ["cat", "dog"]
    assert [p.rsplit("/", 1)[-1] for p in train.paths] == ["a.jpg", "b.jpg"]
    np.testing.assert_array_equal(train.boxes[0], [[10, 5, 40, 30]])
    np.testing.assert_array_equal(train.labels[1], [1, 0])
    np.testing.assert_array_equal(train.difficult[1], [False, True])
    np.testing.assert_array_equal(train.image_sizes, [[64, 48], [80, 60]])
    np.testing.assert_allclose(test.boxes[0], [[20.5, 10, 45, 49.5]])
    assert train.num_boxes == 3 and train.counts() == {"cat": 2, "dog": 1}


def test_largest_box_and_normalisation(voc_root):
    train = load_voc(voc_root)["train"]
    boxes, labels, has_box = train.largest()
    np.testing.assert_array_equal(boxes[1], [0, 0, 80, 60])  # the dog, not the small cat
    assert labels.tolist() == [0, 1] and has_box.all()
    norm, _, _ = train.normalized_largest()
    np.testing.assert_allclose(norm[0], [10 / 64, 5 / 48, 40 / 64, 30 / 48])


def test_read_voc_without_lists_and_load_boxes_dispatch(voc_root):
    data = read_voc(voc_root / "annotations")
    assert len(data) == 3 and data.num_boxes == 4
    assert set(load_boxes(voc_root)) == {"train", "test"}
    subset = read_voc(voc_root / "annotations", list_file=voc_root / "test.txt")
    assert len(subset) == 1


def _single(root, objects, width=64, height=48, class_names=None, **kw):
    write_image(root / "images" / "x.jpg", width, height)
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    (root / "annotations" / "x.xml").write_text(voc_xml("x.jpg", width, height, objects))
    return read_voc(root / "annotations", class_names=class_names, **kw)


@pytest.mark.parametrize("objects, message", [
    ([("cat", 30, 5, 30, 20)], "degenerate box"),
    ([("cat", 30, 25, 40, 20)], "degenerate box"),
    ([("cat", -20, 5, 30, 20)], "outside the 64x48 image"),
    ([("cat", 10, 5, 130, 20)], "outside the 64x48 image"),
    ([("cat", 10, "a", 30, 20)], "non-numeric"),
])
def test_bad_boxes_are_data_errors_naming_the_file(tmp_path, objects, message):
    with pytest.raises(DataError) as info:
        _single(tmp_path, objects)
    assert message in str(info.value) and "x.xml" in str(info.value)


def test_box_slightly_outside_is_clipped_with_a_warning(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="foveal"):
        data = _single(tmp_path, [("cat", -2, 0, 65, 48)])
    np.testing.assert_array_equal(data.boxes[0], [[0, 0, 64, 48]])
    assert "clipped" in caplog.text and "x.xml" in caplog.text


def test_unknown_class_missing_image_and_broken_xml(tmp_path):
    with pytest.raises(DataError, match="unknown class 'cat'"):
        _single(tmp_path / "u", [("cat", 1, 1, 20, 20)], class_names=["dog"])
    root = tmp_path / "m"
    (root / "images").mkdir(parents=True)
    (root / "annotations").mkdir()
    (root / "annotations" / "gone.xml").write_text(voc_xml("gone.jpg", 10, 10, [("cat", 1, 1, 5, 5)]))
    with pytest.raises(DataError, match=r"gone\.xml.*image 'gone\.jpg' not found"):
        read_voc(root / "annotations")
    (root / "annotations" / "gone.xml").write_text("<annotation><filename>")
    with pytest.raises(DataError, match=r"gone\.xml: unreadable XML"):
        read_voc(root / "annotations")


def test_skip_invalid_skips_and_counts(voc_root, caplog):
    (voc_root / "annotations" / "bad.xml").write_text(voc_xml("a.jpg", 64, 48, [("cat", 30, 5, 10, 30)]))
    (voc_root / "annotations" / "broken.xml").write_text("not xml")
    with caplog.at_level(logging.WARNING, logger="foveal"):
        data = read_voc(voc_root / "annotations", skip_invalid=True)
    assert len(data) == 3
    assert sorted(f.rsplit("/", 1)[-1] for f, _ in data.info["skipped"]) == ["bad.xml", "broken.xml"]
    assert "skipping" in caplog.text


def test_list_file_naming_an_unknown_image(voc_root):
    (voc_root / "test.txt").write_text("c\nnope.jpg\n")
    with pytest.raises(DataError, match="nope"):
        load_voc(voc_root)


CSV_HEADER = "filename,width,height,class,xmin,ymin,xmax,ymax\n"


def test_csv_rows_group_by_image(tmp_path):
    write_image(tmp_path / "images" / "p.png", 40, 30)
    write_image(tmp_path / "images" / "q.png", 20, 20)
    csv_path = tmp_path / "labels.csv"
    csv_path.write_text(CSV_HEADER + "p.png,40,30,zebra,1,2,20,25\nq.png,20,20,ant,0,0,5,5\n"
                        "p.png,40,30,ant,25,5,39,29\n")
    data = read_box_csv(csv_path)
    assert data.class_names == ["ant", "zebra"]
    assert [p.rsplit("/", 1)[-1] for p in data.paths] == ["p.png", "q.png"]
    np.testing.assert_array_equal(data.boxes[0], [[1, 2, 20, 25], [25, 5, 39, 29]])
    assert data.labels[0].tolist() == [1, 0]
    assert list(load_boxes(csv_path)) == ["train"]


@pytest.mark.parametrize("body, message", [
    ("p.png,40,30,zebra,30,2,20,25\n", "degenerate box"),
    ("p.png,40,30,zebra,1,2,20,90\n", "outside the 40x30 image"),
    ("p.png,40,30,zebra,1,two,20,25\n", "non-numeric"),
    ("nothere.png,40,30,zebra,1,2,20,25\n", "image 'nothere.png' not found"),
    ("p.png,40,30,,1,2,20,25\n", "a box without a class"),
])
def test_csv_bad_rows(tmp_path, body, message):
    write_image(tmp_path / "p.png", 40, 30)
    csv_path = tmp_path / "labels.csv"
    csv_path.write_text(CSV_HEADER + body)
    with pytest.raises(DataError) as info:
        read_box_csv(csv_path)
    assert message in str(info.value) and "labels.csv" in str(info.value)
    if "not found" not in message:
        assert len(read_box_csv(csv_path.parent / _with_good_row(csv_path), skip_invalid=True)) == 1


def _with_good_row(csv_path):
    write_image(csv_path.parent / "ok.png", 10, 10)
    other = csv_path.parent / "mixed.csv"
    other.write_text(csv_path.read_text() + "ok.png,10,10,zebra,1,1,9,9\n")
    return other.name


def test_csv_missing_columns_and_unknown_class(tmp_path):
    csv_path = tmp_path / "labels.csv"
    csv_path.write_text("filename,class,x,y\np.png,cat,1,2\n")
    with pytest.raises(DataError, match="missing column"):
        read_box_csv(csv_path)
    write_image(tmp_path / "p.png", 40, 30)
    csv_path.write_text(CSV_HEADER + "p.png,40,30,cat,1,2,20,25\n")
    with pytest.raises(DataError, match="unknown class 'cat'"):
        read_box_csv(csv_path, class_names=["dog"])


def test_split_is_seeded_and_disjoint(voc_root):
    data = read_voc(voc_root / "annotations")
    parts = split_boxed(data, {"test": 0.34}, seed=3)
    again = split_boxed(data, {"test": 0.34}, seed=3)
    assert len(parts["test"]) == 1 and len(parts["train"]) == 2
    assert set(parts["test"].paths) | set(parts["train"].paths) == set(data.paths)
    assert list(parts["test"].paths) == list(again["test"].paths)


@requires_shared("raccoon")
def test_real_raccoon_annotations_parse():
    splits = load_boxes(RACCOON)
    assert len(splits["train"]) == 160 and len(splits["test"]) == 40
    assert splits["train"].class_names == ["raccoon"]
    assert splits["train"].num_boxes + splits["test"].num_boxes == 217
    for part in splits.values():
        sizes = np.repeat(part.image_sizes, [len(b) for b in part.boxes], axis=0)
        boxes = np.concatenate(part.boxes)
        assert (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all()
        assert (boxes[:, :2] >= 0).all() and (boxes[:, 2:] <= sizes).all()
