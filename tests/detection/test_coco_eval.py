"""COCO and VOC detection metrics: equal to pycocotools' COCOeval to 1e-6."""

from __future__ import annotations

import contextlib
import copy
import io
import json
from pathlib import Path

import numpy as np
import pytest

from foveal.evaluation.detection import COCO_STATS, coco_evaluate, voc_ap, voc_evaluate

COCO_MINI = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "coco-mini" / "annotations"


def synthetic_gt(seed: int, images: int = 12, cats: int = 3) -> dict:
    """Random boxes of all sizes, some crowd, some images with no annotations at all."""
    rng = np.random.default_rng(seed)
    anns = []
    for img in range(1, images + 1):
        if img % 5 == 0:
            continue  # an empty image
        for _ in range(rng.integers(0, 8)):
            w, h = rng.uniform(4, 200, 2)
            x, y = rng.uniform(0, 400 - w), rng.uniform(0, 400 - h)
            anns.append({"id": len(anns) + 1, "image_id": img, "category_id": int(rng.integers(1, cats + 1)),
                         "bbox": [x, y, w, h], "area": float(w * h * rng.uniform(0.5, 1.0)),
                         "iscrowd": int(rng.random() < 0.1)})
    return {"images": [{"id": i, "width": 400, "height": 400} for i in range(1, images + 1)],
            "annotations": anns, "categories": [{"id": c, "name": f"c{c}"} for c in range(1, cats + 1)]}


def perturbed_detections(gt: dict, seed: int, extra: int = 3) -> list[dict]:
    """GT boxes jittered (some dropped) plus random false positives, with random scores."""
    rng = np.random.default_rng(seed)
    cats = [c["id"] for c in gt["categories"]]
    dets = []
    for a in gt["annotations"]:
        if rng.random() < 0.2:
            continue
        x, y, w, h = a["bbox"]
        for _ in range(rng.integers(1, 3)):
            j = rng.normal(0, 0.12, 4) * [w, h, w, h]
            dets.append({"image_id": a["image_id"], "category_id": a["category_id"] if rng.random() < 0.9
                         else int(rng.choice(cats)), "bbox": [x + j[0], y + j[1], max(w + j[2], 1), max(h + j[3], 1)],
                         "score": float(rng.random())})
    for im in gt["images"]:
        for _ in range(rng.integers(0, extra + 1)):
            w, h = rng.uniform(2, 150, 2)
            dets.append({"image_id": im["id"], "category_id": int(rng.choice(cats)),
                         "bbox": [float(rng.uniform(0, im["width"] - w)), float(rng.uniform(0, im["height"] - h)),
                                  float(w), float(h)], "score": float(np.round(rng.random(), 2))})  # ties too
    return dets


def pycoco_stats(gt: dict, dets: list[dict]) -> np.ndarray:
    pytest.importorskip("pycocotools")
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = copy.deepcopy(gt)
        coco.createIndex()
        res = coco.loadRes(copy.deepcopy(dets)) if dets else COCO()
        ev = COCOeval(coco, res, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev.stats, ev.eval["precision"], ev.eval["recall"]


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_coco_metrics_equal_pycocotools_on_synthetic_data(seed):
    gt = synthetic_gt(seed)
    assert any(a["iscrowd"] for a in gt["annotations"]) or seed > 0
    dets = perturbed_detections(gt, seed + 100)
    ref, ref_prec, ref_rec = pycoco_stats(gt, dets)
    ours = coco_evaluate(gt, dets)
    np.testing.assert_allclose([ours.stats[name] for name, *_ in COCO_STATS], ref, atol=1e-6, rtol=0)
    np.testing.assert_allclose(ours.precision, ref_prec, atol=1e-6, rtol=0)
    np.testing.assert_allclose(ours.recall, ref_rec, atol=1e-6, rtol=0)


def test_coco_metrics_with_many_detections_per_image():
    gt = synthetic_gt(7, images=4, cats=1)
    dets = perturbed_detections(gt, 8, extra=150)  # over maxDets=100 per image
    ref, *_ = pycoco_stats(gt, dets)
    np.testing.assert_allclose(list(coco_evaluate(gt, dets).stats.values()), ref, atol=1e-6, rtol=0)


def test_coco_metrics_equal_pycocotools_on_coco_mini():
    from conftest import shared_dataset  # here, not at the top: benchmarks/coco_eval_speed.py imports this module

    path = shared_dataset("coco-mini", "annotations", "instances_val2017.json")
    gt = json.loads(path.read_text())
    dets = perturbed_detections(gt, 5)
    ref, *_ = pycoco_stats(gt, dets)
    ours = coco_evaluate(path, dets)
    np.testing.assert_allclose([ours.stats[name] for name, *_ in COCO_STATS], ref, atol=1e-6, rtol=0)
    assert 0.2 < ours.stats["AP50"] < 1.0


def test_perfect_and_empty_detections():
    gt = synthetic_gt(3)
    perfect = [{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 1.0}
               for a in gt["annotations"] if not a["iscrowd"]]
    assert coco_evaluate(gt, perfect).stats["AP50"] == pytest.approx(1.0)
    assert coco_evaluate(gt, []).stats["AP"] == 0.0


def test_voc_ap_and_thresholded_precision_recall():
    assert voc_ap(np.array([0.5, 1.0]), np.array([1.0, 0.5])) == pytest.approx(0.75)
    assert voc_ap(np.array([0.5, 1.0]), np.array([1.0, 0.5]), eleven_point=True) == pytest.approx((6 + 5 * 0.5) / 11)
    gt_boxes = [np.array([[0, 0, 10, 10], [20, 20, 30, 30]]), np.array([[0, 0, 5, 5]])]
    gt_labels = [np.array([0, 1]), np.array([0])]
    det_boxes = [np.array([[0, 0, 10, 10], [0, 0, 10, 10], [21, 21, 30, 30]]), np.array([[50, 50, 60, 60]])]
    det_labels = [np.array([0, 0, 1]), np.array([0])]
    det_scores = [np.array([0.9, 0.8, 0.3]), np.array([0.7])]
    out = voc_evaluate(gt_boxes, gt_labels, det_boxes, det_labels, det_scores, class_names=["a", "b"],
                       score_threshold=0.5)
    a = out["per_class"]["a"]  # TP (0.9), FP duplicate (0.8), FP elsewhere (0.7); 2 GT
    assert a["precision"] == pytest.approx(1 / 3) and a["recall"] == pytest.approx(0.5)
    assert a["ap"] == pytest.approx(0.5)
    assert out["per_class"]["b"]["ap"] == pytest.approx(1.0) and out["per_class"]["b"]["recall"] == 0.0
    assert out["mAP"] == pytest.approx(0.75)
