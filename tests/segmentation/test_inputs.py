"""Trainer inputs and outputs without training: bad pairs (named, or skipped and counted),
the tf.data pipeline, tiled prediction, overlays, dense CRF, and COCO polygons -> masks equal
to pycocotools' annToMask."""

from __future__ import annotations

import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image

from conftest import SHARED_DATASETS, requires_shared
from foveal.errors import ConfigError, DataError, FovealError
from foveal.segmentation.train import SegmentConfig, load_splits, skipped_of

from .conftest import CLASSES, write_squares

COCO_MINI = SHARED_DATASETS / "coco-mini"


def config(data, **kw) -> SegmentConfig:
    return SegmentConfig(data=str(data), classes=CLASSES, mask_format="index", val_split=0.0, test_split=0.0, **kw)


def spoil(root: Path) -> dict[str, Path]:
    """Four bad pairs next to the good ones: wrong size, unknown value, no mask, undecodable image."""
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(root / "masks" / "s00.png")
    Image.fromarray(np.full((48, 64), 7, np.uint8)).save(root / "masks" / "s01.png")
    (root / "masks" / "s02.png").unlink()
    png = (root / "images" / "s03.png").read_bytes()
    (root / "images" / "s03.png").write_bytes(png[: len(png) // 2])  # truncated: the header still reads
    return {"size": root / "masks" / "s00.png", "value": root / "masks" / "s01.png",
            "missing": root / "images" / "s02.png", "decode": root / "images" / "s03.png"}


@pytest.mark.parametrize("problem, pattern", [
    ("size", r"mask .*s00.png is 10x10 but its image .*s00.png is 64x48"),
    ("value", r"mask .*s01.png .*holds values that are no class .*: 7"),
    ("missing", r"s02.png has no mask"),
    ("decode", r"image .*s03.png"),
])
def test_bad_pairs_are_named(tmp_path, problem, pattern):
    root = write_squares(tmp_path, 6)
    bad = spoil(root)
    for other in set(bad) - {problem}:  # repair the others so this problem is the first met
        _repair(root, other)
    with pytest.raises(DataError, match=pattern) as info:
        load_splits(config(root))
    assert "--skip-invalid" in str(info.value)


def _repair(root: Path, problem: str) -> None:
    fresh = write_squares(root.parent / f"fresh_{problem}", 6)
    stem = {"size": "s00", "value": "s01", "missing": "s02", "decode": "s03"}[problem]
    for folder in ("images", "masks"):
        (root / folder / f"{stem}.png").write_bytes((fresh / folder / f"{stem}.png").read_bytes())


def test_skip_invalid_counts_every_bad_pair(tmp_path):
    root = write_squares(tmp_path, 8)
    bad = spoil(root)
    parts = load_splits(config(root, skip_invalid=True, holdout=2))
    assert len(parts["train"]) + len(parts["test"]) == 4
    skipped = skipped_of(parts)
    assert len(skipped) == 4
    for path in bad.values():
        assert any(path.name in s for s in skipped), path


def test_evaluate_skips_and_counts(tmp_path):
    from foveal.models import ModelCard, save_model
    from foveal.segmentation.train import build_segmenter, evaluate_segmenter

    root = write_squares(tmp_path / "data", 6)
    spoil(root)
    model = build_segmenter("unet", num_classes=3, channels=3, options={"width": 2, "depth": 1})
    card = ModelCard("unet", CLASSES, (32, 32, 3), task="segment",
                     training={"stride": 2, "mask_format": "index", "ignore_label": 255})
    path = save_model(model, tmp_path / "m.keras", card)
    with pytest.raises(DataError):
        evaluate_segmenter(path, str(root))
    metrics = evaluate_segmenter(path, str(root), skip_invalid=True)
    assert metrics["num_images"] == 2 and metrics["skipped_pairs"] == 4


def test_classes_and_foreground_options(tmp_path):
    from foveal.segmentation.train import class_index, resolve_weights

    root = write_squares(tmp_path, 4)
    train = load_splits(config(root))["train"]
    assert class_index("blue", CLASSES, "foreground") == 2 and class_index("1", CLASSES, "foreground") == 1
    with pytest.raises(ConfigError, match="'green' is not one of the classes"):
        class_index("green", CLASSES, "foreground")
    weights = resolve_weights("balanced", train)
    counts = np.bincount(np.concatenate([train.load_mask(i).ravel() for i in range(4)]), minlength=3)
    np.testing.assert_allclose(weights, counts.sum() / (3 * counts), rtol=1e-5)
    with pytest.raises(ConfigError, match="2 weights for 3 classes"):
        resolve_weights("1,2", train)


def test_pipeline_crops_pads_and_carries_weights(tmp_path):
    from foveal.segmentation.pipeline import make_segmentation_pipeline, parse_augment
    from foveal.segmentation.train import border_weight_fn

    root = write_squares(tmp_path, 3, height=40, width=50)
    data = load_splits(config(root))["train"]
    train = make_segmentation_pipeline(data, channels=3, batch_size=2, training=True, crop_size=(32, 32),
                                       augment=parse_augment("microscopy"), stride=16)
    images, masks = next(iter(train))
    assert images.shape == (2, 32, 32, 3) and masks.shape == (2, 32, 32) and images.dtype == "float32"
    whole = make_segmentation_pipeline(data, channels=3, batch_size=3, training=False, stride=16)
    images, masks = next(iter(whole))
    assert images.shape == (3, 48, 64, 3)  # padded to multiples of 16
    masks = masks.numpy()
    assert (masks[:, 40:] == 255).all() and (masks[:, :, 50:] == 255).all()
    np.testing.assert_array_equal(masks[0, :40, :50], data.load_mask(0))
    weight_fn = border_weight_fn(config(root, border_weight=10.0, border_objects="red"), CLASSES, None)
    weighted = make_segmentation_pipeline(data, channels=3, batch_size=2, training=True, crop_size=(32, 32),
                                          stride=16, weight_map=weight_fn)
    _, targets = next(iter(weighted))
    assert targets.shape == (2, 32, 32, 2) and float(targets[..., 1].numpy().min()) >= 0.0


def test_augment_presets_and_errors():
    from foveal.segmentation.pipeline import parse_augment

    aug = parse_augment("hflip,rot90,angle=20,scale=0.7-1.4,elastic")
    assert aug.hflip and aug.rot90 and not aug.vflip and aug.max_angle == 20 and aug.scale == (0.7, 1.4)
    assert aug.elastic_sigma == 10.0
    assert parse_augment("none") == parse_augment("")
    with pytest.raises(ConfigError, match="scale=.*LO-HI"):
        parse_augment("scale=2-1")
    with pytest.raises(ConfigError, match="takes no value"):
        parse_augment("hflip=1")


def pointwise_model(channels: int = 3, classes: int = 3) -> keras.Model:
    """A fully convolutional model with no spatial context: tiling must not change its output."""
    inputs = keras.Input((None, None, channels))
    x = keras.layers.Conv2D(classes, 1, kernel_initializer=keras.initializers.RandomNormal(seed=1))(inputs / 255.0)
    return keras.Model(inputs, keras.layers.Softmax()(x))


def test_sliding_window_equals_one_pass():
    from foveal.segmentation.predict import sliding_window

    model = pointwise_model()
    image = np.random.default_rng(0).uniform(0, 255, (70, 90, 3)).astype("float32")
    whole = sliding_window(model, image, tile=128, stride=16)
    tiled = sliding_window(model, image, tile=32, stride=16, batch_size=3)
    assert whole.shape == tiled.shape == (70, 90, 3)
    np.testing.assert_allclose(tiled, whole, atol=1e-6)
    np.testing.assert_allclose(whole, np.asarray(model(image[None]))[0], atol=1e-6)


def test_resized_prediction_comes_back_at_image_size():
    from foveal.models import ModelCard
    from foveal.segmentation.predict import predict_labels

    card = ModelCard("x", CLASSES, (32, 32, 3), task="segment", training={"image_size": [32, 32], "stride": 16})
    image = np.random.default_rng(1).integers(0, 255, (50, 70, 3)).astype(np.uint8)
    labels = predict_labels(pointwise_model(), card, image)
    assert labels.shape == (50, 70) and labels.dtype == np.uint8


def test_overlay_paints_classes():
    from foveal.visualize.draw import default_palette, overlay_classes

    image = np.full((2, 2, 1), 100, np.uint8)
    labels = np.array([[0, 1], [2, 3]])
    colours = default_palette(3)
    out = overlay_classes(image, labels, colours, alpha=1.0, skip=[0])
    assert out.shape == (2, 2, 3)
    assert out[0, 0].tolist() == [100, 100, 100] and out[1, 1].tolist() == [100, 100, 100]  # skipped, unknown
    assert out[0, 1].tolist() == colours[1].tolist() and out[1, 0].tolist() == colours[2].tolist()


def test_crf_missing_names_the_package(monkeypatch):
    from foveal.segmentation.crf import crf_refine

    monkeypatch.setitem(sys.modules, "pydensecrf", None)
    monkeypatch.setitem(sys.modules, "pydensecrf.densecrf", None)
    with pytest.raises(FovealError, match="pydensecrf2") as info:
        crf_refine(np.zeros((4, 4, 3), np.uint8), np.full((4, 4, 2), 0.5, np.float32))
    assert "foveal[crf]" in str(info.value)


def test_crf_refines_along_edges():
    pytest.importorskip("pydensecrf.densecrf")
    from foveal.segmentation.crf import crf_refine

    image = np.zeros((32, 32, 3), np.uint8)
    image[:, 16:] = 255
    truth = (np.arange(32) >= 16)[None, :].repeat(32, 0)
    rng = np.random.default_rng(0)
    p1 = np.clip(np.where(truth, 0.7, 0.3) + rng.normal(0, 0.25, (32, 32)), 0.01, 0.99).astype(np.float32)
    probs = np.stack([1 - p1, p1], -1)
    refined = crf_refine(image, probs)
    np.testing.assert_allclose(refined.sum(-1), 1.0, atol=1e-4)
    assert ((refined.argmax(-1) == truth).mean()) > ((probs.argmax(-1) == truth).mean())
    assert (refined.argmax(-1) == truth).mean() > 0.99


@requires_shared("coco-mini")
@pytest.mark.parametrize("split", ["val2017", "train2017"])
def test_coco_masks_match_ann_to_mask(split):
    """The reader path (read_coco_segmentation -> load_mask) reproduces, pixel for pixel,
    pycocotools' annToMask: instances painted largest first with their category's index, then
    crowd regions with the ignore label."""
    import contextlib
    import io

    from pycocotools.coco import COCO

    from foveal.segmentation.coco import coco_names, read_coco_segmentation

    annotations = COCO_MINI / "annotations" / f"instances_{split}.json"
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(annotations))
    data = read_coco_segmentation(annotations, COCO_MINI / split)
    index = {cat: i + 1 for i, cat in enumerate(sorted(coco.cats))}
    assert coco_names(annotations)[1:] == [coco.cats[c]["name"] for c in sorted(coco.cats)]
    image_ids = sorted(coco.imgs)
    crowded = {a["image_id"] for a in coco.dataset["annotations"] if a["iscrowd"]}
    for image_id in sorted(set(image_ids[::8]) | crowded):
        i = image_ids.index(image_id)
        info = coco.imgs[image_id]
        assert Path(data.image_paths[i]).name == info["file_name"]
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[image_id], iscrowd=None))
        expected = np.zeros((info["height"], info["width"]), np.uint8)
        for ann in sorted((a for a in anns if not a["iscrowd"]), key=lambda a: -a["area"]):
            expected[coco.annToMask(ann).astype(bool)] = index[ann["category_id"]]
        for ann in (a for a in anns if a["iscrowd"]):
            expected[coco.annToMask(ann).astype(bool)] = 255
        np.testing.assert_array_equal(data.load_mask(i), expected)
        for cat in {a["category_id"] for a in anns if not a["iscrowd"]}:  # union by category
            union = np.zeros_like(expected, bool)
            for ann in (a for a in anns if a["category_id"] == cat and not a["iscrowd"]):
                union |= coco.annToMask(ann).astype(bool)
            assert ((data.load_mask(i) == index[cat]) <= union).all()
