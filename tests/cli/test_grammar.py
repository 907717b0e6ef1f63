"""`foveal [TASK] MODE`: the task is read from the model file, mismatches are one-line errors."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from export.conftest import save_detector, save_localizer, save_segmenter
from PIL import Image

from foveal.cli.grammar import route
from foveal.cli.main import main


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("grammar_models")
    return {"detect": save_detector(root / "det.keras", ["box"]),
            "localize": save_localizer(root / "loc.keras", ["box"]),
            "segment": save_segmenter(root / "seg.keras", ["background", "square"])}


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("grammar_photo") / "photo.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(path)
    return path


@pytest.mark.parametrize("argv, expected", [
    (["classify", "models"], ["models"]),
    (["classify", "train", "--epochs", "1"], ["train", "--epochs", "1"]),
    (["detect", "anchors", "--data", "x"], ["detect", "anchors", "--data", "x"]),
    (["inspect", "resnet18"], ["inspect", "resnet18"]),
])
def test_route_without_model_files(argv, expected):
    assert route(argv) == expected


def test_predict_reads_the_task_from_the_card(models, photo):
    for task, path in models.items():
        assert route(["predict", str(path), str(photo)]) == [task, "predict", str(path), str(photo)]
        assert route(["evaluate", str(path), "--data", "x"])[:2] == [task, "evaluate"]
        assert route([task, "export", str(path), "--format", "onnx"]) == ["export", str(path), "--format", "onnx"]


def test_foveal_predict_on_a_detector_draws_boxes(models, photo, tmp_path, capsys):
    out = tmp_path / "drawn"
    assert main(["predict", str(models["detect"]), str(photo), "--output", str(out)]) == 0
    assert (out / "detections.json").is_file()
    assert json.loads((out / "detections.json").read_text()) is not None
    assert any(p.suffix == ".png" for p in out.iterdir())


def test_foveal_predict_on_a_segmenter_writes_masks(models, photo, tmp_path):
    out = tmp_path / "masks"
    assert main(["predict", str(models["segment"]), str(photo), "--output", str(out)]) == 0
    assert any(p.suffix == ".png" for p in out.rglob("*"))


def test_foveal_predict_on_a_localizer_prints_a_box(models, photo, capsys):
    assert main(["predict", str(models["localize"]), str(photo)]) == 0
    assert "box" in capsys.readouterr().out


@pytest.mark.parametrize("named, actual", [("detect", "segment"), ("segment", "localize"), ("localize", "detect")])
def test_a_model_of_another_task_is_refused_in_one_line(models, photo, named, actual, capsys):
    code = main([named, "predict", str(models[actual]), str(photo)])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert f"is a {actual} model" in err and f"foveal {actual} predict" in err
    assert "Traceback" not in err


def test_an_unsupported_mode_says_what_to_run_instead(models, capsys):
    code = main(["prune", str(models["detect"]), "--data", "digits"])
    err = capsys.readouterr().err
    assert code == 2 and "detect model" in err and "prune" in err and "Traceback" not in err


def test_plain_keras_file_for_a_task_command_is_refused(tmp_path, photo, capsys):
    import keras

    plain = tmp_path / "plain.keras"
    keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Flatten(), keras.layers.Dense(2)]).save(plain)
    code = main(["detect", "predict", str(plain), str(photo)])
    err = capsys.readouterr().err
    assert code == 2 and "no foveal model card" in err and "Traceback" not in err


@pytest.mark.parametrize("mode", ["predict", "evaluate", "export"])
def test_truncated_model_file_is_a_one_line_error(models, tmp_path, photo, mode, capsys):
    broken = tmp_path / "broken.keras"
    broken.write_bytes(models["detect"].read_bytes()[:2000])
    assert not zipfile.is_zipfile(broken)
    extra = {"predict": [str(photo)], "evaluate": ["--data", "digits"], "export": ["--format", "onnx"]}[mode]
    code = main([mode, str(broken), *extra])
    err = capsys.readouterr().err.strip()
    assert code == 2 and str(broken) in err and "Traceback" not in err
    assert len(err.splitlines()) <= 2  # the message and its hint


def test_inspect_any_task_model_at_its_trained_size(models, photo, capsys):
    for task in ("detect", "segment", "localize"):
        assert main(["inspect", str(models[task]), "--json"]) == 0
        report = json.loads(capsys.readouterr().out)
        assert report["input_shape"] == [64, 64, 3] and report["layers"]
    code = main(["inspect", str(models["detect"]), "--image", str(photo)])
    err = capsys.readouterr().err
    assert code == 2 and "Grad-CAM" in err and "detect model" in err


@pytest.mark.slow
def test_routing_by_card_prints_no_framework_noise(models, photo):
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "foveal.cli.main", "predict", str(models["localize"]), str(photo)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "oneDNN" not in done.stderr and "absl" not in done.stderr


def test_foveal_evaluate_on_a_detector_scores_boxes(models, tmp_path, capsys):
    """Was: "class folder 'annotations' has no image files" (the classifier's reader)."""
    from localization.conftest import write_rectangles

    boxes = write_rectangles(tmp_path / "rects", 6)
    assert main(["evaluate", str(models["detect"]), "--data", str(boxes), "--split", "train", "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert "map50" in metrics and metrics["num_images"] == 6


def test_every_task_has_the_same_run_defaults():
    """Determinism, early stopping off and the monitor fallback no longer differ by task."""
    from foveal.tasks import TASKS

    for task in TASKS.values():
        cfg = task.config_class()()
        assert cfg.deterministic is True, task.name
        assert cfg.time_budget == 0 and cfg.early_stopping == 0, task.name


def test_retracing_warnings_are_dropped_other_tensorflow_warnings_kept(caplog):
    """`foveal video train --folds` printed TensorFlow's multi-line retracing advice once per fold."""
    import logging

    import tensorflow as tf

    from foveal.cli.quiet import drop_retracing_warnings

    drop_retracing_warnings()
    drop_retracing_warnings()  # idempotent: one filter
    logger = tf.get_logger()
    assert sum(type(f).__name__ == "_NoRetracingWarning" for f in logger.filters) == 1
    with caplog.at_level(logging.WARNING, logger=logger.name):
        logger.warning("5 out of the last 5 calls to <function f> triggered tf.function retracing. Tracing is expensive")
        logger.warning("something else")
    assert [r.getMessage() for r in caplog.records] == ["something else"]


def test_refusals_name_the_task_with_its_article():
    from foveal.tasks import TASKS

    assert TASKS["instance"].a_model == "an instance model (instance segmentation (Mask R-CNN, U-Net + watershed))"
    assert TASKS["adapt"].a_model.startswith("an adapt model (")
    assert TASKS["detect"].a_model.startswith("a detect model (")
