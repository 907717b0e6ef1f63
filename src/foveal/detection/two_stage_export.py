"""The whole-detector export of two-stage detectors (issue #14): a Faster R-CNN's (and the
instance task's Mask R-CNN's) graph holds the whole detector, boxes after NMS
(:func:`whole_detections`; SavedModel or ONNX only), and its runner filters them by the card's
threshold (:func:`filter_detections`). Why: ``docs/architecture.md`` ("Faster R-CNN is a model
kind"). The other export hooks of detectors are :mod:`foveal.detection.export_check`'s.

Example:
    >>> graph = whole_detections(model, card)  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

import numpy as np

from foveal.models.io import ModelCard


def is_two_stage(card: ModelCard) -> bool:
    """Whether the card is a Faster R-CNN's (``training.detector``) or a Mask R-CNN's (the instance
    task's ``training.model``), not a YOLO detector's."""
    if card.task == "instance":
        return card.training.get("model") == "mask-rcnn"
    return card.training.get("detector", "yolo") == "faster-rcnn"


def two_stage_title(card: ModelCard) -> str:
    """``Mask R-CNN`` or ``Faster R-CNN``: the name the one-line refusals give."""
    return "Mask R-CNN" if card.task == "instance" else "Faster R-CNN"


TWO_STAGE_FORMATS = ("savedmodel", "onnx")


def check_export(card: ModelCard, fmt: str, quantize: str | None) -> None:
    """Refuse, in one line, a format or quantization a Faster R-CNN export cannot have (a YOLO
    detector exports in every format)."""
    from foveal.errors import ConfigError

    if not is_two_stage(card):
        return
    if fmt not in TWO_STAGE_FORMATS:
        reason = ("CropAndResize (RoI Align) has no TFLite builtin kernel" if fmt == "tflite"
                  else "Core ML has no NMS loop for the proposals")
        raise ConfigError(f"{card.architecture}: a {two_stage_title(card)} exports as SavedModel or ONNX only "
                          f"({reason})", hint="use --format savedmodel or --format onnx")
    if quantize:
        raise ConfigError(f"{card.architecture}: a {two_stage_title(card)} export is float32 only (its NMS and box "
                          "decoding would run on quantized scores)", hint="leave out --quantize")


def whole_detections(model: Any, card: ModelCard) -> Any:
    """The exported graph of a Faster R-CNN: the whole detector, boxes after NMS with the
    :func:`baked_settings` (see the module docstring); the detector's own settings stay as they were."""
    import keras

    baked = baked_settings(card)

    class _Whole(keras.Model):
        def __init__(self, detector: Any) -> None:
            super().__init__(name=f"{detector.name}_detections")
            self.detector = detector

        def call(self, images, training: bool = False):
            # Python settings are read while tracing: swap them in, and back.
            own = self.detector.postprocess_config()
            self.detector.set_postprocess(**baked)
            try:
                return self.detector.detections(images)
            finally:
                self.detector.set_postprocess(**own)

    graph = _Whole(model)
    graph(np.zeros((1, *card.input_shape), np.float32))  # built, as the exporters require
    return graph


def baked_settings(card: ModelCard) -> dict[str, Any]:
    """The post-processing a Faster R-CNN export holds in its graph (see :func:`whole_detections`)."""
    from foveal.detection.export_check import postprocess_settings
    from foveal.detection.scoring import SCORING_THRESHOLD

    settings = postprocess_settings(card)
    return {"score_threshold": min(SCORING_THRESHOLD, float(settings["score_threshold"])),
            "iou_threshold": float(settings["iou_threshold"]), "class_aware": bool(settings["class_aware"]),
            "max_detections": max(100, int(settings["max_detections"]))}


def filter_detections(out: dict[str, np.ndarray], card: ModelCard,
                      settings: dict[str, Any] | None = None) -> dict[str, np.ndarray]:
    """A Faster R-CNN export's detections kept at ``settings``' score threshold and count (with
    any other per-detection output, a Mask R-CNN's ``masks``, kept alongside).

    Raises:
        ModelError: ``settings`` ask for an NMS the export's graph does not hold.
    """
    from foveal.detection.export_check import postprocess_settings
    from foveal.errors import ModelError

    wanted = settings or postprocess_settings(card)
    baked = card.training.get("baked_postprocess") or baked_settings(card)
    for key in ("iou_threshold", "class_aware"):
        if key in wanted and wanted[key] != baked[key]:
            raise ModelError(f"{card.architecture}: this {two_stage_title(card)} export runs NMS with {key} {baked[key]} "
                             f"in its graph, not {wanted[key]}", hint="predict with the .keras model, or re-export "
                             "from a model set to that value")
    if float(wanted["score_threshold"]) < float(baked["score_threshold"]) - 1e-9:
        raise ModelError(f"{card.architecture}: this export keeps boxes scoring {baked['score_threshold']} and more",
                         hint="use a score threshold at least that high")
    scores = np.asarray(out["scores"], np.float32)
    count = np.asarray(out["num_detections"]).astype(np.int64)
    rank = np.arange(scores.shape[1])[None, :]
    keep = (rank < count[:, None]) & (scores > float(wanted["score_threshold"]))  # strictly, as NMS
    keep &= np.cumsum(keep, axis=1) <= int(wanted["max_detections"])  # scores are sorted, best first
    order = np.argsort(~keep, axis=1, kind="stable")[:, :int(wanted["max_detections"])]  # the kept first, in order
    valid = np.take_along_axis(keep, order, axis=1)

    def kept(values: Any, dtype: Any, fill: float = 0) -> np.ndarray:
        values = np.asarray(values)
        index = order.reshape(*order.shape, *[1] * (values.ndim - 2))
        return np.where(valid.reshape(index.shape), np.take_along_axis(values, index, axis=1), fill).astype(dtype)

    # Other per-detection outputs (a Mask R-CNN's masks [N, D, m, m]) follow their boxes.
    extra = {k: kept(v, np.asarray(v).dtype) for k, v in out.items()
             if k not in ("boxes", "scores", "classes", "num_detections")
             and np.ndim(v) >= 2 and np.shape(v)[:2] == scores.shape}
    return {"boxes": kept(out["boxes"], np.float32), "scores": kept(scores, np.float32),
            "classes": kept(out["classes"], np.int32, -1), "num_detections": keep.sum(axis=1).astype(np.int32),
            **extra}
