"""Training end to end on synthetic rectangles, through the ``foveal localize`` command line:
learning, the run folder, resume, save/load, evaluate and predict."""

from __future__ import annotations

import argparse
import csv
import json

import numpy as np
import pytest
from PIL import Image

from foveal.errors import ConfigError, ModelError
from foveal.localization.cli import add_localize_command
from foveal.localization.model import build_localizer, compile_localizer
from foveal.models import ModelCard, load_model, save_model

from .conftest import write_rectangles


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="foveal", allow_abbrev=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    add_localize_command(sub)
    return parser


def run_cli(argv: list[str]) -> int:
    args = make_parser().parse_args(argv)
    return args.func(args, {})


@pytest.fixture(scope="module")
def rectangles(tmp_path_factory):
    return write_rectangles(tmp_path_factory.mktemp("rects"), 100)


@pytest.fixture(scope="module")
def run(rectangles, tmp_path_factory):
    """Two epochs of a small LeNet-5 localizer (flatten head) on 80 training images."""
    out = tmp_path_factory.mktemp("runs")
    code = run_cli(["localize", "train", "--data", str(rectangles), "--model", "lenet5", "--model-options", "{}",
                    "--pooling", "flatten", "--image-size", "64", "--epochs", "2", "--batch-size", "8",
                    "--augment", "none", "--val-split", "0", "--test-split", "0.2", "--report-images", "4",
                    "--output", str(out), "--name", "rects", "--no-progress"])
    assert code == 0
    return out / "rects"


def test_two_epochs_beat_the_mean_box_baseline(run):
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["split"] == "test" and metrics["num_examples"] == 20
    assert metrics["mean_iou"] > metrics["baseline_mean_iou"] + 0.1, metrics
    assert metrics["accuracy"] == 1.0


def test_run_folder(run):
    for name in ("config.yaml", "history.csv", "best.keras", "last.keras", "state.json", "report.html"):
        assert (run / name).is_file(), name
    state = json.loads((run / "state.json").read_text())
    assert state["epoch"] == 2 and state["status"] == "done" and state["monitor"] == "box_iou"
    assert "box_iou" in (run / "history.csv").read_text().splitlines()[0]
    html = (run / "report.html").read_text()
    assert "predicted box red" in html and "mean-box baseline IoU" in html and "data:image/png" in html


def test_saved_model_round_trip(run, tmp_path):
    model, card = load_model(run / "best.keras")
    assert card.task == "localize" and card.class_names == ["box"] and card.input_shape == (64, 64, 3)
    assert "sqrt" in card.training["box_format"] and card.training["class_head"] == "presence"
    x = np.random.default_rng(0).uniform(0, 255, (3, 64, 64, 3)).astype("float32")
    before = model.predict_on_batch(x)
    save_model(model, tmp_path / "again.keras", card)
    again, _ = load_model(tmp_path / "again.keras")
    after = again.predict_on_batch(x)
    for key in ("class", "box"):
        np.testing.assert_array_equal(before[key], after[key])


# slow tier: resume is the engine's; the default tier resumes classification runs (tests/training/test_trainer.py,
# test_budget.py, test_fast.py, tests/transfer) and replays a localization epoch (tests/engine/test_resume_order.py)
@pytest.mark.slow
def test_resume_continues_the_run(run, tmp_path):
    import shutil

    from foveal.localization.train import train_localizer

    copy = tmp_path / "rects"
    shutil.copytree(run, copy)
    result = train_localizer(resume=copy, epochs=3, progress=False, report_images=0)
    assert len(result.history["loss"]) == 3 and result.metrics is not None
    with pytest.raises(ConfigError, match="already holds a run"):
        train_localizer(data=str(copy), output=str(tmp_path), name="rects")


def test_default_backbone_options_do_not_fit_other_backbones(rectangles, tmp_path):
    from foveal.localization.train import LocalizeConfig, train_localizer

    with pytest.raises(ConfigError, match="has no option") as info:
        train_localizer(LocalizeConfig(data=str(rectangles), model="lenet5", output=str(tmp_path)))
    assert "--model-options {}" in str(info.value)
    assert not any(tmp_path.iterdir())  # no half-made run folder


def test_cli_evaluate_and_predict(run, rectangles, tmp_path, capsys):
    assert run_cli(["localize", "evaluate", str(run / "best.keras"), "--data", str(rectangles), "--split", "train",
                    "--json", "--output", str(tmp_path / "eval")]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["num_examples"] == 100 and 0 < metrics["mean_iou"] <= 1
    assert (tmp_path / "eval" / "report.html").is_file()

    images = sorted((rectangles.parent / "images").glob("*.png"))[:3]
    out = tmp_path / "drawn"
    assert run_cli(["localize", "predict", str(run / "best.keras"), *map(str, images), "--output", str(out)]) == 0
    rows = list(csv.DictReader((out / "predictions.csv").open()))
    assert [r["file"] for r in rows] == [str(p) for p in images]
    for row in rows:
        assert row["class"] == "box" and 0.0 <= float(row["score"]) <= 1.0
        x0, y0, x1, y1 = (float(row[k]) for k in ("x_min", "y_min", "x_max", "y_max"))
        assert 0 <= x0 < x1 <= 64 and 0 <= y0 < y1 <= 64
    drawn = np.asarray(Image.open(out / images[0].name))
    assert ((drawn[..., 0] == 255) & (drawn[..., 1] == 0)).any()  # the red box is there
    assert len(json.loads((out / "predictions.json").read_text())) == 3


def test_predict_refuses_a_classifier(tmp_path):
    from foveal.localization.predict import predict_boxes
    from foveal.models import build_model

    model = build_model("lenet5", num_classes=2)
    card = ModelCard(architecture="lenet5", class_names=["a", "b"], input_shape=(32, 32, 1))
    with pytest.raises(ModelError, match="not 'localize'"):
        predict_boxes(model, card, [tmp_path])


@pytest.mark.parametrize("argv", [["localize"], ["localize", "train"], ["localize", "evaluate"],
                                  ["localize", "predict"]])
def test_help_everywhere(argv, capsys):
    with pytest.raises(SystemExit) as info:
        make_parser().parse_args([*argv, "--help"])
    assert info.value.code == 0 and "usage: foveal localize" in capsys.readouterr().out


def test_cli_refuses_abbreviations_and_unknown_options(capsys):
    for argv in (["localize", "train", "--epoch", "3"], ["localize", "train", "--nonsense"]):
        with pytest.raises(SystemExit) as info:
            make_parser().parse_args(argv)
        assert info.value.code == 2


def test_multiclass_model_round_trip(tmp_path):
    model = build_localizer("lenet5", num_classes=3, input_shape=(32, 32, 3), batch_norm=True)
    compile_localizer(model, num_classes=3)
    x = np.random.default_rng(1).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    y = {"class": np.array([0, 2]), "box": np.array([[0.5, 0.5, 0.5, 0.5], [0.3, 0.6, 0.2, 0.7]], "float32")}
    model.train_on_batch(x, y)
    card = ModelCard(architecture="lenet5", class_names=["a", "b", "c"], input_shape=(32, 32, 3), task="localize")
    save_model(model, tmp_path / "m.keras", card)
    again, _ = load_model(tmp_path / "m.keras", compile=True)
    out = again.predict_on_batch(x)
    assert out["class"].shape == (2, 3) and out["box"].shape == (2, 4)
    np.testing.assert_allclose(out["class"].sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(out["box"], model.predict_on_batch(x)["box"])
