"""Exports from strangers: graphs with file, process or network ops are refused before they run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from foveal.errors import ModelError
from foveal.export.runners import open_runner
from foveal.export.trust import TF_ALLOWED, UntrustedModelError, check_export, tf_op_reason, tflite_op_codes

CARD = {"architecture": "stranger", "class_names": ["a", "b", "c"], "input_shape": [8, 8, 1]}


def hostile_savedmodel(folder: Path, victim: Path) -> Path:
    """A SavedModel whose serving function writes ``victim`` every time it is called."""
    import tensorflow as tf

    class Hostile(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 8, 8, 1], tf.float32, name="images")])
        def serve(self, images):
            tf.io.write_file(str(victim), "written by a model")
            return {"probabilities": tf.nn.softmax(tf.zeros([tf.shape(images)[0], 3]))}

    module = Hostile()
    tf.saved_model.save(module, str(folder), signatures={"serving_default": module.serve})
    (folder / "foveal.json").write_text(json.dumps(CARD))
    return folder


def test_savedmodel_that_writes_a_file_is_refused_before_it_runs(tmp_path):
    victim = tmp_path / "victim.txt"
    model = hostile_savedmodel(tmp_path / "sm", victim)
    with pytest.raises(UntrustedModelError, match=r"WriteFile \(reads or writes files\)") as caught:
        open_runner(model)
    assert "--trust-model" in str(caught.value)
    assert not victim.exists()
    # The same file, trusted, runs and does write: the check is what stood in the way.
    runner = open_runner(model, trust_model=True)
    assert runner(np.zeros((2, 8, 8, 1), np.float32)).shape == (2, 3)
    assert victim.read_text() == "written by a model"


def test_serve_and_benchmark_refuse_it_too(tmp_path, capsys):
    from foveal.cli.main import main

    victim = tmp_path / "victim.txt"
    model = hostile_savedmodel(tmp_path / "sm", victim)
    assert main(["benchmark", str(model), "--runs", "1", "--warmup", "0", "--batch-size", "1"]) == 2
    err = capsys.readouterr().err
    assert "WriteFile" in err and "--trust-model" in err and "Traceback" not in err
    from foveal.serve.app import create_app

    with pytest.raises(UntrustedModelError, match="WriteFile"):
        create_app(model, browser_model=False)
    assert not victim.exists()


def test_own_savedmodel_export_passes(tmp_path):
    from foveal.export.formats import write_savedmodel
    from foveal.models import ModelCard, build_model

    model = build_model("lenet5", num_classes=3)
    path = write_savedmodel(model, ModelCard("lenet5", ["a", "b", "c"], (32, 32, 1)), tmp_path / "sm")
    assert check_export(path) == []


@pytest.mark.slow
@pytest.mark.parametrize("task", ["segment", "localize", "detect"])
def test_every_task_exports_pass(tmp_path, task):
    """foveal's own exports of each task stay inside the allow-list (SavedModel, TFLite, ONNX)."""
    from foveal.export.formats import write_onnx, write_savedmodel, write_tflite
    from foveal.models import ModelCard

    card = ModelCard("m", ["a", "b"], (64, 64, 3), task=task)
    if task == "segment":
        from foveal.segmentation.models import unet

        model = unet((64, 64, 3), num_classes=2, depth=2, width=8)
    elif task == "localize":
        from foveal.localization.model import build_localizer

        model = build_localizer("resnet18", num_classes=2, input_shape=(64, 64, 3), width=8)
    else:
        from foveal.detection.model import build_detector

        model = build_detector("resnet18", 2, np.array([[0.1, 0.1], [0.3, 0.3], [0.5, 0.5]]), input_shape=(64, 64, 3),
                               backbone_options={"width": 16})
    assert check_export(write_savedmodel(model, card, tmp_path / "sm")) == []
    assert check_export(write_tflite(model, card, tmp_path / "m.tflite")) == []
    assert check_export(write_onnx(model, card, tmp_path / "m.onnx")) == []


def test_onnx_with_a_foreign_domain_or_outside_data_is_refused(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    def save(nodes, name, initializers=()):
        graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
                                  initializer=list(initializers))
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                        helper.make_opsetid("evil.ops", 1)])
        path = tmp_path / name
        onnx.save(model, str(path))
        path.with_name(path.name + ".foveal.json").write_text(json.dumps(CARD))
        return path

    foreign = save([helper.make_node("RunShell", ["x"], ["y"], domain="evil.ops")], "foreign.onnx")
    with pytest.raises(UntrustedModelError, match=r"evil\.ops\.RunShell"):
        open_runner(foreign)

    stolen = helper.make_tensor("w", TensorProto.FLOAT, [3], [0.0, 0.0, 0.0])
    stolen.ClearField("float_data")
    stolen.data_location = TensorProto.EXTERNAL
    stolen.external_data.add(key="location", value="../../../etc/passwd")
    outside = save([helper.make_node("Add", ["x", "w"], ["y"])], "outside.onnx", [stolen])
    with pytest.raises(UntrustedModelError, match="outside the model's folder"):
        open_runner(outside)

    plain = save([helper.make_node("Relu", ["x"], ["y"])], "plain.onnx")
    assert check_export(plain) == []


def test_tflite_custom_and_flex_ops_are_refused(tmp_path):
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec([1, 8, 8, 1], tf.float32)])
    def hostile(images):
        tf.io.write_file(str(tmp_path / "victim.txt"), "x")
        return tf.reduce_mean(images, axis=[1, 2])

    converter = tf.lite.TFLiteConverter.from_concrete_functions([hostile.get_concrete_function()], hostile)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS]
    path = tmp_path / "flex.tflite"
    path.write_bytes(converter.convert())
    path.with_name(path.name + ".foveal.json").write_text(json.dumps(CARD))
    assert any(custom == "FlexWriteFile" for _, custom in tflite_op_codes(path))
    with pytest.raises(UntrustedModelError, match=r"FlexWriteFile \(reads or writes files\)"):
        open_runner(path)
    assert not (tmp_path / "victim.txt").exists()


def test_tflite_reader_rejects_garbage(tmp_path):
    path = tmp_path / "junk.tflite"
    path.write_bytes(b"\x10\x00\x00\x00TFL3" + b"\xff" * 8)
    with pytest.raises(ModelError, match="not a readable TFLite model"):
        check_export(path)


def test_reasons_and_allow_list():
    assert tf_op_reason("PyFunc").startswith("runs Python")
    assert tf_op_reason("CollectiveReduceV2").startswith("talks to")
    assert tf_op_reason("TFRecordDataset").startswith("reads or writes")
    assert tf_op_reason("SomethingNew").startswith("not on")
    dangerous = {"ReadFile", "WriteFile", "SaveV2", "RestoreV2", "PyFunc", "EagerPyFunc", "PrintV2", "Send", "Recv",
                 "MatchingFiles", "ImmutableConst", "InitializeTableFromTextFileV2", "DebugIdentityV2"}
    assert not dangerous & TF_ALLOWED


def test_trust_model_flag_is_offered_and_explained(capsys):
    from foveal.cli.main import main

    for command in ("serve", "benchmark"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert "--trust-model" in text and "allow-list" in text, command


def test_trusted_hostile_savedmodel_is_served_when_asked(tmp_path):
    """--trust-model reaches the server: the trusted file loads (and its graph runs)."""
    from foveal.serve.app import create_app

    victim = tmp_path / "victim.txt"
    model = hostile_savedmodel(tmp_path / "sm", victim)
    app = create_app(model, browser_model=False, trust_model=True)
    assert app.state.service.card.class_names == ["a", "b", "c"]
    assert victim.exists()  # the warm-up ran the graph
