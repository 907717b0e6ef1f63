"""Faster R-CNN as a model kind of the detect task: the model (losses in fit, detections from
predict, config round trip) and the whole run through `foveal detect train|evaluate|predict`.

Tiny settings (ResNet-18 at width 16, 64x64 inputs, the stride-8 map, 32 sampled RoIs) keep the
default tier fast; the slow test checks that such a model learns the shapes (mAP@0.5 >= 0.9).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from foveal.cli.main import main
from foveal.detection.config import DetectConfig
from foveal.detection.faster_rcnn import RPN_COMPONENTS, build_faster_rcnn
from foveal.detection.train import train_detector
from foveal.errors import ConfigError

from .test_detect_run import make_shapes

TINY_RCNN = dict(detector="faster-rcnn", image_size=[64], backbone_options={"width": 16}, rcnn_level="P3",
                 head_width=32, roi_batch=32, rpn_batch=64, batch_size=4, progress=False, report_images=2,
                 augment="light", learning_rate=3e-3, warmup_epochs=0.0,
                 rcnn_options={"pre_nms_train": 300, "post_nms_train": 100, "post_nms_test": 50})
SMALL_MODEL = dict(input_shape=(64, 64, 3), level="P3", backbone_options={"width": 16}, head_width=32,
                   anchor_sizes=[16, 24, 32], roi_batch=32, rpn_batch=64, pre_nms_train=300, post_nms_train=100,
                   post_nms_test=50)


def squares(count: int, seed: int = 0):
    """Images with one red (class 0) or blue (class 1) square, and padded targets."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 30, (count, 64, 64, 3)).astype(np.float32)
    boxes, classes = np.zeros((count, 3, 4), np.float32), np.full((count, 3), -1, np.int32)
    for i in range(count):
        side = int(rng.integers(14, 28))
        x, y = (int(v) for v in rng.integers(0, 64 - side, 2))
        images[i, y:y + side, x:x + side] = (230, 30, 30) if i % 2 == 0 else (30, 30, 230)
        boxes[i, 0], classes[i, 0] = [x / 64, y / 64, (x + side) / 64, (y + side) / 64], i % 2
    return images, {"boxes": boxes, "classes": classes}


def test_fit_reports_four_losses_and_predict_returns_detections():
    import tensorflow as tf

    # the small geron_cnn backbone (its stride-8 map measured as P3): fit traces the gradient of the
    # whole model, a ResNet-18's about twice as long; ResNet-18's Faster R-CNN builds and computes its
    # losses in the tests below, and fits in the slow ones
    model = build_faster_rcnn("geron_cnn", 2, **SMALL_MODEL, score_threshold=0.0, max_detections=10)
    assert model.rcnn.num_anchors == 9 and model.stride == 8
    out = model(np.zeros((1, 64, 64, 3), np.float32))
    assert tuple(out["rpn_objectness"].shape) == (1, 8, 8, 9) and tuple(out["rpn_deltas"].shape) == (1, 8, 8, 36)
    images, targets = squares(4)
    model.compile("adam")
    history = model.fit(tf.data.Dataset.from_tensor_slices((images, targets)).batch(2), epochs=1, verbose=0).history
    for name in (*RPN_COMPONENTS, "loss"):
        assert np.isfinite(history[name][0]), name
    np.testing.assert_allclose(history["loss"][0], sum(history[n][0] for n in RPN_COMPONENTS), rtol=1e-4)
    detections = model.predict(images, verbose=0)
    assert set(detections) == {"boxes", "scores", "classes", "num_detections"}
    assert detections["boxes"].shape == (4, 10, 4) and (detections["num_detections"] > 0).all()
    assert ((detections["boxes"] >= 0) & (detections["boxes"] <= 1)).all()
    clone = type(model).from_config(model.get_config())  # what loading a .keras file rebuilds
    assert clone.rcnn == model.rcnn and clone.postprocess_config() == model.postprocess_config()
    assert [w.shape for w in clone.weights] == [w.shape for w in model.weights]


@pytest.mark.parametrize("norm", ["locations", "sampled"])
def test_rpn_loss_is_the_papers_formula_in_numpy(norm):
    """Eq. 1 of Ren et al.: 1/N_cls sum L_cls + lambda 1/N_reg sum p* smooth_L1(t - t*), lambda 10,
    recomputed in NumPy from the model's outputs and anchor labels (checked against their own
    reference in test_rcnn_ops); rpn_batch covers every labelled anchor, so nothing is sampled."""
    from foveal.ops import rcnn

    model = build_faster_rcnn("geron_cnn", 2, **{**SMALL_MODEL, "rpn_batch": 4096}, rpn_box_norm=norm)
    images, targets = squares(2, seed=3)
    out = model(images)
    losses = model.losses_of(images, targets, out)
    logits = out["rpn_objectness"].numpy().reshape(2, -1)
    deltas = out["rpn_deltas"].numpy().reshape(2, -1, 4)
    anchors = model.anchors_for(out["features"]).numpy()
    gt = targets["boxes"] * 64.0
    labels, matched = (t.numpy() for t in rcnn.label_anchors(anchors, gt, targets["classes"] >= 0))
    sampled, positive = labels >= 0, labels == 1
    assert positive.any() and (~positive & sampled).any()
    bce = np.maximum(logits, 0) - logits * positive + np.log1p(np.exp(-np.abs(logits)))
    np.testing.assert_allclose(losses["rpn_cls_loss"], bce[sampled].sum() / sampled.sum(), rtol=1e-5)
    box = np.take_along_axis(gt, matched[..., None], axis=1)  # [B, A, 4] each anchor's box
    (x, y, w, h), (xa, ya, wa, ha) = [((b[..., 0] + b[..., 2]) / 2, (b[..., 1] + b[..., 3]) / 2,
                                       b[..., 2] - b[..., 0], b[..., 3] - b[..., 1]) for b in (box, anchors[None])]
    t_star = np.stack([(x - xa) / wa, (y - ya) / ha, np.log(w / wa), np.log(h / ha)], -1)
    diff = np.abs(deltas - t_star)
    smooth = np.where(diff < 1, 0.5 * diff**2, diff - 0.5).sum(-1)
    n_reg = sampled.sum() if norm == "sampled" else 2 * 8 * 8  # the anchor locations: B x cells
    np.testing.assert_allclose(losses["rpn_box_loss"], 10.0 * smooth[positive].sum() / n_reg, rtol=1e-4)


def test_roi_max_pool_variant_feeds_the_head():
    model = build_faster_rcnn("resnet18", 3, **SMALL_MODEL, roi_pool="max")
    features = model(np.zeros((2, 64, 64, 3), np.float32))["features"]
    logits, deltas = model.head(features, np.tile(np.array([[[0, 0, 32, 32], [8, 8, 60, 40]]], np.float32), (2, 1, 1)))
    assert type(model.roi_layer).__name__ == "RoIMaxPool"
    assert tuple(logits.shape) == (2, 2, 4) and tuple(deltas.shape) == (2, 2, 3, 4)


def test_alternating_training_plans_the_papers_four_steps():
    from foveal.detection.task import DetectTask

    cfg = DetectConfig(data="x", detector="faster-rcnn", rcnn_training="alternating", epochs=10)
    plan = DetectTask().phases(cfg)
    assert [p.epochs for p in plan] == [3, 3, 2, 2] and [p.schedule_epochs for p in plan] == [3, 3, 2, 2]
    model = build_faster_rcnn("resnet18", 2, **SMALL_MODEL)
    images, targets = squares(2)
    expected = {1: (True, True, False, RPN_COMPONENTS[:2]), 2: (True, False, True, RPN_COMPONENTS[2:]),
                3: (False, True, False, RPN_COMPONENTS[:2]), 4: (False, False, True, RPN_COMPONENTS[2:])}
    for phase in plan:
        phase.trainable(model)
        backbone, rpn, head, losses = expected[phase.number]
        assert (model.backbone.trainable, model.rpn_conv.trainable, model.fc1.trainable) == (backbone, rpn, head)
        assert model.active_losses == losses
    import tensorflow as tf

    out = model(images)
    tf.random.set_seed(7)  # the same anchor and RoI samples for both calls
    parts = model.losses_of(images, targets, out)
    tf.random.set_seed(7)
    total = model.compute_loss(images, targets, out)
    assert float(total) == pytest.approx(float(parts["cls_loss"] + parts["box_loss"]), rel=1e-4)
    with pytest.raises(ConfigError, match="at least 4 epochs"):
        DetectConfig(data="x", detector="faster-rcnn", rcnn_training="alternating", epochs=3).validate()


def test_bad_settings_are_refused_in_one_line():
    with pytest.raises(ConfigError, match="unknown Faster R-CNN setting.*bogus"):
        DetectConfig(data="x", detector="faster-rcnn", rcnn_options={"bogus": 1}).validate()
    with pytest.raises(ConfigError, match="rpn_negative_iou"):
        DetectConfig(data="x", detector="faster-rcnn", rcnn_options={"rpn_negative_iou": 0.9}).validate()
    with pytest.raises(ConfigError, match="no feature map P6"):
        build_faster_rcnn("resnet18", 1, **(SMALL_MODEL | {"level": "P6"}))
    assert DetectConfig(data="x", detector="faster-rcnn").model == "faster-rcnn-resnet18"


def test_filtering_a_low_threshold_nms_equals_nms_at_the_higher_threshold():
    """What a Faster R-CNN export's runner does (filter_detections) is what the model's own NMS does."""
    from foveal.detection.postprocess import non_max_suppression
    from foveal.detection.two_stage_export import filter_detections
    from foveal.errors import ModelError
    from foveal.models.io import ModelCard

    rng = np.random.default_rng(0)
    corner = rng.uniform(0, 0.8, (2, 300, 2))
    boxes = np.concatenate([corner, corner + rng.uniform(0.05, 0.2, (2, 300, 2))], -1).astype(np.float32)
    scores = rng.uniform(0, 1, (2, 300)).astype(np.float32)
    classes = rng.integers(0, 3, (2, 300)).astype(np.int32)
    card = ModelCard(architecture="faster-rcnn-resnet18", class_names=["a", "b", "c"], input_shape=(64, 64, 3),
                     task="detect", training={"detector": "faster-rcnn", "score_threshold": 0.3, "iou_threshold": 0.5})
    low = non_max_suppression(boxes, scores, classes, iou_threshold=0.5, score_threshold=0.001, max_detections=100)
    for threshold, count in ((0.3, 10), (0.6, 100), (0.95, 5)):
        want = non_max_suppression(boxes, scores, classes, iou_threshold=0.5, score_threshold=threshold,
                                   max_detections=count)
        got = filter_detections({k: np.asarray(v) for k, v in low.items()}, card,
                                {"score_threshold": threshold, "max_detections": count, "iou_threshold": 0.5,
                                 "class_aware": True})
        for key in ("boxes", "scores", "classes", "num_detections"):
            np.testing.assert_allclose(got[key], np.asarray(want[key]), atol=1e-7, err_msg=f"{key} at {threshold}")
    with pytest.raises(ModelError, match="NMS with iou_threshold 0.5 in its graph, not 0.7"):
        filter_detections({k: np.asarray(v) for k, v in low.items()}, card,
                          {"score_threshold": 0.3, "max_detections": 10, "iou_threshold": 0.7, "class_aware": True})


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    data = make_shapes(tmp_path_factory.mktemp("rcnn") / "voc", count=12)
    out = tmp_path_factory.mktemp("rcnn_runs")
    result = train_detector(DetectConfig(data=str(data), output=str(out), name="frcnn", val_split=0.2, epochs=1,
                                         **TINY_RCNN))
    return data, result


@pytest.fixture(scope="module")
def untrained(tmp_path_factory) -> Path:
    """An untrained tiny Faster R-CNN saved with a detect card, for what needs a file, not a run."""
    from foveal.models import ModelCard, save_model

    model = build_faster_rcnn("resnet18", 2, **SMALL_MODEL)
    card = ModelCard("faster-rcnn-resnet18", ["red", "blue"], (64, 64, 3), task="detect",
                     training={"detector": "faster-rcnn", "anchor_sizes": SMALL_MODEL["anchor_sizes"]})
    return save_model(model, tmp_path_factory.mktemp("frcnn_file") / "best.keras", card)


# slow tier: a whole engine run of Faster R-CNN with CLI evaluate and predict (~15 CPU-s). The
# default tier keeps its model's fit, predict and config round trip (above), its phase plan and
# its export refusals (below), and detect's default path (YOLO) through train, evaluate and
# predict (test_detect_run.py).
@pytest.mark.slow
def test_run_folder_card_and_cli_evaluate_predict(run, tmp_path, capsys):
    data, result = run
    folder = result.run_dir
    for name in ("best.keras", "last.keras", "metrics.json", "detections.json", "report.html", "history.csv"):
        assert (folder / name).is_file(), name
    header = (folder / "history.csv").read_text().splitlines()[0]
    assert all(name in header for name in (*RPN_COMPONENTS, "val_map50"))
    from foveal.models.io import read_card

    card = read_card(folder / "best.keras")
    assert card.architecture == "faster-rcnn-resnet18" and card.training["detector"] == "faster-rcnn"
    assert len(card.training["anchor_sizes"]) == 3  # chosen from the boxes
    assert "Faster R-CNN" in (folder / "report.html").read_text()
    # metrics.json was scored by the model in memory; evaluate loads best.keras: equal numbers
    # mean the .keras round trip keeps the detector
    saved = json.loads((folder / "metrics.json").read_text())
    capsys.readouterr()
    assert main(["evaluate", str(folder / "best.keras"), "--data", str(data), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["map50"] == pytest.approx(saved["map50"], abs=1e-6)
    assert metrics["coco"] == pytest.approx(saved["coco"], abs=1e-6)
    out = tmp_path / "drawn"
    assert main(["predict", str(folder / "best.keras"), str(data / "images" / "s00.png"), "--output", str(out),
                 "--format", "json", "--score-threshold", "0.01"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert Path(rows[0]["file"]).name == "s00.png" and (out / "s00.png").is_file()


def test_export_refuses_tflite_coreml_and_quantization_in_one_line(untrained, tmp_path, capsys):
    for fmt, extra, words in (("tflite", [], "CropAndResize (RoI Align) has no TFLite builtin kernel"),
                              ("coreml", [], "SavedModel or ONNX only"),
                              ("onnx", ["--quantize", "dynamic"], "float32 only")):
        target = tmp_path / f"m.{ {'coreml': 'mlpackage'}.get(fmt, fmt) }"
        code = main(["export", str(untrained), "--format", fmt, "--output", str(target), *extra])
        err = capsys.readouterr().err
        assert code == 2 and words in err and "Traceback" not in err, err
        assert not target.exists()


@pytest.mark.slow  # two exports of the whole detector (tf2onnx takes ~25 s here)
@pytest.mark.parametrize("fmt, suffix", [("savedmodel", ""), ("onnx", ".onnx")])
def test_export_holds_the_whole_detector_with_parity_and_map(run, tmp_path, capsys, fmt, suffix):
    from foveal.detection.export_check import decode_raw, outputs
    from foveal.export.runners import open_runner
    from foveal.models.io import load_model, read_card

    data, result = run
    target = tmp_path / f"frcnn{suffix}"
    capsys.readouterr()
    assert main(["export", str(result.run_dir / "best.keras"), "--format", fmt, "--output", str(target),
                 "--data", str(data), "--split", "val", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["passed"] and report["parity"]["keras_boxes"] > 0, report
    assert report["accuracy"]["export"] == pytest.approx(report["accuracy"]["keras"], abs=1e-6)
    # the runner filters the export's low-threshold detections by the card's threshold, as the Keras model does
    runner = open_runner(target)
    card = read_card(result.run_dir / "best.keras")
    model, _ = load_model(result.run_dir / "best.keras")
    images = np.random.default_rng(1).uniform(0, 255, (2, 64, 64, 3)).astype(np.float32)
    model.set_postprocess(score_threshold=0.01)
    ours = outputs(model, card, images)
    got = decode_raw(runner.raw(images), card, model.postprocess_config())
    assert got["num_detections"].tolist() == ours["num_detections"].tolist() and ours["num_detections"].min() > 0
    np.testing.assert_allclose(got["scores"], ours["scores"], atol=1e-4)
    # what `foveal serve` answers for the export: boxes in the upload's pixels
    from foveal.export import tasks
    from foveal.export.runners import read_export_card

    written = read_export_card(target)
    row = {k: v[0] for k, v in tasks.outputs(runner, written, images).items()}
    answer = tasks.render(row, written, (128, 128), 5)
    assert len(answer["boxes"]) == int(row["num_detections"])
    assert all(0 <= v <= 128 for b in answer["boxes"] for v in b["box"])


@pytest.mark.slow  # four compiled phases: the engine runs the paper's 4-step alternating training
def test_alternating_training_runs_through_the_engine(tmp_path):
    data = make_shapes(tmp_path / "voc", count=8)
    result = train_detector(DetectConfig(data=str(data), output=str(tmp_path), name="alt", val_split=0.0,
                                         monitor="loss", epochs=4, rcnn_training="alternating",
                                         **(TINY_RCNN | {"report_images": 0})))
    history = result.history
    assert len(history["loss"]) == 4 and result.metrics is not None
    # steps 1 and 3 minimise the RPN's losses, steps 2 and 4 the head's (Keras weighs its loss by
    # batch size, the parts per batch: the last, smaller batch makes them differ a little)
    for epoch, parts in ((0, RPN_COMPONENTS[:2]), (1, RPN_COMPONENTS[2:]), (2, RPN_COMPONENTS[:2]),
                         (3, RPN_COMPONENTS[2:])):
        active = sum(history[p][epoch] for p in parts)
        everything = sum(history[p][epoch] for p in RPN_COMPONENTS)
        assert abs(history["loss"][epoch] - active) < 0.1 * abs(everything - active), epoch


@pytest.mark.slow  # about a minute: a tiny Faster R-CNN learns the two-colour squares
def test_tiny_faster_rcnn_overfits_the_shapes():
    import tensorflow as tf

    from foveal.evaluation.detection import match_voc, voc_ap

    tf.keras.utils.set_random_seed(0)
    images, targets = squares(8)
    model = build_faster_rcnn("resnet18", 2, **SMALL_MODEL, score_threshold=0.001)
    model.compile(tf.keras.optimizers.Adam(3e-3))
    model.fit(tf.data.Dataset.from_tensor_slices((images, targets)).batch(4).repeat(), steps_per_epoch=10,
              epochs=12, verbose=0)
    out = model.predict(images, verbose=0)
    n = out["num_detections"]
    gt_boxes = [targets["boxes"][i][:1] * 64 for i in range(8)]
    gt_labels = [targets["classes"][i][:1] for i in range(8)]
    curves = match_voc(gt_boxes, gt_labels, [out["boxes"][i][:n[i]] * 64 for i in range(8)],
                       [out["classes"][i][:n[i]] for i in range(8)], [out["scores"][i][:n[i]] for i in range(8)],
                       num_classes=2, iou_threshold=0.5)
    aps = [voc_ap(*c.curve()[:2]) for c in curves]
    assert np.mean(aps) >= 0.9, aps


def test_benchmark_leaves_out_the_runtimes_a_two_stage_model_cannot_export(untrained, capsys):
    """`foveal benchmark` (all runtimes by default) times the runtimes the model has and names the
    one it leaves out (TFLite: no RoI Align kernel); asked only for refused runtimes, it says in one
    line which to ask for instead."""
    from foveal.export.benchmark import benchmark, format_benchmark

    table = benchmark(untrained, runtimes=("keras-call", "tflite"), warmup=1, runs=2, batch_size=1)
    assert [r["runtime"] for r in table["results"]] == ["keras-call"]
    assert "RoI Align" in table["left_out"]["tflite"] and "tflite left out" in format_benchmark(table)
    code = main(["benchmark", str(untrained), "--runtimes", "tflite"])
    err = capsys.readouterr().err
    assert code == 2 and "--runtimes keras-predict keras-call savedmodel onnx" in err and "Traceback" not in err, err
