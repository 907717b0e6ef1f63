"""Instance data: COCO polygons and RLE read through pycocotools, boxes from masks, crowd regions,
the bad-input messages (file + annotation id) and ``--skip-invalid``; the shapes generator."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from conftest import shared_dataset
from foveal.data.synth.shapes import CLASSES, make_shapes
from foveal.errors import DataError
from foveal.instance.data import load_instance_splits, read_instances
from foveal.instance.masks import decode_rle, encode_rle, mask_box, paste_masks


def _rle(mask: np.ndarray) -> dict:
    return encode_rle(mask)


@pytest.fixture(scope="module")
def coco(tmp_path_factory) -> tuple[Path, dict]:
    """Three 32x40 (h x w) images; polygon, compressed RLE, uncompressed RLE and a crowd region."""
    root = tmp_path_factory.mktemp("inst")
    (root / "images").mkdir()
    for i in range(3):
        Image.fromarray(np.full((32, 40, 3), 60 * i, np.uint8)).save(root / "images" / f"im{i}.png")
    square = np.zeros((32, 40), np.uint8)
    square[4:12, 6:20] = 1
    blob = np.zeros((32, 40), np.uint8)
    blob[20:30, 25:38] = 1
    uncompressed = {"size": [32, 40], "counts": mask_utils_counts(blob)}
    data = {
        "images": [{"id": 10 + i, "file_name": f"im{i}.png", "width": 40, "height": 32} for i in range(3)],
        "categories": [{"id": 7, "name": "b"}, {"id": 3, "name": "a"}],
        "annotations": [
            {"id": 1, "image_id": 10, "category_id": 3, "segmentation": [[6, 4, 20, 4, 20, 12, 6, 12]],
             "bbox": [6, 4, 14, 8], "iscrowd": 0},
            {"id": 2, "image_id": 10, "category_id": 7, "segmentation": _rle(blob), "iscrowd": 0},  # no bbox
            {"id": 3, "image_id": 11, "category_id": 7, "segmentation": uncompressed, "bbox": [25, 20, 13, 10],
             "iscrowd": 0},
            {"id": 4, "image_id": 11, "category_id": 3, "segmentation": _rle(square), "bbox": [6, 4, 14, 8],
             "iscrowd": 1},
        ],
    }
    path = root / "annotations.json"
    path.write_text(json.dumps(data))
    return path, data


def mask_utils_counts(mask: np.ndarray) -> list[int]:
    """Uncompressed COCO RLE counts (column-major runs, starting with zeros)."""
    flat = mask.T.ravel()
    counts, value, run = [], 0, 0
    for v in flat:
        if v == value:
            run += 1
        else:
            counts.append(run)
            value, run = v, 1
    counts.append(run)
    return counts


def _write(tmp_path: Path, data: dict, root: Path) -> Path:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    return path


def test_polygons_and_rle_read_with_pycocotools(coco):
    path, data = coco
    inst = read_instances(path, images=path.parent / "images")
    assert inst.class_names == ["a", "b"] and inst.info["category_ids"] == [3, 7]
    assert len(inst) == 3 and [len(b) for b in inst.boxes] == [2, 2, 0]
    # every mask equals pycocotools' own decoding of the annotation
    poly = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(data["annotations"][0]["segmentation"], 32, 40)))
    np.testing.assert_array_equal(inst.masks(0)[..., 0], poly)
    unc = mask_utils.decode(mask_utils.frPyObjects(data["annotations"][2]["segmentation"], 32, 40))
    np.testing.assert_array_equal(inst.masks(1)[..., 0], unc)
    # the box of annotation 2 (none given) is its mask's tight box
    np.testing.assert_allclose(inst.boxes[0][1], [25, 20, 38, 30])
    assert inst.info["derived_boxes"] == 1
    # the crowd region is kept as an ignore region: not a training mask, iscrowd in the ground truth
    assert inst.difficult[1].tolist() == [False, True] and inst.masks(1).shape == (32, 40, 1)
    assert inst.info["crowd"] == 1 and inst.num_instances == 3
    gt = inst.coco_dict()
    assert [a["iscrowd"] for a in gt["annotations"]] == [0, 0, 0, 1]
    assert gt["annotations"][1]["area"] == 130.0


def test_in_memory_dict_and_splits(coco):
    path, data = coco
    d = copy.deepcopy(data)
    for im in d["images"]:
        im["file_name"] = str(path.parent / "images" / im["file_name"])
    inst = read_instances(d)
    assert len(inst) == 3
    parts = load_instance_splits(d, val_split=0.34, test_split=0.34, seed=0)
    assert sorted(parts) == ["test", "train", "val"] and sum(len(p) for p in parts.values()) == 3
    # a subset keeps each image's masks with its boxes
    for part in parts.values():
        for i in range(len(part)):
            assert part.masks(i, crowd=True).shape[-1] == len(part.boxes[i])


BAD = [
    ("fewer than three points", lambda a: a.update(segmentation=[[1, 1, 5, 5]])),
    ("RLE size [30, 40] disagrees", lambda a: a.update(segmentation={"size": [30, 40], "counts": _rle(
        np.ones((30, 40), np.uint8))["counts"]})),
    ("an empty mask", lambda a: a.update(segmentation=_rle(np.zeros((32, 40), np.uint8)))),
    ("no segmentation", lambda a: a.pop("segmentation")),
    ("neither polygons", lambda a: a.update(segmentation="abc")),
]


@pytest.mark.parametrize("words, spoil", BAD, ids=[b[0] for b in BAD])
def test_bad_annotations_name_file_and_id_and_skip(coco, tmp_path, words, spoil):
    path, data = coco
    d = copy.deepcopy(data)
    spoil(d["annotations"][2])  # annotation id 3, on im1.png
    bad = _write(tmp_path, d, path.parent)
    with pytest.raises(DataError) as info:
        read_instances(bad, images=path.parent / "images")
    message = str(info.value)
    assert words in message and "annotation id 3" in message and str(bad) in message and "im1.png" in message
    assert "--skip-invalid" in message
    kept = read_instances(bad, images=path.parent / "images", skip_invalid=True)
    assert len(kept) == 2 and kept.info["invalid_annotations"] == 1 and len(kept.info["skipped"]) == 1
    assert "im1.png" not in " ".join(map(str, kept.paths))


def test_crowd_region_with_a_bad_mask_is_named_too(coco, tmp_path):
    path, data = coco
    d = copy.deepcopy(data)
    d["annotations"][3]["segmentation"] = [[1, 2]]  # the crowd region, id 4
    with pytest.raises(DataError, match="annotation id 4.*fewer than three points"):
        read_instances(_write(tmp_path, d, path.parent), images=path.parent / "images")


def test_image_whose_size_differs_from_its_record_is_refused(coco, tmp_path):
    path, data = coco
    d = copy.deepcopy(data)
    for im in d["images"]:
        im["height"] = 30
    for a in d["annotations"]:
        if isinstance(a["segmentation"], dict):
            a["segmentation"] = _rle(decode_rle(a["segmentation"])[:30])
    with pytest.raises(DataError, match="is 40x32 but its record says 40x30"):
        read_instances(_write(tmp_path, d, path.parent), images=path.parent / "images")


def test_masks_paste_and_box():
    mask = np.zeros((10, 12), bool)
    mask[2:5, 3:9] = True
    assert mask_box(mask).tolist() == [3, 2, 9, 5] and mask_box(np.zeros((3, 3))) is None
    pasted = paste_masks(np.ones((1, 28, 28)), np.array([[3, 2, 9, 5]]), 10, 12)[0]
    np.testing.assert_array_equal(pasted, mask)
    assert decode_rle(encode_rle(mask)).tolist() == mask.tolist()


def test_shapes_generator_is_deterministic_and_readable(tmp_path):
    a = make_shapes(tmp_path / "a", counts=(4, 1, 0), size=(48, 48), seed=3)
    make_shapes(tmp_path / "b", counts=(4, 1, 0), size=(48, 48), seed=3)
    assert a["counts"] == {"train": 4, "val": 1, "test": 0}
    for name in ("annotations/instances_train.json", "train/000002.png"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    parts = load_instance_splits(tmp_path / "a", test_split=0.0)
    assert parts["train"].class_names == list(CLASSES) and len(parts["val"]) == 1
    train = parts["train"]
    for i in range(len(train)):  # every box is its visible mask's tight box
        masks = train.masks(i)
        for k in range(masks.shape[-1]):
            np.testing.assert_allclose(mask_box(masks[..., k]), train.boxes[i][k])


def test_missing_data_and_bad_options_are_one_clear_error(tmp_path):
    from foveal.errors import ConfigError
    from foveal.instance.config import InstanceConfig
    from foveal.tasks import run_train

    with pytest.raises(ConfigError, match="foveal instance train needs --data"):
        run_train("instance", InstanceConfig(output=str(tmp_path)))
    with pytest.raises(ConfigError, match="multiples of 32"):
        InstanceConfig(data="x.json", image_size=[100]).validate()
    with pytest.raises(ConfigError, match="unknown box augmentation"):
        InstanceConfig(data="x.json", augment="flip,spin").validate()
    assert not any(tmp_path.iterdir())


def test_coco_mini_polygons_and_crowd_rle_match_pycocotools():
    from pycocotools.coco import COCO

    path = shared_dataset("coco-mini", "annotations", "instances_val2017.json")
    inst = read_instances(path)
    coco = COCO(str(path))
    assert len(inst) == len(coco.imgs) and inst.info["crowd"] == sum(a["iscrowd"] for a in coco.anns.values())
    gt = inst.coco_dict()
    by_file = {im["file_name"]: im["id"] for im in coco.imgs.values()}
    for i in range(0, len(inst), 20):  # every instance's mask is pycocotools' annToMask of its annotation
        image_id = by_file[Path(str(inst.paths[i])).name]
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[image_id], iscrowd=None))
        masks = inst.masks(i, crowd=True)
        assert masks.shape[-1] == len(anns)
        for k, ann in enumerate(anns):
            np.testing.assert_array_equal(masks[..., k], coco.annToMask(ann))
    assert len(gt["annotations"]) == len(coco.anns)


def test_shapes_command_refuses_bad_options_in_one_line(tmp_path, capsys):
    from foveal.cli.main import main

    assert main(["datasets", "synth", "shapes", "--output", str(tmp_path / "s"), "--counts", "0", "1", "1"]) == 2
    assert "--counts" in capsys.readouterr().err
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x.txt").write_text("x")
    assert main(["datasets", "synth", "shapes", "--output", str(tmp_path / "full")]) == 2
    assert "not empty" in capsys.readouterr().err


@pytest.mark.parametrize("images,maps", [("photos", "instances"), ("images", "SegmentationObject")])
def test_a_label_map_folder_as_data_says_how_to_convert_it(tmp_path, images, maps):
    """A folder of instance-index PNGs whose layout is neither foveal's (images/ + instances/, read
    directly: test_label_map_training.py) nor Pascal VOC's (JPEGImages/ + SegmentationObject/)
    gets the one command that converts it."""
    (tmp_path / images).mkdir()
    (tmp_path / maps).mkdir()
    with pytest.raises(DataError, match="no COCO instances file") as info:
        load_instance_splits(tmp_path)
    assert "foveal datasets instances to-coco" in info.value.hint and f"--instances-folder {maps}" in info.value.hint
