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


def write_mask_folder(root: Path) -> tuple[Path, Path]:
    """Two 48x48 photos with a red disc and a blue square, their instance masks in class subfolders."""
    images, masks = root / "photos-src", root / "masks"
    images.mkdir(parents=True)
    (masks / "disc").mkdir(parents=True)
    (masks / "square").mkdir()
    yy, xx = np.mgrid[0:48, 0:48]
    for i in range(2):
        pixels = np.full((48, 48, 3), 90, np.uint8)
        disc = (yy - 14) ** 2 + (xx - 14) ** 2 <= 10 ** 2
        square = (yy >= 26) & (yy < 44) & (xx >= 26) & (xx < 44)
        pixels[disc], pixels[square] = (230, 20, 20), (20, 20, 230)
        Image.fromarray(pixels).save(images / f"p{i}.jpg", quality=100)
        Image.fromarray(disc.astype(np.uint8) * 255).save(masks / "disc" / f"p{i}.png")  # binary: one object
        Image.fromarray(square.astype(np.uint8) * (i + 1)).save(masks / "square" / f"p{i}.png")  # instance value
    return images, masks


def test_cutouts_from_a_mask_folder_are_pasted_with_their_colours(tmp_path):
    from pycocotools import mask as mask_utils

    from foveal.data.synth.composite import load_mask_cutouts

    write_objects(tmp_path / "src")  # for its background photos
    images, masks = write_mask_folder(tmp_path)
    cutouts, cats = load_mask_cutouts(images, masks, min_area=50)
    assert [c["name"] for c in cats] == ["disc", "square"] and len(cutouts) == 4
    assert sorted(c.rgba.shape[:2] for c in cutouts)[0] == (18, 18)
    manifest = make_composites(images, tmp_path / "src" / "photos", tmp_path / "out", masks=masks, count=4,
                               size=(64, 64), min_area=50, scale=(0.4, 0.6), rotation=0.0, blur=0.0, noise=0.0,
                               jitter=0.0, objects_per_image=(1, 1), seed=2)
    assert manifest["cutouts"] == 4 and manifest["instances"] == 4
    coco = json.loads((tmp_path / "out" / "annotations" / "instances_train.json").read_text())
    for ann in coco["annotations"]:
        pixels = np.asarray(Image.open(tmp_path / "out" / "train" / f"{ann['image_id'] - 1:06d}.jpg")).astype(float)
        inner = mask_utils.decode(ann["segmentation"]).astype(bool)
        r, g, b = np.median(pixels[inner], axis=0)
        assert (r > 150 > b) if ann["category_id"] == 1 else (b > 150 > r), (ann["category_id"], r, g, b)
    # a flat folder is one category
    cutouts, cats = load_mask_cutouts(images, masks / "square", category="box", min_area=50)
    assert [c["name"] for c in cats] == ["box"] and len(cutouts) == 2


def test_mask_folder_errors_name_the_file(tmp_path):
    from foveal.data.synth.composite import load_mask_cutouts

    images, masks = write_mask_folder(tmp_path)
    Image.fromarray(np.zeros((20, 20), np.uint8)).save(masks / "disc" / "p1.png")
    with pytest.raises(DataError, match=r"p1\.png: mask is 20x20 but its image .*p1\.jpg is 48x48"):
        load_mask_cutouts(images, masks, min_area=50)
    Image.fromarray(np.zeros((48, 48), np.uint8)).save(masks / "disc" / "p1.png")
    Image.fromarray(np.zeros((48, 48), np.uint8)).save(masks / "disc" / "stray.png")
    with pytest.raises(DataError, match=r"stray\.png: no image named stray\.\*"):
        load_mask_cutouts(images, masks, min_area=50)


def test_grabcut_finds_the_object_in_its_box_and_writes_masks_composite_reads(tmp_path):
    """GrabCut (OpenCV) initialised with a loose box recovers a disc on a textured background;
    the masks of a CSV box dataset are written per class and read back as cut-outs."""
    from foveal.data.synth.composite import load_mask_cutouts
    from foveal.data.synth.grabcut import grabcut_box, grabcut_masks

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:120, 0:160]
    disc = (yy - 60) ** 2 + (xx - 70) ** 2 <= 30 ** 2
    pixels = rng.integers(170, 256, (120, 160, 3), dtype=np.uint8)
    pixels[disc] = rng.integers(10, 60, (int(disc.sum()), 3), dtype=np.uint8)
    mask = grabcut_box(pixels, (34, 24, 106, 96))
    assert (mask & disc).sum() / (mask | disc).sum() > 0.9
    assert not mask[:, :34].any() and not mask[:, 107:].any()  # nothing outside the box
    root = tmp_path / "boxes"
    root.mkdir()
    Image.fromarray(pixels).save(root / "a.png")
    (root / "train.csv").write_text("filename,width,height,class,xmin,ymin,xmax,ymax\na.png,160,120,disc,34,24,106,96\n")
    manifest = grabcut_masks(root / "train.csv", tmp_path / "masks")
    assert manifest["objects"] == 1 and manifest["mean_box_fraction"] > 0.5
    cutouts, cats = load_mask_cutouts(root, tmp_path / "masks", min_area=50)
    assert [c["name"] for c in cats] == ["disc"] and len(cutouts) == 1
    assert abs(int((cutouts[0].rgba[..., 3] > 0).sum()) - int(disc.sum())) < 0.1 * disc.sum()


def test_cli_grabcut_then_composite_from_the_masks(tmp_path, capsys):
    from foveal.cli.main import main

    images, _ = write_mask_folder(tmp_path)
    (images / "boxes.csv").write_text("filename,class,xmin,ymin,xmax,ymax\np0.jpg,disc,2,2,27,27\n"
                                      "p1.jpg,disc,2,2,27,27\np1.jpg,square,24,24,46,46\n")
    photos = write_objects(tmp_path / "src").parent.parent / "photos"
    assert main(["datasets", "synth", "grabcut", "--data", str(images / "boxes.csv"), "--output",
                 str(tmp_path / "gc")]) == 0
    assert "wrote 3 mask file(s) with 3 objects from 2 train images" in capsys.readouterr().out
    assert main(["datasets", "synth", "composite", "--objects", str(images), "--masks", str(tmp_path / "gc"),
                 "--backgrounds", str(photos), "--size", "64", "--count", "3", "--min-area", "50",
                 "--output", str(tmp_path / "out")]) == 0
    assert "wrote 3 images" in capsys.readouterr().out
    coco = json.loads((tmp_path / "out" / "annotations" / "instances_train.json").read_text())
    assert [c["name"] for c in coco["categories"]] == ["disc", "square"]


def _hard_boxes() -> tuple[list[np.ndarray], np.ndarray, tuple[int, int, int, int]]:
    """120x160 images where GrabCut with the box finds nothing: (a) a dark disc inside a dark
    frame just outside its box (the background model learnt around the box explains the disc),
    (b) a dark disc over dark stripes, (c) uniform noise (nothing to find); the disc; the box."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:120, 0:160]
    disc = (yy - 60) ** 2 + (xx - 80) ** 2 <= 28 ** 2
    dark = rng.integers(10, 60, (120, 160, 3), dtype=np.uint8)
    frame = (xx >= 40) & (xx < 120) & (yy >= 12) & (yy < 108) & ~((xx >= 50) & (xx < 110) & (yy >= 30) & (yy < 90))
    images = []
    for dark_part in (frame | disc, ((xx // 4) % 2 == 0) | disc):
        pixels = np.random.default_rng(3).integers(150, 256, (120, 160, 3), dtype=np.uint8)
        pixels[dark_part] = dark[dark_part]
        images.append(pixels)
    return [*images, rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)], disc, (51, 31, 110, 90)


def test_grabcut_fallbacks_recover_boxes_plain_grabcut_leaves_empty(tmp_path, capsys):
    """Plain GrabCut returns an empty mask on all three images; the ellipse prior recovers the
    framed disc, the certain-foreground core the striped one, and uniform noise gets the last
    resort (the inscribed ellipse, the box, or no mask); grabcut_masks and the CLI count each."""
    from foveal.cli.main import main
    from foveal.data.synth.grabcut import _ellipse, grabcut_box, grabcut_with_fallback

    (framed, striped, noise), disc, box = _hard_boxes()
    for pixels in (framed, striped, noise):
        assert not grabcut_box(pixels, box).any()
    for pixels, expected in ((framed, "ellipse"), (striped, "core")):
        mask, method = grabcut_with_fallback(pixels, box)
        assert method == expected and (mask & disc).sum() / (mask | disc).sum() > 0.85, method
    mask, method = grabcut_with_fallback(noise, box)
    assert method == "last-resort-ellipse" and (mask == _ellipse(mask.shape, box, 1.0)).all()
    assert mask.sum() == pytest.approx(np.pi * 59 * 59 / 4, rel=0.03)
    mask, method = grabcut_with_fallback(noise, box, last_resort="box")
    assert method == "last-resort-box" and mask.sum() == 59 * 59 and mask[31:90, 51:110].all()

    root = tmp_path / "hard"
    root.mkdir()
    rows = ["filename,width,height,class,xmin,ymin,xmax,ymax"]
    for name, pixels in (("framed", framed), ("striped", striped), ("noise", noise)):
        Image.fromarray(pixels).save(root / f"{name}.png")
        rows.append(f"{name}.png,160,120,disc,{','.join(map(str, box))}")
    (root / "train.csv").write_text("\n".join(rows) + "\n")
    assert main(["datasets", "synth", "grabcut", "--data", str(root / "train.csv"), "--output", str(tmp_path / "m"),
                 "--last-resort", "skip"]) == 0
    out = capsys.readouterr().out
    assert ("boxes by plain GrabCut 0, by the fallbacks: ellipse prior 1, foreground core 1, last resort (skip) 0; "
            "1 box(es) left without a mask") in out, out
    manifest = json.loads((tmp_path / "m" / "grabcut.json").read_text())
    assert manifest["methods"] == {"rect": 0, "ellipse": 1, "core": 1, "last-resort-skip": 0, "skipped": 1}
    assert [f["method"] for f in manifest["fallbacks"]] == ["ellipse", "core", "skipped"]
    assert sorted(p.name for p in (tmp_path / "m" / "disc").iterdir()) == ["framed.png", "striped.png"]
