"""The model card is checked against itself and against the model before anything trusts it."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from foveal.cli.main import main
from foveal.errors import ModelError
from foveal.models import ModelCard, build_model, load_model, save_model
from foveal.models.io import CARD_MEMBER, read_card


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cards") / "lenet.keras"
    save_model(build_model("lenet5", num_classes=3), path, ModelCard("lenet5", ["a", "b", "c"], (32, 32, 1)))
    return path


def with_card(source: Path, target: Path, change) -> Path:
    """A copy of ``source`` whose card JSON went through ``change(dict)``."""
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(target, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename == CARD_MEMBER:
                card = json.loads(data)
                change(card)
                data = json.dumps(card).encode()
            zout.writestr(item, data)
    return target


def set_(**fields):
    return lambda card: card.update(fields)


@pytest.mark.parametrize("change, message", [
    (set_(input_shape=[6000, 6000, 1]), "6000x6000"),
    (set_(input_shape=[64, 64, 1]), "64x64x1.*32x32x1"),
    (set_(input_shape=["32", "32", "one"]), "input_shape"),
    (set_(input_shape=[32, 32]), "input_shape"),
    (set_(class_names=["a", "b"]), "2 class names.*3 outputs"),
    (set_(class_names="abc"), "class_names"),
    (set_(class_names=["a", 2, "c"]), "class_names"),
    (set_(keep_aspect="yes"), "keep_aspect"),
    (set_(training=[1, 2]), "training"),
    (lambda card: card.pop("architecture"), "architecture"),
    (set_(foveal_version="99.0.0", input_shape={"height": 32}), "99.0.0, newer than"),
    (set_(foveal_version="99.0.0", anchors_v2=[1, 2]), "99.0.0.*anchors_v2"),
    (set_(colour_space="lab"), "colour_space"),
])
def test_bad_cards_are_refused_in_one_line(saved, tmp_path, change, message):
    path = with_card(saved, tmp_path / "bad.keras", change)
    with pytest.raises(ModelError, match=message) as caught:
        load_model(path)
    assert "\n" not in caught.value.message
    assert str(path) in caught.value.message


def test_absurd_size_is_refused_before_the_model_is_loaded(saved, tmp_path, monkeypatch):
    import keras

    path = with_card(saved, tmp_path / "huge.keras", set_(input_shape=[6000, 6000, 3]))
    monkeypatch.setattr(keras.models, "load_model", lambda *a, **k: pytest.fail("the model was loaded"))
    with pytest.raises(ModelError, match="6000x6000"):
        read_card(path)
    with pytest.raises(ModelError, match="6000x6000"):
        load_model(path)


def test_predict_cli_answers_a_class_count_mismatch_with_exit_2(saved, tmp_path, capsys):
    from PIL import Image

    path = with_card(saved, tmp_path / "fewer.keras", set_(class_names=["a", "b"]))
    image = tmp_path / "x.png"
    Image.new("L", (32, 32)).save(image)
    assert main(["predict", str(path), str(image)]) == 2
    err = capsys.readouterr().err
    assert "class names" in err and "Traceback" not in err


def test_good_cards_still_load(saved, tmp_path):
    model, card = load_model(saved)
    assert card.class_names == ["a", "b", "c"]
    older = with_card(saved, tmp_path / "older.keras", set_(foveal_version="0.0.1"))
    assert load_model(older)[1].input_shape == (32, 32, 1)
    newer_same_fields = with_card(saved, tmp_path / "newer.keras", set_(foveal_version="99.0.0"))
    assert load_model(newer_same_fields)[1].class_names == ["a", "b", "c"]


def test_task_cards_check_class_count_where_it_applies(tmp_path):
    from foveal.models.card_check import check_card_against_model
    from foveal.segmentation.models import unet

    seg = unet((None, None, 1), num_classes=3, depth=2, width=4)
    card = ModelCard("unet", ["bg", "cell", "edge"], (48, 48, 1), task="segment")
    check_card_against_model(card, seg, "seg.keras")  # free input size: any card size fits
    card.class_names = ["bg", "cell"]
    with pytest.raises(ModelError, match="2 class names.*3"):
        check_card_against_model(card, seg, "seg.keras")

    from foveal.localization.model import build_localizer

    presence = build_localizer("lenet5", num_classes=1, input_shape=(32, 32, 1))
    check_card_against_model(ModelCard("lenet5", ["raccoon"], (32, 32, 1), task="localize"), presence, "loc.keras")
    with pytest.raises(ModelError, match="class names"):
        check_card_against_model(ModelCard("lenet5", ["a", "b", "c"], (32, 32, 1), task="localize"), presence,
                                 "loc.keras")


def test_export_card_is_checked_too(tmp_path):
    from foveal.export.runners import open_runner

    path = tiny_onnx_classifier(tmp_path / "m.onnx")
    card = {"architecture": "m", "class_names": ["a", "b", "c"], "input_shape": [6000, 6000, 3],
            "export": {"format": "onnx"}}
    path.with_name("m.onnx.foveal.json").write_text(json.dumps(card))
    with pytest.raises(ModelError, match="6000x6000 is too large"):
        open_runner(path)
    card["input_shape"] = [2, 2, 1]
    path.with_name("m.onnx.foveal.json").write_text(json.dumps(card))
    assert open_runner(path).card.class_names == ["a", "b", "c"]  # export facts beside the card are fine


def tiny_onnx_classifier(path: Path, classes: int = 3) -> Path:
    """An ONNX classifier: 2x2x1 pixels -> softmax over ``classes``."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weights = numpy_helper.from_array(np.ones((4, classes), np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Flatten", ["images"], ["flat"]), helper.make_node("MatMul", ["flat", "w"], ["logits"]),
         helper.make_node("Softmax", ["logits"], ["probabilities"])], "g",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["n", 2, 2, 1])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["n", classes])], initializer=[weights])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_export_card_is_checked_against_what_the_export_computes(tmp_path):
    """An export card with fewer class names than outputs made every /predict an IndexError (HTTP 500)."""
    from foveal.export.runners import open_runner

    path = tiny_onnx_classifier(tmp_path / "m.onnx")
    card_file = path.with_name("m.onnx.foveal.json")
    card = {"architecture": "m", "class_names": ["a", "b"], "input_shape": [2, 2, 1]}
    card_file.write_text(json.dumps(card))
    with pytest.raises(ModelError, match="2 class names but the export gives 3 outputs"):
        open_runner(path)
    card.update(class_names=["a", "b", "c"], input_shape=[5, 5, 1])
    card_file.write_text(json.dumps(card))
    with pytest.raises(ModelError, match="does not run on the input its card gives, 5x5x1"):
        open_runner(path)
    card["input_shape"] = [2, 2, 1]
    card_file.write_text(json.dumps(card))
    assert open_runner(path)(np.zeros((2, 2, 2, 1), np.float32)).shape == (2, 3)
