"""COCO instance files (polygons, RLE, crowds) as segmentation data on the command line, and
segmentation evaluation matching the dataset's classes to the model's by name."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from foveal.errors import ConfigError, DataError
from foveal.segmentation.cli import add_segment_command
from foveal.segmentation.coco import read_coco_segmentation
from foveal.segmentation.train import SegmentConfig, read_folder

W, H = 24, 20
COCO_MINI = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "coco-mini" / "annotations"


def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="foveal", allow_abbrev=False)
    add_segment_command(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args, {})


def _rle(region: np.ndarray, compressed: bool) -> dict:
    from pycocotools import mask as mask_utils

    if compressed:
        rle = mask_utils.encode(np.asfortranarray(region.astype(np.uint8)))
        return {"size": rle["size"], "counts": rle["counts"].decode("ascii")}
    flat = region.astype(np.uint8).flatten(order="F")  # COCO's column-major run lengths, starting with 0s
    counts, value, run = [], 0, 0
    for v in flat:
        if v == value:
            run += 1
        else:
            counts.append(run)
            value, run = v, 1
    counts.append(run)
    return {"size": [H, W], "counts": counts}


def write_coco(root: Path, cats: dict[int, str], folder: str = "tiny") -> Path:
    """Three images: polygons (image 1), uncompressed RLE + crowd (image 2), compressed RLE
    (image 3); ``cats`` maps ids to names, and ``cat``/``dog`` must be among the names."""
    ids = {name.lower(): cid for cid, name in cats.items()}
    (root / folder).mkdir(parents=True, exist_ok=True)
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    images = []
    for i in range(1, 4):
        Image.fromarray(rng.integers(0, 255, (H, W, 3)).astype(np.uint8)).save(root / folder / f"im{i}.png")
        images.append({"id": i, "file_name": f"im{i}.png", "width": W, "height": H})
    dog = np.zeros((H, W), bool)
    dog[10:18, 12:22] = True
    crowd = np.zeros((H, W), bool)
    crowd[0:4, 0:6] = True
    blob = np.zeros((H, W), bool)
    blob[5:9, 3:20] = True
    anns = [
        {"image_id": 1, "category_id": ids["cat"], "segmentation": [[2, 2, 10, 2, 10, 8, 2, 8]], "iscrowd": 0,
         "area": 48.0, "bbox": [2, 2, 8, 6]},
        {"image_id": 1, "category_id": ids["dog"], "segmentation": [[14, 10, 22, 10, 18, 18]], "iscrowd": 0,
         "area": 32.0, "bbox": [14, 10, 8, 8]},
        {"image_id": 2, "category_id": ids["dog"], "segmentation": _rle(dog, False), "iscrowd": 0, "area": 80.0,
         "bbox": [12, 10, 10, 8]},
        {"image_id": 2, "category_id": ids["cat"], "segmentation": _rle(crowd, False), "iscrowd": 1, "area": 24.0,
         "bbox": [0, 0, 6, 4]},
        {"image_id": 3, "category_id": ids["cat"], "segmentation": _rle(blob, True), "iscrowd": 0, "area": 68.0,
         "bbox": [3, 5, 17, 4]},
    ]
    for k, ann in enumerate(anns, start=1):
        ann["id"] = k
    path = root / "annotations" / f"instances_{folder}.json"
    path.write_text(json.dumps({"images": images, "annotations": anns,
                                "categories": [{"id": c, "name": n} for c, n in cats.items()]}))
    return path


def expected_masks(path: Path) -> list[np.ndarray]:
    """Independent of the reader: pycocotools' annToMask per annotation (none overlap here)."""
    from pycocotools.coco import COCO

    coco = COCO(str(path))
    index = {cid: k + 1 for k, cid in enumerate(sorted(coco.cats))}
    out = []
    for image_id in sorted(coco.imgs):
        mask = np.zeros((H, W), np.uint8)
        for ann in coco.loadAnns(coco.getAnnIds(imgIds=[image_id])):
            mask[coco.annToMask(ann) > 0] = 255 if ann["iscrowd"] else index[ann["category_id"]]
        out.append(mask)
    return out


def test_polygons_and_rle_become_masks_through_the_reader(tmp_path):
    path = write_coco(tmp_path, {1: "cat", 2: "dog"})
    data = read_folder(str(path), SegmentConfig(data=str(path)))  # the path train and evaluate take
    assert data.class_names == ["background", "cat", "dog"] and data.mask_format == "coco" and len(data) == 3
    for i, expected in enumerate(expected_masks(path)):
        np.testing.assert_array_equal(data.load_mask(i), expected)
    assert {1, 2, 255} <= set(np.unique(np.concatenate([data.load_mask(i).ravel() for i in range(3)])).tolist())
    # the tf.data path decodes the same masks
    for (image, mask), expected in zip(data.to_tf_dataset(channels=3), expected_masks(path)):
        assert image.shape == (H, W, 3)
        np.testing.assert_array_equal(mask.numpy(), expected)


def test_image_folder_found_beside_or_given(tmp_path):
    path = write_coco(tmp_path / "a", {1: "cat", 2: "dog"})
    moved = tmp_path / "elsewhere"
    (tmp_path / "a" / "tiny").rename(moved)
    with pytest.raises(DataError, match="not found"):
        read_coco_segmentation(path)
    assert len(read_coco_segmentation(path, moved)) == 3
    assert len(read_folder(str(path), SegmentConfig(data=str(path), images=str(moved)))) == 3
    (moved / "im2.png").unlink()
    data = read_coco_segmentation(path, moved, skip_invalid=True)
    assert len(data) == 2 and len(data.info["skipped"]) == 1


@pytest.mark.parametrize("change, message", [
    (lambda d: d.pop("annotations"), "no 'annotations' list"),
    (lambda d: d["annotations"][0].pop("segmentation"), "annotation 0 has no 'segmentation'"),
    (lambda d: d["annotations"][0].update(segmentation=[[1, 2, 3]]), "neither polygons"),
    (lambda d: d["annotations"][0].update(category_id=9), "category id 9"),
    (lambda d: d["annotations"][0].update(image_id=9), "image id 9"),
])
def test_bad_coco_files_are_one_line_errors(change, message, tmp_path):
    path = write_coco(tmp_path, {1: "cat", 2: "dog"})
    content = json.loads(path.read_text())
    change(content)
    path.write_text(json.dumps(content))
    with pytest.raises(DataError) as info:
        read_coco_segmentation(path)
    assert message in info.value.message and "\n" not in info.value.message


def _save_segmenter(path: Path, class_names: list[str]) -> Path:
    """A tiny U-Net with a card (untrained: the tests compare evaluations, not accuracy)."""
    import keras

    from foveal.models import ModelCard, save_model
    from foveal.segmentation.train import build_segmenter

    keras.utils.set_random_seed(1)
    model = build_segmenter("unet", num_classes=len(class_names), channels=3, options={"width": 4, "depth": 2})
    card = ModelCard(architecture="unet", class_names=class_names, input_shape=(32, 32, 3),
                     preprocessing="rescale", task="segment",
                     training={"mask_format": "coco", "ignore_label": 255, "stride": 4})
    return save_model(model, path, card)


def test_evaluation_matches_coco_categories_by_name(tmp_path):
    from foveal.segmentation.train import evaluate_segmenter

    model = _save_segmenter(tmp_path / "seg.keras", ["background", "cat", "dog"])
    same = write_coco(tmp_path / "same", {1: "cat", 2: "dog"})
    # the same images and regions, but the category ids (so the mask values) swapped
    swapped = write_coco(tmp_path / "swapped", {1: "dog", 2: "cat"})
    a, b = evaluate_segmenter(model, str(same)), evaluate_segmenter(model, str(swapped))
    assert a["per_class"] == b["per_class"] and a["mean_iou"] == b["mean_iou"]

    renamed = write_coco(tmp_path / "renamed", {1: "Cat", 2: "Dog"})
    with pytest.raises(DataError, match=r"dataset \[background, Cat, Dog\], model \[background, cat, dog\]"):
        evaluate_segmenter(model, str(renamed))
    mapped = evaluate_segmenter(model, str(renamed), class_map="Cat=cat,Dog=dog")
    assert mapped["per_class"] == a["per_class"]
    with pytest.raises(ConfigError, match="bare class indices"):
        evaluate_segmenter(model, str(tmp_path / "plain"), class_map="a=b")


def test_palette_folder_is_matched_by_name(tmp_path):
    from foveal.segmentation.train import evaluate_segmenter

    model = _save_segmenter(tmp_path / "seg.keras", ["background", "cat", "dog"])
    colours = {"background": (0, 0, 0), "cat": (200, 0, 0), "dog": (0, 200, 0)}
    results = []
    for name, order in (("ordered", ["background", "cat", "dog"]), ("reordered", ["dog", "background", "cat"])):
        root = tmp_path / name
        (root / "images").mkdir(parents=True)
        (root / "masks").mkdir()
        (root / "palette.txt").write_text("".join(f"{' '.join(map(str, colours[n]))} {n}\n" for n in order))
        rng = np.random.default_rng(2)
        for i in range(2):
            Image.fromarray(rng.integers(0, 255, (16, 16, 3)).astype(np.uint8)).save(root / "images" / f"{i}.png")
            mask = np.zeros((16, 16, 3), np.uint8)
            mask[2:8, 2:8] = colours["cat"]
            mask[9:15, 6:14] = colours["dog"]
            Image.fromarray(mask).save(root / "masks" / f"{i}.png")
        results.append(evaluate_segmenter(model, str(root)))
    # before, the card's names were put on the palette's order: dog pixels were scored as background
    assert results[0]["per_class"] == results[1]["per_class"]


@pytest.mark.slow  # trains a tiny U-Net for one epoch through the CLI (about 10 s)
def test_segment_train_and_evaluate_take_a_coco_file(tmp_path, capsys):
    path = write_coco(tmp_path, {1: "cat", 2: "dog"})
    assert run_cli(["segment", "train", "--data", str(path), "--model", "unet", "--model-options",
                    "width=4,depth=2", "--image-size", "16", "--crop-size", "0", "--val-split", "0",
                    "--test-split", "0.34", "--epochs", "1", "--batch-size", "2", "--report-images", "0",
                    "--output", str(tmp_path / "runs"), "--name", "coco", "--no-progress"]) == 0
    run = tmp_path / "runs" / "coco"
    metrics = json.loads((run / "metrics.json").read_text())
    assert [r["class"] for r in metrics["per_class"]] == ["background", "cat", "dog"]
    capsys.readouterr()
    moved = tmp_path / "moved"
    (tmp_path / "tiny").rename(moved)
    assert run_cli(["segment", "evaluate", str(run / "best.keras"), "--data", str(path), "--images", str(moved),
                    "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["num_images"] == 3
    # the run's own test split, rebuilt from its config.yaml, with the images found through --images
    assert run_cli(["segment", "evaluate", str(run / "best.keras"), "--data", str(path), "--images", str(moved),
                    "--split", "test", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["num_images"] == metrics["num_images"] == 1


def test_coco_mini_masks_equal_pycocotools_through_the_reader():
    path = COCO_MINI / "instances_val2017.json"
    if not path.is_file():
        pytest.skip(f"coco-mini is absent ({path})")
    from pycocotools.coco import COCO

    data = read_folder(str(path), SegmentConfig(data=str(path), verify="quick"))
    coco = COCO(str(path))
    index = {cid: k + 1 for k, cid in enumerate(sorted(coco.cats))}
    assert data.class_names[1:] == [coco.cats[c]["name"] for c in sorted(coco.cats)]
    for i in range(6):
        image_id = int(str(data.mask_paths[i]).rpartition("#")[2])
        mask = data.load_mask(i)
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[image_id]))
        regions = [coco.annToMask(a).astype(bool) for a in anns]
        cover = np.sum(regions, axis=0) if regions else np.zeros(mask.shape, int)
        assert np.all(mask[cover == 0] == 0)
        for ann, region in zip(anns, regions):
            alone = region & (cover == 1)  # pixels no other annotation paints over
            assert np.all(mask[alone] == (255 if ann["iscrowd"] else index[ann["category_id"]])), ann["id"]
