"""Run a detector over an annotated dataset and score it: COCO AP table, VOC AP, PR curves.

:func:`detect_dataset` gives one :class:`ImageDetections` per image in the original image's
pixels; :func:`score_detections` scores them with :func:`foveal.evaluation.detection.coco_evaluate`
(equal to pycocotools) and the VOC rules. AP is computed on every detection down to
:data:`SCORING_THRESHOLD` (at most :data:`SCORING_MAX_DETECTIONS` per image, the COCO practice),
not at the model's display threshold, which would cut the PR curve short (see
``docs/architecture.md``); :func:`to_coco_results` writes COCO results records.

Example:
    >>> dets = detect_dataset(model, card, parts["test"])  # doctest: +SKIP
    >>> metrics, curves = score_detections(parts["test"], dets)  # doctest: +SKIP
    >>> metrics["map50"]  # doctest: +SKIP
    0.71
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import numpy as np

from foveal.data.boxes import BoxedImages, to_coco_dict
from foveal.errors import require_task

if TYPE_CHECKING:
    import keras

    from foveal.evaluation.detection import ClassCurve
    from foveal.models import ModelCard

#: the score down to which detections are kept for AP (COCO practice)
SCORING_THRESHOLD = 0.001
#: detections kept per image for AP (COCO's ``maxDets``)
SCORING_MAX_DETECTIONS = 100


@dataclass
class ImageDetections:
    """The detections of one image: corner boxes in pixels, scores, class indices.

    ``threshold`` is the score the detector cut them at, when known.
    """

    boxes: np.ndarray
    scores: np.ndarray
    classes: np.ndarray
    threshold: float | None = None

    def __len__(self) -> int:
        return len(self.scores)

    def above(self, score: float) -> "ImageDetections":
        """The detections scoring at least ``score`` (what a user of the display threshold sees)."""
        keep = self.scores >= score
        return ImageDetections(self.boxes[keep], self.scores[keep], self.classes[keep], max(score, self.threshold or 0.0))


check_card = partial(require_task, task="detect", hint="use a model written by `foveal detect train` (or `foveal train --task detect`)")


def split_outputs(outputs: dict[str, np.ndarray], sizes: Sequence[tuple[int, int]], input_hw: tuple[int, int],
                  keep_aspect: bool) -> list[ImageDetections]:
    """The batched ``predict`` dict of a DetectorModel -> one :class:`ImageDetections` per image."""
    from foveal.detection.pipeline import to_image_pixels

    counts = np.asarray(outputs["num_detections"]).reshape(-1)
    result = []
    for i, (n, wh) in enumerate(zip(counts, sizes)):
        n = int(n)
        result.append(ImageDetections(
            to_image_pixels(np.asarray(outputs["boxes"][i][:n]), wh, input_hw, keep_aspect),
            np.asarray(outputs["scores"][i][:n], np.float64),
            np.asarray(outputs["classes"][i][:n]).astype(np.int64)))
    return result


@contextlib.contextmanager
def postprocess_settings(model: keras.Model, *, score_threshold: float | None = None,
                         max_detections: int | None = None) -> Iterator[dict[str, Any]]:
    """Run the block with the detector's post-processing changed, yielding the settings in force,
    then restore it; the traced predict functions of both are kept, so a validation callback
    switching every epoch does not retrace."""
    saved = model.postprocess_config()
    wanted = {k: v for k, v in (("score_threshold", score_threshold), ("max_detections", max_detections))
              if v is not None}
    if all(saved[k] == type(saved[k])(v) for k, v in wanted.items()):
        yield saved
        return
    saved_fn = model.predict_function
    model.set_postprocess(**wanted)
    active = model.postprocess_config()
    cached = model.__dict__.get("_foveal_scoring_predict")  # set directly: Keras need not track it
    if cached is not None and cached[0] == active:
        model.predict_function = cached[1]
    try:
        yield active
    finally:
        if model.predict_function is not None:
            model.__dict__["_foveal_scoring_predict"] = (active, model.predict_function)
        model.set_postprocess(**{k: saved[k] for k in wanted})
        model.predict_function = saved_fn


def detect_dataset(model: keras.Model, card: ModelCard, data: BoxedImages, *, batch_size: int = 8,
                   skip_invalid: bool = False, score_threshold: float | None = SCORING_THRESHOLD,
                   max_detections: int | None = SCORING_MAX_DETECTIONS) -> list[ImageDetections]:
    """Detections for every image of ``data`` (in its order), in original-image pixels, with the
    model run at ``score_threshold`` and ``max_detections`` (None: the model's own); with
    ``skip_invalid``, undecodable files are listed in ``data.info["undecodable"]`` (:func:`readable`)."""
    from foveal.detection.pipeline import detection_data_errors, images_only, make_detection_pipeline
    from foveal.training.distribute import predict_here

    check_card(card)
    h, w, c = card.input_shape
    keep_aspect = bool(card.training.get("keep_aspect", False))
    if len(data) == 0:
        return []
    ds = make_detection_pipeline(data, image_size=(h, w), channels=c, batch_size=batch_size, training=False,
                                 augment="none", keep_aspect=keep_aspect, skip_invalid=skip_invalid,
                                 cache="none", max_boxes=None)  # scoring reads the data's own boxes
    with detection_data_errors(data.origin or "detection data"), postprocess_settings(
            model, score_threshold=score_threshold, max_detections=max_detections) as settings:
        outputs = predict_here(model, ds.map(images_only))  # model.predict, also inside a distributed fit
    sizes = [(int(a), int(b)) for a, b in data.image_sizes]
    detections = split_outputs(outputs, sizes, (h, w), keep_aspect)
    for d in detections:
        d.threshold = float(settings["score_threshold"])
    return detections


def readable(data: BoxedImages, detections: Sequence[ImageDetections]) -> tuple[BoxedImages, list[ImageDetections]]:
    """Leave out the images the pipeline could not decode (``data.info["undecodable"]``), so
    that their gray stand-ins are not scored as real images."""
    bad = set(data.info.get("undecodable", []) or [])
    if not bad:
        return data, list(detections)
    keep = np.flatnonzero([str(p) not in bad for p in data.paths])
    return data.subset(keep), [detections[i] for i in keep]


def to_coco_results(data: BoxedImages, detections: Sequence[ImageDetections]) -> list[dict[str, Any]]:
    """COCO results records (``image_id``, ``category_id``, ``bbox`` [x, y, w, h], ``score``)."""
    cat_ids = data.info.get("category_ids") or list(range(1, data.num_classes + 1))
    records = []
    for image_id, det in enumerate(detections, start=1):
        for box, score, cls in zip(det.boxes, det.scores, det.classes):
            x0, y0, x1, y1 = (float(v) for v in box)
            records.append({"image_id": image_id, "category_id": int(cat_ids[int(cls)]),
                            "bbox": [round(x0, 2), round(y0, 2), round(x1 - x0, 2), round(y1 - y0, 2)],
                            "score": round(float(score), 5)})
    return records


def score_detections(data: BoxedImages, detections: Sequence[ImageDetections], *, score_threshold: float = 0.25,
                     coco: dict[str, float] | None = None) -> tuple[dict[str, Any], list[ClassCurve]]:
    """COCO and VOC metrics of ``detections`` against ``data``'s boxes.

    Args:
        score_threshold: the display threshold of the precision/recall numbers.
        coco: the twelve COCO numbers, when computed on the original files (whose areas and ids
            :func:`to_coco_dict` would not reproduce).

    Returns:
        ``(metrics, curves)``: ``map50`` (VOC all-point, mean over classes), ``map50_voc07``,
        ``coco``, per-class AP and precision/recall, ``ap_score_threshold`` (the score AP was
        computed down to), counts; and the per-class VOC curves.
    """
    from foveal.evaluation.detection import coco_evaluate, match_voc, voc_ap

    names = list(data.class_names)
    curves = match_voc(list(data.boxes), list(data.labels), [d.boxes for d in detections],
                       [d.classes for d in detections], [d.scores for d in detections], num_classes=len(names),
                       iou_threshold=0.5, gt_difficult=list(data.difficult))
    per_class: dict[str, Any] = {}
    for name, curve in zip(names, curves):
        rec, prec, _ = curve.curve()
        p, r = curve.at_threshold(score_threshold)
        per_class[name] = {"ap50": _r(voc_ap(rec, prec)) if curve.num_gt else None,
                           "ap50_voc07": _r(voc_ap(rec, prec, eleven_point=True)) if curve.num_gt else None,
                           "precision": _r(p), "recall": _r(r), "num_gt": curve.num_gt,
                           "num_detections": int(len(curve.scores))}
    with_gt = [v for v in per_class.values() if v["num_gt"]]

    def mean(key: str) -> float:  # over the classes with true boxes
        return _r(np.mean([v[key] for v in with_gt])) if with_gt else float("nan")

    if coco is None:
        coco = coco_evaluate(to_coco_dict(data), to_coco_results(data, detections)).stats
    metrics = {
        "map50": mean("ap50"), "map50_voc07": mean("ap50_voc07"), "coco": {k: _r(v) for k, v in coco.items()},
        "score_threshold": score_threshold, "ap_score_threshold": _cut_at(detections, score_threshold),
        "precision": mean("precision"), "recall": mean("recall"),
        "per_class": per_class,
        "num_images": len(data), "num_boxes": int(data.num_boxes),
        "num_detections": int(sum(len(d) for d in detections)),
    }
    return metrics, curves


def _r(value: float) -> float:
    return round(float(value), 6)


def _cut_at(detections: Sequence[ImageDetections], default: float) -> float:
    """The score the detections were cut at; detections without a record were cut at ``default``."""
    known = {d.threshold for d in detections if d.threshold is not None}
    return float(max(known)) if known else float(default)
