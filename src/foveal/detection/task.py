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

from foveal.detection.config import DEFAULT_BACKBONE_OPTIONS, DetectConfig
from foveal.engine.plugin import Phase, RunData, TaskPlugin, default_options_explained, training_summary
from foveal.errors import ConfigError, DataError
from foveal.training.runs import say
from foveal.utils_io import atomic_write_text

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
    preprocessing = cfg.preprocessing
    if cfg.backbone_weights and preprocessing is None:
        preprocessing = _weights_card(cfg.backbone_weights).preprocessing
    with default_options_explained(cfg.backbone_options, DEFAULT_BACKBONE_OPTIONS, "--backbone-options",
                                   "--backbone", cfg.backbone):
        model = builder(cfg.backbone, len(data.class_names), *args, input_shape=(*cfg.image_hw, cfg.channels),
                        preprocessing=preprocessing, backbone_options=dict(cfg.backbone_options),
                        score_threshold=cfg.score_threshold, iou_threshold=cfg.iou_threshold,
                        max_detections=cfg.max_detections, **options)
    if cfg.backbone_weights:
        _load_backbone_weights(model, cfg.backbone_weights)
    return model


def build_two_stage(builder: Any, cfg: Any, data: RunData, **options: Any) -> keras.Model:
    """A two-stage detector (Faster R-CNN, or Mask R-CNN through the instance task) from a
    config with ``rcnn_settings()``: anchor sizes chosen from the training boxes unless given;
    ``options`` go to ``builder`` (e.g. ``build_faster_rcnn``) beside the shared ones."""
    from foveal.detection.faster_rcnn import anchor_sizes_from_boxes

    settings = cfg.rcnn_settings()
    fpn = bool(getattr(cfg, "fpn", False))
    if fpn:
        options.update(fpn=True, fpn_width=cfg.fpn_width)
    if "anchor_sizes" not in settings and not fpn:
        settings["anchor_sizes"] = anchor_sizes_from_boxes(data.train, cfg.image_hw)
        say(f"anchor sizes from the training boxes: {', '.join(f'{v:g}' for v in settings['anchor_sizes'])} "
            f"pixels, ratios {', '.join(f'{v:g}' for v in settings['anchor_ratios'])}")
    model = _on_backbone(builder, cfg, data, level=cfg.rcnn_level, **options, **settings)
    if fpn:
        say(f"feature pyramid {model.level}: anchor sizes {', '.join(f'{v:g}' for v in model.rcnn.anchor_sizes)} "
            f"pixels, one per level, times {', '.join(f'{v:.4g}' for v in model.rcnn.anchor_scales)}, ratios "
            f"{', '.join(f'{v:g}' for v in model.rcnn.anchor_ratios)}")
    return model


def _extra_source(cfg: Any) -> dict[str, Any]:
    """The model card's record of ``--extra-data`` and ``--adapt-target`` (empty without them)."""
    found: dict[str, Any] = {"extra_data": cfg.extra_data, "extra_ratio": cfg.extra_ratio} if cfg.extra_data else {}
    if getattr(cfg, "adapt_target", None):
        found["adaptation"] = _adaptation_facts(cfg)
    return found


def _not_a_baseline(path: str, what: str) -> Exception:
    """The one-line refusal of an ``--adapt-baseline`` that is not a foveal detector."""
    return ConfigError(f"{path}: --adapt-baseline must be a detector of foveal detect train (its backbone map "
                       f"is pictured); this is {what}")


def _adaptation_facts(cfg: Any) -> dict[str, Any]:
    """What ``--adapt-target`` did, for the card, the report and ``metrics.json``."""
    from foveal.detection.adapt import DEFAULT_WEIGHTS, uses_adabn

    adabn = {"batch_norm": "statistics re-estimated on the target images after training (AdaBN)"} if uses_adabn(
        cfg) else {}
    if cfg.adapt_method == "adabn":
        return {"target": cfg.adapt_target, "method": "adabn", **adabn}
    return {"target": cfg.adapt_target, "method": cfg.adapt_method,
            "weight": cfg.adapt_weight if cfg.adapt_weight is not None else DEFAULT_WEIGHTS[cfg.adapt_method],
            "features": cfg.adapt_features, "schedule": "weight * (2 / (1 + exp(-10 p)) - 1)",
            **({"normalize": True} if cfg.adapt_method == "coral" and cfg.adapt_normalize else {}),
            **({"domain_units": list(cfg.adapt_units)} if cfg.adapt_method == "dann" else {}), **adabn}


BOX_FORMAT = "normalised corners (x_min, y_min, x_max, y_max) of the model input"
TARGET_MAP = "target_map50"  # the history column of the adaptation target's test mAP@0.5


class DetectTask(TaskPlugin):
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
        if cfg.adapt_baseline:  # read at the end of the run: a wrong file fails now, not after training
            from foveal.models.io import read_card

            if not Path(cfg.adapt_baseline).is_file():
                raise _not_a_baseline(cfg.adapt_baseline, "no such file")
            card = read_card(cfg.adapt_baseline)
            if card is None or card.task != "detect":
                raise _not_a_baseline(cfg.adapt_baseline, f"a {card.task if card else 'foreign'} model")

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
        if cfg.adapt_target:
            self._load_target(cfg, data)
        return data

    def _load_target(self, cfg: DetectConfig, data: RunData) -> None:
        from foveal.detection.adapt import load_target
        from foveal.evaluation.classes import align_boxes

        images, test = load_target(cfg.adapt_target, seed=cfg.seed, skip_invalid=cfg.skip_invalid,
                                   tolerance=cfg.clip_tolerance)
        data.extra["adapt_target"] = images
        if test is not None:
            data.extra["adapt_target_test"] = align_boxes(test, data.class_names, None)
        say(f"adaptation target: {cfg.adapt_target} ({len(images)} images, their boxes unused"
            + (f"; {len(test)} labelled test images scored as target_map50, never to pick best.keras)"
               if test is not None else ")"))

    def epoch_examples(self, cfg: DetectConfig, data: RunData) -> int:
        from foveal.data.epochs import mixed_counts

        return sum(mixed_counts(len(data.train), cfg.extra_ratio)) if "extra_train" in data.extra else len(data.train)

    def build(self, cfg: DetectConfig, data: RunData, run_dir: Path) -> keras.Model:
        from foveal.detection.faster_rcnn import build_faster_rcnn
        from foveal.detection.model import build_detector

        if cfg.detector == "faster-rcnn":
            model = build_two_stage(build_faster_rcnn, cfg, data, head_width=cfg.head_width or 256,
                                    roi_pool=cfg.roi_pool, class_aware=cfg.class_aware_nms)
        else:
            anchors, anchor_iou = choose_anchors(cfg, data.train)
            data.extra.update(anchors=anchors, anchor_iou=anchor_iou)
            say(f"anchors: {len(anchors)} by k-means (IoU distance), mean best IoU with the training boxes "
                f"{anchor_iou:.3f}")
            model = _on_backbone(build_detector, cfg, data, anchors, scales=cfg.scales, head_width=cfg.head_width,
                                 class_aware=cfg.class_aware_nms)
        return self._adapted(cfg, data, model)

    def _adapted(self, cfg: DetectConfig, data: RunData, model: keras.Model) -> keras.Model:
        """``model`` with the ``--adapt-target`` adapter (unchanged without it, and with adabn)."""
        from foveal.detection.adapt import uses_adapter

        if cfg.adapt_target and cfg.adapt_method == "adabn":
            say("adaptation: AdaBN, the batch-norm statistics re-estimated on the target images after training")
        if uses_adapter(cfg):
            adapter = model.enable_adaptation(cfg.adapt_method, weight=cfg.adapt_weight, features=cfg.adapt_features,
                                              units=cfg.adapt_units, normalize=cfg.adapt_normalize,
                                              total_steps=self.steps_per_epoch(cfg, data) * cfg.epochs)
            say(f"adaptation: {adapter.describe()}, over {adapter.total_steps} steps")
        return model

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
        from foveal.detection.adapt import uses_adapter

        adapter = getattr(model, "adapter", None)
        if uses_adapter(cfg) != (adapter is not None):
            raise ConfigError("--adapt-target cannot be added to or removed from a run when it resumes",
                              hint="resume with the run's own options, or start a new run")
        if adapter is not None:
            adapter.total_steps = self.steps_per_epoch(cfg, data) * cfg.epochs  # a resume may extend --epochs
        if cfg.detector == "yolo":  # the anchors k-means chose for the run
            data.extra["anchors"] = np.asarray(card.training["anchors"], np.float32)

    def card(self, cfg: DetectConfig, data: RunData, model: keras.Model, run_dir: Path) -> ModelCard:
        from foveal.models import ModelCard
        from foveal.models.io import preprocessing_of

        if cfg.detector == "faster-rcnn":
            kind = {"detector": "faster-rcnn", "backbone": cfg.backbone, "rcnn_training": cfg.rcnn_training,
                    "level": model.level, "stride": model.stride, "roi_pool": model.roi_pool,
                    "fpn": bool(model.fpn_levels), "anchor_sizes": list(model.rcnn.anchor_sizes),
                    "anchor_ratios": list(model.rcnn.anchor_ratios),
                    "anchor_scales": list(model.rcnn.anchor_scales), "roi_canonical": float(model.rcnn.roi_canonical)}
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
        kind = (f"Faster R-CNN ({model.level}, stride {model.stride}, {model.rcnn.num_anchors} anchors, RoI "
                f"{model.roi_pool})" if cfg.detector == "faster-rcnn" else f"YOLO ({cfg.scales} scale(s))")
        mixed = (f"; mixed with {cfg.extra_data} at ratio {cfg.extra_ratio:g}" if "extra_train" in data.extra
                 else "")
        lines = [f"data: {cfg.data} ({len(data.class_names)} class(es); images {data.sizes()}; "
                 f"{data.train.num_boxes} training boxes{mixed})",
                 f"model: {kind} on {cfg.backbone}, input {cfg.image_hw}, {model.count_params():,} parameters"]
        if getattr(model, "adapter", None) is not None:
            lines.append(f"adapted to {cfg.adapt_target} ({len(data.extra['adapt_target'])} images): "
                         f"{model.adapter.describe()}")
        if cfg.adapt_target and (cfg.adapt_method == "adabn" or cfg.target_statistics):
            from foveal.detection.adapt import ADABN_IMAGES

            lines.append(f"after training: batch-norm statistics re-estimated on up to {ADABN_IMAGES} of the "
                         f"{len(data.extra['adapt_target'])} target images (AdaBN)")
        return lines

    def data_errors(self, cfg: DetectConfig):
        from foveal.detection.pipeline import detection_data_errors

        return detection_data_errors(cfg.data)

    def pipelines(self, cfg: DetectConfig, data: RunData, *, seed: int,
                  start_epoch: int | None = None) -> tuple[Any, Any | None]:
        from foveal.detection.adapt import uses_adapter
        from foveal.detection.pipeline import make_detection_pipeline

        common = dict(image_size=cfg.image_hw, channels=cfg.channels, batch_size=cfg.batch_size, cache=cfg.cache,
                      skip_invalid=cfg.skip_invalid, keep_aspect=cfg.keep_aspect, max_boxes=cfg.max_boxes)
        train = make_detection_pipeline(data.train, training=True, augment=cfg.augment, seed=seed,
                                        start_epoch=start_epoch, multi_scale=cfg.multi_scale or None,
                                        extra=data.extra.get("extra_train"), extra_ratio=cfg.extra_ratio,
                                        target=data.extra.get("adapt_target") if uses_adapter(cfg) else None,
                                        **common)  # type: ignore[arg-type]
        val = (make_detection_pipeline(data.val, training=False, augment="none", **common)  # type: ignore[arg-type]
               if data.val is not None and len(data.val) else None)
        return train, val

    def phases(self, cfg: DetectConfig) -> list[Phase]:
        """Faster R-CNN's 4-step alternating training as four phases (``--rcnn-training alternating``,
        ``--epochs`` split in four, each with its own cosine schedule); else the engine's plan."""
        if cfg.detector != "faster-rcnn" or cfg.rcnn_training != "alternating":
            return super().phases(cfg)
        lengths = [cfg.epochs // 4 + (1 if i < cfg.epochs % 4 else 0) for i in range(4)]
        titles = ["step 1 of 4: backbone + RPN learn the proposals",
                  "step 2 of 4: backbone + detection head learn on the RPN's proposals (RPN frozen)",
                  "step 3 of 4: backbone frozen; the RPN layers are fine-tuned",
                  "step 4 of 4: backbone frozen; the detection head is fine-tuned"]

        return [Phase(i + 1, lengths[i], lambda model, step=i + 1: model.set_training_step(step),
                      schedule_epochs=lengths[i], title=titles[i]) for i in range(4)]

    def monitor_without_validation(self, monitor: str) -> str:
        return "loss"  # mAP is computed on validation images only

    def callbacks(self, cfg: DetectConfig, model: keras.Model, card: ModelCard, data: RunData,
                  history: dict[str, list[float]]) -> list[Any]:
        found = []
        if data.val is not None and len(data.val) and cfg.monitor == "val_map50":
            found.append(validation_map(model, data.val, card, cfg, (history.get("val_map50") or [None])[-1]))
        if "adapt_target_test" in data.extra:  # reported only: the checkpoint never reads it
            found.append(validation_map(model, data.extra["adapt_target_test"], card, cfg,
                                        (history.get(TARGET_MAP) or [None])[-1], key=TARGET_MAP))
        return found

    def finish(self, cfg: DetectConfig, model: keras.Model, card: ModelCard, data: RunData, run_dir: Path,
               history: dict[str, list[float]]) -> dict[str, Any] | None:
        from foveal.detection.report import write_detection_report
        from foveal.detection.scoring import detect_dataset, score_detections, to_coco_results

        split, part = data.scored_part()
        scored = part is not None and len(part) > 0
        adapted = self._adapt_at_end(cfg, model, card, data, run_dir, part) if cfg.adapt_target else {}
        metrics, curves, dets = None, None, None
        if scored:
            dets = detect_dataset(model, card, part, batch_size=cfg.batch_size)
            metrics, curves = score_detections(part, dets, score_threshold=cfg.score_threshold)
            metrics["split"] = split
        target = self._score_target(cfg, model, card, data)
        if target is not None or "batch_norm_layers" in adapted:
            metrics = {**(metrics or {}), **({"target": target} if target is not None else {}),
                       "adaptation": _adaptation_facts(cfg) | {k: v for k, v in adapted.items() if k != "picture"}}
        if metrics is not None:
            atomic_write_text(run_dir / "metrics.json", json.dumps(metrics, indent=1))
        if scored:
            atomic_write_text(run_dir / "detections.json", json.dumps(to_coco_results(part, dets)))
            say(f"{split}: mAP@0.5 {metrics['map50']:.4f} (VOC07 11-point {metrics['map50_voc07']:.4f}), "
                f"COCO AP {metrics['coco']['AP']:.4f}, AP50 {metrics['coco']['AP50']:.4f} (on detections scoring "
                f">= {metrics.get('ap_score_threshold', cfg.score_threshold)}); precision "
                f"{metrics['precision']:.3f} recall {metrics['recall']:.3f} at score {cfg.score_threshold}; "
                f"{metrics['num_images']} images")
        if cfg.detector == "faster-rcnn":
            head = {"task": f"object detection (Faster R-CNN, {cfg.rcnn_training} training)", "backbone": cfg.backbone,
                    "feature map": f"{model.level} (stride {model.stride})", "RoI pooling": model.roi_pool,
                    "anchors": f"{model.rcnn.num_anchors} (sizes {card.training['anchor_sizes']}, ratios "
                               f"{card.training['anchor_ratios']})"}
        else:
            head = {"task": "object detection (YOLO)", "backbone": cfg.backbone, "scales": cfg.scales,
                    "anchors": len(card.training["anchors"])}
        summary: dict[str, Any] = {
            "run": run_dir.name, **head, "data": cfg.data,
            **({"extra training data": f"{cfg.extra_data} (ratio {cfg.extra_ratio:g})"} if cfg.extra_data else {}),
            "classes": ", ".join(card.class_names), "input": "x".join(map(str, card.input_shape)),
            **training_summary(model, history),
        }
        if cfg.adapt_target:
            summary["adapted to"] = cfg.adapt_target + (" (AdaBN after training)" if cfg.adapt_method == "adabn" else
                                                        f" ({cfg.adapt_method}, {cfg.adapt_features}, weight "
                                                        f"{_adaptation_facts(cfg)['weight']:g})")
        if target is not None:
            summary[f"target {target['split']} mAP@0.5 (VOC all-point)"] = target["map50"]
            summary["target COCO AP@[.50:.95]"] = target["coco_ap"]
            if "target_before_adabn" in adapted:
                summary["target mAP@0.5 before AdaBN"] = adapted["target_before_adabn"]["map50"]
            if "target_baseline" in adapted:
                summary["target mAP@0.5 of --adapt-baseline (source-only)"] = adapted["target_baseline"]["map50"]
                summary["gain over source-only (target mAP@0.5)"] = (
                    f"{target['map50'] - adapted['target_baseline']['map50']:+.4f}")
            adapted = {**adapted, "target": target}  # the report's side-by-side table
        if scored:
            summary |= {f"{split} mAP@0.5 (VOC all-point)": metrics["map50"],
                        "mAP@0.5 (VOC07 11-point)": metrics["map50_voc07"], "COCO AP@[.50:.95]": metrics["coco"]["AP"],
                        "COCO AP50": metrics["coco"]["AP50"], "COCO AP75": metrics["coco"]["AP75"],
                        "images scored": metrics["num_images"]}
        path = write_detection_report(run_dir / "report.html", title=f"foveal detection run {run_dir.name}",
                                      summary=summary, config=asdict(cfg), history=history, data=part,
                                      detections=dets, curves=curves, metrics=metrics if scored else None,
                                      count=cfg.report_images,
                                      adaptation=_adaptation_facts(cfg) if cfg.adapt_target else None,
                                      adapted=adapted)
        say(f"report: {path}")
        return metrics

    def _adapt_at_end(self, cfg: DetectConfig, model: keras.Model, card: ModelCard, data: RunData,
                      run_dir: Path, part: Any) -> dict[str, Any]:
        """AdaBN when asked (``best.keras`` saved again with the target's batch-norm statistics; the
        target's test mAP before it kept), and the picture of source and target features: the
        ``--adapt-baseline`` detector's, the trained weights' before AdaBN, and the final ones."""
        from dataclasses import replace

        from foveal.detection import adapt
        from foveal.models import load_model, save_model
        from foveal.training.precision import float32_for_saving
        from foveal.visualize.features import feature_picture

        found: dict[str, Any] = {}
        picture = cfg.feature_plot != "none"
        adabn = adapt.uses_adabn(cfg)
        baseline = None
        if cfg.adapt_baseline:  # the source-only detector, scored on the same target test images
            baseline, baseline_card = load_model(cfg.adapt_baseline)
            scored = self._score_target(cfg, baseline, baseline_card, data, what="--adapt-baseline")
            if scored is not None:
                found["target_baseline"] = scored | {"model": cfg.adapt_baseline}
        if not (picture or adabn):
            return found
        target = adapt.model_inputs(data.extra["adapt_target"], card, seed=cfg.seed, batch_size=cfg.batch_size,
                                    limit=adapt.ADABN_IMAGES if adabn else adapt.PICTURE_IMAGES)
        shown = part if part is not None and len(part) else (data.val if data.val is not None and len(data.val)
                                                             else data.train)
        source = (adapt.model_inputs(shown, card, limit=adapt.PICTURE_IMAGES, seed=cfg.seed, batch_size=cfg.batch_size)
                  if picture else None)
        panels: dict[str, Any] = {}

        def show(title: str, detector: keras.Model) -> None:
            panels.update(adapt.feature_panels({title: detector}, source, target[:adapt.PICTURE_IMAGES]))

        if picture and baseline is not None:
            if not hasattr(baseline, "feature_map"):
                raise _not_a_baseline(cfg.adapt_baseline, "a detector without a recorded backbone map")
            show("before: --adapt-baseline (source-only)", baseline)
        if adabn:
            if picture:
                show("before AdaBN (training statistics)", model)
            before = self._score_target(cfg, model, card, data)
            if before is not None:
                found["target_before_adabn"] = before
            layers = adapt.adapt_batch_norm(model, target, batch_size=cfg.batch_size)
            found |= {"batch_norm_layers": layers, "batch_norm_images": len(target)}
            say(f"AdaBN: batch-norm statistics of {layers} layer(s) re-estimated on {len(target)} target images")
            training = {**card.training, "adaptation": {**card.training.get("adaptation", {}),
                                                        "batch_norm_layers": layers, "batch_norm_images": len(target)}}
            save_model(float32_for_saving(model), run_dir / "best.keras", replace(card, training=training))
            say(f"best.keras saved with the target's batch-norm statistics: {run_dir / 'best.keras'}")
        if picture:
            show(f"after: {cfg.adapt_method}" + (" + AdaBN" if adabn and cfg.adapt_method != "adabn" else ""), model)
            found["picture"] = feature_picture(panels, cfg.feature_plot, cfg.seed)
            found["picture_images"] = [len(source), min(len(target), adapt.PICTURE_IMAGES)]
        return found

    def _score_target(self, cfg: DetectConfig, model: keras.Model, card: ModelCard,
                      data: RunData, what: str = "adaptation") -> dict[str, Any] | None:
        """``model`` (the best weights, or the ``--adapt-baseline`` detector) on the adaptation
        target's labelled test images (None without them)."""
        from foveal.detection.scoring import detect_dataset, score_detections

        part = data.extra.get("adapt_target_test")
        if part is None:
            return None
        dets = detect_dataset(model, card, part, batch_size=cfg.batch_size)
        scores = score_detections(part, dets, score_threshold=cfg.score_threshold)[0]
        target = {"data": cfg.adapt_target, "split": "test", "map50": scores["map50"],
                  "map50_voc07": scores["map50_voc07"], "coco_ap": scores["coco"]["AP"],
                  "coco_ap50": scores["coco"]["AP50"], "precision": scores["precision"], "recall": scores["recall"],
                  "num_images": scores["num_images"], "num_boxes": scores["num_boxes"]}
        say(f"{what} target {cfg.adapt_target} (test, {target['num_images']} images): mAP@0.5 "
            f"{target['map50']:.4f}, COCO AP {target['coco_ap']:.4f}; precision {target['precision']:.3f} recall "
            f"{target['recall']:.3f} at score {cfg.score_threshold}")
        return target
