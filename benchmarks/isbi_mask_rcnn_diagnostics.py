"""Why Mask R-CNN trails U-Net + watershed on ISBI cells: cheap diagnostics, no training; prints JSON.

ISBI 2012 slices hold about 115 small, touching cells (512x512). Before training longer, this
checks the parts of a two-stage detector that can cap its recall whatever it learns:

1. **Boxes**: the cells' sizes (``sqrt(w h)`` at the model input) and how many per image.
   and the share whose box overlaps a neighbour's by IoU above 0.5 and 0.7 (NMS at those
   thresholds could remove it even from perfect detections).
2. **Anchor coverage** (no model): for each ground-truth box, the best IoU of any anchor of a
   grid (stride, sizes, ratios); the share of boxes reaching 0.5 and 0.7 (the RPN's positive
   threshold: a box below it has only its best anchor(s) as positives), positives per box,
   and the positives the RPN's 256-anchor sample can hold.
3. With ``--model best.keras`` (a trained instance Mask R-CNN): on the given COCO file's
   images, the **recall of the RPN's proposals** at IoU 0.5 and 0.7 for several post-NMS
   counts, the recall of the final detections (after class-aware NMS) at IoU 0.5 for
   several score thresholds and detection caps, and the score distribution.

Example::

    PYTHONPATH=src .venv/bin/python benchmarks/isbi_mask_rcnn_diagnostics.py \\
        --data cells/annotations/instances_train.json --images cells/images --image-size 512 \\
        --grid P3:16.6,32.6,72.7 --grid P2:8,16,32 --model runs/RUN/best.keras > diag.json
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU ``[len(a), len(b)]`` of corner boxes (NumPy reference, independent of foveal.ops)."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=-1)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=-1)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=-1)
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def anchors(height: int, width: int, stride: int, sizes: list[float], ratios: list[float]) -> np.ndarray:
    """Anchors centred on cell centres ``(i + 0.5) * stride`` as foveal.ops.rcnn.anchor_grid lays them."""
    from foveal.ops.rcnn import anchor_grid, base_anchors

    return np.asarray(anchor_grid(height // stride, width // stride, stride, base_anchors(sizes, ratios)))


def coverage(gt: list[np.ndarray], grid: np.ndarray, positive_iou: float = 0.7) -> dict[str, float]:
    best, positives, per_image = [], [], []
    for boxes in gt:
        if not len(boxes):
            continue
        iou = iou_matrix(grid, boxes)  # [A, M]
        per_box = iou.max(0)
        best.append(per_box)
        anchor_best = iou.max(1)
        is_best = (iou >= per_box[None]).any(1)
        pos = (anchor_best > positive_iou) | is_best
        per_image.append(int(pos.sum()))
        owner = iou.argmax(1)
        positives.append(np.bincount(owner[pos], minlength=len(boxes)))
    b, p = np.concatenate(best), np.concatenate(positives)
    return {"best_anchor_iou_median": round(float(np.median(b)), 3),
            "boxes_best_iou_ge_0.5": round(float((b >= 0.5).mean()), 3),
            "boxes_best_iou_gt_0.7": round(float((b > positive_iou).mean()), 3),
            "positive_anchors_per_box_median": float(np.median(p)),
            "boxes_with_one_positive_anchor_or_fewer": round(float((p <= 1).mean()), 3),
            "positive_anchors_per_image_mean": round(float(np.mean(per_image)), 1)}


def recall(gt: list[np.ndarray], found: list[np.ndarray], threshold: float) -> float:
    hit = total = 0
    for boxes, pred in zip(gt, found):
        total += len(boxes)
        if len(boxes) and len(pred):
            hit += int((iou_matrix(pred, boxes).max(0) >= threshold).sum())
    return round(hit / max(total, 1), 4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, help="COCO instances JSON (e.g. cells' instances_train.json)")
    parser.add_argument("--images", help="its image folder")
    parser.add_argument("--image-size", type=int, default=512, help="model input side (default 512)")
    parser.add_argument("--grid", action="append", default=[], metavar="PK:S1,S2,..",
                        help="anchor grid to check: level and sizes, e.g. P3:16.6,32.6,72.7 (repeatable)")
    parser.add_argument("--ratios", default="0.5,1,2", help="anchor ratios (default 0.5,1,2)")
    parser.add_argument("--model", help="a trained instance Mask R-CNN (.keras) to measure proposals and detections")
    parser.add_argument("--limit", type=int, default=8, help="images the anchor coverage and the model are measured on (default 8)")
    args = parser.parse_args()

    from foveal.instance.data import read_instances

    started, load = time.perf_counter(), os.getloadavg()
    data = read_instances(args.data, images=args.images)
    side = args.image_size
    gt = []
    for boxes, (w, h), crowd in zip(data.boxes, data.image_sizes, data.difficult):
        gt.append(np.asarray(boxes, np.float64)[~np.asarray(crowd, bool)] * np.array([side / w, side / h] * 2))
    sizes = np.sqrt(np.concatenate([(b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) for b in gt]))
    ratios = [float(v) for v in args.ratios.split(",")]
    report: dict[str, object] = {
        "data": args.data, "images": len(gt), "input": side,
        "boxes": {"count": int(len(sizes)), "per_image_max": int(max(len(b) for b in gt)),
                  "per_image_mean": round(float(np.mean([len(b) for b in gt])), 1),
                  "sqrt_area_px_quantiles_5_25_50_75_95": [round(float(q), 1) for q in
                                                           np.quantile(sizes, [0.05, 0.25, 0.5, 0.75, 0.95])],
                  "aspect_h_over_w_quantiles_5_50_95": [round(float(q), 2) for q in np.quantile(
                      np.concatenate([(b[:, 3] - b[:, 1]) / np.maximum(b[:, 2] - b[:, 0], 1e-6) for b in gt]),
                      [0.05, 0.5, 0.95])]},
    }
    neighbour = []  # each box's largest IoU with another box of its image: what NMS could suppress
    for boxes in gt:
        iou = iou_matrix(boxes, boxes)
        np.fill_diagonal(iou, 0.0)
        neighbour.append(iou.max(1) if len(boxes) > 1 else np.zeros(len(boxes)))
    near = np.concatenate(neighbour)
    report["boxes"]["share_with_a_neighbour_box_iou_gt_0.5_0.7"] = [round(float((near > t).mean()), 4)
                                                                     for t in (0.5, 0.7)]
    grids = {}
    for spec in args.grid:
        level, _, values = spec.partition(":")
        stride = 2 ** int(level.lstrip("Pp"))
        grid_sizes = [float(v) for v in values.split(",")]
        grids[spec] = coverage(gt[:args.limit], anchors(side, side, stride, grid_sizes, ratios))
    report["anchor_coverage"] = grids
    if args.model:
        report["model"] = measure_model(args.model, data, gt, args.limit, side)
    report["seconds"] = round(time.perf_counter() - started, 1)
    report["load_average_before"] = [round(v, 2) for v in load]
    print(json.dumps(report, indent=1))


def measure_model(path: str, data, gt: list[np.ndarray], limit: int, side: int) -> dict[str, object]:
    import tensorflow as tf

    from foveal.data.files import decode_file
    from foveal.models import load_model

    model, card = load_model(path)
    h, w, c = card.input_shape
    out: dict[str, object] = {"path": path, "input": [h, w, c], "level": model.level, "stride": model.stride,
                              "anchor_sizes": model.rcnn.anchor_sizes,
                              "settings": {k: getattr(model.rcnn, k) for k in ("post_nms_test", "pre_nms_test",
                                                                               "rpn_nms_iou")},
                              "postprocess": model.postprocess_config()}
    images = []
    for p in data.paths[:limit]:
        image = decode_file(p, c).astype(np.float32)
        images.append(tf.image.resize(image, [h, w]).numpy())
    images = np.stack(images)
    gt = [b * np.array([w, h, w, h]) / side for b in gt[:limit]]  # from --image-size to the model's input
    raw = model(images, training=False)
    proposals = {}
    saved = model.rcnn.post_nms_test
    for post in (150, 300, 1000, 2000):
        model.rcnn.post_nms_test = post
        boxes, scores, valid = model.proposals(raw, (h, w), training=False)
        found = [np.asarray(b)[np.asarray(v)] for b, v in zip(boxes, valid)]
        proposals[str(post)] = {"recall_iou_0.5": recall(gt, found, 0.5), "recall_iou_0.7": recall(gt, found, 0.7),
                                "proposals_per_image": round(float(np.mean([len(f) for f in found])), 1)}
    model.rcnn.post_nms_test = saved
    out["proposal_recall_by_post_nms_test"] = proposals
    # the RPN's objectness on anchors matched to ground truth vs the rest
    objectness = np.asarray(model._flat_rpn(raw)[0])
    grid = np.asarray(model.anchors_for(raw["features"]))
    pos_scores, neg_scores = [], []
    for i, boxes in enumerate(gt):
        iou = iou_matrix(grid, boxes).max(1)
        prob = 1 / (1 + np.exp(-objectness[i]))
        pos_scores.append(prob[iou > 0.7] if (iou > 0.7).any() else prob[iou >= iou.max()])
        neg_scores.append(prob[iou < 0.3])
    pos, neg = np.concatenate(pos_scores), np.concatenate(neg_scores)
    out["rpn_objectness"] = {"anchors_iou_gt_0.7_mean_prob": round(float(pos.mean()), 3),
                             "anchors_iou_lt_0.3_mean_prob": round(float(neg.mean()), 3),
                             "auc_pos_vs_neg": round(float(_auc(pos, neg)), 3)}
    detections = {}
    for cap in (100, 300):
        model.set_postprocess(score_threshold=0.001, max_detections=cap)
        model.predict_function = None
        result = model.predict(images, verbose=0)
        n = result["num_detections"]
        boxes = [result["boxes"][i][:n[i]] * np.array([w, h, w, h]) for i in range(len(images))]
        scores = np.concatenate([result["scores"][i][:n[i]] for i in range(len(images))])
        row = {"detections_per_image": round(float(np.mean(n)), 1), "recall_iou_0.5": recall(gt, boxes, 0.5),
               "score_quantiles_10_50_90": [round(float(q), 3) for q in np.quantile(scores, [0.1, 0.5, 0.9])]
               if len(scores) else []}
        for cut in (0.05, 0.3, 0.5):
            kept = [b[result["scores"][i][:n[i]] >= cut] for i, b in enumerate(boxes)]
            row[f"recall_iou_0.5_score_ge_{cut}"] = recall(gt, kept, 0.5)
        detections[str(cap)] = row
    out["detection_recall_by_max_detections"] = detections
    return out


def _auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """P(a positive anchor's objectness > a negative's) (ties half), by ranks."""
    from scipy.stats import rankdata

    ranks = rankdata(np.concatenate([pos, neg]))
    return (ranks[:len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / max(len(pos) * len(neg), 1)


if __name__ == "__main__":
    main()
