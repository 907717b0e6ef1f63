"""Image/mask pair readers: layouts, mask formats, validation errors, COCO rasterisation."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from conftest import SHARED_DATASETS, requires_shared
from foveal.errors import DataError
from foveal.segmentation.coco import coco_names, coco_semantic_masks
from foveal.segmentation.data import read_mask_folder

ISBI = SHARED_DATASETS / "isbi-membrane" / "train"
COCO_VAL = SHARED_DATASETS / "coco-mini" / "annotations" / "instances_val2017.json"


def write_pairs(root, masks, image_dirs=("images", "masks"), rgb_masks=False):
    (root / image_dirs[0]).mkdir(parents=True)
    (root / image_dirs[1]).mkdir(parents=True)
    for i, mask in enumerate(masks):
        Image.fromarray(np.full(mask.shape[:2] + (3,), 100, np.uint8)).save(root / image_dirs[0] / f"im{i}.jpg")
        Image.fromarray(mask.astype(np.uint8)).save(root / image_dirs[1] / f"im{i}.png")
    return root


@requires_shared("isbi-membrane", "train")
def test_isbi_layout_reads_binary_masks():
    data = read_mask_folder(ISBI)
    assert len(data) == 30 and data.mask_format == "binary"
    assert data.image_paths[2].endswith("image/2.png") and data.mask_paths[2].endswith("label/2.png")
    mask = data.load_mask(0)
    assert mask.shape == (512, 512) and set(np.unique(mask)) == {0, 1}
    image, tf_mask = next(iter(data.subset(np.array([0])).to_tf_dataset(1)))
    assert image.shape == (512, 512, 1)
    np.testing.assert_array_equal(tf_mask.numpy(), mask)


def test_index_masks_keep_ignore_label(tmp_path):
    mask = np.array([[0, 1, 2], [2, 255, 0]])
    data = read_mask_folder(write_pairs(tmp_path, [mask, mask]), mask_format="index", class_names=["a", "b", "c"])
    assert data.mask_format == "index" and data.num_classes == 3
    _, tf_mask = next(iter(data.to_tf_dataset(3)))
    np.testing.assert_array_equal(tf_mask.numpy(), mask)


def test_palette_masks(tmp_path):
    colours = np.array([[0, 0, 0], [255, 0, 0], [0, 0, 255]], np.uint8)
    index = np.array([[0, 1], [2, 1]])
    write_pairs(tmp_path, [colours[index]])
    (tmp_path / "palette.txt").write_text("# R G B name\n0 0 0 background\n255 0 0 road\n0 0 255 sky\n")
    data = read_mask_folder(tmp_path)
    assert data.mask_format == "palette" and data.class_names == ["background", "road", "sky"]
    np.testing.assert_array_equal(data.load_mask(0), index)
    _, tf_mask = next(iter(data.to_tf_dataset(3)))
    np.testing.assert_array_equal(tf_mask.numpy(), index)


def test_palette_unknown_colour_is_named(tmp_path):
    write_pairs(tmp_path, [np.array([[[0, 0, 0], [9, 9, 9]]], np.uint8)])
    (tmp_path / "palette.txt").write_text("0 0 0 background\n255 0 0 road\n")
    with pytest.raises(DataError, match=r"im0.png.*\(9, 9, 9\)"):
        read_mask_folder(tmp_path)


def test_size_mismatch_names_both_files(tmp_path):
    write_pairs(tmp_path, [np.zeros((4, 4))])
    Image.fromarray(np.zeros((5, 4), np.uint8)).save(tmp_path / "masks" / "im0.png")
    with pytest.raises(DataError, match=r"masks/im0.png is 4x5 but its image .*images/im0.jpg is 4x4"):
        read_mask_folder(tmp_path, mask_format="index", class_names=["a", "b"])


def test_unknown_values_and_skip_invalid(tmp_path):
    write_pairs(tmp_path, [np.zeros((4, 4)), np.full((4, 4), 7)])
    with pytest.raises(DataError, match=r"im1.png.*: 7"):
        read_mask_folder(tmp_path, mask_format="index", class_names=["a", "b"])
    data = read_mask_folder(tmp_path, mask_format="index", class_names=["a", "b"], skip_invalid=True)
    assert len(data) == 1 and "im1.png" in data.info["skipped"][0]


def test_missing_pairs(tmp_path):
    write_pairs(tmp_path, [np.zeros((4, 4)), np.zeros((4, 4))])
    (tmp_path / "masks" / "im1.png").unlink()
    with pytest.raises(DataError, match=r"im1.jpg has no mask"):
        read_mask_folder(tmp_path, mask_format="index", class_names=["a", "b"])
    assert len(read_mask_folder(tmp_path, mask_format="index", class_names=["a", "b"], skip_invalid=True)) == 1


def test_no_layout(tmp_path):
    with pytest.raises(DataError, match="no image/mask folders"):
        read_mask_folder(tmp_path)


@requires_shared("coco-mini", "annotations", "instances_val2017.json")
def test_coco_semantic_masks_match_pycocotools():
    from pycocotools.coco import COCO

    coco = COCO(str(COCO_VAL))
    names = coco_names(COCO_VAL)
    assert names[0] == "background" and len(names) == 81
    crowd = next(a for a in coco.dataset["annotations"] if a["iscrowd"])
    mask = coco_semantic_masks(COCO_VAL, crowd["image_id"])
    info = coco.imgs[crowd["image_id"]]
    assert mask.shape == (info["height"], info["width"]) and mask.dtype == np.uint8
    assert (mask[coco.annToMask(crowd).astype(bool)] == 255).all()
    # the smallest non-crowd instance is painted last among things: all its pixels carry its class
    things = [a for a in coco.loadAnns(coco.getAnnIds(imgIds=[crowd["image_id"]])) if not a["iscrowd"]]
    small = min(things, key=lambda a: a["area"])
    region = coco.annToMask(small).astype(bool) & ~coco.annToMask(crowd).astype(bool)
    expected = sorted(coco.cats).index(small["category_id"]) + 1
    assert (mask[region] == expected).all() and names[expected] == coco.cats[small["category_id"]]["name"]
    union = np.zeros_like(mask, bool)
    for a in things + [crowd]:
        union |= coco.annToMask(a).astype(bool)
    assert (mask[~union] == 0).all()
