"""``foveal scratch train`` and ``foveal.scratch.train``: run folder, one report, twin agreement."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest

from foveal.cli.main import main


def test_help_lists_the_options(capsys):
    for argv in (["scratch", "--help"], ["scratch", "train", "--help"]):
        with pytest.raises(SystemExit) as info:
            main(argv)
        assert info.value.code == 0
    out = capsys.readouterr().out
    for option in ("--data", "--network", "--hidden", "--filters", "--keras-twin", "--dtype", "--batch-size"):
        assert option in out


def test_scratch_help_does_not_import_tensorflow():
    code = ("import sys; from foveal.cli.main import build_parser; build_parser(); "
            "import foveal.scratch.cli, foveal.scratch; assert 'tensorflow' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("argv", [
    ["--epochs", "2", "--hidden", "16"],
    pytest.param(["--network", "cnn", "--epochs", "2", "--filters", "2", "4", "--kernel-size", "3", "--limit", "600"],
                 marks=pytest.mark.slow),
], ids=["simple", "cnn"])
def test_train_writes_run_folder_with_both_networks(argv, tmp_path, capsys):
    assert main(["scratch", "train", *argv, "--output", str(tmp_path), "--name", "run"]) == 0
    run = tmp_path / "run"
    for name in ("config.yaml", "history.csv", "metrics.json", "report.html", "weights.npz"):
        assert (run / name).is_file(), name
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["scored_on"] == "validation"  # digits have no test part: a stratified 20% split
    # float64, same initial weights, same batches: the two networks compute the same thing.
    assert max(metrics["max_abs_difference"].values()) < 1e-9
    assert metrics["numpy"]["accuracy"] == pytest.approx(metrics["keras"]["accuracy"], abs=1e-12)
    rows = list(csv.DictReader((run / "history.csv").open()))
    assert len(rows) == 2 and {"numpy_val_loss", "keras_val_loss", "numpy_loss", "keras_loss"} <= set(rows[0])
    html = (run / "report.html").read_text()
    assert "NumPy network vs Keras twin" in html and "Training curves" in html
    assert "numpy epoch 2/2" in capsys.readouterr().out


def test_python_api_and_errors(tmp_path, capsys):
    import foveal.scratch as scratch
    from foveal.errors import ConfigError

    result = scratch.train(data="digits", epochs=1, keras_twin=False, output=str(tmp_path), name="api", limit=300)
    assert "keras_loss" not in result.history and 0.0 <= result.metrics["numpy"]["accuracy"] <= 1.0
    with pytest.raises(ConfigError):
        scratch.train(data="digits", epochs=1, output=str(tmp_path), name="api")  # folder already holds a run
    with pytest.raises(ConfigError):
        scratch.train(data="digits", momentum=1.5)
    assert main(["scratch", "train", "--batch-size", "5000", "--output", str(tmp_path)]) == 2
    assert "fewer than one batch" in capsys.readouterr().err
