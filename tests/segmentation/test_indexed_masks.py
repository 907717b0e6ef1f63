"""Palette-mode ("P") index masks, as in Pascal VOC's SegmentationClass: the palette index of a
pixel is its class (255: ignore) on every path: folder checks, the tf.data pipeline, training,
evaluation (metrics == those of the raw indices) and predicted masks written as P-mode PNGs."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import confusion_matrix as sk_confusion

from foveal.errors import DataError
from foveal.segmentation.data import read_mask_folder
from foveal.visualize.draw import default_palette

from .conftest import CLASSES, write_indexed_png, write_squares
from .test_training import TINY_UNET, run_cli


def raw_indices(path) -> np.ndarray:
    """A P-mode PNG's palette indices, read without any class mapping."""
    with Image.open(path) as img:
        assert img.mode == "P", path
        return np.asarray(img)


def write_folder(root, masks):
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i, mask in enumerate(masks):
        Image.fromarray(np.full(mask.shape + (3,), 90, np.uint8)).save(root / "images" / f"im{i}.png")
        write_indexed_png(root / "masks" / f"im{i}.png", mask)
    return root


def test_indexed_masks_are_class_indices_everywhere(tmp_path):
    index = np.array([[0, 1, 2, 255], [2, 1, 0, 0]], np.uint8)
    data = read_mask_folder(write_folder(tmp_path, [index, index[::-1]]), class_names=["a", "b", "c"])
    assert data.mask_format == "index"  # auto: a P-mode mask is an index mask, even with 0 and 255 only
    np.testing.assert_array_equal(data.colours, default_palette(3))  # VOC's colours, from the file
    np.testing.assert_array_equal(data.load_mask(0), index)
    tf_masks = [m.numpy() for _, m in data.to_tf_dataset(3)]
    np.testing.assert_array_equal(tf_masks[0], index)
    np.testing.assert_array_equal(tf_masks[1], index[::-1])


def test_indexed_background_and_border_only_is_not_binary(tmp_path):
    data = read_mask_folder(write_folder(tmp_path, [np.array([[0, 255], [255, 0]], np.uint8)]),
                            class_names=["background", "object"])
    assert data.mask_format == "index"
    np.testing.assert_array_equal(data.load_mask(0), [[0, 255], [255, 0]])


def test_indexed_value_outside_the_classes_is_named(tmp_path):
    write_folder(tmp_path, [np.zeros((3, 3), np.uint8), np.array([[0, 1, 7]] * 3, np.uint8)])
    with pytest.raises(DataError, match=r"masks/im1.png .*ignore label 255: 7\n"):
        read_mask_folder(tmp_path, class_names=["a", "b"])
    kept = read_mask_folder(tmp_path, class_names=["a", "b"], skip_invalid=True)
    assert len(kept) == 1 and "im1.png" in kept.info["skipped"][0]


def test_indexed_255_is_ignored_only_when_it_is_the_ignore_label(tmp_path):
    write_folder(tmp_path, [np.array([[0, 1, 255]], np.uint8)])
    assert read_mask_folder(tmp_path, class_names=["a", "b"]).load_mask(0).tolist() == [[0, 1, 255]]
    with pytest.raises(DataError, match=r"im0.png.*ignore label 254: 255"):
        read_mask_folder(tmp_path, class_names=["a", "b"], ignore_label=254)


def test_palette_txt_reads_p_mode_files_by_colour(tmp_path):
    # With a palette.txt the classes are colours, so a P-mode file is read through its palette.
    write_folder(tmp_path, [np.array([[0, 1], [2, 1]], np.uint8)])
    colours = default_palette(3)
    (tmp_path / "palette.txt").write_text("".join(f"{r} {g} {b} c{k}\n" for k, (r, g, b) in enumerate(colours[::-1])))
    data = read_mask_folder(tmp_path)
    assert data.mask_format == "palette" and data.colours is None
    np.testing.assert_array_equal(data.load_mask(0), [[2, 1], [0, 1]])
    np.testing.assert_array_equal(next(iter(data.to_tf_dataset(3)))[1].numpy(), [[2, 1], [0, 1]])


# a training run (5.4 CPU-s); the default tier reads indexed masks in the tests above and trains a U-Net in
# tests/segmentation/test_training.py
@pytest.mark.slow
def test_train_and_evaluate_on_indexed_masks(tmp_path, capsys):
    data = write_squares(tmp_path / "voc", 8, indexed=True)
    assert run_cli(["segment", "train", "--data", str(data), "--classes", *CLASSES, *TINY_UNET, "--holdout", "2",
                    "--val-split", "0.2", "--epochs", "1", "--batch-size", "4", "--learning-rate", "0.01",
                    "--augment", "flips", "--report-images", "1", "--output", str(tmp_path), "--name", "voc",
                    "--no-progress"]) == 0
    from foveal.models import load_model

    _, card = load_model(tmp_path / "voc" / "best.keras")
    assert card.training["mask_format"] == "index" and card.training["indexed_masks"] is True
    assert card.training["palette"] == default_palette(3).tolist()

    out = tmp_path / "eval"
    capsys.readouterr()
    assert run_cli(["segment", "evaluate", str(tmp_path / "voc" / "best.keras"), "--data", str(data), "--split",
                    "test", "--json", "--output", str(out), "--no-overlay"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    names = ["s06.png", "s07.png"]
    truth = np.concatenate([raw_indices(data / "masks" / n).ravel() for n in names])
    predicted = np.concatenate([raw_indices(out / "masks" / n).ravel() for n in names])  # P-mode, like the truth
    assert (truth == 255).sum() > 0
    labelled = truth != 255
    cm = sk_confusion(truth[labelled], predicted[labelled], labels=[0, 1, 2])
    np.testing.assert_array_equal(metrics["confusion_matrix"], cm)
    assert metrics["num_pixels"] == labelled.sum()
    assert metrics["pixel_accuracy"] == pytest.approx(np.trace(cm) / cm.sum(), abs=1e-6)
    for k, row in enumerate(metrics["per_class"]):
        union = cm[k].sum() + cm[:, k].sum() - cm[k, k]
        assert row["iou"] == (None if union == 0 else pytest.approx(cm[k, k] / union, abs=1e-6))
    with Image.open(out / "masks" / names[0]) as img:
        assert np.asarray(img.getpalette()[:9]).reshape(3, 3).tolist() == default_palette(3).tolist()

    gray = tmp_path / "gray"
    assert run_cli(["segment", "predict", str(tmp_path / "voc" / "best.keras"), str(data / "images" / names[0]),
                    "--output", str(gray), "--mask-png", "gray", "--no-overlay"]) == 0
    with Image.open(gray / "masks" / names[0]) as img:
        assert img.mode == "L"
        np.testing.assert_array_equal(np.asarray(img), raw_indices(out / "masks" / names[0]))
