"""`foveal instance train|evaluate|predict` end to end on a tiny generated shapes set (slow tier).

The model is tiny (ResNet-18 at width 16, 64x64 inputs, one epoch): these tests check the
plumbing (run folder, COCO box + mask AP, RLE results, report, drawn predictions, the saved
model, its SavedModel and ONNX exports), not accuracy; benchmarks/mask_rcnn_shapes.py measures that.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from foveal.cli.main import main

pytestmark = pytest.mark.slow

TRAIN = ["--image-size", "64", "--epochs", "1", "--batch-size", "4", "--backbone-options", "width=16",
         "--head-width", "32", "--mask-width", "16", "--mask-convs", "2", "--roi-batch", "32", "--rpn-batch", "64",
         "--rcnn-options", "pre_nms_train=200,post_nms_train=100,post_nms_test=50", "--no-progress",
         "--report-images", "2", "--score-threshold", "0.01", "--augment", "flip,crop=0.7"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("instance-run")
    assert main(["datasets", "synth", "shapes", "--output", str(root / "shapes"), "--counts", "12", "4", "4",
                 "--size", "64", "--seed", "1"]) == 0
    assert main(["instance", "train", "--data", str(root / "shapes"), "--output", str(root / "runs"), "--name", "r",
                 *TRAIN]) == 0
    return root, root / "runs" / "r"


def test_run_folder_scores_boxes_and_masks(run):
    root, run_dir = run
    for name in ("best.keras", "last.keras", "report.html", "metrics.json", "detections.json", "config.yaml"):
        assert (run_dir / name).is_file(), name
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert set(metrics["box"]) == set(metrics["mask"]) and "AP50" in metrics["mask"] and metrics["split"] == "test"
    results = json.loads((run_dir / "detections.json").read_text())
    assert results and {"bbox", "segmentation", "score", "category_id", "image_id"} <= set(results[0])
    assert isinstance(results[0]["segmentation"]["counts"], str)
    assert "mask (segm)" in (run_dir / "report.html").read_text()
    history = (run_dir / "history.csv").read_text().splitlines()[0]
    assert "mask_loss" in history and "val_mask_ap50" in history and "val_box_ap" in history


def test_evaluate_repeats_the_run_numbers_and_predict_draws(run, tmp_path, capsys):
    root, run_dir = run
    capsys.readouterr()
    assert main(["instance", "evaluate", str(run_dir / "best.keras"), "--data", str(root / "shapes"), "--json",
                 "--output", str(tmp_path / "eval")]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    scored = json.loads((run_dir / "metrics.json").read_text())
    for kind in ("box", "mask"):
        assert evaluated[kind] == pytest.approx(scored[kind], abs=1e-6)
    assert (tmp_path / "eval" / "report.html").is_file()
    assert main(["predict", str(run_dir / "best.keras"), str(root / "shapes" / "test"), "--output",
                 str(tmp_path / "drawn"), "--format", "json", "--score-threshold", "0.0"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 4 and all("drawn" in r for r in rows)
    coco = json.loads((tmp_path / "drawn" / "instances.json").read_text())
    assert len(coco["images"]) == 4 and [c["name"] for c in coco["categories"]] == ["circle", "square", "triangle"]
    assert all(isinstance(a["segmentation"]["counts"], str) for a in coco["annotations"])


def test_saved_model_round_trip(run):
    from foveal.instance.mask_rcnn import MaskRCNNModel
    from foveal.models import load_model

    _, run_dir = run
    model, card = load_model(run_dir / "best.keras")
    assert isinstance(model, MaskRCNNModel) and card.task == "instance" and card.training["model"] == "mask-rcnn"
    images = np.random.default_rng(0).uniform(0, 255, (2, 64, 64, 3)).astype(np.float32)
    out = model.predict(images, verbose=0)
    again, _ = load_model(run_dir / "best.keras")
    np.testing.assert_allclose(again.predict(images, verbose=0)["masks"], out["masks"], atol=1e-6)
    assert out["masks"].shape == (2, model.max_detections, 28, 28)


@pytest.mark.parametrize("fmt, suffix", [("savedmodel", ""), ("onnx", ".onnx")])
def test_export_parity_mask_ap_and_serve(run, tmp_path, capsys, fmt, suffix):
    """The whole Mask R-CNN exported: boxes, scores, classes and masks equal Keras's, the same
    mask AP on the test split, and `foveal serve` of the export answers the .keras model's instances."""
    from foveal.instance.export_check import load_instance_model
    from foveal.instance.predict import predict_files

    root, run_dir = run
    target = tmp_path / f"mask_rcnn{suffix}"
    capsys.readouterr()
    assert main(["export", str(run_dir / "best.keras"), "--format", fmt, "--output", str(target),
                 "--data", str(root / "shapes"), "--split", "test", "--samples", "8", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    parity = report["parity"]
    assert report["passed"] and parity["keras_boxes"] > 0 and parity["masks_compared"] == parity["matched_boxes"]
    # the probabilities are the strict check; the binarised masks' IoU is not: a small mask whose
    # probabilities sit within max_mask_diff of the 0.5 threshold can flip a pixel (seen with
    # onnxruntime 1.32: one mask at IoU 0.75 of 280, max |diff| 7.7e-7, mean IoU 0.99875)
    assert parity["max_mask_diff"] <= 1e-4 and parity["mean_mask_iou"] > 0.99, parity
    assert report["accuracy_metric"] == "mask_ap"
    assert report["accuracy"]["export"] == pytest.approx(report["accuracy"]["keras"], abs=1e-6)
    files = sorted((root / "shapes" / "test").glob("*.png"))[:2]
    keras_model, card = load_instance_model(run_dir / "best.keras")
    export_model, written = load_instance_model(target)
    want = predict_files(keras_model, card, files, score_threshold=0.05)
    got = predict_files(export_model, written, files, score_threshold=0.05)
    assert [len(r["instances"]) for r in got] == [len(r["instances"]) for r in want]
    if fmt == "onnx":
        from serve.conftest import TestClient

        from foveal.serve.app import create_app

        with TestClient(create_app(target)) as client:
            answer = client.post("/predict", files={"image": ("s.png", files[0].read_bytes(), "image/png")}).json()
        served = predict_files(keras_model, card, files[:1])[0]["instances"]  # at the model's own threshold
        assert answer["task"] == "instance" and answer["instances"]
        assert [d["label"] for d in answer["instances"]] == [d["class"] for d in served]
