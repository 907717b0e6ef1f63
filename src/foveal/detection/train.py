"""``foveal detect train`` and ``evaluate``: from a :class:`DetectConfig` to a run folder.

The run folder is the engine's (:mod:`foveal.engine.run`); here ``history.csv`` has the
validation mAP@0.5 per epoch, the cards say ``task: detect`` and hold the anchors,
``metrics.json`` has COCO and VOC numbers on the test split, beside ``detections.json`` (the
test detections as COCO results) and ``anchors.json``; ``report.html`` shows precision-recall
per class and test images with boxes.

Splits: the dataset's own (``train.txt``/``val.txt``/``test.txt`` of a VOC folder, COCO or
YOLO split files), else ``--test-data``, else seeded fractions of the training images.

Example:
    >>> cfg = DetectConfig(data="../shared/datasets/raccoon", epochs=2, output="/tmp/runs")
    >>> result = train_detector(cfg)  # doctest: +SKIP
    >>> 0.0 <= result.metrics["map50"] <= 1.0  # doctest: +SKIP
    True
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from foveal.data.boxes import BoxedImages, load_boxes
from foveal.detection.config import DetectConfig
from foveal.errors import ConfigError, DataError
from foveal.tasks import trainer
from foveal.training.runs import say
from foveal.utils_io import atomic_write_text

if TYPE_CHECKING:  # Keras and TensorFlow wait until a run starts, so `foveal --help` stays fast
    import keras

    from foveal.models import ModelCard



# ---------------------------------------------------------------------------------------- data


def load_splits(cfg: DetectConfig) -> dict[str, BoxedImages]:
    """Train / val / test box collections as the config asks (see the module docstring)."""
    from foveal.data.boxes.splits import load_box_splits

    parts = load_box_splits(cfg.data, test_data=cfg.test_data, val_split=cfg.val_split,  # type: ignore[arg-type]
                            test_split=cfg.test_split, seed=cfg.seed, skip_invalid=cfg.skip_invalid,
                            tolerance=cfg.clip_tolerance)
    if parts["train"].num_boxes == 0:
        raise DataError(f"{cfg.data}: the training images have no boxes", hint="check the annotation files")
    return parts


def load_extra(cfg: DetectConfig, class_names: list[str]) -> BoxedImages | None:
    """The ``--extra-data`` training images (its train split, or its only part), with ``--data``'s
    classes (a class ``--data`` lacks is refused, naming the file), or None without it."""
    if not cfg.extra_data:
        return None
    from foveal.data.boxes import load_boxes

    parts = load_boxes(cfg.extra_data, class_names=list(class_names), skip_invalid=cfg.skip_invalid,
                       tolerance=cfg.clip_tolerance)
    if "train" not in parts:
        raise DataError(f"{cfg.extra_data}: no training annotations (no train split) for --extra-data")
    extra = parts["train"]
    if len(extra) == 0 or extra.num_boxes == 0:
        raise DataError(f"{cfg.extra_data}: the --extra-data training images have no boxes")
    return extra


def choose_anchors(cfg: DetectConfig, train: BoxedImages) -> tuple[np.ndarray, float]:
    """k-means anchors (YOLOv2) for all scales, normalised (w, h) sorted by area, and their mean IoU."""
    from foveal.ops.anchors import anchors_for

    h, w = cfg.image_hw
    pixels, mean_iou = anchors_for(train, cfg.anchors * cfg.scales, (w, h), seed=cfg.seed)
    return (np.asarray(pixels, np.float64) / np.array([w, h])).astype(np.float32), float(mean_iou)


# ------------------------------------------------------------------------------------ training


def _weights_card(path: str):
    from foveal.models.io import read_card

    card = read_card(path)
    if card is None:
        raise ConfigError(f"{path}: not a foveal .keras model (no model card)",
                          hint="--backbone-weights takes a classifier written by `foveal train`")
    return card


def _load_backbone_weights(model: keras.Model, path: str) -> None:
    """Start the backbone from a foveal classifier of the same architecture (by layer name)."""
    from foveal.transfer.pretrained import load_weights_by_name

    card = _weights_card(path)
    targets = [layer for layer in model.layers if hasattr(layer, "layers") and layer.weights] or [model]
    reports = []
    for target in targets:
        try:
            reports.append(load_weights_by_name(target, path))
        except Exception:  # noqa: BLE001 - a target without matches: try the others, fail below if none
            continue
    loaded = sum(len(r.loaded) for r in reports)
    if not loaded:
        raise ConfigError(f"{path}: none of its layers match the {model.name} backbone by name and shape",
                          hint=f"the file is a {card.architecture!r} model; use --backbone {card.architecture} "
                               "with the --backbone-options it was trained with")
    for report in reports:
        say(report.summary())


train_detector = trainer("detect", "train_detector", "a detector (YOLO or Faster R-CNN)")


class ValidationMap:
    """Keras callback that adds ``val_map50`` (VOC all-point mAP@0.5 of ``data``; another name with
    ``key``, e.g. the adaptation target's ``target_map50``) to the epoch logs.

    Runs before the checkpoint callback so ``best.keras`` can follow it. Epochs where it is
    not computed (``every`` > 1) carry the last value, so ``best`` only changes when measured.
    """

    def __new__(cls, *args: Any, **kwargs: Any):  # a keras.callbacks.Callback built lazily
        import keras

        class _ValidationMap(keras.callbacks.Callback):
            def __init__(self, data: BoxedImages, card: ModelCard, *, every: int, batch_size: int,
                         score_threshold: float, last: float | None = None, key: str = "val_map50") -> None:
                super().__init__()
                self.data, self.card, self.every, self.key = data, card, every, key
                self.batch_size, self.score_threshold = batch_size, score_threshold
                self.last = last

            def on_epoch_end(self, epoch, logs=None):
                from foveal.detection.scoring import detect_dataset, score_detections

                if logs is None:
                    return
                if (epoch + 1) % self.every == 0 or self.last is None:
                    dets = detect_dataset(self.model, self.card, self.data, batch_size=self.batch_size)
                    self.last = float(score_detections(self.data, dets, score_threshold=self.score_threshold)[0]["map50"])
                logs[self.key] = self.last

        return _ValidationMap(*args, **kwargs)


# ---------------------------------------------------------------------------------- evaluation


def evaluate_detector(model_path: str | Path, data: str, *, split: str = "test", batch_size: int = 8,
                      output: str | Path | None = None, skip_invalid: bool = False, score_threshold: float | None = None,
                      iou_threshold: float | None = None, report_images: int = 12,
                      ap_score_threshold: float = 0.001, class_map: str | dict | None = None) -> dict[str, Any]:
    """Score a saved detector on one split of a box dataset; optionally write a report.

    Args:
        model_path: a ``.keras`` file written by ``foveal detect train``.
        data: box annotations (see :func:`~foveal.data.boxes.load_boxes`).
        split: ``test``, ``val`` or ``train``; a source without splits is all ``train``.
        output: folder for ``metrics.json``, ``detections.json`` (COCO results) and ``report.html``.
        score_threshold: the display threshold of the precision/recall line and the drawn
            examples (default: the model's).
        iou_threshold: change the model's non-max suppression overlap for this evaluation.
        ap_score_threshold: AP is computed on the detections scoring at least this (at most
            100 per image; see :mod:`foveal.detection.scoring`).
        class_map: which model class each dataset class is, when their names differ
            (see :mod:`foveal.evaluation.classes`); default: match by name.
    """
    from foveal.data.splits import pick_split
    from foveal.detection.report import write_detection_report
    from foveal.detection.scoring import check_card, detect_dataset, readable, score_detections, to_coco_results
    from foveal.evaluation.classes import align_boxes
    from foveal.models import load_model

    model, card = load_model(model_path)
    check_card(card)
    _set_postprocess(model, score_threshold, iou_threshold)
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
        atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=1))
        atomic_write_text(out / "detections.json", json.dumps(to_coco_results(part, dets)))
        summary = {"model": str(model_path), "data": data, "split": split, "mAP@0.5": metrics["map50"],
                   "COCO AP": metrics["coco"]["AP"], "COCO AP50": metrics["coco"]["AP50"]}
        write_detection_report(out / "report.html", title=f"foveal detection evaluation of {Path(model_path).name}",
                               summary=summary, config={}, history=None, data=part, detections=dets,
                               curves=curves, metrics=metrics, count=report_images)
    return metrics


def _set_postprocess(model: keras.Model, score_threshold: float | None, iou_threshold: float | None) -> None:
    settings = {k: v for k, v in (("score_threshold", score_threshold), ("iou_threshold", iou_threshold))
                if v is not None}
    if settings:
        model.set_postprocess(**settings)


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


__all__ = ["choose_anchors", "evaluate_detector", "format_metrics", "load_splits",
           "train_detector"]
