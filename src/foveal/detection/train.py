"""``foveal detect train`` and ``evaluate``: a run of :class:`~foveal.detection.task.DetectTask`
through the engine, and a saved detector scored on a box dataset. A run folder holds, beside
the engine's files, ``metrics.json`` (COCO and VOC numbers of the test split), ``detections.json``
(COCO results), ``anchors.json`` (YOLO) and ``report.html``.

Example:
    >>> result = train_detector(DetectConfig(data="../shared/datasets/raccoon", epochs=2))  # doctest: +SKIP
    >>> metrics = evaluate_detector(result.best_model, "../shared/datasets/raccoon")  # doctest: +SKIP
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from foveal.data.boxes import load_boxes
from foveal.tasks import trainer
from foveal.utils_io import atomic_write_text, write_metrics

train_detector = trainer("detect", "train_detector", "a detector (YOLO or Faster R-CNN)")


def evaluate_detector(model_path: str | Path, data: str, *, split: str = "test", batch_size: int = 8,
                      output: str | Path | None = None, skip_invalid: bool = False, score_threshold: float | None = None,
                      iou_threshold: float | None = None, report_images: int = 12,
                      ap_score_threshold: float = 0.001, class_map: str | dict | None = None) -> dict[str, Any]:
    """Score a saved detector on one split of a box dataset; ``output`` gets ``metrics.json``,
    ``detections.json`` (COCO results) and ``report.html``.

    Args:
        score_threshold: the display threshold of the precision/recall line and the drawn
            examples (default: the model's); ``iou_threshold``: NMS's (default: the model's).
        ap_score_threshold: AP is computed on the detections scoring at least this.
        class_map: which model class each dataset class is (:mod:`foveal.evaluation.classes`).
    """
    from foveal.data.splits import pick_split
    from foveal.detection.report import write_detection_report
    from foveal.detection.scoring import check_card, detect_dataset, readable, score_detections, to_coco_results
    from foveal.evaluation.classes import align_boxes
    from foveal.models import load_model

    model, card = load_model(model_path)
    check_card(card)
    model.set_postprocess(score_threshold=score_threshold, iou_threshold=iou_threshold)  # None: the model's
    split, part = pick_split(load_boxes(data, skip_invalid=skip_invalid), split, data)
    part = align_boxes(part, card.class_names, class_map)
    threshold = score_threshold if score_threshold is not None else float(card.training.get("score_threshold", 0.25))
    dets = detect_dataset(model, card, part, batch_size=batch_size, skip_invalid=skip_invalid,
                          score_threshold=ap_score_threshold)
    part, dets = readable(part, dets)
    metrics, curves = score_detections(part, dets, score_threshold=threshold)
    metrics["split"] = split
    if output is not None:
        out = Path(output)
        write_metrics(out, metrics)
        atomic_write_text(out / "detections.json", json.dumps(to_coco_results(part, dets)))
        summary = {"model": str(model_path), "data": data, "split": split, "mAP@0.5": metrics["map50"],
                   "COCO AP": metrics["coco"]["AP"], "COCO AP50": metrics["coco"]["AP50"]}
        write_detection_report(out / "report.html", title=f"foveal detection evaluation of {Path(model_path).name}",
                               summary=summary, config={}, history=None, data=part, detections=dets,
                               curves=curves, metrics=metrics, count=report_images)
    return metrics


def format_metrics(metrics: dict[str, Any]) -> str:
    """The headline numbers, COCO's twelve, and per-class AP as aligned text."""
    lines = [f"mAP@0.5 (VOC all-point)   {metrics['map50']:.4f}",
             f"mAP@0.5 (VOC07 11-point)  {metrics['map50_voc07']:.4f}",
             f"precision / recall        {metrics['precision']:.4f} / {metrics['recall']:.4f} "
             f"at score >= {metrics['score_threshold']}",
             f"AP computed on           detections scoring >= "
             f"{metrics.get('ap_score_threshold', metrics['score_threshold'])}"]
    lines += [f"COCO {k:<20} {v:.4f}" for k, v in metrics["coco"].items()]
    for name, row in metrics["per_class"].items():
        ap = "n/a" if row["ap50"] is None else f"{row['ap50']:.4f}"
        lines.append(f"class {name}: AP50 {ap}, {row['num_gt']} boxes, {row['num_detections']} detections")
    lines.append(f"{metrics['num_images']} images, {metrics['num_boxes']} boxes, {metrics['num_detections']} detections")
    return "\n".join(lines)
