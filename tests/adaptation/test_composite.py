"""Composited cut-outs: deterministic, boxes equal to the masks' extents, read by foveal's COCO readers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from foveal.data.synth.composite import make_composites
from foveal.errors import DataError


def write_objects(root: Path) -> Path:
    """Two 40x40 images, each with a red square (cat 1) and a blue triangle (cat 2) as polygons."""
    (root / "images").mkdir(parents=True)
    (root / "annotations").mkdir()
    images, anns = [], []
    for i in range(2):
        pixels = np.zeros((40, 40, 3), np.uint8)
        pixels[5:25, 5:25] = (220, 30, 30)
        for y in range(20):
            pixels[18 + y, 38 - y:38] = (30, 30, 220)
        Image.fromarray(pixels).save(root / "images" / f"{i}.png")
        images.append({"id": i + 1, "file_name": f"{i}.png", "width": 40, "height": 40})
        anns.append({"id": 2 * i + 1, "image_id": i + 1, "category_id": 1, "iscrowd": 0, "area": 400,
                     "bbox": [5, 5, 20, 20], "segmentation": [[5, 5, 25, 5, 25, 25, 5, 25]]})
        anns.append({"id": 2 * i + 2, "image_id": i + 1, "category_id": 2, "iscrowd": 0, "area": 200,
                     "bbox": [18, 18, 20, 20], "segmentation": [[38, 18, 38, 38, 18, 38]]})
    path = root / "annotations" / "instances_objects.json"
    path.write_text(json.dumps({"images": images, "annotations": anns,
                                "categories": [{"id": 1, "name": "square"}, {"id": 2, "name": "triangle"}]}))
    photos = root / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray(rng.integers(0, 80, (70, 90, 3), dtype=np.uint8)).save(photos / f"bg{i}.png")
    return path


def test_composites_are_deterministic_and_their_boxes_fit_their_masks(tmp_path):
    from pycocotools import mask as mask_utils

    from foveal.data.boxes import load_boxes

    objects = write_objects(tmp_path / "src")
    common = dict(count=6, size=(64, 64), min_area=50, scale=(0.3, 0.6), blur=0.0, noise=2.0)
    a = make_composites(objects, tmp_path / "src" / "photos", tmp_path / "a", seed=1, **common)
    make_composites(objects, tmp_path / "src" / "photos", tmp_path / "b", seed=1, **common)
    assert a["cutouts"] == 4 and a["count"] == 6
    for f in sorted((tmp_path / "a").rglob("*.*")):
        assert f.read_bytes() == (tmp_path / "b" / f.relative_to(tmp_path / "a")).read_bytes(), f
    coco = json.loads((tmp_path / "a" / "annotations" / "instances_train.json").read_text())
    assert [c["name"] for c in coco["categories"]] == ["square", "triangle"] and coco["annotations"]
    for ann in coco["annotations"]:
        mask = mask_utils.decode(ann["segmentation"]).astype(bool)
        ys, xs = np.nonzero(mask)
        assert ann["bbox"] == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
        assert ann["area"] == mask.sum() and mask.shape == (64, 64)
    boxes = load_boxes(tmp_path / "a" / "annotations" / "instances_train.json")
    assert len(boxes["train"]) == 6 and boxes["train"].class_names == ["square", "triangle"]


def test_backgrounds_smaller_than_the_images_are_named(tmp_path):
    objects = write_objects(tmp_path / "src")
    with pytest.raises(DataError, match=r"bg0\.png: background 90x70 is smaller than the 100x100 images"):
        make_composites(objects, tmp_path / "src" / "photos", tmp_path / "out", size=(100, 100), min_area=50)
    assert not (tmp_path / "out").exists()
