"""``foveal detect train`` and ``evaluate``: from a :class:`DetectConfig` to a run folder.

The run folder mirrors a classification run: ``config.yaml`` (the resolved options),
``history.csv`` (losses and the validation mAP@0.5 per epoch), ``best.keras`` and
``last.keras`` (self-describing detectors whose card says ``task: detect`` and holds the
anchors), ``state.json`` (what ``--resume`` needs), ``metrics.json`` (COCO and VOC numbers on
the test split), ``detections.json`` (the test detections as COCO results), ``anchors.json``
and ``report.html`` (curves, precision-recall per class, test images with boxes).

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
import math
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from foveal import configtools
from foveal.data.boxes import BoxedImages, load_boxes, split_boxed
from foveal.detection.config import DEFAULT_BACKBONE_OPTIONS, DetectConfig
from foveal.errors import ConfigError, DataError, TrainingInterrupted
from foveal.training.runs import TrainResult, mark, resolve_run, say, set_determinism, weights_of
from foveal.utils_io import atomic_write_text

if TYPE_CHECKING:  # Keras and TensorFlow wait until a run starts, so `foveal --help` stays fast
    import keras

    from foveal.models import ModelCard

DetectResult = TrainResult


# ---------------------------------------------------------------------------------------- data


def load_splits(cfg: DetectConfig) -> dict[str, BoxedImages]:
    """Train / val / test box collections as the config asks (see the module docstring)."""
    common = dict(skip_invalid=cfg.skip_invalid, tolerance=cfg.clip_tolerance)
    parts = load_boxes(cfg.data, **common)  # type: ignore[arg-type]
    if "train" not in parts:
        raise DataError(f"{cfg.data}: no training annotations (no train split)")
    names = parts["train"].class_names
    if cfg.test_data:
        other = load_boxes(cfg.test_data, class_names=names, **common)  # type: ignore[arg-type]
        parts["test"] = other.get("test") or other["train"]
    wanted = {}
    if "val" not in parts and cfg.val_split > 0:
        wanted["val"] = cfg.val_split
    if "test" not in parts and cfg.test_split > 0:
        wanted["test"] = cfg.test_split
    if wanted:
        parts.update(split_boxed(parts["train"], wanted, seed=cfg.seed))
    for part in parts.values():
        if part.class_names != names:
            raise DataError(f"{part.origin}: classes {part.class_names} differ from train's {names}",
                            hint="give the same classes in every split (a classes.txt fixes their order)")
    if parts["train"].num_boxes == 0:
        raise DataError(f"{cfg.data}: the training images have no boxes", hint="check the annotation files")
    return parts


def choose_anchors(cfg: DetectConfig, train: BoxedImages) -> tuple[np.ndarray, float]:
    """k-means anchors (YOLOv2) for all scales, normalised (w, h) sorted by area, and their mean IoU."""
    from foveal.ops.anchors import anchors_for

    h, w = cfg.image_hw
    pixels, mean_iou = anchors_for(train, cfg.anchors * cfg.scales, (w, h), seed=cfg.seed)
    return (np.asarray(pixels, np.float64) / np.array([w, h])).astype(np.float32), float(mean_iou)


# ------------------------------------------------------------------------------------ training


def _new_model(cfg: DetectConfig, num_classes: int, anchors: np.ndarray, steps_per_epoch: int) -> keras.Model:
    from foveal.detection.model import build_detector

    shape = (*cfg.image_hw, cfg.channels)
    preprocessing = cfg.preprocessing
    if cfg.backbone_weights and preprocessing is None:
        preprocessing = _weights_card(cfg.backbone_weights).preprocessing
    try:
        model = build_detector(cfg.backbone, num_classes, anchors, scales=cfg.scales, input_shape=shape,
                               preprocessing=preprocessing, head_width=cfg.head_width,
                               backbone_options=dict(cfg.backbone_options), score_threshold=cfg.score_threshold,
                               iou_threshold=cfg.iou_threshold, max_detections=cfg.max_detections,
                               class_aware=cfg.class_aware_nms)
    except ConfigError as exc:
        if cfg.backbone_options != DEFAULT_BACKBONE_OPTIONS or "has no option" not in exc.message:
            raise
        raise ConfigError(f"{exc.message} (the default --backbone-options {DEFAULT_BACKBONE_OPTIONS} suit resnet18)",
                          hint=f"pass --backbone-options {{}} with --backbone {cfg.backbone}; {exc.hint}") from None
    if cfg.backbone_weights:
        _load_backbone_weights(model, cfg.backbone_weights)
    _compile(cfg, model, steps_per_epoch)
    return model


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


def _compile(cfg: DetectConfig, model: keras.Model, steps_per_epoch: int) -> None:
    from foveal.detection.loss import YoloLoss
    from foveal.training.schedules import make_optimizer, make_schedule

    lr = make_schedule(cfg.schedule, learning_rate=cfg.learning_rate, steps_per_epoch=steps_per_epoch,
                       epochs=cfg.epochs, warmup_epochs=cfg.warmup_epochs)
    optimizer = make_optimizer(cfg.optimizer, lr, weight_decay=cfg.weight_decay or None)
    model.compile(optimizer=optimizer, loss=YoloLoss(model.anchors, lambda_coord=cfg.lambda_coord,
                                                     lambda_noobj=cfg.lambda_noobj,
                                                     ignore_threshold=cfg.ignore_threshold))


HEAD_PREFIXES = ("head_", "neck_", "output_")  # the detector's own layers; the rest is the backbone


def set_backbone_trainable(model: keras.Model, trainable: bool) -> int:
    """Freeze or unfreeze the backbone's layers (all but the head and neck); returns how many.

    While frozen, batch-norm layers of the backbone run in inference mode (Keras does so for
    non-trainable BatchNormalization), which keeps pretrained statistics intact.
    """
    count = 0
    for layer in model.layers:
        if layer.weights and not layer.name.startswith(HEAD_PREFIXES):
            layer.trainable = trainable
            count += 1
    return count


def train_detector(config: DetectConfig | None = None, *, resume: str | Path | None = None,
                   callbacks: list[Any] | None = None, **overrides: Any) -> DetectResult:
    """Train a YOLO-style detector and write a run folder; see the module docstring.

    Args:
        config: the options (default: :class:`DetectConfig`'s).
        resume: a run folder to continue from its last finished epoch; its ``config.yaml`` is
            used, with ``overrides`` on top.
        callbacks: extra Keras callbacks for ``fit``.
        **overrides: options that replace those of ``config``.

    Returns:
        A :class:`~foveal.training.runs.TrainResult`; ``interrupted`` is True when a signal
        stopped the run; ``metrics`` holds the test (else validation) scores.
    """
    from foveal.models import MODELS, ModelCard, load_model

    cfg, run_dir, state = resolve_run(DetectConfig, config, resume, overrides, name_prefix="detect")
    MODELS.get(cfg.backbone)  # unknown names fail before any data is read
    set_determinism(cfg.seed, cfg.deterministic)
    parts = load_splits(cfg)
    train, val, test = parts["train"], parts.get("val"), parts.get("test")
    names = list(train.class_names)
    steps = math.ceil(len(train) / cfg.batch_size)
    start_epoch = 0
    run_dir.mkdir(parents=True, exist_ok=True)
    if state is not None:
        model, card = load_model(run_dir / "last.keras", compile=False)
        _compile(cfg, model, steps)
        start_epoch = int(state["epoch"])
        anchors = np.asarray(card.training["anchors"], np.float32)
        say(f"resuming {run_dir} after epoch {start_epoch} of {cfg.epochs}")
    else:
        anchors, anchor_iou = choose_anchors(cfg, train)
        atomic_write_text(run_dir / "anchors.json", json.dumps(
            {"anchors_wh_normalised": anchors.round(6).tolist(), "mean_iou_with_boxes": round(anchor_iou, 4),
             "image_size": list(cfg.image_hw)}, indent=1))
        say(f"anchors: {len(anchors)} by k-means (IoU distance), mean best IoU with the training boxes {anchor_iou:.3f}")
        model = _new_model(cfg, len(names), anchors, steps)
    atomic_write_text(run_dir / "config.yaml", configtools.to_yaml(cfg))
    card = ModelCard(
        architecture=f"yolo-{cfg.backbone}", class_names=names, input_shape=(*cfg.image_hw, cfg.channels),
        preprocessing=_preprocessing_of(model), keep_aspect=cfg.keep_aspect, task="detect",
        training={"data": cfg.data, "run": run_dir.name, "backbone": cfg.backbone, "scales": cfg.scales,
                  "anchors": np.asarray(anchors).round(6).tolist(), "keep_aspect": cfg.keep_aspect,
                  "box_format": "normalised corners (x_min, y_min, x_max, y_max) of the model input",
                  "score_threshold": cfg.score_threshold, "iou_threshold": cfg.iou_threshold},
    )
    sizes = ", ".join(f"{k} {len(v)}" for k, v in (("train", train), ("val", val), ("test", test)) if v is not None)
    say(f"data: {cfg.data} ({len(names)} class(es); images {sizes}; {train.num_boxes} training boxes)")
    say(f"model: YOLO ({cfg.scales} scale(s)) on {cfg.backbone}, input {cfg.image_hw}, "
        f"{model.count_params():,} parameters")
    say(f"run folder: {run_dir}")

    history: dict[str, list[float]] = {k: list(v) for k, v in (state or {}).get("history", {}).items()}
    if start_epoch < cfg.epochs:
        if _fit(cfg, model, card, train, val, run_dir, history, state, start_epoch, callbacks or []):
            return DetectResult(run_dir, history, None, interrupted=True)
    split, part = ("test", test) if test is not None else ("validation", val)
    metrics = _finish(cfg, model, card, split, part, run_dir, history)
    return DetectResult(run_dir, history, metrics)


def _preprocessing_of(model: keras.Model) -> str:
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if type(layer).__name__ == "Preprocess":
            return str(getattr(layer, "mode", "none"))
    return "none"


class ValidationMap:
    """Keras callback that adds ``val_map50`` (VOC all-point mAP@0.5) to the epoch logs.

    Runs before the checkpoint callback so ``best.keras`` can follow it. Epochs where it is
    not computed (``every`` > 1) carry the last value, so ``best`` only changes when measured.
    """

    def __new__(cls, *args: Any, **kwargs: Any):  # a keras.callbacks.Callback built lazily
        import keras

        class _ValidationMap(keras.callbacks.Callback):
            def __init__(self, data: BoxedImages, card: ModelCard, *, every: int, batch_size: int,
                         score_threshold: float, last: float | None = None) -> None:
                super().__init__()
                self.data, self.card, self.every = data, card, every
                self.batch_size, self.score_threshold = batch_size, score_threshold
                self.last = last

            def on_epoch_end(self, epoch, logs=None):
                from foveal.detection.scoring import detect_dataset, score_detections

                if logs is None:
                    return
                if (epoch + 1) % self.every == 0 or self.last is None:
                    dets = detect_dataset(self.model, self.card, self.data, batch_size=self.batch_size)
                    self.last = float(score_detections(self.data, dets, score_threshold=self.score_threshold)[0]["map50"])
                logs["val_map50"] = self.last

        return _ValidationMap(*args, **kwargs)


def _fit(cfg: DetectConfig, model: keras.Model, card: ModelCard, train: BoxedImages, val: BoxedImages | None,
         run_dir: Path, history: dict[str, list[float]], state: dict[str, Any] | None, start_epoch: int,
         extra_callbacks: list[Any]) -> bool:
    """Run ``fit`` (after an optional frozen-backbone phase); return True if a signal interrupted it."""
    import keras

    from foveal.detection.pipeline import detection_data_errors, make_detection_pipeline
    from foveal.models import save_model
    from foveal.training import callbacks as cb
    from foveal.training.budget import TimeBudget

    common = dict(image_size=cfg.image_hw, channels=cfg.channels, batch_size=cfg.batch_size, cache=cfg.cache,
                  skip_invalid=cfg.skip_invalid, keep_aspect=cfg.keep_aspect, max_boxes=cfg.max_boxes)
    # A resumed run must not replay the shuffles of the first epochs.
    train_ds = make_detection_pipeline(train, training=True, augment=cfg.augment, seed=cfg.seed + start_epoch,
                                       multi_scale=cfg.multi_scale or None, **common)  # type: ignore[arg-type]
    val_ds = (make_detection_pipeline(val, training=False, augment="none", **common)  # type: ignore[arg-type]
              if val is not None and len(val) else None)
    monitor = cfg.monitor
    if val_ds is None and monitor.startswith("val_"):
        monitor = "loss"
    mode = "min" if "loss" in monitor else "max"
    restored = (state or {}).get("callbacks", {})
    callbacks: list[keras.callbacks.Callback] = []
    if val_ds is not None and monitor == "val_map50":
        callbacks.append(ValidationMap(val, card, every=cfg.eval_every, batch_size=cfg.batch_size,
                                       score_threshold=cfg.score_threshold,
                                       last=(history.get("val_map50") or [None])[-1]))
    stateful: dict[str, Any] = {}
    if cfg.early_stopping:
        stateful["early_stopping"] = cb.ResumableEarlyStopping(
            restored=restored.get("early_stopping"), monitor=monitor, mode=mode, patience=cfg.early_stopping,
            restore_best_weights=True,
            best_weights_loader=(lambda: weights_of(run_dir / "best.keras", model)) if state else None)
    callbacks += list(stateful.values())
    guard = cb.InterruptGuard()
    spent = float(sum(history.get("epoch_seconds", [])))
    budget = TimeBudget(cfg.time_budget, spent=spent)
    callbacks.append(budget)
    callbacks.append(cb.RunCheckpoint(run_dir, lambda m, p: save_model(m, p, card), monitor=monitor, mode=mode,
                                      history=history, best=(state or {}).get("best"), stateful=stateful,
                                      extra_state={"task": "detect"}))
    if cfg.tensorboard:
        callbacks.append(keras.callbacks.TensorBoard(log_dir=str(run_dir / "tensorboard"), write_graph=False))
    callbacks += extra_callbacks
    callbacks.append(guard)
    verbose = (1 if sys.stdout.isatty() else 2) if cfg.progress else 0
    started = time.perf_counter()
    steps = math.ceil(len(train) / cfg.batch_size)
    try:
        with guard, detection_data_errors(cfg.data):
            first = start_epoch
            if cfg.freeze_backbone_epochs > start_epoch:
                frozen = set_backbone_trainable(model, False)
                say(f"phase 1: backbone frozen ({frozen} layer(s)) for {cfg.freeze_backbone_epochs} epoch(s)")
                _compile(cfg, model, steps)
                model.fit(train_ds, validation_data=val_ds, epochs=cfg.freeze_backbone_epochs, initial_epoch=first,
                          callbacks=callbacks, verbose=verbose, shuffle=False)
                first = cfg.freeze_backbone_epochs
                set_backbone_trainable(model, True)
                _compile(cfg, model, steps)
                say("phase 2: whole detector trained")
            if not budget.exhausted and first < cfg.epochs:
                model.fit(train_ds, validation_data=val_ds, epochs=cfg.epochs, initial_epoch=first,
                          callbacks=callbacks, verbose=verbose, shuffle=False)
    except TrainingInterrupted as exc:
        done = (cb.read_state(run_dir) or {}).get("epoch", 0)
        mark(run_dir, "interrupted")
        say(f"\ninterrupted by signal {exc.signum} after {done} finished epoch(s); "
            f"continue with: foveal detect train --resume {run_dir}")
        return True
    if budget.exhausted:
        say(f"time budget of {cfg.time_budget:.0f} s reached after {len(history.get('loss', []))} epoch(s)")
    mark(run_dir, "trained", train_seconds=time.perf_counter() - started)
    return False


def _finish(cfg: DetectConfig, model: keras.Model, card: ModelCard, split: str, part: BoxedImages | None,
            run_dir: Path, history: dict[str, list[float]]) -> dict[str, Any] | None:
    """Score the best weights on the test split (else validation) and write the outputs."""
    from foveal.detection.report import write_detection_report
    from foveal.detection.scoring import detect_dataset, score_detections, to_coco_results

    best = run_dir / "best.keras"
    if best.is_file():
        model.load_weights(best)
    metrics, curves, dets = None, None, None
    if part is not None and len(part):
        dets = detect_dataset(model, card, part, batch_size=cfg.batch_size)
        metrics, curves = score_detections(part, dets, score_threshold=cfg.score_threshold)
        metrics["split"] = split
        atomic_write_text(run_dir / "metrics.json", json.dumps(metrics, indent=1))
        atomic_write_text(run_dir / "detections.json", json.dumps(to_coco_results(part, dets)))
        say(f"{split}: mAP@0.5 {metrics['map50']:.4f} (VOC07 11-point {metrics['map50_voc07']:.4f}), "
            f"COCO AP {metrics['coco']['AP']:.4f}, AP50 {metrics['coco']['AP50']:.4f}; "
            f"precision {metrics['precision']:.3f} recall {metrics['recall']:.3f} at score {cfg.score_threshold}; "
            f"{metrics['num_images']} images")
    summary: dict[str, Any] = {
        "run": run_dir.name, "task": "object detection (YOLO)", "backbone": cfg.backbone,
        "scales": cfg.scales, "anchors": len(card.training["anchors"]), "data": cfg.data,
        "classes": ", ".join(card.class_names), "input": "x".join(map(str, card.input_shape)),
        "parameters": f"{model.count_params():,}", "epochs": len(history.get("loss", [])),
        "training time (s)": round(sum(history.get("epoch_seconds", [])), 1),
    }
    if metrics is not None:
        summary |= {f"{split} mAP@0.5 (VOC all-point)": metrics["map50"], "mAP@0.5 (VOC07 11-point)": metrics["map50_voc07"],
                    "COCO AP@[.50:.95]": metrics["coco"]["AP"], "COCO AP50": metrics["coco"]["AP50"],
                    "COCO AP75": metrics["coco"]["AP75"], "images scored": metrics["num_images"]}
    path = write_detection_report(run_dir / "report.html", title=f"foveal detection run {run_dir.name}",
                                  summary=summary, config=asdict(cfg), history=history, data=part, detections=dets,
                                  curves=curves, metrics=metrics, count=cfg.report_images)
    mark(run_dir, "done")
    say(f"report: {path}")
    return metrics


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
    from foveal.detection.report import write_detection_report
    from foveal.detection.scoring import check_card, detect_dataset, readable, score_detections, to_coco_results
    from foveal.evaluation.classes import align_boxes
    from foveal.models import load_model

    model, card = load_model(model_path)
    check_card(card)
    _set_postprocess(model, score_threshold, iou_threshold)
    parts = load_boxes(data, skip_invalid=skip_invalid)
    if split not in parts:
        if len(parts) == 1 and "train" in parts:
            split = "train"
        else:
            raise DataError(f"{data}: has no {split!r} split (it has {', '.join(parts)})",
                            hint="pass --split with one of those")
    part = align_boxes(parts[split], card.class_names, class_map)
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


__all__ = ["DetectResult", "choose_anchors", "evaluate_detector", "format_metrics", "load_splits",
           "train_detector"]
