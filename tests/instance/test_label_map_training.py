"""`foveal instance train|evaluate --data FOLDER` on image + instance-label-map folders (foveal's
images/ + instances/, Pascal VOC's JPEGImages/ + SegmentationObject/): read through the same
conversion as `foveal datasets instances to-coco`, so the annotations are the ones training on
to-coco's JSON would read."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from foveal.cli.main import main
from foveal.errors import DataError
from foveal.instance.data import load_instance_splits, read_instances

from .conftest import disc_labels, voc_folder


def _label_map_folder(root, count=6):
    from foveal.instance.label_maps import write_label_map

    (root / "images").mkdir(parents=True)
    for i in range(count):
        labels = disc_labels(i)
        Image.fromarray(np.where(labels > 0, 200, 40).astype(np.uint8)).save(root / "images" / f"{i}.png")
        write_label_map(root / "instances" / f"{i}.png", labels)
    return root


def test_label_map_folder_trains_and_reads_as_to_coco(tmp_path, capsys):
    from foveal.models.io import read_card

    folder = _label_map_folder(tmp_path / "cells")
    assert main(["instance", "train", "--model", "unet-watershed", "--data", str(folder), "--image-size", "64",
                 "--channels", "1", "--unet-options", "width=4,depth=2", "--epochs", "1", "--batch-size", "4",
                 "--crop-size", "32", "--output", str(tmp_path / "runs"), "--name", "run", "--seed", "0",
                 "--no-progress"]) == 0
    assert "18 instance(s) in 6 image(s) read from the label maps in instances/" in capsys.readouterr().out
    read = read_card(tmp_path / "runs" / "run" / "best.keras").training["label_maps"]
    assert read["class_encoding"] == "single" and read["instances_folder"] == "instances" and read["images"] == 6
    # the same annotations as to-coco's JSON, read by the same reader
    out = tmp_path / "cells.json"
    assert main(["datasets", "instances", "to-coco", str(folder), "--output", str(out)]) == 0
    from_json = read_instances(out, folder / "images").coco_dict()
    from_folder = load_instance_splits(folder, val_split=0.0, test_split=0.0)["train"].coco_dict()
    assert from_folder == from_json and len(from_folder["annotations"]) == 18
    assert not (folder / "annotations").exists()  # nothing written into the data folder
    capsys.readouterr()
    assert main(["instance", "evaluate", str(tmp_path / "runs" / "run" / "best.keras"), "--data", str(folder),
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["num_images"] == 6


def test_voc_folder_is_read_without_its_outlines(tmp_path):
    root, labels = voc_folder(tmp_path / "VOC")
    # VOC segments a subset of its JPEGImages: the label maps pick the images, an image without one is
    # not an error (a label map without its image still is)
    Image.fromarray(np.full((20, 24, 3), 90, np.uint8)).save(root / "JPEGImages" / "2007_000033.jpg")
    part = load_instance_splits(root, val_split=0.0, test_split=0.0)["train"]
    assert len(part) == 1 and not part.info["label_maps"]["skipped"]
    assert part.class_names == ["object"] and part.info["label_maps"]["class_encoding"] == "voc"
    masks = part.masks(0)
    assert masks.shape == (20, 24, 2) and not masks[labels == 255].any()
    assert masks[..., 0].sum() == (labels == 1).sum() and masks[..., 1].sum() == (labels == 2).sum()
    assert part.info["label_maps"]["non_instance_pixels"] == int((labels == 255).sum())
    # with SegmentationClass/, each object's class is its pixels' majority class there (15 person, 12 dog)
    (root / "SegmentationClass").mkdir()
    Image.fromarray(np.where(labels == 1, 15, np.where(labels == 2, 12, labels)).astype(np.uint8)).save(
        root / "SegmentationClass" / "2007_000032.png")
    part = load_instance_splits(root, val_split=0.0, test_split=0.0)["train"]
    assert part.class_names == ["class_12", "class_15"] and part.labels[0].tolist() == [1, 0]
    assert part.info["label_maps"]["class_maps"] == "SegmentationClass"
    # read with a model's classes (instance evaluate): a folder holding some of them keeps the model's list
    wider = load_instance_splits(root, val_split=0.0, test_split=0.0,
                                 label_map_classes=["class_5", "class_12", "class_15"])["train"]
    assert wider.class_names == ["class_5", "class_12", "class_15"] and wider.labels[0].tolist() == [2, 1]
    Image.fromarray(labels, mode="P").save(root / "SegmentationObject" / "2007_000099.png")
    with pytest.raises(DataError, match="2007_000099.png has no image"):
        load_instance_splits(root, val_split=0.0, test_split=0.0)


def test_bad_label_map_folders_name_the_file(tmp_path, capsys):
    folder = _label_map_folder(tmp_path / "no-png", count=2)
    for png in (folder / "instances").iterdir():
        png.unlink()
    with pytest.raises(DataError, match=r"0\.png has no label map") as err:
        load_instance_splits(folder)
    assert "\n" not in err.value.message
    folder = _label_map_folder(tmp_path / "sizes", count=2)
    Image.fromarray(np.zeros((32, 40), np.uint8)).save(folder / "instances" / "1.png")
    with pytest.raises(DataError, match=r"instances/1\.png: size 40x32 differs from its image") as err:
        load_instance_splits(folder)
    assert "\n" not in err.value.message
    capsys.readouterr()
    assert main(["instance", "train", "--data", str(folder), "--epochs", "1", "--output", str(tmp_path / "runs")]) != 0
    assert "instances/1.png: size 40x32" in capsys.readouterr().err
    # a layout that cannot be inferred keeps the to-coco hint
    (tmp_path / "maps-only" / "instances").mkdir(parents=True)
    with pytest.raises(DataError) as err:
        load_instance_splits(tmp_path / "maps-only")
    assert "foveal datasets instances to-coco" in (err.value.hint or "")
