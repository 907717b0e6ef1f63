"""`foveal datasets instances targets` with several object classes: K + 2 index PNGs (background,
interior:NAME per class, boundary) from a COCO file or Cityscapes-encoded label maps, then a tiny
U-Net trained on them by `foveal segment train` and scored by `foveal segment instances
evaluate` (checked against pycocotools on the written results) and used by `... predict`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from foveal.cli.main import main
from foveal.instance.label_maps import label_maps_to_coco, write_coco, write_label_map
from foveal.instance.watershed import instance_targets
from tests.instance.conftest import pycocotools_segm_stats, two_class_labels

SIZE = 64
NAMES = {1: "disc", 2: "square"}
COUNT = 8


def _labels(i: int) -> np.ndarray:
    """Two touching discs (class 1, ids 1000 and 1001) and a square (class 2)."""
    return two_class_labels(i, SIZE, top=18)


def _expected(labels: np.ndarray) -> np.ndarray:
    """The K + 2 targets from the 3-class ones, by hand: interior by class, boundary K + 1."""
    three = instance_targets(labels, 2)
    return np.where(three == 1, labels // 1000, np.where(three == 2, 3, 0)).astype(np.uint8)


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    root = tmp_path_factory.mktemp("shapes2")
    (root / "images").mkdir()
    for i in range(COUNT):
        labels = _labels(i)
        image = np.where(labels >= 2000, 130, np.where(labels > 0, 230, 20)).astype(np.uint8)
        image[instance_targets(labels, 1) == 2] = 70  # visible contours, as in a micrograph
        Image.fromarray(image).save(root / "images" / f"{i}.png")
        write_label_map(root / "instances" / f"{i}.png", labels)
    coco = write_coco(label_maps_to_coco(root, class_encoding="cityscapes", class_names=NAMES),
                      root / "annotations" / "instances.json")
    return root, coco


@pytest.fixture(scope="module")
def targets(source, tmp_path_factory):
    _, coco = source
    out = tmp_path_factory.mktemp("targets")
    assert main(["datasets", "instances", "targets", str(coco), "--output", str(out), "--overwrite"]) == 0
    return out


def test_targets_of_a_coco_file_and_of_cityscapes_maps_have_k_plus_2_classes(source, targets, capsys):
    root, coco = source
    lines = [line for line in (targets / "palette.txt").read_text().splitlines() if not line.startswith("#")]
    assert [line.split()[3] for line in lines] == ["background", "interior:disc", "interior:square", "boundary"]
    colours = [tuple(int(v) for v in line.split()[:3]) for line in lines]
    assert colours[0] == (0, 0, 0) and len(set(colours)) == 4
    for i in range(COUNT):
        mask = Image.open(targets / "masks" / f"{i}.png")
        assert mask.mode == "P"  # index PNG: the value is the class
        assert np.array_equal(np.asarray(mask), _expected(_labels(i)))
        assert (targets / "images" / f"{i}.png").is_file()
    # the same targets from the label maps with their Cityscapes classes, written into the folder
    assert main(["datasets", "instances", "targets", str(root), "--class-encoding", "cityscapes",
                 "--classes", "1=disc", "2=square", "--json"]) == 0
    manifest = json.loads(capsys.readouterr().out)
    assert manifest["classes"] == ["background", "interior:disc", "interior:square", "boundary"]
    assert manifest["masks"] == COUNT and manifest["object_classes"] == ["disc", "square"]
    for i in range(COUNT):
        assert np.array_equal(np.asarray(Image.open(root / "masks" / f"{i}.png")), _expected(_labels(i)))
    assert (root / "palette.txt").read_text() == (targets / "palette.txt").read_text()
    # one class stays the 3 classes of before
    single = root.parent / "single"
    (single / "images").mkdir(parents=True)
    Image.open(root / "images" / "0.png").save(single / "images" / "0.png")
    write_label_map(single / "instances" / "0.png", np.where(_labels(0) > 0, _labels(0) % 1000 + 1, 0))
    assert main(["datasets", "instances", "targets", str(single)]) == 0
    assert "3 classes (background, interior, boundary" in capsys.readouterr().out
    assert np.array_equal(np.asarray(Image.open(single / "masks" / "0.png")), instance_targets(
        np.where(_labels(0) > 0, _labels(0) % 1000 + 1, 0), 2))
    # refusals in one line
    assert main(["datasets", "instances", "targets", str(coco)]) == 2
    assert "--output DIR" in capsys.readouterr().err
    assert main(["datasets", "instances", "targets", str(root), "--output", str(root.parent / "x")]) == 2
    assert "written into it" in capsys.readouterr().err


def test_crowd_regions_are_written_as_the_segmentation_readers_ignore_label(source, tmp_path, capsys):
    """A COCO crowd region (iscrowd 1) becomes index 255 coloured VOC's void: segmentation's
    reader gives its ignore label there, by colour (palette.txt) and by index alike."""
    from pycocotools import mask as mask_utils

    from foveal.segmentation.data import VOID_COLOUR, read_mask_folder

    root, coco = source
    gt = json.loads(coco.read_text())
    crowd = np.zeros((SIZE, SIZE), np.uint8, order="F")
    crowd[2:10, 40:60] = 1  # background of image 0 (the shapes sit lower)
    assert not _labels(0)[2:10, 40:60].any()
    rle = mask_utils.encode(np.asfortranarray(crowd))
    gt["annotations"].append({"id": 999, "image_id": gt["images"][0]["id"], "category_id": 1, "iscrowd": 1,
                              "segmentation": {"size": rle["size"], "counts": rle["counts"].decode()},
                              "area": 160, "bbox": [40, 2, 20, 8]})
    file = root / "annotations" / "instances_crowd.json"
    file.write_text(json.dumps(gt))
    out = tmp_path / "t"
    assert main(["datasets", "instances", "targets", str(file), "--output", str(out)]) == 0
    assert "1 crowd region(s) written as \"don't care\" (index 255" in capsys.readouterr().out
    first = Path(gt["images"][0]["file_name"]).stem
    raw = np.asarray(Image.open(out / "masks" / f"{first}.png"))
    assert (raw[2:10, 40:60] == 255).all() and (raw[crowd == 0] == _expected(_labels(0))[crowd == 0]).all()
    assert tuple(Image.open(out / "masks" / f"{first}.png").getpalette()[765:768]) == VOID_COLOUR
    by_colour = read_mask_folder(out)  # palette.txt: read by colour; the void colour is no class
    assert by_colour.mask_format == "palette" and by_colour.num_classes == 4
    by_index = read_mask_folder(out, mask_format="index", class_names=by_colour.class_names)
    for data in (by_colour, by_index):
        stems = [Path(str(p)).stem for p in data.mask_paths]
        mask = data.load_mask(stems.index(first))
        assert (mask[2:10, 40:60] == data.ignore_label).all() and data.ignore_label == 255
        assert np.array_equal(mask[crowd == 0], _expected(_labels(0))[crowd == 0])
    assert main(["datasets", "instances", "targets", str(file), "--output", str(out), "--overwrite",
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["crowd_as_ignore"] == 1


@pytest.mark.slow
def test_a_unet_trained_on_the_targets_is_scored_as_pycocotools(source, targets, tmp_path, capsys):
    """train -> evaluate -> predict from the command line on the K + 2 targets."""
    _, coco = source
    assert main(["segment", "train", "--data", str(targets), "--model", "unet", "--model-options",
                 "width=8,depth=2", "--channels", "1", "--image-size", str(SIZE), "--epochs", "6",
                 "--batch-size", "4", "--learning-rate", "0.01", "--val-split", "0.25", "--test-split", "0",
                 "--verify", "quick", "--output", str(tmp_path), "--name", "ws", "--seed", "0", "--no-progress",
                 "--report-images", "0"]) == 0
    capsys.readouterr()
    model = tmp_path / "ws" / "best.keras"
    out = tmp_path / "eval"
    assert main(["segment", "instances", "evaluate", str(model), "--data", str(coco), "--output", str(out),
                 "--report-images", "1", "--interior-threshold", "0.3", "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    results = json.loads((out / "results.json").read_text())
    gt = json.loads(coco.read_text())
    assert metrics["classes"] == 2 and metrics["images"] == COUNT and metrics["predicted_instances"] == len(results)
    assert {r["category_id"] for r in results} <= {1, 2} and results
    assert metrics["mask_ap"] == pytest.approx(pycocotools_segm_stats(gt, results)[0], abs=1e-6)
    assert main(["segment", "instances", "predict", str(model), str(source[0] / "images" / "1.png"),
                 "--interior-threshold", "0.3", "--format", "json"]) == 0
    row, = json.loads(capsys.readouterr().out)
    assert {i["class"] for i in row["instances"]} <= {"disc", "square"}
