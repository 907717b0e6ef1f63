"""The command line end to end: train, evaluate, predict on a few hundred real images, and
the errors a user can make, each a clear message with exit status 2, never a traceback."""

from __future__ import annotations

import csv
import json

import pytest

from conftest import SHARED_DATASETS, requires_shared
from foveal.cli.main import build_parser, main


@pytest.mark.parametrize("argv", [[], ["train"], ["evaluate"], ["predict"], ["models"], ["datasets"],
                                  ["datasets", "inspect"], ["datasets", "convert"], ["inspect"], ["export"],
                                  ["benchmark"], ["serve"], ["localize"],
                                  ["localize", "train"], ["localize", "evaluate"], ["localize", "predict"],
                                  ["prune"], ["datasets", "convert-boxes"], ["datasets", "validate-boxes"],
                                  ["generate", "train"], ["generate", "evaluate"], ["generate", "predict"]])
def test_help_everywhere(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--help"])
    assert exit_info.value.code == 0
    assert "usage: foveal" in capsys.readouterr().out


def _every_command(parser, path=()):
    """Every (sub)command path of the parser, found by walking it (nobody lists them here)."""
    import argparse

    yield list(path)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _every_command(sub, (*path, name))


def test_help_of_every_command_of_every_task_formats(capsys, monkeypatch):
    """argparse %-formats help text: one stray '%' in any option's help breaks that command's --help."""
    import foveal.cli.main as cli_main

    parser = build_parser()
    commands = list(_every_command(parser))
    from foveal.tasks import TASKS

    assert all([name] in commands for name in TASKS if name != "classify")
    monkeypatch.setattr(cli_main, "build_parser", lambda: parser)  # main() as usual, on a parser built once
    for argv in commands:
        with pytest.raises(SystemExit) as exit_info:
            main([*argv, "--help"])
        assert exit_info.value.code == 0, argv
        assert "usage: foveal" in capsys.readouterr().out, argv


def test_models_lists_parameters(capsys):
    assert main(["models", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["lenet5"]["parameters"] == 61_706 and rows["lenet5"]["input_shape"] == [32, 32, 1]
    assert rows["geron_cnn"]["parameters"] == 1_413_834


@pytest.fixture(scope="module")
def trained(digits_folder, tmp_path_factory):
    """One CLI training run on the 300-image folder, shared by the tests below.

    Three epochs without augmentation: validation accuracy 0.93 in 7.8 CPU-s, against 0.95 in 16.4 for
    six epochs with the digits augmentation (2026-12-07, one script, that first run also paying the
    process's warm-up); the augmentation presets are built in tests/pipeline."""
    out = tmp_path_factory.mktemp("runs")
    config = out / "run.yaml"
    config.write_text("model: lenet5\nepochs: 30\nbatch_size: 16\nval_split: 0.2\ntest_split: 0.0\n"
                      "image_size: [32, 32]\ntensorboard: false\n")
    code = main(["train", "--config", str(config), "--data", str(digits_folder), "--epochs", "3",
                 "--output", str(out), "--name", "folder", "--no-progress"])
    assert code == 0
    return out / "folder"


def test_train_from_folder_writes_run(trained):
    resolved = (trained / "config.yaml").read_text()
    assert "epochs: 3" in resolved and "batch_size: 16" in resolved  # CLI beat the YAML file
    metrics = json.loads((trained / "metrics.json").read_text())
    assert metrics["split"] == "validation" and metrics["accuracy"] > 0.6
    assert (trained / "report.html").stat().st_size > 10_000


def test_evaluate_prints_and_writes(trained, digits_folder, tmp_path, capsys):
    assert main(["evaluate", str(trained / "best.keras"), "--data", str(digits_folder), "--json",
                 "--output", str(tmp_path / "eval")]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["num_examples"] == 300 and metrics["accuracy"] > 0.6
    assert len(metrics["confusion_matrix"]) == 10
    for name in ("metrics.json", "confusion_matrix.png", "report.html"):
        assert (tmp_path / "eval" / name).is_file()
    assert metrics["tta"] == "none"


def test_evaluate_with_test_time_augmentation(trained, digits_folder, capsys):
    from foveal.evaluation.run import evaluate

    assert main(["evaluate", str(trained / "best.keras"), "--data", str(digits_folder), "--json",
                 "--tta", "flip-shift"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["tta"] == "flip-shift" and metrics["num_examples"] == 300
    flip = evaluate(trained / "best.keras", str(digits_folder), tta="flip")
    plain = evaluate(trained / "best.keras", str(digits_folder))
    assert flip["accuracy"] != plain["accuracy"] or flip["loss"] != plain["loss"]  # the views were used


def test_predict_table_csv_json(trained, digits_folder, tmp_path, capsys):
    model = str(trained / "best.keras")
    image = digits_folder / "7" / "000.png"
    assert main(["predict", model, str(image), "--top-k", "3"]) == 0
    table = capsys.readouterr().out
    assert "000.png" in table and table.count("(") == 3

    assert main(["predict", model, str(digits_folder / "3"), "--output", str(tmp_path / "p.csv")]) == 0
    capsys.readouterr()
    rows = list(csv.DictReader((tmp_path / "p.csv").open()))
    assert len(rows) == 30 * 5 and {r["rank"] for r in rows} == {"1", "2", "3", "4", "5"}
    top1 = [r for r in rows if r["rank"] == "1"]
    assert sum(r["label"] == "3" for r in top1) >= 15

    assert main(["predict", model, str(image), "--format", "json"]) == 0
    result = json.loads(capsys.readouterr().out)
    probs = [p["probability"] for p in result[0]["predictions"]]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1.0001


def test_predict_bad_files(trained, tmp_path, capsys):
    model = str(trained / "best.keras")
    bad = tmp_path / "notes.png"
    bad.write_text("this is not an image")
    assert main(["predict", model, str(bad)]) == 2
    err = capsys.readouterr().err
    assert "notes.png" in err and "Traceback" not in err
    good = tmp_path / "ok.png"
    from PIL import Image

    Image.new("RGB", (40, 20), (255, 255, 255)).save(good)  # colour and odd size: converted and resized
    assert main(["predict", model, str(bad), str(good), "--skip-invalid", "--format", "json"]) == 0
    out = capsys.readouterr()
    rows = json.loads(out.out)
    assert "error" in rows[0] and rows[1]["predictions"] and "skipped 1" in out.err


@pytest.mark.parametrize("argv, message", [
    (["train", "--model", "lenet6"], "unknown model 'lenet6'"),
    (["train", "--data", "/nonexistent/place"], "/nonexistent/place"),
    (["train", "--optimizer", "adamm"], "did you mean 'adam'"),
    (["train", "--model-options", "stem=cifar", "--epochs", "1"], "has no option"),
    (["train", "--augment", "blur", "--epochs", "1"], "unknown augmentation"),
    (["evaluate", "/nonexistent/model.keras", "--data", "digits"], "model file not found"),
    (["predict", "/nonexistent/model.keras", "x.png"], "model file not found"),
])
def test_user_errors_exit_2_with_a_message(argv, message, tmp_path, capsys):
    assert main([*argv, "--output", str(tmp_path)] if argv[0] == "train" else argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_bad_config_key_is_named(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text("epochs: 2\nbatchsize: 8\n")
    assert main(["train", "--config", str(config)]) == 2
    assert "unknown option 'batchsize'" in capsys.readouterr().err


def test_parser_rejects_unknown_flags(capsys):
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["train", "--epoch", "3"])
    assert exit_info.value.code == 2


def test_datasets_inspect_and_convert(digits_folder, tmp_path, capsys):
    assert main(["datasets", "inspect", str(digits_folder), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert "300" in json.dumps(report)
    assert main(["datasets", "inspect", str(digits_folder)]) == 0
    assert "7" in capsys.readouterr().out
    assert main(["datasets", "convert", str(digits_folder), "--output", str(tmp_path / "tfr")]) == 0
    capsys.readouterr()
    assert main(["datasets", "inspect", str(tmp_path / "tfr"), "--json"]) == 0
    assert "300" in json.dumps(json.loads(capsys.readouterr().out))


def test_inspect_reports_bad_files_without_failing(tmp_path, capsys):
    from conftest import write_digits_folder

    root = write_digits_folder(tmp_path / "d", per_class=3, classes=2)
    (root / "0" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    assert main(["datasets", "inspect", str(root), "--json"]) == 0
    assert "broken.png" in capsys.readouterr().out
    code = main(["train", "--data", str(root), "--epochs", "1", "--output", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2 and "broken.png" in err and "--skip-invalid" in err


FASHION = SHARED_DATASETS / "fashion-mnist"


@pytest.mark.slow  # an epoch over 54,000 images; the IDX reader itself: tests/data/test_readers.py (fast)
@requires_shared("fashion-mnist")
def test_fashion_mnist_idx_end_to_end(tmp_path, capsys):
    """The real Fashion-MNIST IDX files: train one epoch, evaluate on the 10,000 test images."""
    assert main(["train", "--data", str(FASHION), "--model", "lenet5", "--epochs", "1", "--batch-size", "256",
                 "--output", str(tmp_path), "--name", "fm", "--no-progress", "--no-tensorboard"]) == 0
    out = capsys.readouterr().out
    assert "train 54000, val 6000, test 10000" in out
    metrics = json.loads((tmp_path / "fm" / "metrics.json").read_text())
    assert metrics["num_examples"] == 10_000 and metrics["accuracy"] > 0.7
    assert [row["class"] for row in metrics["per_class"]][:2] == ["T-shirt/top", "Trouser"]


def test_help_does_not_load_tensorflow():
    """`foveal --help` must stay instant: building the parser may not import TensorFlow or Keras."""
    import subprocess
    import sys

    code = ("import sys; from foveal.cli.main import build_parser; build_parser(); "
            "heavy = [m for m in ('tensorflow', 'keras') if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("argv, expected", [
    (["train", "--task", "segment", "--epochs", "2"], ["segment", "train", "--epochs", "2"]),
    (["-v", "train", "--epochs", "2", "--task=localize"], ["-v", "localize", "train", "--epochs", "2"]),
    (["train", "--task", "classify", "--epochs", "2"], ["train", "--epochs", "2"]),
    (["train", "--task", "bogus"], ["train", "--task", "bogus"]),
    (["localize", "train", "--epochs", "2"], ["localize", "train", "--epochs", "2"]),
    (["train", "--", "--task", "detect"], ["train", "--", "--task", "detect"]),
])
def test_train_task_routes_to_the_task_command(argv, expected):
    from foveal.cli.grammar import route

    assert route(argv) == expected


def test_train_task_unknown_is_refused(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--task", "bogus"])
    assert "invalid choice" in capsys.readouterr().err


def test_python_dash_m_foveal_is_the_command(tmp_path):
    """`python -m foveal ...` runs the `foveal` command (where the entry point is not on PATH)."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    out = subprocess.run([sys.executable, "-m", "foveal", "--version"], capture_output=True, text=True, env=env,
                         cwd=tmp_path)
    assert out.returncode == 0 and out.stdout.startswith("foveal "), out.stderr[-300:]
