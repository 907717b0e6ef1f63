"""Detection AP is computed on every detection down to score 0.001 (at most 100 per image), not
on those left after the model's display threshold; the model gets its own threshold back; and
evaluation matches the dataset's classes to the model's by name."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from foveal.errors import DataError

from .conftest import voc_xml, write_image

SIZE = 32  # geron_cnn has stride 8: a 4x4 grid of 8-pixel cells
LOW_SCORE = 0.2  # under the display threshold 0.25


def constant_detector(num_classes: int = 1):
    """A detector whose every cell predicts its own cell (anchor = one cell) with score 0.2.

    The output convolution's kernel is zero and its bias fixed, so the raw output is the same in
    every cell whatever the image: centre at the cell centre, size the anchor, objectness
    ``logit(0.2)`` and equal class logits (with one class the score is the objectness).
    """
    from foveal.detection.model import build_detector

    model = build_detector("geron_cnn", num_classes, np.array([[0.25, 0.25]], np.float32),
                           input_shape=(SIZE, SIZE, 3), head_width=0, backbone_options={"width": 16})
    assert model.strides == [8]
    layer = model.get_layer(f"head_{model.levels[0]}_out")
    kernel, bias = layer.get_weights()
    bias[:] = 0.0
    bias[4] = np.log(LOW_SCORE / (1 - LOW_SCORE))
    layer.set_weights([np.zeros_like(kernel), bias])
    return model


def save_detector(model, path: Path, class_names: list[str]) -> Path:
    from foveal.models import ModelCard, save_model

    card = ModelCard(architecture="yolo-geron_cnn", class_names=class_names, input_shape=(SIZE, SIZE, 3),
                     preprocessing="rescale", task="detect",
                     training={"anchors": [[0.25, 0.25]], "score_threshold": 0.25, "keep_aspect": False})
    return save_model(model, path, card)


def cell_dataset(root: Path, names: list[str], count: int = 4) -> Path:
    """A VOC folder of 32x32 images, each with one box that is exactly one grid cell."""
    for i in range(count):
        name = f"c{i}.png"
        write_image(root / "images" / name, SIZE, SIZE)
        x0, y0 = 8 * (i % 4), 8 * ((i // 2) % 4)
        (root / "annotations").mkdir(parents=True, exist_ok=True)
        (root / "annotations" / f"c{i}.xml").write_text(
            voc_xml(name, SIZE, SIZE, [(names[i % len(names)], x0, y0, x0 + 8, y0 + 8)]))
    return root


@pytest.fixture(scope="module")
def detector_file(tmp_path_factory) -> Path:
    return save_detector(constant_detector(), tmp_path_factory.mktemp("det") / "det.keras", ["box"])


@pytest.mark.slow  # two evaluations (6.6 CPU-s); the default tier's detect run checks its metrics against pycocotools
def test_ap_uses_the_low_threshold_and_the_model_keeps_its_own(detector_file, tmp_path):
    from foveal.data.boxes import load_boxes
    from foveal.detection.scoring import detect_dataset
    from foveal.detection.train import evaluate_detector, format_metrics
    from foveal.models import load_model

    data = cell_dataset(tmp_path / "cells", ["box"])
    metrics = evaluate_detector(detector_file, str(data), output=tmp_path / "eval")
    # Every detection scores 0.2: at the display threshold 0.25 nothing is left and AP is 0.
    assert metrics["map50"] > 0.0 and metrics["coco"]["AP50"] > 0.0
    assert metrics["ap_score_threshold"] == 0.001 and metrics["score_threshold"] == 0.25
    assert metrics["precision"] == 0.0 and metrics["recall"] == 0.0  # the display line is unchanged
    assert "scoring >= 0.001" in format_metrics(metrics)
    written = json.loads((tmp_path / "eval" / "detections.json").read_text())
    assert len(written) == 4 * 16 and {r["score"] for r in written} == {LOW_SCORE}

    model, card = load_model(detector_file)
    part = load_boxes(data)["train"]
    # The old way, with the model's own threshold, loses the whole curve.
    assert sum(map(len, detect_dataset(model, card, part, score_threshold=None))) == 0
    assert sum(map(len, detect_dataset(model, card, part))) == 4 * 16
    assert model.score_threshold == 0.25
    assert int(model.predict(np.zeros((1, SIZE, SIZE, 3), np.float32), verbose=0)["num_detections"][0]) == 0
    # a second scoring pass reuses the traced low-threshold function and gives the same result
    assert sum(map(len, detect_dataset(model, card, part))) == 4 * 16
    assert len(detect_dataset(model, card, part, max_detections=3)[0]) == 3


def test_validation_map_callback_scores_with_the_low_threshold(detector_file, tmp_path):
    from foveal.data.boxes import load_boxes
    from foveal.detection.config import DetectConfig
    from foveal.detection.task import validation_map
    from foveal.models import load_model

    model, card = load_model(detector_file)
    val = load_boxes(cell_dataset(tmp_path / "cells", ["box"]))["train"]
    callback = validation_map(model, val, card, DetectConfig(batch_size=4, score_threshold=0.25), None)
    logs: dict = {}
    callback.on_epoch_end(0, logs)
    assert logs["val_map50"] > 0.0
    assert model.score_threshold == 0.25


def test_box_datasets_are_matched_to_the_model_by_name(tmp_path, capsys):
    from foveal.cli.main import main
    from foveal.detection.train import evaluate_detector

    model = save_detector(constant_detector(num_classes=2), tmp_path / "two.keras", ["cat", "dog"])
    # classes.txt lists the dataset's classes in another order than the model's
    swapped = cell_dataset(tmp_path / "swapped", ["cat", "dog"])
    (swapped / "classes.txt").write_text("dog\ncat\n")
    plain = cell_dataset(tmp_path / "plain", ["cat", "dog"])
    (plain / "classes.txt").write_text("cat\ndog\n")
    assert evaluate_detector(model, str(swapped))["per_class"] == evaluate_detector(model, str(plain))["per_class"]

    numbered = cell_dataset(tmp_path / "numbered", ["0", "1"])
    with pytest.raises(DataError, match=r"dataset \[0, 1\], model \[cat, dog\]"):
        evaluate_detector(model, str(numbered))
    assert main(["detect", "evaluate", str(model), "--data", str(numbered), "--json",
                 "--class-map", "0=cat,1=dog"]) == 0
    mapped = json.loads(capsys.readouterr().out)
    assert set(mapped["per_class"]) == {"cat", "dog"} and mapped["per_class"]["cat"]["num_gt"] == 2
    assert main(["detect", "evaluate", str(model), "--data", str(numbered)]) == 2
    assert "--class-map" in capsys.readouterr().err


def test_localizer_evaluation_matches_classes_by_name(tmp_path):
    import keras

    from foveal.localization.train import evaluate_localizer
    from foveal.models import ModelCard, save_model

    inputs = keras.Input((SIZE, SIZE, 3))
    pooled = keras.layers.GlobalAveragePooling2D()(inputs)
    model = keras.Model(inputs, {"class": keras.layers.Dense(2, activation="softmax", name="class")(pooled),
                                 "box": keras.layers.Dense(4, activation="sigmoid", name="box")(pooled)})
    card = ModelCard(architecture="tiny", class_names=["cat", "dog"], input_shape=(SIZE, SIZE, 3),
                     preprocessing="rescale", task="localize")
    path = save_model(model, tmp_path / "loc.keras", card)
    numbered = cell_dataset(tmp_path / "numbered", ["0", "1"])
    with pytest.raises(DataError, match="unknown to the model"):
        evaluate_localizer(path, str(numbered))
    metrics = evaluate_localizer(path, str(numbered), class_map="0=cat,1=dog")
    assert metrics["split"] == "train"
