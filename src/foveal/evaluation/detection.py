"""Object detection metrics: VOC precision/recall/AP and the COCO AP/AR table, in NumPy.

Two families of metrics:

* **VOC** (Everingham et al., "The PASCAL Visual Object Classes (VOC) Challenge", IJCV 2010):
  per class, all detections sorted by score; each is a true positive when its best-IoU
  ground-truth box of that class (same image) overlaps by at least 0.5 and was not taken yet;
  ``difficult`` boxes neither count nor penalise. :func:`voc_evaluate` gives per-class
  precision/recall at a score threshold, the PR curve and the AP (11-point, VOC2007, or the
  all-point area, VOC2010+).
* **COCO** (Lin et al., "Microsoft COCO: Common Objects in Context", ECCV 2014):
  :func:`coco_evaluate` reproduces ``pycocotools.cocoeval.COCOeval`` for ``iouType="bbox"``
  and ``"segm"`` rule for rule, so its 12 numbers equal pycocotools' (tested to 1e-6; mask
  IoUs, areas and polygon/RLE decoding are pycocotools' own ``mask`` API): per image and
  category, at most ``maxDets[-1]`` detections sorted by score (stable) are matched greedily to
  the free ground truth of highest IoU (ties: the later box), non-ignored ground truth first;
  crowd boxes (``iscrowd``) are ignored, may absorb any number of detections, and use
  ``intersection / detection area`` as IoU; ground truth outside an area range is ignored
  there, as are unmatched detections outside it; precision is made monotone and sampled at
  101 recall points; AP/AR average every (IoU threshold, class) cell that has ground truth.
  One known pycocotools quirk is *not* copied: it marks a detection matched to a ground truth
  whose ``id`` is 0 as unmatched; here ids play no part in matching (COCO ids start at 1).

Example:
    >>> gt = {"images": [{"id": 1, "width": 100, "height": 100}], "categories": [{"id": 1, "name": "cat"}],
    ...       "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 40, 40],
    ...                        "area": 1600, "iscrowd": 0}]}
    >>> res = [{"image_id": 1, "category_id": 1, "bbox": [10, 10, 40, 40], "score": 0.9}]
    >>> round(coco_evaluate(gt, res).stats["AP"], 6)
    1.0
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from foveal.errors import DataError

IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
RECALL_THRESHOLDS = np.linspace(0.0, 1.0, 101)
MAX_DETS = (1, 10, 100)
AREA_RANGES = {"all": (0.0, 1e5 ** 2), "small": (0.0, 32.0 ** 2), "medium": (32.0 ** 2, 96.0 ** 2),
               "large": (96.0 ** 2, 1e5 ** 2)}
# (name, ap?, iou threshold, area range, max detections): COCOeval.summarize's 12 rows.
COCO_STATS = (
    ("AP", True, None, "all", 100), ("AP50", True, 0.5, "all", 100), ("AP75", True, 0.75, "all", 100),
    ("APs", True, None, "small", 100), ("APm", True, None, "medium", 100), ("APl", True, None, "large", 100),
    ("AR1", False, None, "all", 1), ("AR10", False, None, "all", 10), ("AR100", False, None, "all", 100),
    ("ARs", False, None, "small", 100), ("ARm", False, None, "medium", 100), ("ARl", False, None, "large", 100),
)


# --------------------------------------------------------------------------------------------- COCO

IOU_TYPES = ("bbox", "segm")


def mask_to_rle(mask: np.ndarray) -> dict:
    """A binary (H, W) mask as a JSON-ready COCO compressed RLE ``{"size": [H, W], "counts": str}``.

    Example:
        >>> mask_to_rle(np.eye(2, dtype=bool))
        {'size': [2, 2], 'counts': '0120'}
    """
    from pycocotools import mask as mask_utils

    m = np.asarray(mask)
    if m.ndim != 2:
        raise DataError(f"a mask must be (height, width), got shape {m.shape}")
    rle = mask_utils.encode(np.asfortranarray(m.astype(np.uint8) != 0, dtype=np.uint8))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def annotation_rle(segmentation: Any, height: int, width: int) -> dict:
    """A COCO ``segmentation`` (polygons, uncompressed or compressed RLE) as compressed RLE,
    as pycocotools' ``COCO.annToRLE`` does."""
    from pycocotools import mask as mask_utils

    if isinstance(segmentation, list):
        return mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
    if isinstance(segmentation, dict) and isinstance(segmentation.get("counts"), list):
        return mask_utils.frPyObjects(segmentation, height, width)
    return segmentation


def bbox_iou_xywh(dets: np.ndarray, gts: np.ndarray, crowd: np.ndarray) -> np.ndarray:
    """IoU matrix (D, G) of ``[x, y, w, h]`` boxes, crowd columns as ``inter / det area``.

    The arithmetic follows pycocotools' ``maskApi.c`` ``bbIou`` (float64) so that threshold
    ties resolve the same way.
    """
    d = np.asarray(dets, np.float64).reshape(-1, 4)[:, None, :]
    g = np.asarray(gts, np.float64).reshape(-1, 4)[None, :, :]
    w = np.minimum(d[..., 0] + d[..., 2], g[..., 0] + g[..., 2]) - np.maximum(d[..., 0], g[..., 0])
    h = np.minimum(d[..., 1] + d[..., 3], g[..., 1] + g[..., 3]) - np.maximum(d[..., 1], g[..., 1])
    inter = np.where((w > 0) & (h > 0), w * h, 0.0)
    da = d[..., 2] * d[..., 3]
    union = np.where(np.asarray(crowd, bool)[None, :], da, da + g[..., 2] * g[..., 3] - inter)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(inter > 0, inter / union, 0.0)


def _match(ious: np.ndarray, ignore: np.ndarray, crowd: np.ndarray, thresholds: np.ndarray):
    """Greedy COCO matching of score-sorted detections; returns matched and ignored (T, D) flags.

    ``ious`` columns must list non-ignored ground truth first (``ignore`` sorted ascending).
    """
    num_t, (num_d, num_g) = len(thresholds), ious.shape
    dt_matched = np.zeros((num_t, num_d), bool)
    dt_ignored = np.zeros((num_t, num_d), bool)
    if num_d == 0 or num_g == 0:
        return dt_matched, dt_ignored
    taken = np.zeros((num_t, num_g), bool)
    limit = np.minimum(thresholds, 1 - 1e-10)[:, None]
    rows = np.arange(num_t)
    for d in range(num_d):
        candidate = (~taken | crowd[None, :]) & (ious[d][None, :] >= limit)
        for group in (~ignore, ignore):  # a non-ignored match always wins over an ignored one
            allowed = candidate & group[None, :]
            found = allowed.any(axis=1) & ~dt_matched[:, d]
            if not found.any():
                continue
            values = np.where(allowed, ious[d][None, :], -1.0)[:, ::-1]
            best = num_g - 1 - np.argmax(values, axis=1)  # ties: the later box, as COCOeval
            t = rows[found]
            dt_matched[t, d] = True
            dt_ignored[t, d] = ignore[best[found]]
            taken[t, best[found]] = True
    return dt_matched, dt_ignored


@dataclass
class CocoEvaluation:
    """The result of :func:`coco_evaluate`.

    Attributes:
        stats: the 12 summary numbers by name (``AP``, ``AP50``, ``AP75``, ``APs``, ``APm``,
            ``APl``, ``AR1``, ``AR10``, ``AR100``, ``ARs``, ``ARm``, ``ARl``); -1 where nothing
            could be measured, as pycocotools prints.
        precision: (T, R, K, A, M) interpolated precision, -1 for cells without ground truth.
        recall: (T, K, A, M) final recall.
        category_ids: the K category ids, in order.
        area_ranges: the A area-range names; ``max_dets`` the M limits.
    """

    stats: dict[str, float]
    precision: np.ndarray
    recall: np.ndarray
    category_ids: list[int]
    area_ranges: list[str] = field(default_factory=lambda: list(AREA_RANGES))
    max_dets: tuple[int, ...] = MAX_DETS

    def per_class_ap(self, iou: float | None = None) -> dict[int, float]:
        """AP of each category (over all IoU thresholds, or at ``iou``), area ``all``, 100 dets."""
        p = self.precision[:, :, :, 0, -1]
        if iou is not None:
            p = p[np.isclose(IOU_THRESHOLDS, iou)]
        out = {}
        for k, cat in enumerate(self.category_ids):
            v = p[:, :, k]
            out[cat] = float(np.mean(v[v > -1])) if (v > -1).any() else -1.0
        return out


def _load_json(source: Any, what: str) -> Any:
    if isinstance(source, (str, Path)):
        try:
            return json.loads(Path(source).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise DataError(f"{source}: cannot read the {what} JSON ({exc})") from None
    return source


def coco_evaluate(
    ground_truth: dict | str | Path,
    results: Sequence[dict] | str | Path,
    *,
    max_dets: Sequence[int] = MAX_DETS,
    iou_thresholds: np.ndarray = IOU_THRESHOLDS,
    iou_type: str = "bbox",
) -> CocoEvaluation:
    """COCO box or mask AP/AR of detections, equal to pycocotools' ``COCOeval(gt, dt, iou_type)``.

    Args:
        ground_truth: a COCO instances dict (``images`` with ``width``/``height``,
            ``annotations`` with ``bbox`` ``[x, y, w, h]`` or ``segmentation`` (polygons or
            RLE), ``area``, ``iscrowd``; ``categories``) or the path of its JSON.
        results: COCO result records ``{"image_id", "category_id", "score"}`` with ``bbox``
            (box AP) or ``segmentation`` RLE (mask AP, e.g. from :func:`mask_to_rle`), or the
            path of such a JSON list. Records of categories the ground truth lacks are dropped;
            records of unknown images are an error (pycocotools asserts).
        max_dets: detections kept per image and category (sorted ascending).
        iou_thresholds: the IoU thresholds T.
        iou_type: ``"bbox"`` (box IoU) or ``"segm"`` (mask IoU; areas are mask areas).

    Returns:
        A :class:`CocoEvaluation`.

    Example:
        >>> coco_evaluate("instances_val2017.json", "detections.json").stats["AP50"]  # doctest: +SKIP
        >>> coco_evaluate("instances_val2017.json", "masks.json", iou_type="segm").stats["AP"]  # doctest: +SKIP
    """
    if iou_type not in IOU_TYPES:
        raise DataError(f"unknown iou_type {iou_type!r}", hint=f"use one of {', '.join(IOU_TYPES)}")
    gt = _load_json(ground_truth, "ground truth")
    res = _load_json(results, "results")
    max_dets = tuple(sorted(int(m) for m in max_dets))
    thresholds = np.asarray(iou_thresholds, np.float64)
    image_ids = sorted({int(im["id"]) for im in gt.get("images", [])})
    cat_ids = sorted({int(c["id"]) for c in gt.get("categories", [])})
    unknown = {int(r["image_id"]) for r in res} - set(image_ids)
    if unknown:
        raise DataError(f"{len(unknown)} result image id(s) are not in the ground truth, e.g. {min(unknown)}")
    if iou_type == "segm":
        sizes = {int(im["id"]): (int(im["height"]), int(im["width"])) for im in gt.get("images", [])}
        groups = _group_masks(gt.get("annotations", []), res, set(cat_ids), max_dets[-1], sizes)
    else:
        groups = _group(gt.get("annotations", []), res, set(cat_ids), max_dets[-1])
    num_t, num_k, num_a, num_m = len(thresholds), len(cat_ids), len(AREA_RANGES), len(max_dets)
    precision = -np.ones((num_t, len(RECALL_THRESHOLDS), num_k, num_a, num_m))
    recall = -np.ones((num_t, num_k, num_a, num_m))
    for k, cat in enumerate(cat_ids):
        cells = [groups[key] for key in ((img, cat) for img in image_ids) if key in groups]
        for a, (lo, hi) in enumerate(AREA_RANGES.values()):
            per_image = [_evaluate_cell(cell, lo, hi, thresholds) for cell in cells]
            for m, limit in enumerate(max_dets):
                _accumulate(per_image, limit, precision[:, :, k, a, m], recall[:, k, a, m])
    stats = {name: _summary(precision if ap else recall, ap, iou, list(AREA_RANGES).index(area),
                            max_dets.index(md) if md in max_dets else None, thresholds)
             for name, ap, iou, area, md in COCO_STATS}
    return CocoEvaluation(stats, precision, recall, cat_ids, max_dets=max_dets)


def _group(annotations: list[dict], results: Sequence[dict], cats: set[int], keep: int) -> dict:
    """(image, category) -> ground truth and top-``keep`` score-sorted detections with their IoUs."""
    cells: dict[tuple[int, int], dict[str, list]] = {}
    for a in annotations:
        if int(a["category_id"]) in cats:
            cell = cells.setdefault((int(a["image_id"]), int(a["category_id"])), {"gt": [], "dt": []})
            box = a["bbox"]
            area = a.get("area", float(box[2]) * float(box[3]))
            cell["gt"].append((box, float(area), int(bool(a.get("iscrowd", 0))), bool(a.get("ignore", 0))))
    for r in results:
        if int(r["category_id"]) in cats:
            cell = cells.setdefault((int(r["image_id"]), int(r["category_id"])), {"gt": [], "dt": []})
            cell["dt"].append((r["bbox"], float(r["score"])))
    out = {}
    for key, cell in cells.items():
        g = cell["gt"]
        gt_boxes = np.array([x[0] for x in g], np.float64).reshape(-1, 4)
        crowd = np.array([x[2] for x in g], bool)
        dt_boxes = np.array([x[0] for x in cell["dt"]], np.float64).reshape(-1, 4)
        scores = np.array([x[1] for x in cell["dt"]], np.float64)
        order = np.argsort(-scores, kind="mergesort")[:keep]
        dt_boxes, scores = dt_boxes[order], scores[order]
        out[key] = {
            "gt_area": np.array([x[1] for x in g], np.float64), "crowd": crowd,
            "gt_ignore": np.array([x[2] or x[3] for x in g], bool),
            "dt_area": dt_boxes[:, 2] * dt_boxes[:, 3], "scores": scores,
            "ious": bbox_iou_xywh(dt_boxes, gt_boxes, crowd),
        }
    return out


def _group_masks(annotations: list[dict], results: Sequence[dict], cats: set[int], keep: int,
                 sizes: dict[int, tuple[int, int]]) -> dict:
    """As :func:`_group` with mask IoUs (pycocotools' ``maskUtils.iou``) and mask areas."""
    from pycocotools import mask as mask_utils

    cells: dict[tuple[int, int], dict[str, list]] = {}
    for a in annotations:
        if int(a["category_id"]) in cats:
            image = int(a["image_id"])
            if "segmentation" not in a:
                raise DataError(f"annotation {a.get('id')} (image {image}) has no 'segmentation' for mask AP")
            rle = annotation_rle(a["segmentation"], *sizes[image])
            area = a["area"] if "area" in a else float(mask_utils.area(rle))
            cell = cells.setdefault((image, int(a["category_id"])), {"gt": [], "dt": []})
            cell["gt"].append((rle, float(area), int(bool(a.get("iscrowd", 0))), bool(a.get("ignore", 0))))
    for r in results:
        if int(r["category_id"]) in cats:
            image = int(r["image_id"])
            rle = r.get("segmentation")
            if not isinstance(rle, dict) or "size" not in rle or "counts" not in rle:
                raise DataError(f"result for image {image} has no RLE 'segmentation' (size, counts) for mask AP")
            if tuple(int(v) for v in rle["size"]) != sizes[image]:
                raise DataError(f"result mask for image {image} is {list(rle['size'])}, the image is "
                                f"{list(sizes[image])} (height, width)")
            cell = cells.setdefault((image, int(r["category_id"])), {"gt": [], "dt": []})
            cell["dt"].append((annotation_rle(rle, *sizes[image]), float(r["score"])))
    out = {}
    for key, cell in cells.items():
        g = cell["gt"]
        crowd = np.array([x[2] for x in g], bool)
        scores = np.array([x[1] for x in cell["dt"]], np.float64)
        order = np.argsort(-scores, kind="mergesort")[:keep]
        dts = [cell["dt"][i][0] for i in order]
        gts = [x[0] for x in g]
        ious = (np.asarray(mask_utils.iou(dts, gts, [int(c) for c in crowd]), np.float64).reshape(len(dts), len(gts))
                if dts and gts else np.zeros((len(dts), len(gts))))
        out[key] = {
            "gt_area": np.array([x[1] for x in g], np.float64), "crowd": crowd,
            "gt_ignore": np.array([x[2] or x[3] for x in g], bool),
            "dt_area": np.array([float(mask_utils.area(d)) for d in dts], np.float64), "scores": scores[order],
            "ious": ious,
        }
    return out


def _evaluate_cell(cell: dict, lo: float, hi: float, thresholds: np.ndarray) -> tuple:
    """One image and category in one area range: (scores, matched, ignored, gt ignore flags)."""
    ignore = cell["gt_ignore"] | (cell["gt_area"] < lo) | (cell["gt_area"] > hi)
    order = np.argsort(ignore, kind="mergesort")
    ignore = ignore[order]
    matched, ignored = _match(cell["ious"][:, order], ignore, cell["crowd"][order], thresholds)
    outside = (cell["dt_area"] < lo) | (cell["dt_area"] > hi)
    ignored |= ~matched & outside[None, :]
    return cell["scores"], matched, ignored, ignore


def _accumulate(per_image: list[tuple], limit: int, precision: np.ndarray, recall: np.ndarray) -> None:
    """Fill ``precision`` (T, R) and ``recall`` (T,) for one class, area range and max dets."""
    if not per_image:
        return
    num_gt = sum(int(np.count_nonzero(~e[3])) for e in per_image)
    if num_gt == 0:
        return
    scores = np.concatenate([e[0][:limit] for e in per_image])
    order = np.argsort(-scores, kind="mergesort")
    matched = np.concatenate([e[1][:, :limit] for e in per_image], axis=1)[:, order]
    ignored = np.concatenate([e[2][:, :limit] for e in per_image], axis=1)[:, order]
    tp = np.cumsum(matched & ~ignored, axis=1).astype(float)
    fp = np.cumsum(~matched & ~ignored, axis=1).astype(float)
    n = tp.shape[1]
    for t in range(tp.shape[0]):
        rc = tp[t] / num_gt
        pr = tp[t] / (fp[t] + tp[t] + np.spacing(1))
        recall[t] = rc[-1] if n else 0.0
        pr = np.maximum.accumulate(pr[::-1])[::-1]
        idx = np.searchsorted(rc, RECALL_THRESHOLDS, side="left")
        q = np.zeros(len(RECALL_THRESHOLDS))
        ok = idx < n
        q[ok] = pr[idx[ok]]
        precision[t] = q


def _summary(values: np.ndarray, ap: bool, iou: float | None, area: int, md: int | None,
             thresholds: np.ndarray) -> float:
    if md is None:
        return -1.0
    if iou is not None:
        values = values[np.where(np.isclose(thresholds, iou))[0]]
    values = values[:, :, :, area, md] if ap else values[:, :, area, md]
    valid = values[values > -1]
    return float(np.mean(valid)) if valid.size else -1.0


# ---------------------------------------------------------------------------------------------- VOC


def box_iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU (N, M) of corner boxes ``[x0, y0, x1, y1]`` in float64."""
    from foveal.ops.boxes import iou_matrix

    return iou_matrix(np.asarray(a, np.float64), np.asarray(b, np.float64))


@dataclass
class ClassCurve:
    """One class's detections in score order with their outcome, and its PR curve.

    Attributes:
        scores: (D,) detection scores, descending.
        tp: (D,) bool, true positive; ``fp`` the false positives (difficult matches are neither).
        num_gt: non-difficult ground-truth boxes of the class.
    """

    scores: np.ndarray
    tp: np.ndarray
    fp: np.ndarray
    num_gt: int

    def curve(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(recall, precision, scores)`` after each detection, in score order."""
        tp, fp = np.cumsum(self.tp), np.cumsum(self.fp)
        recall = tp / max(self.num_gt, 1)
        precision = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
        return recall, precision, self.scores[self.tp | self.fp]

    def at_threshold(self, score: float) -> tuple[float, float]:
        """``(precision, recall)`` of the detections scoring at least ``score``."""
        keep = self.scores >= score
        tp, fp = int(np.sum(self.tp[keep])), int(np.sum(self.fp[keep]))
        return (tp / (tp + fp) if tp + fp else 0.0), (tp / self.num_gt if self.num_gt else 0.0)


def voc_ap(recall: np.ndarray, precision: np.ndarray, eleven_point: bool = False) -> float:
    """Average precision from a PR curve: VOC2007's 11-point mean or the all-point area.

    Example:
        >>> voc_ap(np.array([0.5, 1.0]), np.array([1.0, 0.5]))
        0.75
    """
    recall, precision = np.asarray(recall, np.float64), np.asarray(precision, np.float64)
    if eleven_point:
        return float(np.mean([np.max(precision[recall >= t], initial=0.0) for t in np.linspace(0, 1, 11)]))
    r = np.concatenate([[0.0], recall, [1.0]])
    p = np.concatenate([[0.0], precision, [0.0]])
    p = np.maximum.accumulate(p[::-1])[::-1]
    steps = np.nonzero(r[1:] != r[:-1])[0]
    return float(np.sum((r[steps + 1] - r[steps]) * p[steps + 1]))


def match_voc(
    gt_boxes: Sequence[np.ndarray], gt_labels: Sequence[np.ndarray],
    det_boxes: Sequence[np.ndarray], det_labels: Sequence[np.ndarray], det_scores: Sequence[np.ndarray],
    *, num_classes: int, iou_threshold: float = 0.5, gt_difficult: Sequence[np.ndarray] | None = None,
) -> list[ClassCurve]:
    """VOC matching of per-image corner-format detections to ground truth, one curve per class."""
    flat = []  # (score, image, box index) per class
    for c in range(num_classes):
        entries = [(float(s), i, j) for i, (lab, sc) in enumerate(zip(det_labels, det_scores))
                   for j, s in enumerate(np.asarray(sc)) if int(np.asarray(lab)[j]) == c]
        entries.sort(key=lambda e: -e[0])
        flat.append(entries)
    curves = []
    for c in range(num_classes):
        gts = [np.asarray(b, np.float64).reshape(-1, 4)[np.asarray(lab) == c] for b, lab in zip(gt_boxes, gt_labels)]
        hard = [np.zeros(len(g), bool) if gt_difficult is None else np.asarray(d, bool)[np.asarray(lab) == c]
                for g, d, lab in zip(gts, gt_difficult or gt_labels, gt_labels)]
        taken = [np.zeros(len(g), bool) for g in gts]
        n = len(flat[c])
        tp, fp = np.zeros(n, bool), np.zeros(n, bool)
        for k, (_, i, j) in enumerate(flat[c]):
            if len(gts[i]) == 0:
                fp[k] = True
                continue
            ious = box_iou_matrix(np.asarray(det_boxes[i], np.float64).reshape(-1, 4)[j:j + 1], gts[i])[0]
            best = int(np.argmax(ious))
            if ious[best] < iou_threshold:
                fp[k] = True
            elif hard[i][best]:
                continue
            elif taken[i][best]:
                fp[k] = True
            else:
                tp[k] = taken[i][best] = True
        curves.append(ClassCurve(np.array([e[0] for e in flat[c]]), tp, fp,
                                 int(sum(int(np.count_nonzero(~h)) for h in hard))))
    return curves


def voc_evaluate(
    gt_boxes: Sequence[np.ndarray], gt_labels: Sequence[np.ndarray],
    det_boxes: Sequence[np.ndarray], det_labels: Sequence[np.ndarray], det_scores: Sequence[np.ndarray],
    *, class_names: Sequence[str], iou_threshold: float = 0.5, score_threshold: float = 0.5,
    gt_difficult: Sequence[np.ndarray] | None = None, eleven_point: bool = False,
) -> dict[str, Any]:
    """Per-class VOC AP, and precision/recall at ``score_threshold``, plus their mean (mAP).

    Boxes are per-image corner arrays ``(K, 4)``; labels are class indices.

    Returns:
        ``{"per_class": {name: {"ap", "precision", "recall", "num_gt", "num_det"}}, "mAP": ...}``;
        classes without ground truth are left out of the mean.

    Example:
        >>> out = voc_evaluate([np.array([[0, 0, 10, 10]])], [np.array([0])], [np.array([[0, 0, 10, 9]])],
        ...                    [np.array([0])], [np.array([0.8])], class_names=["cat"])
        >>> out["mAP"]
        1.0
    """
    curves = match_voc(gt_boxes, gt_labels, det_boxes, det_labels, det_scores, num_classes=len(class_names),
                       iou_threshold=iou_threshold, gt_difficult=gt_difficult)
    per_class = {}
    for name, curve in zip(class_names, curves):
        rec, prec, _ = curve.curve()
        p, r = curve.at_threshold(score_threshold)
        per_class[name] = {"ap": voc_ap(rec, prec, eleven_point) if curve.num_gt else float("nan"),
                           "precision": p, "recall": r, "num_gt": curve.num_gt, "num_det": len(curve.scores)}
    aps = [v["ap"] for v in per_class.values() if v["num_gt"]]
    return {"per_class": per_class, "mAP": float(np.mean(aps)) if aps else float("nan")}


__all__ = ["AREA_RANGES", "COCO_STATS", "ClassCurve", "CocoEvaluation", "IOU_THRESHOLDS", "bbox_iou_xywh",
           "coco_evaluate", "match_voc", "voc_ap", "voc_evaluate"]
