"""Instance predictions and their COCO box and mask AP.

Every model family of the instance task gives, per image, :class:`ImageInstances`: boxes in
the original image's pixels, scores, class indices and one mask per detection as COCO's
compressed RLE. Everything downstream (COCO results JSON, AP, drawn images, the report) reads
only that, so Mask R-CNN and any other family are scored the same way.

* :func:`to_coco_results`: COCO result records with ``bbox`` ``[x, y, w, h]`` and
  ``segmentation`` (RLE, ``counts`` as text), what ``detections.json`` holds.
* :func:`score_instances`: COCO box AP (``bbox``) and mask AP (``segm``) against the ground truth
  (:meth:`~foveal.instance.data.InstanceImages.coco_dict`; crowd regions ignored as COCO does),
  both by :func:`foveal.evaluation.detection.coco_evaluate` (``iou_type`` ``bbox`` and ``segm``,
  equal to pycocotools').

Example:
    >>> preds = predict_instances(model, card, data)  # doctest: +SKIP
    >>> score_instances(data, preds)["mask"]["AP50"]  # doctest: +SKIP
    0.93
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Any, Sequence

import numpy as np

from foveal.detection.scoring import ImageDetections
from foveal.errors import require_task

#: detections kept for AP: down to this score (COCO practice), at most 100 per image
SCORING_THRESHOLD = 0.001
SCORING_MAX_DETECTIONS = 100


@dataclass
class ImageInstances(ImageDetections):
    """One image's instances: :class:`~foveal.detection.scoring.ImageDetections` plus ``rles``,
    one compressed COCO RLE (``{"size": [h, w], "counts": str}``) per detection."""

    rles: list[dict[str, Any]] = field(default_factory=list)

    def above(self, score: float) -> "ImageInstances":
        keep = np.flatnonzero(self.scores >= score)
        return ImageInstances(self.boxes[keep], self.scores[keep], self.classes[keep],
                              max(score, self.threshold or 0.0), [self.rles[i] for i in keep])

    def masks(self) -> np.ndarray:
        """bool ``[D, H, W]`` decoded masks."""
        from foveal.instance.masks import decode_rle

        if not self.rles:
            return np.zeros((0, 0, 0), bool)
        return np.stack([decode_rle(r) for r in self.rles])


check_card = partial(require_task, task="instance")


def to_coco_results(detections: Sequence[ImageInstances], category_ids: Sequence[int],
                    image_ids: Sequence[int] | None = None) -> list[dict[str, Any]]:
    """COCO result records (box and mask) of every image; image ids 1..N unless given."""
    ids = list(image_ids) if image_ids is not None else list(range(1, len(detections) + 1))
    out = []
    for image_id, det in zip(ids, detections):
        for box, score, cls, rle in zip(det.boxes, det.scores, det.classes, det.rles):
            x0, y0, x1, y1 = (float(v) for v in box)
            out.append({"image_id": int(image_id), "category_id": int(category_ids[int(cls)]),
                        "bbox": [round(x0, 2), round(y0, 2), round(x1 - x0, 2), round(y1 - y0, 2)],
                        "score": round(float(score), 5), "segmentation": dict(rle)})
    return out


def segm_evaluate(ground_truth: dict[str, Any], results: list[dict[str, Any]]) -> dict[str, float]:
    """COCO mask AP/AR (``segm``): :func:`foveal.evaluation.detection.coco_evaluate` with
    ``iou_type="segm"`` (equal to pycocotools'), its 12 summary numbers by name."""
    from foveal.evaluation.detection import COCO_STATS, coco_evaluate

    if not results:
        return {row[0]: 0.0 for row in COCO_STATS}
    return coco_evaluate(ground_truth, results, iou_type="segm").stats


def score_instances(data: Any, detections: Sequence[ImageInstances], *,
                    score_threshold: float = 0.25) -> dict[str, Any]:
    """COCO box and mask AP of ``detections`` on ``data`` (an :class:`~foveal.instance.data.InstanceImages`).

    Returns:
        ``{"box": {AP, AP50, ...}, "mask": {AP, AP50, ...}, "num_images", "num_instances",
        "num_detections" (scoring >= score_threshold), "score_threshold"}``.
    """
    from foveal.evaluation.detection import coco_evaluate

    gt = data.coco_dict()
    cat_ids = [c["id"] for c in gt["categories"]]
    results = to_coco_results(detections, cat_ids)
    box_results = [{k: v for k, v in r.items() if k != "segmentation"} for r in results]
    box = coco_evaluate(gt, box_results).stats if box_results else {k: 0.0 for k in segm_evaluate(gt, [])}
    mask = segm_evaluate(gt, results)
    return {"box": {k: _r(v) for k, v in box.items()}, "mask": {k: _r(v) for k, v in mask.items()},
            "num_images": len(detections), "num_instances": int(data.num_instances),
            "num_detections": int(sum(int((d.scores >= score_threshold).sum()) for d in detections)),
            "score_threshold": score_threshold}


def _r(value: float) -> float:
    return round(float(value), 6)


def format_metrics(metrics: dict[str, Any]) -> str:
    """A short text table of box and mask AP."""
    lines = [f"{'':6}{'AP':>8}{'AP50':>8}{'AP75':>8}{'APs':>8}{'APm':>8}{'APl':>8}"]
    for kind in ("box", "mask"):
        s = metrics[kind]
        lines.append(f"{kind:6}" + "".join(f"{s[k]:8.4f}" for k in ("AP", "AP50", "AP75", "APs", "APm", "APl")))
    lines.append(f"{metrics['num_images']} images, {metrics['num_instances']} instances, "
                 f"{metrics['num_detections']} detections scoring >= {metrics['score_threshold']}")
    return "\n".join(lines)


__all__ = ["ImageInstances", "SCORING_MAX_DETECTIONS", "SCORING_THRESHOLD", "check_card", "format_metrics",
           "score_instances", "segm_evaluate", "to_coco_results"]
