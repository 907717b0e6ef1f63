"""Export, benchmark and serve hooks of detectors (see :mod:`foveal.export.tasks`).

A YOLO export holds the raw head outputs (``raw_P3``...: ``[N, gh, gw, A, 5 + K]`` logits); a
runner decodes them with :func:`~foveal.detection.postprocess.detect_from_outputs`, the very
function ``DetectorModel.predict`` runs, using the anchors and thresholds of the card. A Faster
R-CNN export holds the whole detector (:mod:`.two_stage_export`). Parity
matches boxes after NMS by IoU and accepts an unmatched box only where NMS's discontinuity
explains it; accuracy is mAP@0.5 by the detector's own scoring. Why each choice:
``docs/architecture.md`` ("A detector's export holds the raw head outputs", "Faster R-CNN is a
model kind", "Parity per task").

Example:
    >>> card = export_card(model, card)  # doctest: +SKIP
    >>> outputs(open_runner("det.onnx"), card, images)["boxes"].shape  # doctest: +SKIP
    (8, 100, 4)
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from foveal.detection import two_stage_export as two_stage
from foveal.export.classify import input_signature  # noqa: F401 - a hook: the card's input shape, as a classifier's
from foveal.export.tasks import OutputsModel
from foveal.models.io import ModelCard

check_export = two_stage.check_export  # a hook: a Faster R-CNN's refusals

RAW_PREFIX = "raw_"
_DECODERS: dict[tuple, Any] = {}


def export_graph(model: Any, card: ModelCard) -> Any:
    """The detector's functional graph with its outputs named ``raw_<level>`` (a Faster R-CNN:
    the whole detector, :func:`whole_detections`)."""
    import keras

    from foveal.detection.postprocess import as_list

    if two_stage.is_two_stage(card):
        return two_stage.whole_detections(model, card)
    named = {f"{RAW_PREFIX}{level}": out for level, out in zip(model.levels, as_list(model.outputs))}
    return keras.Model(model.inputs, named, name=f"{model.name}_raw")


def export_card(model: Any, card: ModelCard) -> ModelCard:
    """The card plus what decoding needs: anchors, levels and the model's post-processing (a
    Faster R-CNN: the thresholds its graph holds, under ``baked_postprocess``)."""
    training = {**card.training, "postprocess": model.postprocess_config()}
    if two_stage.is_two_stage(card):
        training.update(baked_postprocess=two_stage.baked_settings(card), export_holds="detections")
    else:
        training.update(anchors=np.asarray(model.anchors).round(6).tolist(), levels=list(model.levels))
    return dataclasses.replace(card, training=training)


def model_input(image: np.ndarray, card: ModelCard) -> np.ndarray:
    """One decoded uint8 image resized as ``detect predict`` does (stretch, or the training
    pipeline's gray letterbox, which :func:`render` inverts)."""
    from foveal.detection.predict import model_inputs

    keep_aspect = bool(card.training.get("keep_aspect", card.keep_aspect))
    return model_inputs([np.asarray(image)], tuple(card.input_shape[:2]), keep_aspect)[0]


def postprocess_settings(card: ModelCard) -> dict[str, Any]:
    """Thresholds of a card: those the export recorded, else the training run's."""
    saved = card.training.get("postprocess")
    if saved:
        return dict(saved)
    return {"score_threshold": float(card.training.get("score_threshold", 0.25)),
            "iou_threshold": float(card.training.get("iou_threshold", 0.45)),
            "max_detections": 100, "class_aware": True}


def _decoder(anchors: np.ndarray, settings: dict[str, Any], heads: tuple[tuple[int, int], ...]):
    """A traced decode + NMS for these anchors, settings and heads (``(anchors, 5 + K)`` per
    scale), built once; batch and grid sizes stay free, the depth static as decoding needs."""
    import tensorflow as tf

    from foveal.detection.postprocess import clipped_detections

    key = (anchors.tobytes(), tuple(sorted(settings.items())), heads)
    if key not in _DECODERS:
        signature = [[tf.TensorSpec([None, None, None, a, d], tf.float32) for a, d in heads]]
        _DECODERS[key] = tf.function(lambda raw: clipped_detections(raw, anchors, **settings),
                                     input_signature=signature)
    return _DECODERS[key]


def decode_raw(raw: dict[str, np.ndarray], card: ModelCard,
               settings: dict[str, Any] | None = None) -> dict[str, np.ndarray]:
    """Raw head outputs of an export -> ``boxes``, ``scores``, ``classes``, ``num_detections``
    (post-processing ``settings`` default to the card's); a Faster R-CNN export's detections
    are filtered (:func:`filter_detections`)."""
    import tensorflow as tf

    if two_stage.is_two_stage(card):
        return two_stage.filter_detections(raw, card, settings)

    # Finest scale first, as the anchors are grouped; the grid sizes say which is which.
    scales = sorted((v for k, v in raw.items() if k.startswith(RAW_PREFIX)),
                    key=lambda a: -int(a.shape[1]) * int(a.shape[2]))
    anchors = np.asarray(card.training["anchors"], np.float32).reshape(-1, 2)
    heads = tuple((int(s.shape[3]), int(s.shape[4])) for s in scales)
    decode = _decoder(anchors, settings or postprocess_settings(card), heads)
    out = decode([tf.constant(s, tf.float32) for s in scales])
    return {k: np.asarray(v) for k, v in out.items()}


def outputs(source: Any, card: ModelCard, images: np.ndarray) -> dict[str, np.ndarray]:
    """Detections after NMS: ``boxes [N, D, 4]`` (normalised corners), ``scores``, ``classes``
    (-1 pads), ``num_detections``; a Keras detector decodes inside ``predict_on_batch``."""
    from foveal.export.tasks import is_runner

    if is_runner(source):
        return decode_raw(source.raw(images), card)
    return {k: np.asarray(v) for k, v in source.predict_on_batch(images).items()}


def _image_boxes(out: dict[str, np.ndarray], i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = int(out["num_detections"][i])
    return out["boxes"][i][:n], out["scores"][i][:n], out["classes"][i][:n]


def _explained(box: np.ndarray, score: float, cls: int, other: tuple[np.ndarray, np.ndarray, np.ndarray],
               settings: dict[str, Any], tolerance: float) -> str | None:
    """Why a box may be missing from the ``other`` output: ``"threshold"``, ``"nms"`` or None."""
    from foveal.ops.boxes import iou_matrix

    boxes, scores, classes = other
    if score <= settings["score_threshold"] + tolerance:
        return "threshold"
    if len(scores) >= settings["max_detections"] and score <= float(scores.min()) + tolerance:
        return "threshold"
    rivals = (scores >= score - tolerance) & ((classes == cls) if settings["class_aware"] else True)
    if rivals.any():
        overlap = np.asarray(iou_matrix(box[None], boxes[rivals]), np.float64)
        if (overlap > settings["iou_threshold"] - tolerance).any():
            return "nms"
    return None


def parity(reference: dict[str, np.ndarray], exported: dict[str, np.ndarray], card: ModelCard,
           tolerance: float) -> dict[str, Any]:
    from foveal.ops.boxes import match_boxes

    settings = postprocess_settings(card)
    ref_total = got_total = matched = 0
    reasons: dict[str | None, int] = {"threshold": 0, "nms": 0, None: 0}  # None: a lonely box nothing explains
    ious: list[float] = []
    score_diff = box_diff = 0.0
    for i in range(len(reference["num_detections"])):
        rb, rs, rc = _image_boxes(reference, i)
        gb, gs, gc = _image_boxes(exported, i)
        ref_total, got_total = ref_total + len(rb), got_total + len(gb)
        paired_ref, paired_got = set(), set()
        for r, g, iou in match_boxes(rb, gb, max_corner_diff=tolerance):
            ious.append(iou)
            if rc[r] != gc[g]:
                continue  # an IoU match of another class: both boxes stay unpaired
            paired_ref.add(r)
            paired_got.add(g)
            score_diff = max(score_diff, abs(float(rs[r]) - float(gs[g])))
            box_diff = max(box_diff, float(np.abs(rb[r] - gb[g]).max()))
        matched += len(paired_ref)
        lonely = [(rb[r], rs[r], rc[r], (gb, gs, gc)) for r in range(len(rb)) if r not in paired_ref]
        lonely += [(gb[g], gs[g], gc[g], (rb, rs, rc)) for g in range(len(gb)) if g not in paired_got]
        for box, score, cls, other in lonely:
            reasons[_explained(box, float(score), int(cls), other, settings, tolerance)] += 1
    diff = max(score_diff, box_diff)
    return {
        "passed": reasons[None] == 0 and diff <= tolerance, "max_abs_diff": diff,
        "agreement": matched / max(ref_total, got_total, 1), "agreement_name": "boxes matched",
        "keras_boxes": ref_total, "export_boxes": got_total, "matched_boxes": matched,
        "unexplained_boxes": reasons[None], "unmatched_at_threshold": reasons["threshold"],
        "unmatched_by_nms": reasons["nms"],
        "class_agreement": matched / len(ious) if ious else 1.0,
        "mean_iou": float(np.mean(ious)) if ious else float("nan"),
        "min_iou": float(np.min(ious)) if ious else float("nan"),
        "max_score_diff": score_diff, "max_box_diff": box_diff, "score_threshold": float(settings["score_threshold"]),
    }


def load_parts(spec: str, card: ModelCard) -> dict[str, Any]:
    from foveal.data.boxes import load_boxes

    return load_boxes(spec, class_names=list(card.class_names))


def sample_images(part: Any, card: ModelCard, count: int) -> np.ndarray:
    from foveal.detection.pipeline import images_only, make_detection_pipeline

    h, w, c = card.input_shape
    ds = make_detection_pipeline(part.subset(np.arange(min(count, len(part)))), image_size=(h, w), channels=c,
                                 batch_size=16, augment="none", cache="none", max_boxes=None,
                                 keep_aspect=bool(card.training.get("keep_aspect", card.keep_aspect)))
    return np.concatenate(list(ds.map(images_only).as_numpy_iterator()))


class RunnerDetector(OutputsModel):
    """An export runner with the post-processing interface of ``DetectorModel`` that the
    detector's scoring uses (``postprocess_config``, ``set_postprocess``, ``predict``)."""

    def __init__(self, runner: Any, card: ModelCard) -> None:
        self.settings = postprocess_settings(card)
        self.predict_function = None
        super().__init__(lambda x: decode_raw(runner.raw(x), card, self.settings), (None, *card.input_shape))

    def postprocess_config(self) -> dict[str, Any]:
        return dict(self.settings)

    def set_postprocess(self, **settings: Any) -> None:
        self.settings.update({k: v for k, v in settings.items() if v is not None})


def accuracy(source: Any, card: ModelCard, part: Any, limit: int | None) -> dict[str, Any]:
    """mAP@0.5 (VOC all-point) of a Keras detector or of a runner, by the detector's own scoring."""
    from foveal.detection.scoring import detect_dataset, readable, score_detections
    from foveal.export.tasks import is_runner

    if limit is not None:
        part = part.subset(np.arange(min(limit, len(part))))
    model = RunnerDetector(source, card) if is_runner(source) else source
    detections = detect_dataset(model, card, part)
    data, detections = readable(part, detections)
    metrics, _ = score_detections(data, detections, score_threshold=float(postprocess_settings(card)["score_threshold"]))
    return {"metric": "map50", "value": float(metrics["map50"])}


def render(row: dict[str, np.ndarray], card: ModelCard, image: tuple[int, int], top_k: int) -> dict[str, Any]:
    """``{"boxes": [{"label", "score", "box": [x0, y0, x1, y1]}]}`` in the upload's pixels, best first."""
    from foveal.detection.pipeline import to_image_pixels

    n = int(row["num_detections"])
    h, w = card.input_shape[:2]
    keep_aspect = bool(card.training.get("keep_aspect", card.keep_aspect))
    pixels = to_image_pixels(np.asarray(row["boxes"][:n]), image, (h, w), keep_aspect)
    return {"boxes": [{"label": card.class_names[int(c)], "score": round(float(s), 6),
                       "box": [round(float(v), 1) for v in box]}
                      for box, s, c in zip(pixels, row["scores"][:n], row["classes"][:n])]}
