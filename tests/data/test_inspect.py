"""inspect_dataset reports sizes, balance and problems; bad files never make it raise."""

from __future__ import annotations

import json

import numpy as np
import pytest

from foveal.data.inspect import format_inspection, inspect_dataset
from foveal.data.readers.tfrecord import write_tfrecord
from foveal.data.source import LabeledImages
from foveal.errors import DataError


def test_folder_report_with_bad_files(two_class_folder, write_image):
    root = two_class_folder(per_class=4)
    write_image(root / "cat" / "wide.jpg", "RGB", size=(12, 5))
    (root / "dog" / "broken.png").write_bytes(b"\x89PNG but not really")
    (root / "dog" / "notes.txt").write_text("hi")
    write_image(root / "dog" / "huge.png", "L", size=(40, 40))

    report = inspect_dataset(str(root), max_image_pixels=1000)
    json.dumps(report)  # serialisable as it is
    train = report["splits"]["train"]
    assert report["format"] == "folder" and report["class_names"] == ["cat", "dog"]
    assert train["class_counts"] == {"cat": 5, "dog": 4} and train["num_images"] == 9
    assert train["imbalance_ratio"] == 1.25
    problems = {p["file"].rsplit("/", 1)[1]: p["problem"] for p in train["problems"]}
    assert problems == {
        "broken.png": "not an image file",
        "notes.txt": "not an image file (.txt)",
        "huge.png": "image has 1600 pixels, over the limit of 1000 (decompression bomb?)",
    }
    assert report["num_problems"] == 3
    size = train["image_size"]
    assert (size["min_height"], size["max_height"], size["max_width"]) == (5, 8, 12)
    assert size["most_common"] == "8x8" and size["most_common_count"] == 8
    assert train["channel_modes"] == {"RGB": 5, "L": 4}
    assert train["file_formats"] == {"PNG": 8, "JPEG": 1}

    text = format_inspection(report)
    assert "broken.png: not an image file" in text and "imbalance (max/min): 1.25" in text
    assert "cat" in text and "8x8" in text


@pytest.mark.parametrize("full", [False, True])
def test_truncated_file_reported_by_any_inspection(two_class_folder, full):
    root = two_class_folder()
    target = root / "cat" / "00.png"
    data = target.read_bytes()
    target.write_bytes(data[: len(data) - 30])
    report = inspect_dataset(str(root), full=full)
    [problem] = report["splits"]["train"]["problems"]
    assert problem["file"].endswith("00.png") and problem["problem"].startswith("truncated")


def test_structure_problems_do_not_raise(tmp_path, write_image):
    root = tmp_path / "lonely"
    write_image(root / "cat" / "a.png")
    (root / "empty_class").mkdir()
    report = inspect_dataset(str(root))
    messages = [p["problem"] for p in report["problems"]]
    assert any("'empty_class' has no image files" in m for m in messages)
    assert report["splits"]["train"]["imbalance_ratio"] is None
    assert report["splits"]["train"]["empty_classes"] == ["empty_class"]
    assert "classes without images: empty_class" in format_inspection(report)


def test_array_and_record_reports(tmp_path):
    rng = np.random.default_rng(7)
    x = rng.integers(0, 256, (7, 6, 5, 3), dtype=np.uint8)
    y = np.array([0, 0, 0, 0, 0, 1, 1])
    np.savez(tmp_path / "arrays.npz", x=x, y=y)
    report = inspect_dataset(str(tmp_path / "arrays.npz"))
    train = report["splits"]["train"]
    assert train["array_shape"] == [7, 6, 5, 3] and train["imbalance_ratio"] == 2.5
    assert train["image_size"]["most_common"] == "6x5" and train["channel_modes"] == {"RGB": 7}
    json.dumps(report)

    data = LabeledImages(class_names=["a", "b"], labels=y, images=x, origin="arrays")
    [path] = write_tfrecord(data, tmp_path / "rec" / "train.tfrecord")
    report = inspect_dataset(path)
    train = report["splits"]["train"]
    assert report["format"] == "tfrecord" and train["class_counts"] == {"a": 5, "b": 2}
    assert train["file_formats"] == {"PNG": 7} and train["image_size"]["most_common"] == "6x5"
    assert "tfrecord" in format_inspection(report)


def test_unreadable_spec_raises(tmp_path):
    with pytest.raises(DataError, match="missing"):
        inspect_dataset(str(tmp_path / "missing"))
