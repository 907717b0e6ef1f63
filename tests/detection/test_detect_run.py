"""`foveal detect train|evaluate|predict|anchors` end to end on a tiny synthetic VOC set.

The detector is tiny (64x64 inputs; the shared run: a one-epoch YOLO on the small geron_cnn
backbone, whose build and trace cost about half a ResNet-18's; the slow runs: ResNet-18 at width
16, a few epochs), so these tests check the plumbing (run folder, metrics equal to pycocotools on the written
detections, report, drawn predictions, resume, time budget, backbone weights), not accuracy;
benchmarks/raccoon_detection.py measures accuracy.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image

from foveal.cli.main import main
from foveal.detection.config import DetectConfig
from foveal.detection.train import evaluate_detector, train_detector
from foveal.errors import ConfigError, DataError

from .conftest import voc_xml

# resnet18 below 16 channels trips a oneDNN heap corruption when training on TF 2.21 (flaky aborts).
TINY = dict(image_size=[64], backbone_options={"width": 16}, batch_size=4, epochs=3, progress=False,
            report_images=3, augment="light", anchors=2, learning_rate=3e-3, warmup_epochs=0.0,
            score_threshold=0.001)


def make_shapes(root: Path, count: int = 16, size: int = 64, seed: int = 0) -> Path:
    """A VOC folder: dark images with one or two bright squares, red ("red") or blue ("blue")."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    (root / "annotations").mkdir()
    names = []
    for i in range(count):
        image = rng.integers(0, 30, (size, size, 3)).astype(np.uint8)
        objects = []
        for _ in range(1 + i % 2):
            side = int(rng.integers(14, 28))
            x0, y0 = (int(v) for v in rng.integers(0, size - side, 2))
            cls = "red" if rng.random() < 0.5 else "blue"
            image[y0:y0 + side, x0:x0 + side] = (230, 30, 30) if cls == "red" else (30, 30, 230)
            objects.append((cls, x0, y0, x0 + side, y0 + side))
        name = f"s{i:02d}.png"
        Image.fromarray(image).save(root / "images" / name)
        (root / "annotations" / f"s{i:02d}.xml").write_text(voc_xml(name, size, size, objects))
        names.append(name)
    (root / "train.txt").write_text("\n".join(names[: count * 3 // 4]) + "\n")
    (root / "test.txt").write_text("\n".join(names[count * 3 // 4:]) + "\n")
    return root


@pytest.fixture(scope="module")
def shapes(tmp_path_factory) -> Path:
    return make_shapes(tmp_path_factory.mktemp("shapes") / "voc")


@pytest.fixture(scope="module")
def trained(shapes, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    # one epoch: the validation mAP is logged (history.csv) and picks best.keras all the same; a second
    # epoch added a validation pass and a checkpoint that no test here reads. The geron_cnn backbone
    # (no levels named: its stride-8 map is measured) instead of ResNet-18: the run's plumbing is the
    # same, its tracing cheaper (ResNet-18 YOLO builds and predicts in test_yolo_model.py and the
    # export tests; it trains in this file's slow runs)
    result = train_detector(DetectConfig(data=str(shapes), output=str(out), name="run", val_split=0.2,
                                         **(TINY | {"epochs": 1, "backbone": "geron_cnn", "head_width": 0})))
    return shapes, result


def test_run_folder_and_metrics_equal_pycocotools(trained):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    from foveal.data.boxes import load_boxes, to_coco_dict

    data, result = trained
    run = result.run_dir
    for name in ("config.yaml", "history.csv", "best.keras", "last.keras", "metrics.json", "detections.json",
                 "anchors.json", "report.html"):
        assert (run / name).is_file(), name
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["split"] == "test" and metrics["num_images"] == 4
    assert set(metrics["per_class"]) == {"blue", "red"}
    assert 0.0 <= metrics["map50"] <= 1.0
    assert "val_map50" in (run / "history.csv").read_text().splitlines()[0]

    truth = COCO()
    truth.dataset = to_coco_dict(load_boxes(data)["test"])
    truth.createIndex()
    results = json.loads((run / "detections.json").read_text())
    if not results:
        pytest.skip("the tiny detector found nothing above the threshold")
    evaluation = COCOeval(truth, truth.loadRes(results), "bbox")
    evaluation.evaluate()
    evaluation.accumulate()
    evaluation.summarize()
    names = ["AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"]
    for name, value in zip(names, evaluation.stats):
        assert metrics["coco"][name] == pytest.approx(value, abs=1e-5), name


def test_report_has_pr_curves_and_examples(trained):
    html = (trained[1].run_dir / "report.html").read_text()
    for text in ("Precision-recall curves", "Example detections", "COCO metrics", "Per-class results"):
        assert text in html


def test_evaluate_matches_training_scores_and_writes_outputs(trained, tmp_path):
    data, result = trained
    saved = json.loads((result.run_dir / "metrics.json").read_text())
    metrics = evaluate_detector(result.run_dir / "best.keras", str(data), output=tmp_path / "eval")
    assert metrics["map50"] == pytest.approx(saved["map50"], abs=1e-6)
    assert metrics["coco"] == pytest.approx(saved["coco"], abs=1e-6)
    assert (tmp_path / "eval" / "report.html").is_file()
    assert isinstance(json.loads((tmp_path / "eval" / "detections.json").read_text()), list)


def test_predict_cli_writes_drawn_images_and_coco_json(trained, tmp_path, capsys):
    data, result = trained
    out = tmp_path / "pred"
    code = main(["detect", "predict", str(result.run_dir / "best.keras"), str(data / "images" / "s00.png"),
                 str(data / "images" / "s01.png"), "--output", str(out), "--format", "json",
                 "--score-threshold", "0.01"])
    assert code == 0
    rows = json.loads(capsys.readouterr().out)
    assert [Path(r["file"]).name for r in rows] == ["s00.png", "s01.png"]
    assert (out / "s00.png").is_file() and (out / "detections.csv").is_file()
    coco = json.loads((out / "detections.json").read_text())
    assert [im["id"] for im in coco["images"]] == [1, 2]
    assert {c["name"] for c in coco["categories"]} == {"red", "blue"}
    for row in rows:
        for det in row["detections"]:
            x0, y0, x1, y1 = det["box"]
            assert 0 <= x0 <= x1 <= 64 and 0 <= y0 <= y1 <= 64 and det["score"] >= 0.01


def test_evaluate_refuses_a_classifier(tmp_path):
    from foveal.models import ModelCard, build_model, save_model

    model = build_model("lenet5", num_classes=2)
    path = save_model(model, tmp_path / "clf.keras", ModelCard(architecture="lenet5", class_names=["a", "b"],
                                                              input_shape=(32, 32, 1)))
    with pytest.raises(Exception, match="not 'detect'"):
        evaluate_detector(path, "unused")


@pytest.mark.slow  # YOLOv3 at 3 scales, multi-scale 64/96: the costliest detector run; `--task detect` routing and
# multi-scale batches keep fast tests (tests/cli/test_cli.py, tests/detection/test_yolo_model.py)
def test_train_task_detect_cli_and_anchors(shapes, tmp_path, capsys):
    # YOLOv3 layout (3 scales) with multi-scale batches, through `foveal train --task detect`.
    code = main(["train", "--task", "detect", "--data", str(shapes), "--image-size", "64", "--backbone-options",
                 "width=16", "--epochs", "1", "--batch-size", "8", "--output", str(tmp_path), "--name", "cli",
                 "--no-progress", "--report-images", "0", "--anchors", "1", "--val-split", "0", "--scales", "3",
                 "--multi-scale", "64", "96"])
    assert code == 0 and (tmp_path / "cli" / "metrics.json").is_file()
    from foveal.models import load_model

    model, card = load_model(tmp_path / "cli" / "best.keras")
    assert len(model.outputs) == 3 and len(card.training["anchors"]) == 3
    capsys.readouterr()
    assert main(["detect", "anchors", "--data", str(shapes), "--k", "3", "--image-size", "64", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["anchors_pixels"]) == 3 and 0 < out["mean_iou"] <= 1


class _SigintAfterFirstEpoch(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch == 0:
            os.kill(os.getpid(), signal.SIGINT)


# slow tier: resume is the engine's; the default tier resumes classification (tests/training) and localization runs
@pytest.mark.slow
def test_interrupted_run_resumes(shapes, tmp_path):
    cfg = DetectConfig(data=str(shapes), output=str(tmp_path), name="r", val_split=0.0, monitor="loss",
                       **(TINY | {"epochs": 2, "report_images": 0}))
    first = train_detector(cfg, callbacks=[_SigintAfterFirstEpoch()])
    assert first.interrupted
    state = json.loads((tmp_path / "r" / "state.json").read_text())
    assert state["epoch"] == 1
    second = train_detector(resume=tmp_path / "r")
    assert not second.interrupted and len(second.history["loss"]) == 2
    assert (tmp_path / "r" / "metrics.json").is_file()


@pytest.mark.slow  # TimeBudget itself is covered by tests/training/test_budget.py
def test_time_budget_stops_training(shapes, tmp_path):
    cfg = DetectConfig(data=str(shapes), output=str(tmp_path), name="b", val_split=0.0, monitor="loss",
                       time_budget=0.5, **(TINY | {"epochs": 30, "report_images": 0}))
    result = train_detector(cfg)
    assert 1 <= len(result.history["loss"]) < 30
    assert (tmp_path / "b" / "metrics.json").is_file()


def test_backbone_weights_from_a_foveal_classifier(tmp_path):
    from foveal.detection.model import build_detector
    from foveal.models import ModelCard, build_model, save_model
    from foveal.transfer.pretrained import load_backbone_weights

    classifier = build_model("resnet18", num_classes=3, input_shape=(32, 32, 3), width=4)
    path = save_model(classifier, tmp_path / "bb.keras", ModelCard(architecture="resnet18", class_names=["a", "b", "c"],
                                                                   input_shape=(32, 32, 3)))
    detector = build_detector("resnet18", 2, np.array([[0.2, 0.3]], np.float32), input_shape=(64, 64, 3),
                              backbone_options={"width": 4})
    conv = next(layer for layer in classifier.layers if isinstance(layer, keras.layers.Conv2D))
    target = detector.get_layer(conv.name)
    assert not np.allclose(target.get_weights()[0], conv.get_weights()[0])
    load_backbone_weights(detector, str(path))
    np.testing.assert_array_equal(target.get_weights()[0], conv.get_weights()[0])

    other = build_model("lenet5", num_classes=3)
    wrong = save_model(other, tmp_path / "lenet.keras", ModelCard(architecture="lenet5", class_names=["a", "b", "c"],
                                                                 input_shape=(32, 32, 1)))
    with pytest.raises(ConfigError, match="lenet5"):
        load_backbone_weights(detector, str(wrong))


@pytest.mark.slow  # the readers' messages and --skip-invalid are tested without training in tests/localization/test_boxes.py
def test_bad_boxes_are_named_or_skipped(tmp_path):
    root = make_shapes(tmp_path / "voc", count=6)
    bad = root / "annotations" / "s01.xml"
    bad.write_text(voc_xml("s01.png", 64, 64, [("red", 40, 10, 20, 30)]))  # x_max < x_min
    cfg = DetectConfig(data=str(root), output=str(tmp_path / "runs"), val_split=0.0,
                       **(TINY | {"epochs": 1, "report_images": 0}))
    with pytest.raises(DataError, match="s01"):
        train_detector(cfg)
    # --skip-invalid leaves the image out, says so, and trains on the rest.
    result = train_detector(cfg, skip_invalid=True, val_split=0.0, name="skip")
    assert result.metrics is not None and result.metrics["num_images"] >= 1


def test_sliding_window_cli_scores_the_fcn_detector(shapes, tmp_path, capsys):
    code = main(["detect", "sliding-window", "--data", str(shapes), "--output", str(tmp_path / "fcn"),
                 "--epochs", "1", "--scales", "1.0", "0.5", "--json"])
    assert code == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["method"] == "sliding-window FCN" and 0.0 <= metrics["map50"] <= 1.0
    for name in ("patch_classifier.keras", "metrics.json", "detections.json", "report.html"):
        assert (tmp_path / "fcn" / name).is_file(), name


def test_config_refuses_sizes_off_the_grid():
    with pytest.raises(ConfigError, match="multiples of 32"):
        DetectConfig(image_size=[100]).validate()
    with pytest.raises(ConfigError, match="scales"):
        DetectConfig(scales=2).validate()
