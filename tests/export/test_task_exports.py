"""Exports of detectors, localizers and segmenters: every format that runs on Linux, the task's
parity check and accuracy, staged writes, --output paths, and the parity checks themselves."""

from __future__ import annotations

import json

import numpy as np
import pytest

from foveal.cli.main import main
from foveal.errors import ConfigError
from foveal.export import export_model, open_runner, tasks
from foveal.export.parity import ExportParityError, resolve_target
from foveal.models.io import ModelCard

TASKS = ("detect", "localize", "segment")


def _target(tmp_path, fmt):
    return tmp_path / {"savedmodel": "sm", "tflite": "m.tflite", "onnx": "m.onnx"}[fmt]


def _check_runner_outputs(task, path, card_source):
    """The export's runner gives the task's outputs, shaped as the Keras model's."""
    runner = open_runner(path)
    assert runner.card.task == task
    images = np.random.default_rng(1).uniform(0, 255, (3, 64, 64, 3)).astype(np.float32)
    out = tasks.outputs(runner, runner.card, images)
    # The export's outputs carry the names of the Keras graph's (what the decoders look up).
    assert set(runner.raw(images)) == set(open_runner(card_source).raw(images))
    if task == "detect":
        assert set(out) == {"boxes", "scores", "classes", "num_detections"}
        assert out["boxes"].shape[0] == 3 and out["num_detections"].sum() > 0
        assert runner.card.training["postprocess"]["score_threshold"] == pytest.approx(0.05)
    elif task == "localize":
        assert out["box"].shape == (3, 4) and out["class"].shape == (3, 1)
        assert np.all(out["box"][:, 2:] >= out["box"][:, :2])
    else:
        assert out["probabilities"].shape == (3, 64, 64, 3)
        # Free height and width: a 40x48 image gives a 40x48 map.
        assert tasks.outputs(runner, runner.card, images[:1, :40, :48])["probabilities"].shape == (1, 40, 48, 3)


@pytest.mark.parametrize("task", TASKS)
def test_onnx_export_passes_the_tasks_parity_check(task_models, tmp_path, task):
    report = export_model(task_models[task], "onnx", tmp_path / "m.onnx", samples=6)
    assert report.passed and report.task == task and report.check == "numeric"
    assert report.max_abs_diff <= report.tolerance
    assert report.top1_agreement == 1.0 or task == "detect"
    if task == "detect":
        p = report.parity
        assert p["keras_boxes"] > 10 and p["unexplained_boxes"] == 0
        # Untrained scores nearly tie, so NMS may swap a few overlapping boxes; most match exactly.
        assert p["matched_boxes"] >= 0.8 * p["keras_boxes"]
        assert p["max_box_diff"] <= 1e-4 and p["class_agreement"] == 1.0
        assert "boxes: Keras" in report.summary()
    elif task == "localize":
        assert report.parity["mean_box_iou"] > 0.99
    else:
        assert report.parity["agreement_name"] == "mask pixel agreement"
    _check_runner_outputs(task, tmp_path / "m.onnx", task_models[task])


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["savedmodel", "tflite"])
@pytest.mark.parametrize("task", TASKS)
def test_savedmodel_and_tflite_exports_pass(task_models, tmp_path, task, fmt):
    report = export_model(task_models[task], fmt, _target(tmp_path, fmt), samples=6)
    assert report.passed and report.top1_agreement >= (0.8 if task == "detect" else 1.0)
    _check_runner_outputs(task, _target(tmp_path, fmt), task_models[task])


@pytest.mark.slow
@pytest.mark.parametrize("task", TASKS)
def test_quantized_tflite_export_is_checked(task_models, tmp_path, task):
    report = export_model(task_models[task], "tflite", tmp_path / "q.tflite", quantize="float16", samples=6)
    assert report.passed and report.max_abs_diff <= 1e-2
    assert report.size_bytes < report.keras_size_bytes


@pytest.mark.slow
@pytest.mark.parametrize("task", TASKS)
def test_accuracy_next_to_keras_with_the_tasks_own_score(task_models, task_data, tmp_path, task):
    report = export_model(task_models[task], "onnx", tmp_path / "m.onnx", data=task_data[task], samples=4)
    assert report.accuracy_metric == {"detect": "map50", "localize": "mean_iou", "segment": "mean_iou"}[task]
    assert set(report.accuracy) == {"keras", "export", "difference"}
    assert 0.0 <= report.accuracy["keras"] <= 1.0
    assert report.accuracy["difference"] == pytest.approx(0.0, abs=1e-3)
    assert report.samples == 4


@pytest.mark.slow
def test_detection_accuracy_is_the_detectors_map(task_models, task_data, tmp_path):
    """The export's mAP@0.5 equals what the detector's own scoring gives for the Keras model."""
    from foveal.detection.scoring import detect_dataset, score_detections
    from foveal.models import load_model

    report = export_model(task_models["detect"], "onnx", tmp_path / "m.onnx", data=task_data["detect"],
                          samples=2, accuracy_limit=6)
    model, card = load_model(task_models["detect"])
    part = tasks.load_parts(task_data["detect"], card)["train"]
    part = part.subset(np.arange(6))
    metrics, _ = score_detections(part, detect_dataset(model, card, part), score_threshold=0.05)
    assert report.accuracy["keras"] == pytest.approx(metrics["map50"])
    assert report.accuracy["export"] == pytest.approx(metrics["map50"], abs=1e-6)


def test_failed_check_leaves_nothing(task_models, tmp_path):
    out = tmp_path / "new" / "deeper"
    with pytest.raises(ExportParityError, match="nothing was written"):
        export_model(task_models["segment"], "onnx", out / "m.onnx", samples=2, tolerance=-1.0)
    assert list(tmp_path.iterdir()) == []  # the folders made for it are gone too


@pytest.mark.slow
def test_failed_check_keeps_the_previous_savedmodel(task_models, tmp_path):
    export_model(task_models["segment"], "savedmodel", tmp_path / "sm", samples=2)
    stamp = (tmp_path / "sm" / "foveal.json").read_text()
    with pytest.raises(ExportParityError):
        export_model(task_models["segment"], "savedmodel", tmp_path / "sm", samples=2, tolerance=-1.0)
    assert (tmp_path / "sm" / "foveal.json").read_text() == stamp
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sm"]
    assert json.loads(stamp)["task"] == "segment"


def test_output_paths(tmp_path):
    model = tmp_path / "runs" / "best.keras"
    (tmp_path / "folder").mkdir()
    (tmp_path / "old_sm").mkdir()
    (tmp_path / "old_sm" / "saved_model.pb").write_bytes(b"")
    (tmp_path / "file.tflite").write_bytes(b"")
    cases = {
        ("tflite", None, None): model.with_name("best.tflite"),
        ("tflite", "int8", None): model.with_name("best.int8.tflite"),
        ("savedmodel", None, None): model.with_name("best_savedmodel"),
        ("tflite", None, tmp_path / "folder"): tmp_path / "folder" / "best.tflite",
        ("onnx", None, f"{tmp_path}/new/"): tmp_path / "new" / "best.onnx",
        ("tflite", None, tmp_path / "exp"): tmp_path / "exp" / "best.tflite",  # the row
        ("tflite", None, tmp_path / "file.tflite"): tmp_path / "file.tflite",
        ("onnx", "dynamic", tmp_path / "x.onnx"): tmp_path / "x.onnx",
        ("savedmodel", None, tmp_path / "exp"): tmp_path / "exp",
        ("savedmodel", None, f"{tmp_path}/exp/"): tmp_path / "exp" / "best_savedmodel",
        ("savedmodel", None, tmp_path / "folder"): tmp_path / "folder" / "best_savedmodel",
        ("savedmodel", None, tmp_path / "old_sm"): tmp_path / "old_sm",
        ("coreml", None, tmp_path / "folder"): tmp_path / "folder" / "best.mlpackage",
        ("coreml", None, tmp_path / "m.mlpackage"): tmp_path / "m.mlpackage",
    }
    for (fmt, quantize, output), expected in cases.items():
        assert resolve_target(model, fmt, quantize, output) == expected, (fmt, output)
    with pytest.raises(ConfigError, match="ends in .tflite, not .onnx"):
        resolve_target(model, "tflite", None, tmp_path / "m.onnx")
    with pytest.raises(ConfigError, match="a SavedModel is a folder"):
        resolve_target(model, "savedmodel", None, tmp_path / "file.tflite")


@pytest.mark.slow
def test_cli_export_to_a_new_folder(task_models, tmp_path, capsys):
    """`foveal export MODEL --format onnx --output exp` with no `exp` yet: a folder holding the export."""
    assert main(["export", str(task_models["segment"]), "--format", "onnx", "--output", str(tmp_path / "exp"),
                 "--samples", "2", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["passed"] and report["path"] == str(tmp_path / "exp" / "seg.onnx")
    assert sorted(p.name for p in (tmp_path / "exp").iterdir()) == ["seg.onnx", "seg.onnx.foveal.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exp"]  # no temporary folder left


def _detections(boxes, scores, classes):
    n = len(scores)
    pad = 5 - n
    return {"boxes": np.pad(np.asarray(boxes, np.float32).reshape(-1, 4), [[0, pad], [0, 0]])[None],
            "scores": np.pad(np.asarray(scores, np.float32), [0, pad])[None],
            "classes": np.pad(np.asarray(classes, np.int32), [0, pad], constant_values=-1)[None],
            "num_detections": np.array([n], np.int32)}


def test_detection_parity_matches_boxes_by_iou():
    card = ModelCard("yolo", ["a", "b"], (64, 64, 3), task="detect",
                     training={"postprocess": {"score_threshold": 0.3, "iou_threshold": 0.45,
                                               "max_detections": 5, "class_aware": True}})
    ref = _detections([[0.1, 0.1, 0.4, 0.4], [0.5, 0.5, 0.9, 0.9]], [0.9, 0.8], [0, 1])
    same_reordered = _detections([[0.5, 0.5, 0.9, 0.9], [0.1, 0.1, 0.4, 0.4]], [0.8, 0.9], [1, 0])
    result = tasks.parity(ref, same_reordered, card, 1e-4)
    assert result["passed"] and result["matched_boxes"] == 2 and result["mean_iou"] == pytest.approx(1.0)
    # A box lost by the export fails, unless its score is at the threshold (within the tolerance).
    lost = _detections([[0.1, 0.1, 0.4, 0.4]], [0.9], [0])
    assert not tasks.parity(ref, lost, card, 1e-4)["passed"]
    borderline = _detections([[0.1, 0.1, 0.4, 0.4], [0.5, 0.5, 0.9, 0.9]], [0.9, 0.30005], [0, 1])
    assert tasks.parity(borderline, lost, card, 1e-4)["passed"]
    # Another class at the same place fails; a moved box fails beyond the tolerance.
    flipped = _detections([[0.1, 0.1, 0.4, 0.4], [0.5, 0.5, 0.9, 0.9]], [0.9, 0.8], [0, 0])
    result = tasks.parity(ref, flipped, card, 1e-4)
    assert not result["passed"] and result["class_agreement"] == 0.5
    moved = _detections([[0.1, 0.1, 0.4, 0.4], [0.52, 0.5, 0.9, 0.9]], [0.9, 0.8], [0, 1])
    assert not tasks.parity(ref, moved, card, 1e-4)["passed"]
    assert tasks.parity(ref, moved, card, 0.05)["passed"]
    # Two overlapping boxes (IoU 0.47) scoring a rounding apart: NMS keeps one in Keras, the
    # other in the export. Explained, not failed; the same swap with scores far apart fails.
    a, b = [0.1, 0.1, 0.5, 0.5], [0.1, 0.1, 0.5, 0.1 + 0.4 * 0.47]
    kept_a = _detections([a], [0.90001], [0])
    kept_b = _detections([b], [0.9], [0])
    result = tasks.parity(kept_a, kept_b, card, 1e-4)
    assert result["passed"] and result["unmatched_by_nms"] == 2 and result["matched_boxes"] == 0
    assert not tasks.parity(_detections([a], [0.95], [0]), _detections([b], [0.6], [0]), card, 1e-4)["passed"]


def test_segment_and_localize_parity_figures():
    seg = ModelCard("unet", ["bg", "fg"], (4, 4, 3), task="segment")
    probs = np.zeros((1, 2, 2, 2), np.float32)
    probs[..., 0] = [[0.9, 0.2], [0.6, 0.49]]
    probs[..., 1] = 1 - probs[..., 0]
    other = probs.copy()
    other[0, 1, 1] = [0.51, 0.49]  # one pixel of four changes class
    result = tasks.parity({"probabilities": probs}, {"probabilities": other}, seg, 0.05)
    assert result["passed"] and result["agreement"] == 0.75 and result["min_image_pixel_agreement"] == 0.75
    assert not tasks.parity({"probabilities": probs}, {"probabilities": other}, seg, 0.01)["passed"]
    loc = ModelCard("resnet18", ["a", "b"], (4, 4, 3), task="localize")
    ref = {"class": np.array([[0.7, 0.3]], np.float32), "box": np.array([[0.0, 0.0, 0.5, 0.5]], np.float32)}
    got = {"class": np.array([[0.4, 0.6]], np.float32), "box": np.array([[0.0, 0.0, 0.5, 0.25]], np.float32)}
    result = tasks.parity(ref, got, loc, 0.5)
    assert result["agreement"] == 0.0 and result["mean_box_iou"] == pytest.approx(0.5)
    assert result["max_box_diff"] == pytest.approx(0.25) and result["passed"]


def test_unknown_task_is_refused():
    from foveal.errors import ModelError

    with pytest.raises(ModelError, match="cannot export or serve models of the task 'caption'"):
        tasks.hooks("caption")


def test_benchmark_table_of_a_segmenter(task_models):
    from foveal.export.benchmark import benchmark, format_benchmark

    table = benchmark(task_models["segment"], runtimes=("keras-call",), warmup=1, runs=2, batch_size=2)
    (result,) = table["results"]
    assert result["task"] == "segment" and result["batch1_end_to_end"]["p50_ms"] > 0
    assert "(segment;" in format_benchmark(table)


@pytest.mark.slow
@pytest.mark.parametrize("task", TASKS)
def test_benchmark_every_runtime(task_models, tmp_path, task):
    from foveal.export.benchmark import benchmark, format_benchmark

    runtimes = ("keras-predict", "keras-call", "savedmodel", "tflite", "onnx")
    table = benchmark(task_models[task], runtimes=runtimes if task == "segment" else ("keras-call", "onnx"),
                      warmup=1, runs=3, batch_size=2, workdir=tmp_path)
    assert [r["task"] for r in table["results"]] == [task] * len(table["results"])
    assert all(r["batch1"]["p50_ms"] > 0 and r["batch1_end_to_end"]["p50_ms"] > 0
               and r["throughput_images_per_s"] > 0 for r in table["results"])
    text = format_benchmark(table)
    assert f"({task};" in text and "onnx" in text
    assert list(tmp_path.iterdir()) == []  # the temporary exports are gone


@pytest.mark.slow
@pytest.mark.parametrize("task", TASKS)
def test_coreml_export_is_checked_structurally(task_models, tmp_path, task):
    pytest.importorskip("coremltools")
    report = export_model(task_models[task], "coreml", tmp_path, samples=2)
    assert report.passed and report.check == "structural" and report.task == task
    assert list(report.structure["inputs"].values()) == [[1, 64, 64, 3]]
    assert len(report.structure["outputs"]) == (2 if task == "localize" else 1)
    assert (tmp_path / {"detect": "det", "localize": "loc", "segment": "seg"}[task]).with_suffix(".mlpackage").is_dir()


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["tflite", "onnx"])
def test_int8_export_of_a_localizer_calibrates_on_its_boxes(task_models, task_data, tmp_path, fmt):
    report = export_model(task_models["localize"], fmt, tmp_path / f"q.{fmt}", quantize="int8",
                          data=task_data["localize"], samples=4, calibration=8)
    assert report.passed and report.size_bytes < report.keras_size_bytes / 2
    assert abs(report.accuracy["difference"]) < 0.05


def test_runner_decoding_equals_the_detectors_own_postprocessing():
    """decode_raw (what every export runner uses) gives detect_from_outputs' boxes, for heads
    of different depths and batch sizes one after another (one traced decoder each)."""
    from foveal.detection.export_check import decode_raw
    from foveal.detection.postprocess import detect_from_outputs

    anchors = np.array([[0.1, 0.1], [0.3, 0.3], [0.6, 0.6]], np.float32)
    settings = {"score_threshold": 0.2, "iou_threshold": 0.45, "max_detections": 10, "class_aware": True}
    rng = np.random.default_rng(0)
    for classes, batch, grid in ((1, 2, 2), (2, 3, 4), (1, 1, 3), (3, 2, 2)):
        card = ModelCard("yolo", [str(i) for i in range(classes)], (64, 64, 3), task="detect",
                         training={"anchors": anchors.tolist(), "postprocess": settings})
        raw = rng.normal(0, 2, (batch, grid, grid, 3, 5 + classes)).astype(np.float32)
        got = decode_raw({"raw_P5": raw}, card)
        want = detect_from_outputs([raw], anchors, **settings)
        assert got["num_detections"].tolist() == np.asarray(want["num_detections"]).tolist()
        np.testing.assert_allclose(got["boxes"], np.clip(np.asarray(want["boxes"]), 0, 1), atol=1e-6)
        np.testing.assert_array_equal(got["classes"], np.asarray(want["classes"]))
