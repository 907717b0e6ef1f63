"""``foveal inspect`` through its own argparse wiring: an architecture by name, a saved
model with an image (all files written), and the user errors, each a FovealError."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
from PIL import Image

from foveal.errors import FovealError
from foveal.inspection.cli import add_inspect_command
from foveal.models import ModelCard, build_model, save_model


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="foveal", allow_abbrev=False)
    add_inspect_command(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["inspect", *argv])
    return args.func(args, {})


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A tiny saved ResNet with named classes (one with markup in it), and a PNG photo of
    another size than the model's input."""
    root = tmp_path_factory.mktemp("inspect")
    model = build_model("resnet18", num_classes=3, input_shape=(32, 32, 3), width=4, stem="cifar")
    path = save_model(model, root / "tiny.keras", ModelCard("resnet18", ["cat", "<b>dog</b>", "owl"], (32, 32, 3)))
    image = root / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(image)
    return path, image


def test_help_lists_every_option(capsys):
    with pytest.raises(SystemExit) as exit_info:
        run(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for option in ("--input-shape", "--num-classes", "--image", "--layer", "--class", "--batch-size",
                   "--output", "--json"):
        assert option in text


def test_architecture_by_name_prints_table_and_writes_files(tmp_path, capsys):
    assert run(["lenet5", "--output", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "c1" in out and "61,706" in out and "RF" in out and "training at batch 32" in out
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["totals"]["parameters"] == 61_706
    layers = {row["name"]: row for row in summary["layers"]}
    assert layers["s4"]["receptive_field"] == [16, 16] and layers["c5"]["receptive_field"] == "whole input"
    assert summary["memory"]["training"]["batch_size"] == 32
    assert (tmp_path / "filters.png").read_bytes()[:4] == b"\x89PNG"
    assert not (tmp_path / "gradcam.png").exists()
    html = (tmp_path / "inspect.html").read_text()
    assert "Inspection of lenet5" in html and "data:image/png;base64," in html


def test_json_output_with_input_shape(capsys):
    assert run(["resnet18", "--input-shape", "64", "64", "3", "--num-classes", "5", "--batch-size", "8",
                "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["input_shape"] == [64, 64, 3] and report["layers"][-1]["output_shape"] == [5]
    assert report["memory"]["training"]["batch_size"] == 8


def test_saved_model_with_image(saved, tmp_path, capsys):
    model_path, image = saved
    out = tmp_path / "out"
    assert run([str(model_path), "--image", str(image), "--class", "<b>dog</b>", "--output", str(out)]) == 0
    assert "Grad-CAM: class <b>dog</b>" in capsys.readouterr().out
    for name in ("summary.json", "filters.png", "feature_maps.png", "gradcam.png", "inspect.html"):
        assert (out / name).stat().st_size > 0, name
    report = json.loads((out / "summary.json").read_text())
    assert report["gradcam"]["class_name"] == "<b>dog</b>" and report["gradcam"]["layer"] == "stage4_unit2_out"
    assert report["source"] == "file" and report["gradcam"]["class_index"] == 1
    html = (out / "inspect.html").read_text()
    assert "&lt;b&gt;dog&lt;/b&gt;" in html and "<b>dog</b>" not in html  # user text is escaped
    assert html.count("data:image/png;base64,") == 3


@pytest.mark.parametrize("argv, message", [
    (["resnet81"], "unknown model 'resnet81'.*\n.*did you mean resnet18"),
    (["missing.keras"], "model file not found"),
    (["lenet5", "--layer", "c9"], "no layer 'c9'"),
    (["lenet5", "--class", "zebra"], "unknown class 'zebra'"),
    (["lenet5", "--class", "10"], "unknown class '10'"),
])
def test_user_errors(argv, message):
    with pytest.raises(FovealError, match=message):
        run(argv)


def test_unreadable_image(saved, tmp_path):
    model_path, _ = saved
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(FovealError, match="bad.png"):
        run([str(model_path), "--image", str(bad)])
