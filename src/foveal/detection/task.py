"""Object detection as a task of the run engine: YOLO-style heads on any zoo backbone.

The plugin reads box annotations (VOC, COCO, YOLO, CSV) and their splits, chooses anchors by
k-means with the IoU distance, builds the detector (whose ``YoloLoss`` builds targets in the graph
and whose ``predict_step`` decodes and suppresses boxes), adds the validation mAP@0.5 to each
epoch's logs, and scores the best weights with COCO's and VOC's rules. Everything else about a
run is the engine's (:mod:`foveal.engine.run`).

Example:
    >>> from foveal.engine.run import train_task
    >>> result = train_task(DetectTask(), DetectConfig(data="raccoon/", epochs=2))  # doctest: +SKIP
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from foveal.detection.adapt_run import DetectAdaptation, adaptation_record
from foveal.detection.config import DEFAULT_BACKBONE_OPTIONS, DetectConfig
from foveal.detection.two_stage_run import DetectTwoStage
from foveal.engine.plugin import RunData, TaskPlugin, default_options_explained, training_summary
from foveal.errors import DataError
from foveal.training.runs import say
from foveal.utils_io import atomic_write_text, write_metrics

if TYPE_CHECKING:
    import keras

    from foveal.data.boxes import BoxedImages
    from foveal.models import ModelCard

def load_splits(cfg: DetectConfig) -> dict[str, BoxedImages]:
    """Train / val / test box collections: the dataset's own splits (``train.txt``/``val.txt``/``test.txt``
    of a VOC folder, COCO or YOLO split files), else ``--test-data``, else seeded fractions of train."""
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
    from foveal.data.boxes import load_boxes

    if not cfg.extra_data:
        return None
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


def validation_map(model: keras.Model, data: BoxedImages, card: ModelCard, cfg: DetectConfig, last: float | None,
                   key: str = "val_map50") -> Any:
    """A callback adding ``key`` (VOC all-point mAP@0.5 of ``data``) to the epoch logs, before the
    checkpoint reads them; between the ``--eval-every`` epochs it carries the ``last`` value, so
    ``best.keras`` only changes when measured."""
    import keras

    from foveal.detection.scoring import detect_dataset, score_detections

    def on_epoch_end(epoch: int, logs: dict[str, Any] | None = None) -> None:
        nonlocal last
        if (epoch + 1) % cfg.eval_every == 0 or last is None:
            dets = detect_dataset(model, card, data, batch_size=cfg.batch_size)
            last = float(score_detections(data, dets, score_threshold=cfg.score_threshold)[0]["map50"])
        if logs is not None:
            logs[key] = last

    return keras.callbacks.LambdaCallback(on_epoch_end=on_epoch_end)


def _on_backbone(builder: Any, cfg: Any, data: RunData, *args: Any, **options: Any) -> keras.Model:
    """``builder(cfg.backbone, classes, *args, **options)`` with what every detector shares: the input
    shape, post-processing and backbone options of ``cfg``, the ``--backbone-weights`` model's
    preprocessing (unless given) and then its weights."""
    from foveal.transfer.pretrained import classifier_card, load_backbone_weights

    preprocessing = cfg.preprocessing
    if cfg.backbone_weights and preprocessing is None:
        preprocessing = classifier_card(cfg.backbone_weights).preprocessing
    with default_options_explained(cfg.backbone_options, DEFAULT_BACKBONE_OPTIONS, "--backbone-options",
                                   "--backbone", cfg.backbone):
        model = builder(cfg.backbone, len(data.class_names), *args, input_shape=(*cfg.image_hw, cfg.channels),
                        preprocessing=preprocessing, backbone_options=dict(cfg.backbone_options),
                        score_threshold=cfg.score_threshold, iou_threshold=cfg.iou_threshold,
                        max_detections=cfg.max_detections, **options)
    if cfg.backbone_weights:
        load_backbone_weights(model, cfg.backbone_weights)
    return model


def _extra_source(cfg: Any) -> dict[str, Any]:
    """The model card's record of ``--extra-data`` and ``--adapt-target`` (empty without them)."""
    found: dict[str, Any] = {"extra_data": cfg.extra_data, "extra_ratio": cfg.extra_ratio} if cfg.extra_data else {}
    return found | adaptation_record(cfg)


BOX_FORMAT = "normalised corners (x_min, y_min, x_max, y_max) of the model input"


class DetectTask(DetectTwoStage, DetectAdaptation, TaskPlugin):
    """The engine's hooks for detectors: YOLO (``--detector yolo``) and Faster R-CNN
    (``--detector faster-rcnn``); both models return boxes, scores and classes from ``predict``,
    so data, validation mAP, scoring and the report are shared."""

    name = "detect"
    supports_distribution = True  # the engine's default distributed_batches: its own pipelines, split
    config_class = DetectConfig
    data_help = "box annotations: a Pascal VOC folder, a COCO .json, a YOLO folder or a CSV file"

    def check(self, cfg: DetectConfig) -> None:
        from foveal.models import MODELS

        MODELS.get(cfg.backbone)  # unknown names fail before any data is read
        self.check_adaptation(cfg)

    def load_data(self, cfg: DetectConfig) -> RunData:
        parts = load_splits(cfg)
        data = RunData(parts["train"], parts.get("val"), parts.get("test"), list(parts["train"].class_names))
        extra = load_extra(cfg, data.class_names)
        if extra is not None:
            from foveal.data.epochs import mixed_counts

            data.extra["extra_train"] = extra
            real, more = mixed_counts(len(data.train), cfg.extra_ratio)
            say(f"extra training data: {cfg.extra_data} ({len(extra)} images, {extra.num_boxes} boxes); each epoch "
                f"mixes the {real} real training images with {more} of them (--extra-ratio {cfg.extra_ratio:g})")
        self.load_target(cfg, data)
        return data

    def epoch_examples(self, cfg: DetectConfig, data: RunData) -> int:
        from foveal.data.epochs import mixed_counts

        return sum(mixed_counts(len(data.train), cfg.extra_ratio)) if "extra_train" in data.extra else len(data.train)

    def build(self, cfg: DetectConfig, data: RunData, run_dir: Path) -> keras.Model:
        from foveal.detection.model import build_detector

        if cfg.detector == "faster-rcnn":
            model = self.build_faster_rcnn(cfg, data)
        else:
            anchors, anchor_iou = choose_anchors(cfg, data.train)
            data.extra.update(anchors=anchors, anchor_iou=anchor_iou)
            say(f"anchors: {len(anchors)} by k-means (IoU distance), mean best IoU with the training boxes "
                f"{anchor_iou:.3f}")
            model = _on_backbone(build_detector, cfg, data, anchors, scales=cfg.scales, head_width=cfg.head_width,
                                 class_aware=cfg.class_aware_nms)
        return self.adapted(cfg, data, model)

    def compile(self, cfg: DetectConfig, model: keras.Model, data: RunData, steps_per_epoch: int) -> None:
        from foveal.detection.loss import YoloLoss
        from foveal.engine.optim import jit_compile_of, optimizer_for

        optimizer = optimizer_for(cfg, model, steps_per_epoch)
        if cfg.detector == "faster-rcnn":  # the model owns its losses; never XLA (data-dependent sizes)
            model.compile(optimizer=optimizer)
        else:
            model.compile(optimizer=optimizer, jit_compile=jit_compile_of(cfg), loss=YoloLoss(
                model.anchors, lambda_coord=cfg.lambda_coord, lambda_noobj=cfg.lambda_noobj,
                ignore_threshold=cfg.ignore_threshold))

    def restore(self, cfg: DetectConfig, data: RunData, model: keras.Model, card: ModelCard) -> None:
        self.restore_adapter(cfg, data, model)
        if cfg.detector == "yolo":  # the anchors k-means chose for the run
            data.extra["anchors"] = np.asarray(card.training["anchors"], np.float32)

    def card(self, cfg: DetectConfig, data: RunData, model: keras.Model, run_dir: Path) -> ModelCard:
        from foveal.models import ModelCard
        from foveal.models.io import preprocessing_of

        if cfg.detector == "faster-rcnn":
            kind = self.faster_rcnn_card(cfg, model)
        else:
            anchors = np.asarray(data.extra["anchors"])
            kind = {"backbone": cfg.backbone, "scales": cfg.scales, "anchors": anchors.round(6).tolist()}
            if "anchor_iou" in data.extra:  # a new run: record how well the anchors fit the boxes
                atomic_write_text(run_dir / "anchors.json", json.dumps(
                    {"anchors_wh_normalised": kind["anchors"], "image_size": list(cfg.image_hw),
                     "mean_iou_with_boxes": round(data.extra["anchor_iou"], 4)}, indent=1))
        return ModelCard(
            architecture=f"{cfg.detector}-{cfg.backbone}", class_names=list(data.class_names),
            input_shape=(*cfg.image_hw, cfg.channels), keep_aspect=cfg.keep_aspect,
            preprocessing=preprocessing_of(model.backbone if cfg.detector == "faster-rcnn" else model),
            task="detect", training={"data": cfg.data, **_extra_source(cfg), "run": run_dir.name, **kind,
                                     "keep_aspect": cfg.keep_aspect, "box_format": BOX_FORMAT,
                                     "score_threshold": cfg.score_threshold, "iou_threshold": cfg.iou_threshold})

    def describe(self, cfg: DetectConfig, data: RunData, model: keras.Model) -> list[str]:
        kind = self.faster_rcnn_kind(model) if cfg.detector == "faster-rcnn" else f"YOLO ({cfg.scales} scale(s))"
        mixed = (f"; mixed with {cfg.extra_data} at ratio {cfg.extra_ratio:g}" if "extra_train" in data.extra
                 else "")
        lines = [f"data: {cfg.data} ({len(data.class_names)} class(es); images {data.sizes()}; "
                 f"{data.train.num_boxes} training boxes{mixed})",
                 f"model: {kind} on {cfg.backbone}, input {cfg.image_hw}, {model.count_params():,} parameters"]
        return lines + self.adaptation_lines(cfg, data, model)

    def data_errors(self, cfg: DetectConfig):
        from foveal.detection.pipeline import detection_data_errors

        return detection_data_errors(cfg.data)

    def pipelines(self, cfg: DetectConfig, data: RunData, *, seed: int,
                  start_epoch: int | None = None) -> tuple[Any, Any | None]:
        from foveal.detection.pipeline import make_detection_pipeline

        common = dict(image_size=cfg.image_hw, channels=cfg.channels, batch_size=cfg.batch_size, cache=cfg.cache,
                      skip_invalid=cfg.skip_invalid, keep_aspect=cfg.keep_aspect, max_boxes=cfg.max_boxes)
        train = make_detection_pipeline(data.train, training=True, augment=cfg.augment, seed=seed,
                                        start_epoch=start_epoch, multi_scale=cfg.multi_scale or None,
                                        extra=data.extra.get("extra_train"), extra_ratio=cfg.extra_ratio,
                                        target=self.target_images(cfg, data),
                                        **common)  # type: ignore[arg-type]
        val = (make_detection_pipeline(data.val, training=False, augment="none", **common)  # type: ignore[arg-type]
               if data.val is not None and len(data.val) else None)
        return train, val

    def monitor_without_validation(self, monitor: str) -> str:
        return "loss"  # mAP is computed on validation images only

    def callbacks(self, cfg: DetectConfig, model: keras.Model, card: ModelCard, data: RunData,
                  history: dict[str, list[float]]) -> list[Any]:
        found = []
        if data.val is not None and len(data.val) and cfg.monitor == "val_map50":
            found.append(validation_map(model, data.val, card, cfg, (history.get("val_map50") or [None])[-1]))
        return found + self.target_callbacks(cfg, model, card, data, history)

    def finish(self, cfg: DetectConfig, model: keras.Model, card: ModelCard, data: RunData, run_dir: Path,
               history: dict[str, list[float]]) -> dict[str, Any] | None:
        from foveal.detection.report import write_detection_report
        from foveal.detection.scoring import detect_dataset, score_detections, to_coco_results

        split, part = data.scored_part()
        scored = part is not None and len(part) > 0
        adapted = self.adapt_at_end(cfg, model, card, data, run_dir, part)
        metrics, curves, dets = None, None, None
        if scored:
            dets = detect_dataset(model, card, part, batch_size=cfg.batch_size)
            metrics, curves = score_detections(part, dets, score_threshold=cfg.score_threshold)
            metrics["split"] = split
        target, metrics = self.target_results(cfg, model, card, data, metrics, adapted)
        if metrics is not None:
            write_metrics(run_dir, metrics)
        if scored:
            atomic_write_text(run_dir / "detections.json", json.dumps(to_coco_results(part, dets)))
            say(f"{split}: mAP@0.5 {metrics['map50']:.4f} (VOC07 11-point {metrics['map50_voc07']:.4f}), "
                f"COCO AP {metrics['coco']['AP']:.4f}, AP50 {metrics['coco']['AP50']:.4f} (on detections scoring "
                f">= {metrics.get('ap_score_threshold', cfg.score_threshold)}); precision "
                f"{metrics['precision']:.3f} recall {metrics['recall']:.3f} at score {cfg.score_threshold}; "
                f"{metrics['num_images']} images")
        if cfg.detector == "faster-rcnn":
            head = self.faster_rcnn_summary(cfg, model, card)
        else:
            head = {"task": "object detection (YOLO)", "backbone": cfg.backbone, "scales": cfg.scales,
                    "anchors": len(card.training["anchors"])}
        summary: dict[str, Any] = {
            "run": run_dir.name, **head, "data": cfg.data,
            **({"extra training data": f"{cfg.extra_data} (ratio {cfg.extra_ratio:g})"} if cfg.extra_data else {}),
            "classes": ", ".join(card.class_names), "input": "x".join(map(str, card.input_shape)),
            **training_summary(model, history),
        }
        summary |= self.adaptation_summary(cfg, target, adapted)
        if scored:
            summary |= {f"{split} mAP@0.5 (VOC all-point)": metrics["map50"],
                        "mAP@0.5 (VOC07 11-point)": metrics["map50_voc07"], "COCO AP@[.50:.95]": metrics["coco"]["AP"],
                        "COCO AP50": metrics["coco"]["AP50"], "COCO AP75": metrics["coco"]["AP75"],
                        "images scored": metrics["num_images"]}
        path = write_detection_report(run_dir / "report.html", title=f"foveal detection run {run_dir.name}",
                                      summary=summary, config=asdict(cfg), history=history, data=part,
                                      detections=dets, curves=curves, metrics=metrics if scored else None,
                                      count=cfg.report_images,
                                      first=self.adaptation_sections(cfg, history, target, adapted))
        say(f"report: {path}")
        return metrics
