"""Export, benchmark and serve hooks of instance models (see :mod:`foveal.export.tasks`).

What the export holds depends on the model family (the card's ``training["model"]``):

* **Mask R-CNN**: the whole model, as a Faster R-CNN export is
  (:func:`foveal.detection.two_stage_export.whole_detections`): proposals, RoI Align, the class and
  box head, class-aware NMS and the mask head on the final boxes, with outputs ``boxes``,
  ``scores``, ``classes``, ``num_detections`` and ``masks [N, D, 28, 28]`` (the predicted
  class's mask probabilities in the box's frame). SavedModel or ONNX only, float32 (TFLite has
  no ``CropAndResize`` kernel, Core ML no NMS loop). The NMS keeps boxes down to scoring's
  threshold (0.001); the runner filters them by the card's (or a caller's) threshold
  (:func:`~foveal.detection.two_stage_export.filter_detections`, masks kept with their boxes) and
  pastes each mask into the image (:func:`foveal.instance.masks.paste_masks`) exactly as
  ``foveal instance predict`` does.
* **U-Net + watershed**: the U-Net, exported as a segmenter is (per-pixel ``probabilities``
  of background, interior and boundary; height and width free); the marker watershed
  (scikit-image, not TensorFlow) runs in the runner with the card's settings
  (:func:`~foveal.instance.watershed.watershed_instances`, the ``watershed`` options recorded
  at training, the marker threshold chosen on validation data included).

Both families then go through the family's own ``to_instances``
(:meth:`foveal.instance.family.Family.to_instances`), so an export's instances are the ones
``foveal instance predict`` finds with the ``.keras`` model.

**Parity**: a Mask R-CNN's boxes after NMS are matched as a Faster R-CNN's are
(:func:`foveal.detection.export_check.parity`); for each matched pair the 28x28 mask
probabilities must agree within the tolerance, and the masks pasted at the model's input size
are compared by IoU (``mean_mask_iou``, ``min_mask_iou``). A U-Net's probabilities are compared
pixel by pixel (:func:`foveal.segmentation.export_check.parity`), and the instances the
watershed finds in both are matched by mask IoU. **Accuracy**: COCO mask AP
(:func:`~foveal.instance.scoring.score_instances`) of the export next to the Keras model's.
**Serving**: ``/predict`` answers ``instances`` (label, score, box in the upload's pixels,
``area`` and ``mask`` as COCO compressed RLE) and, for the page's box drawing, ``boxes``.

Example:
    >>> from foveal.export import export_model                                        # doctest: +SKIP
    >>> report = export_model("runs/r/best.keras", "onnx", data="shapes/", split="test")  # doctest: +SKIP
    >>> runner_model, card = load_instance_model("runs/r/best.onnx")                  # doctest: +SKIP
    >>> predict_files(runner_model, card, ["shapes/test"], output="drawn/")           # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from foveal.models.io import ModelCard


def family_name(card: ModelCard) -> str:
    """``mask-rcnn`` or ``unet-watershed`` (checked: an unknown family is refused in one line)."""
    from foveal.instance.family import family_of

    return family_of(card).name


def _is_mask_rcnn(card: ModelCard) -> bool:
    return family_name(card) == "mask-rcnn"


def check_export(card: ModelCard, fmt: str, quantize: str | None) -> None:
    """Refuse, in one line, what a Mask R-CNN export cannot be (as a Faster R-CNN's: SavedModel
    or ONNX, float32); a U-Net + watershed exports in every format a segmenter does."""
    from foveal.detection.two_stage_export import check_export

    if _is_mask_rcnn(card):
        check_export(card, fmt, quantize)


def export_graph(model: Any, card: ModelCard) -> Any:
    """The whole Mask R-CNN (boxes after NMS and their masks), or the U-Net (``probabilities``)."""
    from foveal.detection.two_stage_export import whole_detections

    return whole_detections(model, card) if _is_mask_rcnn(card) else model


def input_signature(card: ModelCard) -> tuple[int | None, ...]:
    """A Mask R-CNN takes the card's input size; a U-Net leaves height and width free."""
    return tuple(card.input_shape) if _is_mask_rcnn(card) else (None, None, card.input_shape[-1])


def export_card(model: Any, card: ModelCard) -> ModelCard:
    """The card plus, for a Mask R-CNN, the model's post-processing and the NMS its graph holds
    (``baked_postprocess``); a U-Net's card already holds its watershed settings."""
    from foveal.detection.two_stage_export import baked_settings

    if not _is_mask_rcnn(card):
        return card
    training = dict(card.training)
    training.update(postprocess=model.postprocess_config(), baked_postprocess=baked_settings(card),
                    export_holds="detections and masks")
    return dataclasses.replace(card, training=training)


def model_input(image: np.ndarray, card: ModelCard) -> np.ndarray:
    """One decoded uint8 image stretched to the card's input, as ``foveal instance predict`` feeds it."""
    from foveal.detection.predict import model_inputs

    return model_inputs([np.asarray(image)], tuple(card.input_shape[:2]), False)[0]


class _ProbabilitiesModel:
    """A U-Net export's runner behind the ``predict_on_batch`` the watershed family calls."""

    def __init__(self, runner: Any) -> None:
        self.runner = runner

    def predict_on_batch(self, images: Any) -> np.ndarray:
        return np.asarray(self.runner(np.asarray(images, np.float32)))  # the one output, whatever its name


def instance_model(source: Any, card: ModelCard) -> Any:
    """``source`` as the model the instance family's ``predict_batch`` takes: a Keras model as
    it is; an export's runner dressed with ``predict_on_batch`` (a Mask R-CNN's also with the
    post-processing interface: detections filtered by the threshold asked for)."""
    from foveal.export.tasks import is_runner

    if not is_runner(source):
        return source
    if _is_mask_rcnn(card):
        from foveal.detection.export_check import RunnerDetector

        return RunnerDetector(source, card)
    return _ProbabilitiesModel(source)


def load_instance_model(path: str | Path, *, trust_model: bool = False, threads: int | None = None
                        ) -> tuple[Any, ModelCard]:
    """An instance model from a ``.keras`` file or from its export (SavedModel folder, ``.onnx``,
    ``.tflite``, with the card ``foveal export`` wrote), ready for
    :func:`foveal.instance.predict.predict_files` and :func:`~foveal.instance.predict.predict_dataset`.

    Raises:
        ModelError: not an instance model, or an export whose graph or card cannot be read.
    """
    from foveal.instance.scoring import check_card

    path = Path(path)
    if path.suffix == ".keras":
        from foveal.models import load_model

        model, card = load_model(path)
        check_card(card)
        return model, card
    from foveal.export.runners import open_runner

    runner = open_runner(path, threads=threads, trust_model=trust_model)
    check_card(runner.card)
    return instance_model(runner, runner.card), runner.card


def outputs(source: Any, card: ModelCard, images: np.ndarray) -> dict[str, np.ndarray]:
    """A batch's outputs: a Mask R-CNN's detections after NMS at the card's settings
    (``boxes`` normalised corners, ``scores``, ``classes``, ``num_detections``, ``masks``);
    a U-Net's ``probabilities [N, H, W, 3]``."""
    from foveal.detection.two_stage_export import filter_detections
    from foveal.export.tasks import is_runner

    images = np.asarray(images, np.float32)
    if _is_mask_rcnn(card):
        if is_runner(source):
            return filter_detections(source.raw(images), card)
        return {k: np.asarray(v) for k, v in source.predict_on_batch(images).items()}
    if is_runner(source):  # the graph's one output (named by the format: ``probabilities``, ``output_0``...)
        return {"probabilities": np.asarray(source(images), np.float32)}
    return {"probabilities": np.asarray(source.predict_on_batch(images), np.float32)}


def postprocess(out: dict[str, np.ndarray], card: ModelCard) -> list[Any]:
    """The instances of a batch of ``outputs`` at the model's input size, by the family's own
    ``to_instances`` (a Mask R-CNN's masks pasted into the image, a U-Net's marker watershed):
    the per-image work ``foveal benchmark`` times with the network."""
    from foveal.instance.family import family_of

    if _is_mask_rcnn(card):
        count = len(out["num_detections"])
        h, w = card.input_shape[:2]
    else:
        count, h, w = np.asarray(out["probabilities"]).shape[:3]
    return family_of(card).to_instances(out, card, [(int(w), int(h))] * int(count))


def _mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def _mask_rcnn_parity(reference: dict[str, np.ndarray], exported: dict[str, np.ndarray], card: ModelCard,
                      tolerance: float) -> dict[str, Any]:
    from foveal.detection import export_check as detection
    from foveal.instance.masks import paste_masks
    from foveal.ops.boxes import match_boxes

    result = detection.parity(reference, exported, card, tolerance)
    h, w = card.input_shape[:2]
    scale = np.array([w, h, w, h], np.float64)
    threshold = float(card.training.get("mask_threshold", 0.5))
    mask_diff, ious = 0.0, []
    for i in range(len(reference["num_detections"])):
        rb, _, rc = detection._image_boxes(reference, i)
        gb, _, gc = detection._image_boxes(exported, i)
        for r, g, _ in match_boxes(rb, gb, max_corner_diff=tolerance):
            if rc[r] != gc[g]:
                continue
            ref_mask, got_mask = reference["masks"][i][r], exported["masks"][i][g]
            mask_diff = max(mask_diff, float(np.abs(ref_mask - got_mask).max()))
            pasted = paste_masks(np.stack([ref_mask, got_mask]), np.stack([rb[r], gb[g]]) * scale, h, w, threshold)
            ious.append(_mask_iou(pasted[0], pasted[1]))
    result.update(max_mask_diff=mask_diff, masks_compared=len(ious),
                  mean_mask_iou=float(np.mean(ious)) if ious else float("nan"),
                  min_mask_iou=float(np.min(ious)) if ious else float("nan"),
                  max_abs_diff=max(float(result["max_abs_diff"]), mask_diff))
    result["passed"] = bool(result["passed"]) and mask_diff <= tolerance
    return result


def _watershed_parity(reference: dict[str, np.ndarray], exported: dict[str, np.ndarray], card: ModelCard,
                      tolerance: float) -> dict[str, Any]:
    from foveal.instance.family import family_of
    from foveal.instance.masks import decode_rle
    from foveal.ops.boxes import match_boxes
    from foveal.segmentation.export_check import parity as pixel_parity

    result = pixel_parity(reference, exported, card, tolerance)
    family = family_of(card)
    sizes = [(int(p.shape[1]), int(p.shape[0])) for p in reference["probabilities"]]
    ref = family.to_instances(reference, card, sizes)
    got = family.to_instances(exported, card, sizes)
    ious, ref_total, got_total = [], 0, 0
    for a, b in zip(ref, got):
        ref_total, got_total = ref_total + len(a), got_total + len(b)
        ref_masks, got_masks = [decode_rle(r) for r in a.rles], [decode_rle(r) for r in b.rles]
        for r, g, _ in match_boxes(a.boxes, b.boxes, min_iou=0.1):
            ious.append(_mask_iou(ref_masks[r], got_masks[g]))
    result.update(keras_instances=ref_total, export_instances=got_total, matched_instances=len(ious),
                  mean_mask_iou=float(np.mean(ious)) if ious else float("nan"),
                  min_mask_iou=float(np.min(ious)) if ious else float("nan"))
    return result


def parity(reference: dict[str, np.ndarray], exported: dict[str, np.ndarray], card: ModelCard,
           tolerance: float) -> dict[str, Any]:
    """Boxes, scores, classes and masks (Mask R-CNN), or probabilities and the watershed's
    instances (U-Net), of the export against the Keras model (see the module docstring)."""
    if _is_mask_rcnn(card):
        return _mask_rcnn_parity(reference, exported, card, tolerance)
    return _watershed_parity(reference, exported, card, tolerance)


def load_parts(spec: str, card: ModelCard) -> dict[str, Any]:
    """The splits of COCO instances (a .json file is one split, a folder its *train*/*val*/*test*
    files), checked against the model's classes."""
    from foveal.errors import DataError
    from foveal.instance.data import load_instance_splits

    parts = load_instance_splits(spec, val_split=0.0, test_split=0.0)
    first = next(iter(parts.values()))
    if list(first.class_names) != list(card.class_names):
        raise DataError(f"{spec}: its classes {first.class_names} differ from the model's {list(card.class_names)}",
                        hint="check the export against data with the model's categories")
    return parts


def sample_images(part: Any, card: ModelCard, count: int) -> np.ndarray:
    """The first ``count`` images, stretched to the card's input as ``instance predict`` does."""
    from foveal.detection.export_check import sample_images as detection_samples

    return detection_samples(part, card, count)


def accuracy(source: Any, card: ModelCard, part: Any, limit: int | None) -> dict[str, Any]:
    """COCO mask AP (and AP50, box AP) of a Keras instance model or of an export's runner, by
    the instance task's own prediction and scoring."""
    from foveal.instance.predict import predict_dataset
    from foveal.instance.scoring import score_instances

    if limit is not None:
        part = part.subset(np.arange(min(limit, len(part))))
    found = predict_dataset(instance_model(source, card), card, part)
    metrics = score_instances(part, found)
    return {"metric": "mask_ap", "value": float(metrics["mask"]["AP"]), "mask_ap50": float(metrics["mask"]["AP50"]),
            "box_ap": float(metrics["box"]["AP"])}


def render(row: dict[str, np.ndarray], card: ModelCard, image: tuple[int, int], top_k: int) -> dict[str, Any]:
    """``{"instances": [{"label", "score", "box": [x0, y0, x1, y1], "area", "mask": RLE}], "boxes": [...]}``
    in the upload's pixels (``image``: its width and height), best first; ``mask`` is COCO's
    compressed RLE (``{"size": [height, width], "counts": str}``, column-major, as pycocotools)."""
    from foveal.instance.family import family_of
    from foveal.instance.predict import _area

    batch = {k: np.asarray(v)[None] for k, v in row.items()}
    found = family_of(card).to_instances(batch, card, [tuple(int(v) for v in image)])[0]
    items = []
    for box, score, cls, rle in zip(found.boxes, found.scores, found.classes, found.rles):
        items.append({"label": card.class_names[int(cls)], "score": round(float(score), 6),
                      "box": [round(float(v), 1) for v in box], "area": _area(rle), "mask": rle})
    return {"instances": items, "boxes": [{k: d[k] for k in ("label", "score", "box")} for d in items]}


__all__ = ["accuracy", "check_export", "export_card", "export_graph", "family_name", "input_signature",
           "instance_model", "load_instance_model", "load_parts", "model_input", "outputs", "parity", "postprocess",
           "render",
           "sample_images"]
