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


# ------------------------------------------------------------------------------------- mask AP (segm)


def synthetic_mask_gt(seed: int, images: int = 6, cats: int = 2, size: tuple[int, int] = (48, 64)) -> dict:
    """Random polygon, compressed-RLE and crowd (uncompressed RLE) instances of all sizes."""
    from foveal.evaluation.detection import mask_to_rle

    rng = np.random.default_rng(seed)
    h, w = size
    anns = []
    for img in range(1, images + 1):
        for _ in range(rng.integers(0, 6)):
            kind = rng.choice(["polygon", "rle", "crowd"], p=[0.5, 0.35, 0.15])
            cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(2, 20)
            ann = {"id": len(anns) + 1, "image_id": img, "category_id": int(rng.integers(1, cats + 1)),
                   "iscrowd": int(kind == "crowd")}
            if kind == "polygon":
                angles = np.sort(rng.uniform(0, 2 * np.pi, rng.integers(3, 8)))
                pts = np.stack([cx + r * np.cos(angles), cy + r * np.sin(angles)], 1).clip(0, [w - 1, h - 1])
                ann["segmentation"] = [pts.ravel().round(2).tolist()]
            else:
                yy, xx = np.mgrid[:h, :w]
                mask = (xx - cx) ** 2 / r ** 2 + (yy - cy) ** 2 / (r * rng.uniform(0.4, 1.5)) ** 2 <= 1
                if not mask.any():
                    continue
                rle = mask_to_rle(mask)
                if kind == "crowd":  # COCO stores crowd regions as uncompressed RLE
                    flat = mask.T.ravel().astype(np.int8)  # column-major, starting with a run of 0s
                    edges = np.flatnonzero(np.diff(np.r_[0, flat, 1 - flat[-1]]))
                    rle = {"size": [h, w], "counts": np.diff(np.r_[0, edges]).tolist()}
                ann["segmentation"] = rle
            ann["area"] = float(rng.uniform(10, 900))  # COCO's area field is what area ranges use
            anns.append(ann)
    return {"images": [{"id": i, "width": w, "height": h} for i in range(1, images + 1)],
            "annotations": anns, "categories": [{"id": c, "name": f"c{c}"} for c in range(1, cats + 1)]}


def perturbed_mask_results(gt: dict, seed: int) -> list[dict]:
    """Each ground-truth mask shifted by a pixel or two (some dropped), plus random blobs."""
    from pycocotools import mask as mask_utils

    from foveal.evaluation.detection import annotation_rle, mask_to_rle

    rng = np.random.default_rng(seed)
    sizes = {im["id"]: (im["height"], im["width"]) for im in gt["images"]}
    out = []
    for a in gt["annotations"]:
        if rng.random() < 0.2:
            continue
        mask = mask_utils.decode(annotation_rle(a["segmentation"], *sizes[a["image_id"]])).astype(bool)
        mask = np.roll(mask, tuple(rng.integers(-2, 3, 2)), axis=(0, 1))
        out.append({"image_id": a["image_id"], "category_id": a["category_id"], "segmentation": mask_to_rle(mask),
                    "score": float(np.round(rng.random(), 2))})
    for im in gt["images"]:
        for _ in range(rng.integers(0, 3)):
            h, w = sizes[im["id"]]
            mask = np.zeros((h, w), bool)
            y, x = rng.integers(0, h - 4), rng.integers(0, w - 4)
            mask[y:y + rng.integers(2, 20), x:x + rng.integers(2, 20)] = True
            out.append({"image_id": im["id"], "category_id": int(rng.integers(1, 3)), "segmentation": mask_to_rle(mask),
                        "score": float(rng.random())})
    return out


def pycoco_segm_stats(gt: dict, dets: list[dict]):
    pytest.importorskip("pycocotools")
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = copy.deepcopy(gt)
        coco.createIndex()
        res = coco.loadRes(copy.deepcopy(dets))
        ev = COCOeval(coco, res, "segm")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev.stats, ev.eval["precision"], ev.eval["recall"]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mask_ap_equals_pycocotools(seed):
    gt = synthetic_mask_gt(seed)
    kinds = {type(a["segmentation"]).__name__ + str(a["iscrowd"]) for a in gt["annotations"]}
    assert {"list0", "dict0", "dict1"} <= kinds  # polygons, RLE and crowd all present
    dets = perturbed_mask_results(gt, seed + 10)
    ref, ref_prec, ref_rec = pycoco_segm_stats(gt, dets)
    ours = coco_evaluate(gt, dets, iou_type="segm")
    np.testing.assert_allclose([ours.stats[name] for name, *_ in COCO_STATS], ref, atol=1e-6, rtol=0)
    np.testing.assert_allclose(ours.precision, ref_prec, atol=1e-6, rtol=0)
    np.testing.assert_allclose(ours.recall, ref_rec, atol=1e-6, rtol=0)
    assert 0.05 < ours.stats["AP50"] < 1.0  # neither trivial nor empty


def test_mask_ap_of_exact_masks_is_one_and_bad_results_are_named():
    from foveal.errors import DataError
    from foveal.evaluation.detection import mask_to_rle

    gt = synthetic_mask_gt(4)
    mask = np.zeros((48, 64), bool)
    mask[10:20, 5:30] = True
    gt["annotations"] = [{"id": 1, "image_id": 1, "category_id": 1, "segmentation": mask_to_rle(mask),
                          "area": float(mask.sum()), "iscrowd": 0}]
    exact = [{"image_id": 1, "category_id": 1, "segmentation": mask_to_rle(mask), "score": 0.5}]
    assert coco_evaluate(gt, exact, iou_type="segm").stats["AP"] == pytest.approx(1.0)
    # a box result that equals the mask's box scores 1 for bbox but the mask is what segm reads
    wrong_size = [{**exact[0], "segmentation": mask_to_rle(np.ones((10, 10), bool))}]
    with pytest.raises(DataError, match=r"image 1 is \[10, 10\], the image is \[48, 64\]"):
        coco_evaluate(gt, wrong_size, iou_type="segm")
    with pytest.raises(DataError, match="no RLE 'segmentation'"):
        coco_evaluate(gt, [{"image_id": 1, "category_id": 1, "bbox": [5, 10, 25, 10], "score": 1.0}], iou_type="segm")
    with pytest.raises(DataError, match="unknown iou_type"):
        coco_evaluate(gt, exact, iou_type="keypoints")


def test_mask_to_rle_round_trips_through_pycocotools():
    from pycocotools import mask as mask_utils

    from foveal.evaluation.detection import mask_to_rle

    mask = np.random.default_rng(0).random((31, 17)) > 0.6
    rle = mask_to_rle(mask)
    assert isinstance(rle["counts"], str) and rle["size"] == [31, 17]
    json.dumps(rle)
    np.testing.assert_array_equal(mask_utils.decode(rle).astype(bool), mask)
