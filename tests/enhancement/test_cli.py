"""``foveal enhance train|evaluate|predict`` end to end on a tiny generated folder, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from foveal.cli.main import main


def _picture(h: int, w: int, seed: int) -> np.ndarray:
    y, x = np.mgrid[:h, :w]
    rng = np.random.default_rng(seed)
    a, b = rng.uniform(3, 8, 2)
    return np.stack([np.sin(x / a) * 90 + 128, np.cos(y / b) * 90 + 128, (x * 3 + y * 2 + seed * 20) % 256],
                    -1).astype(np.uint8)


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("photos")
    for i in range(6):
        Image.fromarray(_picture(36 + 2 * i, 44, i)).save(root / f"p{i}.png")
    return root


@pytest.fixture(scope="module")
def run(photos, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs")
    code = main(["enhance", "train", "--data", str(photos), "--model", "espcn", "--scale", "2",
                 "--model-options", "width=8", "--patch-size", "16", "--epochs", "1", "--steps-per-epoch", "2",
                 "--batch-size", "4", "--val-split", "0.2", "--test-split", "0.2", "--output", str(out),
                 "--name", "sr", "--no-progress", "--report-images", "1"])
    assert code == 0
    return out / "sr"


def test_train_writes_a_run_folder_scored_next_to_bicubic(run):
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["headline"] == "psnr_y" and metrics["baseline_name"] == "bicubic upscaling"
    assert metrics["gain"]["psnr_y"] == pytest.approx(metrics["model"]["psnr_y"] - metrics["baseline"]["psnr_y"],
                                                      abs=1e-3)
    assert metrics["border"] == 2 and metrics["num_images"] == 1
    report = (run / "report.html").read_text()
    assert "bicubic upscaling" in report and "Before, after, reference" in report
    card = json.loads(__import__("zipfile").ZipFile(run / "best.keras").read("foveal.json"))
    assert card["task"] == "enhance" and card["training"]["scale"] == 2


def test_evaluate_and_predict_from_the_command_line(run, photos, tmp_path, capsys):
    model = str(run / "best.keras")
    assert main(["evaluate", model, "--data", str(photos), "--output", str(tmp_path / "eval"), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["num_images"] == 6 and (tmp_path / "eval" / "report.html").is_file()
    assert len(list((tmp_path / "eval" / "enhanced").glob("*.png"))) == 6
    assert main(["enhance", "predict", model, str(photos / "p1.png"), "--output", str(tmp_path / "pred"),
                 "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["input_size"] == [44, 38] and rows[0]["output_size"] == [88, 76]
    with Image.open(rows[0]["enhanced"]) as written:
        assert written.size == (88, 76)
    assert (tmp_path / "pred" / "predictions.csv").read_text().count("\n") == 2


def test_prune_needs_data_to_fine_tune_on(run, capsys):
    with pytest.raises(SystemExit) as exit_:  # argparse: a required option
        main(["prune", str(run / "best.keras")])
    assert exit_.value.code == 2 and "--data" in capsys.readouterr().err


@pytest.mark.parametrize("args,message", [
    (["--corruption", "gausian=0.5"], "--corruption 'gausian=0.5': unknown corruption 'gausian'"),
    (["--model", "edsr", "--scale", "5"], "--scale 5: edsr upscales by 2, 3, 4, 8"),
    (["--patch-size", "25", "--scale", "2", "--model", "espcn"], "--patch-size 25 is not a multiple of 2"),
    (["--patch-size", "96"], "is smaller than the 96x96 patch (--patch-size)"),
])
def test_bad_options_and_inputs_are_one_line_errors(photos, tmp_path, capsys, args, message):
    code = main(["enhance", "train", "--data", str(photos), "--output", str(tmp_path), "--no-progress",
                 "--epochs", "1", *args])
    err = capsys.readouterr().err
    assert code == 2 and message in err
    assert len(err.strip().splitlines()) <= 2  # the error and its hint


def test_mixed_channel_counts_name_both_files(photos, tmp_path, capsys):
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    Image.fromarray(_picture(40, 40, 0)).save(mixed / "colour.png")
    Image.fromarray(_picture(40, 40, 1)[..., 0]).save(mixed / "gray.png")
    assert main(["enhance", "train", "--data", str(mixed), "--output", str(tmp_path), "--patch-size", "16"]) == 2
    err = capsys.readouterr().err
    assert "mixed channel counts" in err and "gray.png" in err and "colour.png" in err and "--channels" in err


def test_images_smaller_than_the_scale_factor_are_named(run, tmp_path, capsys):
    tiny = tmp_path / "tiny"
    tiny.mkdir()
    Image.fromarray(_picture(1, 5, 0)).save(tiny / "sliver.png")
    assert main(["enhance", "evaluate", str(run / "best.keras"), "--data", str(tiny)]) == 2
    assert "sliver.png: 5x1 is smaller than the x2 scale factor" in capsys.readouterr().err
