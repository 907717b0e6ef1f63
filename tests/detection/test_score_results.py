"""`foveal detect score GT.json RESULTS.json`: the numbers of `detect evaluate` for any detector's
COCO results (COCO's equal to pycocotools), and one-line errors for bad files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from foveal.cli.main import main
from foveal.detection.results import score_results
from foveal.errors import DataError
from foveal.evaluation.detection import COCO_STATS

from .test_coco_eval import COCO_MINI, perturbed_detections, pycoco_stats, synthetic_gt


def _write(path: Path, content) -> Path:
    path.write_text(json.dumps(content))
    return path


@pytest.mark.parametrize("seed", [0, 1])
def test_coco_numbers_equal_pycocotools(seed, tmp_path):
    gt = synthetic_gt(seed)
    dets = perturbed_detections(gt, seed + 50)
    metrics = score_results(_write(tmp_path / "gt.json", gt), _write(tmp_path / "res.json", dets))
    ref, *_ = pycoco_stats(gt, dets)
    np.testing.assert_allclose([metrics["coco"][name] for name, *_ in COCO_STATS], ref, atol=1e-5, rtol=0)
    assert 0.0 < metrics["map50"] <= 1.0 and set(metrics["per_class"]) == {"c1", "c2", "c3"}
    assert metrics["num_detections"] == len(dets)
    assert metrics["ap_score_threshold"] == pytest.approx(min(d["score"] for d in dets))


def test_same_numbers_as_detect_evaluate_prints():
    """Scoring the files `detect evaluate` writes gives the metrics it computed in memory."""
    from foveal.data.boxes import BoxedImages, to_coco_dict
    from foveal.detection.scoring import ImageDetections, score_detections, to_coco_results

    rng = np.random.default_rng(3)
    boxes, labels, dets = [], [], []
    for _ in range(6):
        xy = rng.uniform(0, 60, (3, 2))
        wh = rng.uniform(8, 40, (3, 2))
        truth = np.concatenate([xy, xy + wh], axis=1).astype(np.float32)
        boxes.append(truth)
        labels.append(rng.integers(0, 2, 3).astype(np.int32))
        found = (truth + rng.normal(0, 3, truth.shape)).round(2).astype(np.float32)
        dets.append(ImageDetections(found, rng.uniform(0.01, 1, 3).round(5), rng.integers(0, 2, 3)))
    data = BoxedImages(paths=np.asarray([f"{i}.png" for i in range(6)]), boxes=boxes, labels=labels,
                       class_names=["cat", "dog"], image_sizes=np.full((6, 2), 100))
    expected, _ = score_detections(data, dets, score_threshold=0.4)
    got = score_results(to_coco_dict(data), to_coco_results(data, dets), score_threshold=0.4)
    for key in ("map50", "map50_voc07", "precision", "recall", "num_images", "num_boxes", "num_detections"):
        assert got[key] == pytest.approx(expected[key], abs=1e-6), key
    assert got["coco"] == pytest.approx(expected["coco"], abs=1e-6)
    assert got["per_class"] == expected["per_class"]


def test_cli_prints_the_table_and_json(tmp_path, capsys):
    gt = _write(tmp_path / "gt.json", synthetic_gt(4))
    res = _write(tmp_path / "res.json", perturbed_detections(synthetic_gt(4), 9))
    assert main(["detect", "score", str(gt), str(res)]) == 0
    text = capsys.readouterr().out
    assert "COCO AP50" in text and "mAP@0.5 (VOC all-point)" in text and "class c1" in text
    assert main(["detect", "score", str(gt), str(res), "--json"]) == 0
    assert set(json.loads(capsys.readouterr().out)["coco"]) == {name for name, *_ in COCO_STATS}


GT = {"images": [{"id": 1, "width": 50, "height": 50}], "categories": [{"id": 3, "name": "cat"}],
      "annotations": [{"id": 1, "image_id": 1, "category_id": 3, "bbox": [1, 1, 20, 20], "area": 400, "iscrowd": 0}]}
GOOD = {"image_id": 1, "category_id": 3, "bbox": [1, 1, 20, 20], "score": 0.9}


@pytest.mark.parametrize("results, message", [
    ("not json {", "not valid JSON"),
    ({"x": 1}, "holds a list"),
    (GT, "looks like a ground-truth file"),
    ([GOOD, {"image_id": 1, "category_id": 3, "score": 0.5}], "result 1 has no 'bbox'"),
    ([{**GOOD, "bbox": [1, 2, 3]}], "not four numbers"),
    ([{**GOOD, "bbox": [1, 2, -3, 4]}], "negative width"),
    ([{**GOOD, "score": "high"}], "not a finite number"),
    ([{**GOOD, "image_id": 7}, {**GOOD, "image_id": 8}], "2 result(s) name image ids the ground truth does not have: 7, 8"),
    ([{**GOOD, "category_id": 1}], "category ids the ground truth does not have: 1; its categories are 3 cat"),
])
def test_bad_results_are_one_line_errors(results, message, tmp_path, capsys):
    res = tmp_path / "res.json"
    res.write_text(results if isinstance(results, str) else json.dumps(results))
    gt = _write(tmp_path / "gt.json", GT)
    with pytest.raises(DataError) as info:
        score_results(gt, res)
    assert message in info.value.message and "\n" not in info.value.message
    assert main(["detect", "score", str(gt), str(res)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err


@pytest.mark.parametrize("gt, message", [
    ({"images": [], "categories": []}, "no 'annotations' list"),
    ([1, 2], "holds an object"),
    ({**GT, "annotations": [{"image_id": 2, "category_id": 3, "bbox": [0, 0, 1, 1]}]}, "image ids the ground truth"),
    ({**GT, "images": [{"id": 1}, {"id": 1}]}, "image ids are repeated: 1"),
    ({**GT, "annotations": [{"image_id": 1, "bbox": [0, 0, 1, 1]}]}, "annotation 0 has no 'category_id'"),
])
def test_bad_ground_truth_is_refused(gt, message, tmp_path):
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        score_results(_write(tmp_path / "gt.json", gt), _write(tmp_path / "res.json", [GOOD]))
    with pytest.raises(DataError, match="file not found"):
        score_results(tmp_path / "missing.json", tmp_path / "res.json")


def test_empty_results_score_zero(tmp_path):
    metrics = score_results(_write(tmp_path / "gt.json", GT), _write(tmp_path / "res.json", []))
    assert metrics["map50"] == 0.0 and metrics["coco"]["AP"] == 0.0 and metrics["num_detections"] == 0


def test_coco_mini_equals_pycocotools(tmp_path):
    path = COCO_MINI / "instances_val2017.json"
    if not path.is_file():
        pytest.skip(f"coco-mini is absent ({path})")
    gt = json.loads(path.read_text())
    dets = perturbed_detections(gt, 11)
    metrics = score_results(path, _write(tmp_path / "res.json", dets))
    ref, *_ = pycoco_stats(gt, dets)
    np.testing.assert_allclose([metrics["coco"][name] for name, *_ in COCO_STATS], ref, atol=1e-6, rtol=0)
