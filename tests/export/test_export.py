"""Exports: every format and quantization, parity with Keras, accuracy, errors, benchmark."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from foveal.cli.main import main
from foveal.errors import ConfigError, ModelError
from foveal.export import export_model, open_runner
from foveal.export.parity import ExportParityError
from foveal.models import ModelCard, build_model, save_model


@pytest.fixture(scope="module")
def model_and_data(tmp_path_factory):
    """A LeNet-5 trained briefly on 3 classes of real digits, and the data as .npz."""
    from sklearn.datasets import load_digits

    root = tmp_path_factory.mktemp("export")
    digits = load_digits()
    keep = digits.target < 3
    images = np.round(digits.images[keep] * 255 / 16).astype(np.uint8)
    labels = digits.target[keep]
    data = root / "digits3.npz"
    np.savez(data, x_train=images[:400], y_train=labels[:400], x_test=images[400:], y_test=labels[400:])
    import tensorflow as tf

    model = build_model("lenet5", num_classes=3)
    model.compile("adam", "sparse_categorical_crossentropy")
    x = tf.image.resize(images[:400, ..., None].astype("float32"), (32, 32)).numpy()
    model.fit(x, labels[:400], epochs=3, batch_size=32, verbose=0)
    path = save_model(model, root / "m.keras", ModelCard("lenet5", ["0", "1", "2"], (32, 32, 1)))
    return path, str(data)


# tflite float16 and dynamic in the slow tier (a conversion each); the default tier converts tflite dynamic in
# test_parity_failure_leaves_nothing and int8 in test_int8_with_calibration_reports_accuracy
@pytest.mark.parametrize("fmt, quantize", [("savedmodel", None), ("tflite", None),
                                           pytest.param("tflite", "float16", marks=pytest.mark.slow),
                                           pytest.param("tflite", "dynamic", marks=pytest.mark.slow),
                                           ("onnx", None), ("onnx", "dynamic")])
def test_formats_pass_parity(model_and_data, tmp_path, fmt, quantize):
    model_path, _ = model_and_data
    report = export_model(model_path, fmt, tmp_path / f"out.{fmt}" if fmt != "savedmodel" else tmp_path / "sm",
                          quantize=quantize)
    assert report.passed and report.max_abs_diff <= report.tolerance
    assert report.top1_agreement >= 0.95
    runner = open_runner(report.path)
    assert runner.card.class_names == ["0", "1", "2"]
    if quantize:
        assert report.size_bytes < report.keras_size_bytes / 2


@pytest.mark.parametrize("fmt", ["tflite", "onnx"])
def test_int8_with_calibration_reports_accuracy(model_and_data, tmp_path, fmt):
    model_path, data = model_and_data
    report = export_model(model_path, fmt, tmp_path / f"q.{fmt}", quantize="int8", data=data, calibration=50)
    assert report.passed and set(report.accuracy) == {"keras", "export", "difference"}
    assert report.accuracy["keras"] > 0.8
    assert abs(report.accuracy["difference"]) <= 0.05


def test_savedmodel_takes_encoded_images(model_and_data, tmp_path):
    import tensorflow as tf

    from foveal import predict as p
    from foveal.models import load_model

    model_path, _ = model_and_data
    report = export_model(model_path, "savedmodel", tmp_path / "sm")
    image = tmp_path / "x.png"
    Image.fromarray(np.tile(np.arange(0, 256, 16, dtype=np.uint8), (16, 1))).save(image)
    loaded = tf.saved_model.load(report.path)
    out = loaded.signatures["predict_images"](encoded=tf.constant([image.read_bytes()]))
    probs = next(iter(out.values())).numpy()[0]
    model, card = load_model(model_path)
    expected = p.predict(model, card, [image], top_k=3)[0]["predictions"]
    assert [card.class_names[i] for i in np.argsort(-probs)] == [e["label"] for e in expected]
    np.testing.assert_allclose(sorted(probs, reverse=True), [e["probability"] for e in expected], atol=1e-5)


def test_export_errors(model_and_data, tmp_path):
    model_path, _ = model_and_data
    with pytest.raises(ConfigError, match="does not support --quantize float16"):
        export_model(model_path, "onnx", tmp_path / "a.onnx", quantize="float16")
    with pytest.raises(ConfigError, match="representative sample"):
        export_model(model_path, "tflite", tmp_path / "a.tflite", quantize="int8")
    with pytest.raises(ConfigError, match="unknown export format"):
        export_model(model_path, "coreml2", tmp_path / "a")
    with pytest.raises(ModelError, match="no model card"):
        (tmp_path / "stray.onnx").write_bytes(b"x")
        open_runner(tmp_path / "stray.onnx")


def test_parity_failure_leaves_nothing(model_and_data, tmp_path):
    model_path, _ = model_and_data
    with pytest.raises(ExportParityError, match="nothing was written") as info:
        export_model(model_path, "tflite", tmp_path / "d.tflite", quantize="dynamic", tolerance=0.0)
    assert not info.value.report.passed
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no export, no card, no temporary folder
    # An older export at the target (and its card) survives a failed one; stand-in files: what
    # is checked is that the failed export leaves them alone (a real older export costs a conversion)
    (tmp_path / "d.tflite").write_bytes(b"an older export")
    (tmp_path / "d.tflite.foveal.json").write_text("{}")
    with pytest.raises(ExportParityError):
        export_model(model_path, "tflite", tmp_path / "d.tflite", quantize="dynamic", tolerance=0.0)
    assert (tmp_path / "d.tflite").read_bytes() == b"an older export"
    assert (tmp_path / "d.tflite.foveal.json").read_text() == "{}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.tflite", "d.tflite.foveal.json"]


def test_cli_export_and_benchmark(model_and_data, tmp_path, capsys):
    model_path, data = model_and_data
    assert main(["export", str(model_path), "--format", "tflite", "--output", str(tmp_path / "m.tflite"),
                 "--data", data, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["passed"] and report["accuracy"]["export"] > 0.8
    assert main(["benchmark", str(model_path), "--runs", "3", "--warmup", "1", "--batch-size", "4",
                 "--output", str(tmp_path / "b.json")]) == 0
    out = capsys.readouterr().out
    for runtime in ("keras-predict", "keras-call", "savedmodel", "tflite", "onnx"):
        assert runtime in out
    table = json.loads((tmp_path / "b.json").read_text())
    assert all(r["batch1"]["p50_ms"] > 0 and r["throughput_images_per_s"] > 0 for r in table["results"])
    assert main(["benchmark", str(tmp_path / "m.tflite"), "--runs", "3", "--warmup", "1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["results"][0]["runtime"] == "tflite"
    assert main(["export", str(model_path), "--format", "onnx", "--quantize", "float16"]) == 2
    assert "does not support" in capsys.readouterr().err


@pytest.mark.parametrize("quantize", [None, "float16"])
def test_coreml_export_is_checked_structurally(model_and_data, tmp_path, quantize):
    pytest.importorskip("coremltools")
    model_path, _ = model_and_data
    report = export_model(model_path, "coreml", tmp_path / "m.mlpackage", quantize=quantize)
    assert report.passed and report.check == "structural"
    assert list(report.structure["inputs"].values()) == [[1, 32, 32, 1]]
    assert report.structure["operations"] > 5
    assert (tmp_path / "m.mlpackage").is_dir()
