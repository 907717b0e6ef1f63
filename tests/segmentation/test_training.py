"""Segmentation end to end through ``foveal segment``: train U-Net and FCN-8s on synthetic
folders, evaluate (metrics == scikit-learn on the written masks), predict index PNGs and
overlays, the report, resume after an interruption, and the time budget."""

from __future__ import annotations

import argparse
import csv
import json
import os
import signal

import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import confusion_matrix as sk_confusion
from sklearn.metrics import f1_score, jaccard_score

from foveal.errors import ConfigError, ModelError
from foveal.segmentation.cli import add_segment_command

from .conftest import CLASSES, write_squares


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="foveal", allow_abbrev=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    add_segment_command(sub)
    return parser


def run_cli(argv: list[str]) -> int:
    args = make_parser().parse_args(argv)
    return args.func(args, {})


TINY_UNET = ["--model", "unet", "--model-options", "width=4,depth=2", "--crop-size", "32"]
TINY_FCN = ["--model", "fcn8s", "--model-options", "width=0.0625,fc_filters=8", "--crop-size", "0"]


@pytest.fixture(scope="module")
def squares(tmp_path_factory):
    return write_squares(tmp_path_factory.mktemp("squares"), 12)


def train_args(data, out, name, model_args, *extra):
    return ["segment", "train", "--data", str(data), "--classes", *CLASSES, "--mask-format", "index",
            *model_args, "--holdout", "3", "--val-split", "0.2", "--epochs", "2", "--batch-size", "4",
            "--learning-rate", "0.01", "--report-images", "2", "--output", str(out), "--name", name,
            "--no-progress", *extra]


@pytest.fixture(scope="module")
def unet_run(squares, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    assert run_cli(train_args(squares, out, "unet", TINY_UNET, "--augment", "flips")) == 0
    return out / "unet"


def test_run_folder_and_report(unet_run):
    for name in ("config.yaml", "history.csv", "best.keras", "last.keras", "state.json", "metrics.json", "report.html"):
        assert (unet_run / name).is_file(), name
    state = json.loads((unet_run / "state.json").read_text())
    assert state["epoch"] == 2 and state["status"] == "done" and state["monitor"] == "val_mean_iou"
    assert "val_mean_iou" in (unet_run / "history.csv").read_text().splitlines()[0]
    metrics = json.loads((unet_run / "metrics.json").read_text())
    assert metrics["split"] == "test" and metrics["num_images"] == 3 and metrics["skipped_pairs"] == 0
    assert [r["class"] for r in metrics["per_class"]] == CLASSES
    html = (unet_run / "report.html").read_text()
    assert "Per-class IoU and Dice" in html and "Example overlays" in html and "data:image/png" in html
    for row in metrics["per_class"]:
        assert f"{row['iou']:.4f}" in html


def test_model_card(unet_run):
    from foveal.models import load_model

    model, card = load_model(unet_run / "best.keras", compile=True)
    assert card.task == "segment" and card.class_names == CLASSES and card.input_shape == (32, 32, 3)
    assert card.training["stride"] == 4 and card.training["mask_format"] == "index"
    assert model.output_shape == (None, None, None, 3)


def read_png(path) -> np.ndarray:
    with Image.open(path) as img:
        assert img.mode == "L", path
        return np.asarray(img)


def assert_agrees_with_sklearn(metrics: dict, truth_dir, predicted_dir, names: list[str]) -> None:
    truth = np.concatenate([read_png(truth_dir / n).ravel() for n in names])
    predicted = np.concatenate([read_png(predicted_dir / n).ravel() for n in names])
    labels = list(range(len(CLASSES)))
    np.testing.assert_array_equal(metrics["confusion_matrix"], sk_confusion(truth, predicted, labels=labels))
    assert metrics["pixel_accuracy"] == pytest.approx((truth == predicted).mean(), abs=1e-6)
    iou = jaccard_score(truth, predicted, labels=labels, average=None, zero_division=0)
    dice = f1_score(truth, predicted, labels=labels, average=None, zero_division=0)
    present = np.array([((truth == k) | (predicted == k)).any() for k in labels])
    for k, row in enumerate(metrics["per_class"]):
        if not present[k]:  # in neither truth nor prediction: no score
            assert row["iou"] is None and row["dice"] is None
        else:
            assert row["iou"] == pytest.approx(iou[k], abs=1e-6) and row["dice"] == pytest.approx(dice[k], abs=1e-6)
    assert metrics["mean_iou"] == pytest.approx(iou[present].mean(), abs=1e-6)


def test_evaluate_agrees_with_sklearn(unet_run, squares, tmp_path, capsys):
    out = tmp_path / "eval"
    assert run_cli(["segment", "evaluate", str(unet_run / "best.keras"), "--data", str(squares), "--split", "test",
                    "--json", "--output", str(out)]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["num_images"] == 3 and metrics["split"] == "test"
    saved = json.loads((unet_run / "metrics.json").read_text())
    assert metrics["confusion_matrix"] == saved["confusion_matrix"]  # same split, same predictions
    names = ["s09.png", "s10.png", "s11.png"]  # --holdout 3: the last three pairs
    assert sorted(p.name for p in (out / "masks").iterdir()) == names
    assert_agrees_with_sklearn(metrics, squares / "masks", out / "masks", names)
    assert (out / "report.html").is_file() and len(list((out / "overlays").iterdir())) == 3


def test_predict_writes_index_pngs_and_overlays(unet_run, squares, tmp_path, capsys):
    images = sorted((squares / "images").glob("*.png"))[:2]
    out = tmp_path / "pred"
    assert run_cli(["segment", "predict", str(unet_run / "best.keras"), *map(str, images), "--output", str(out),
                    "--format", "csv"]) == 0
    rows = list(csv.DictReader((out / "predictions.csv").open()))
    assert [r["file"] for r in rows] == [str(p) for p in images]
    for image, row in zip(images, rows):
        mask = read_png(out / "masks" / image.name)
        assert mask.shape == (48, 64) and set(np.unique(mask)) <= {0, 1, 2}
        with Image.open(out / "overlays" / image.name) as overlay:
            assert overlay.mode == "RGB" and overlay.size == (64, 48)
        assert sum(float(row[f"fraction_{c}"]) for c in CLASSES) == pytest.approx(1.0, abs=1e-5)
    assert "fraction_red" in capsys.readouterr().out


def test_tta_from_the_command_line(unet_run, squares, tmp_path, capsys):
    model = str(unet_run / "best.keras")
    capsys.readouterr()
    assert run_cli(["segment", "evaluate", model, "--data", str(squares), "--split", "test", "--tta", "d4"]) == 0
    assert "TTA             d4" in capsys.readouterr().out
    assert run_cli(["segment", "evaluate", model, "--data", str(squares), "--split", "test", "--tta", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["tta"] == "flips"  # a bare --tta means the 4 flips
    image = sorted((squares / "images").glob("*.png"))[0]
    out = tmp_path / "pred"
    assert run_cli(["segment", "predict", model, str(image), "--tta", "d4", "--output", str(out), "--no-overlay"]) == 0
    assert read_png(out / "masks" / image.name).shape == (48, 64)  # gray: the training masks were gray
    with pytest.raises(SystemExit):
        make_parser().parse_args(["segment", "predict", model, str(image), "--tta", "d8"])


def test_predict_refuses_other_tasks(tmp_path):
    from foveal.models import ModelCard, build_model
    from foveal.segmentation.predict import predict_masks

    card = ModelCard(architecture="lenet5", class_names=["a", "b"], input_shape=(32, 32, 1))
    with pytest.raises(ModelError, match="not 'segment'"):
        predict_masks(build_model("lenet5", num_classes=2), card, [tmp_path])


@pytest.mark.slow  # FCN-8s builds and trains a step in tests/segmentation/test_models.py (default tier)
def test_fcn8s_end_to_end(squares, tmp_path, capsys):
    assert run_cli(train_args(squares, tmp_path, "fcn", TINY_FCN, "--augment", "none", "--epochs", "1")) == 0
    run = tmp_path / "fcn"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["num_images"] == 3 and 0.0 <= metrics["pixel_accuracy"] <= 1.0
    out = tmp_path / "eval"
    capsys.readouterr()
    assert run_cli(["segment", "evaluate", str(run / "best.keras"), "--data", str(squares), "--split", "test",
                    "--json", "--output", str(out), "--no-overlay"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    names = ["s09.png", "s10.png", "s11.png"]
    assert metrics["num_images"] == 3 and not (out / "overlays").exists()
    assert_agrees_with_sklearn(metrics, squares / "masks", out / "masks", names)


def test_a_second_run_into_the_same_folder_is_refused(squares, unet_run):
    from foveal.segmentation.train import train_segmenter

    with pytest.raises(ConfigError, match="already holds a run"):
        train_segmenter(data=str(squares), classes=CLASSES, mask_format="index", model="unet",
                        model_options={"width": 4, "depth": 2}, crop_size=[32], epochs=1, batch_size=4,
                        output=str(unet_run.parent), name=unet_run.name, progress=False, report_images=0)


# slow tier: resume is the engine's; the default tier resumes classification (tests/training/test_trainer.py)
# and localization (tests/localization/test_training.py) runs
@pytest.mark.slow
def test_resume_after_interruption(squares, tmp_path, monkeypatch):
    """A SIGINT after the first epoch stops the run cleanly; --resume finishes it."""
    from foveal.segmentation.train import train_segmenter
    from foveal.training import callbacks as cb

    original = cb.RunCheckpoint.on_epoch_end

    def end_then_signal(self, epoch, logs=None):
        original(self, epoch, logs)
        if epoch == 0:
            os.kill(os.getpid(), signal.SIGINT)

    options = dict(data=str(squares), classes=CLASSES, mask_format="index", model="unet",
                   model_options={"width": 4, "depth": 2}, crop_size=[32], holdout=3, val_split=0.0, epochs=3,
                   batch_size=4, augment="none", output=str(tmp_path), name="r", progress=False, report_images=0)
    monkeypatch.setattr(cb.RunCheckpoint, "on_epoch_end", end_then_signal)
    result = train_segmenter(**options)
    assert result.interrupted and result.metrics is None
    state = json.loads((tmp_path / "r" / "state.json").read_text())
    assert state["status"] == "interrupted" and state["epoch"] == 1
    monkeypatch.setattr(cb.RunCheckpoint, "on_epoch_end", original)
    resumed = train_segmenter(resume=tmp_path / "r")
    assert not resumed.interrupted and len(resumed.history["loss"]) == 3
    assert resumed.metrics["num_images"] == 3
    with pytest.raises(ConfigError, match="already holds a run"):
        train_segmenter(**options)


@pytest.mark.slow  # TimeBudget is the engine's, tested in tests/training/test_budget.py (default tier)
def test_time_budget_stops_and_still_scores(squares, tmp_path):
    from foveal.segmentation.train import train_segmenter

    result = train_segmenter(data=str(squares), classes=CLASSES, mask_format="index", model="unet",
                             model_options={"width": 4, "depth": 2}, crop_size=[32], holdout=3, val_split=0.0,
                             epochs=50, batch_size=4, augment="none", time_budget=0.01, output=str(tmp_path),
                             name="b", progress=False, report_images=0)
    assert len(result.history["loss"]) == 1 and result.metrics["num_images"] == 3
    state = json.loads((tmp_path / "b" / "state.json").read_text())
    assert state["time_budget_reached"] is True and state["status"] == "done"


@pytest.mark.parametrize("argv", [["segment"], ["segment", "train"], ["segment", "evaluate"], ["segment", "predict"]])
def test_help_everywhere(argv, capsys):
    with pytest.raises(SystemExit) as info:
        make_parser().parse_args([*argv, "--help"])
    assert info.value.code == 0 and "usage: foveal segment" in capsys.readouterr().out


def test_cli_refuses_abbreviations_and_unknown_options():
    for argv in (["segment", "train", "--epoch", "3"], ["segment", "train", "--nonsense"]):
        with pytest.raises(SystemExit) as info:
            make_parser().parse_args(argv)
        assert info.value.code == 2


def test_config_errors(squares, tmp_path):
    from foveal.segmentation.train import train_segmenter

    with pytest.raises(ConfigError, match="did you mean 'fcn8s'"):
        train_segmenter(data=str(squares), model="fcn8", output=str(tmp_path))
    with pytest.raises(ConfigError, match="not a multiple of unet's stride 16"):
        train_segmenter(data=str(squares), crop_size=[40], output=str(tmp_path))
    with pytest.raises(ConfigError, match="padding='same'"):
        train_segmenter(data=str(squares), model_options={"padding": "valid"}, output=str(tmp_path))
    with pytest.raises(ConfigError, match="unknown segmentation augmentation 'twirl'"):
        train_segmenter(data=str(squares), augment="hflip,twirl", output=str(tmp_path))
    assert not any(tmp_path.iterdir())  # no half-made run folder

