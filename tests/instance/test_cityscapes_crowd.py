"""Cityscapes' class-only values (1..999) of an instance class become crowd regions (``iscrowd: 1``):
ignored by the mask AP exactly as pycocotools ignores them; "stuff" values stay out."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from foveal.cli.main import main
from foveal.evaluation.detection import coco_evaluate, mask_to_rle
from foveal.instance.data import read_instances
from foveal.instance.label_maps import coco_to_label_maps, label_maps_to_coco, read_label_map, write_label_map
from tests.instance.conftest import pycocotools_segm_stats


def _city_map() -> np.ndarray:
    labels = np.zeros((40, 48), np.int64)
    labels[:6] = 7  # road: a class without instances ("stuff")
    labels[10:20, 2:12] = 24000  # two persons
    labels[22:36, 4:14] = 24001
    labels[10:34, 20:44] = 24  # a group of persons without instance ids: a crowd region
    labels[12:20, 30:38] = 26000  # a car in front of the group
    return labels


@pytest.fixture(scope="module")
def city(tmp_path_factory):
    root = tmp_path_factory.mktemp("city")
    (root / "images").mkdir()
    Image.fromarray(np.full((40, 48, 3), 90, np.uint8)).save(root / "images" / "frame.png")
    write_label_map(root / "instances" / "frame.png", _city_map())
    return root



def test_class_only_regions_are_crowd_and_ignored_as_pycocotools_does(city):
    labels = _city_map()
    for names in ({24: "person", 26: "car"}, None):  # given classes, or the classes with instances
        coco = label_maps_to_coco(city, class_encoding="cityscapes", class_names=names)
        anns = coco["annotations"]
        assert [(a["category_id"], a["iscrowd"]) for a in anns] == [(24, 0), (24, 0), (26, 0), (24, 1)]
        assert [a["id"] for a in anns] == [1, 2, 3, 4]
        assert coco["info"]["crowd"] == 1 and coco["info"]["instances"] == 3
        assert coco["info"]["non_instance_pixels"] == int((labels == 7).sum())  # road stays out
        crowd = mask_utils.decode({"size": anns[-1]["segmentation"]["size"],
                                   "counts": anns[-1]["segmentation"]["counts"].encode()})
        assert np.array_equal(crowd.astype(bool), labels == 24)
    data = read_instances(coco, images=city / "images")
    assert data.info["crowd"] == 1 and data.num_instances == 3 and data.masks(0).shape[-1] == 3
    gt = data.coco_dict()
    assert sum(a["iscrowd"] for a in gt["annotations"]) == 1
    # the three objects found, plus a confident detection inside the group: no false positive there
    results = [{"image_id": 1, "category_id": cat, "score": score, "segmentation": mask_to_rle(labels == value)}
               for cat, score, value in ((24, 0.9, 24000), (24, 0.8, 24001), (26, 0.7, 26000))]
    inside = np.zeros_like(labels, bool)
    inside[24:34, 22:30] = True
    results.append({"image_id": 1, "category_id": 24, "score": 0.95, "segmentation": mask_to_rle(inside)})
    ours = coco_evaluate(gt, results, iou_type="segm")
    reference = pycocotools_segm_stats(gt, results)
    np.testing.assert_allclose(list(ours.stats.values()), reference, atol=1e-6)
    assert ours.stats["AP"] == pytest.approx(1.0)
    no_crowd = {**gt, "annotations": [a for a in gt["annotations"] if not a["iscrowd"]]}
    dropped = coco_evaluate(no_crowd, results, iou_type="segm")
    np.testing.assert_allclose(list(dropped.stats.values()), pycocotools_segm_stats(no_crowd, results), atol=1e-6)
    assert dropped.stats["AP"] < 0.9  # without the crowd region the same detection is a false positive


def test_cli_writes_crowd_regions_and_back(city, tmp_path, capsys):
    out = tmp_path / "city.json"
    assert main(["datasets", "instances", "to-coco", str(city), "--output", str(out), "--class-encoding",
                 "cityscapes", "--classes", "24=person", "26=car"]) == 0
    assert "1 crowd region" in capsys.readouterr().out
    coco = json.loads(out.read_text())
    assert sum(a["iscrowd"] for a in coco["annotations"]) == 1
    assert main(["datasets", "instances", "to-label-maps", str(out), "--output", str(tmp_path / "maps"),
                 "--class-encoding", "cityscapes"]) == 0
    assert "1 crowd region(s) written as their class id" in capsys.readouterr().out
    labels = _city_map()
    back = read_label_map(tmp_path / "maps" / "instances" / "frame.png")
    assert np.array_equal(back, np.where(labels == 7, 0, labels))  # the crowd region back as 24, road gone
    manifest = coco_to_label_maps(coco, tmp_path / "single", class_encoding="cityscapes")
    assert manifest["crowd"] == 1
