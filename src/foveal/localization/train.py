"""``foveal localize train`` and ``evaluate``: from a :class:`LocalizeConfig` to a run folder.

The run folder mirrors a classification run: ``config.yaml`` (the resolved options),
``history.csv``, ``best.keras`` and ``last.keras`` (self-describing models whose card says
``task: localize``), ``state.json`` (what ``--resume`` needs), ``metrics.json`` (mean IoU and
accuracy on the test split) and ``report.html`` (training curves, metrics, and test images with
the predicted box in red and the true box in green).

Splits: the dataset's own (a VOC folder's ``train.txt``/``val.txt``/``test.txt``), else
``--test-data``, else seeded random fractions of the training images (``--val-split``,
``--test-split``).

Example:
    >>> cfg = LocalizeConfig(data="../shared/datasets/raccoon", epochs=2, output="/tmp/runs")
    >>> result = train_localizer(cfg)  # doctest: +SKIP
    >>> 0.0 <= result.metrics["mean_iou"] <= 1.0  # doctest: +SKIP
    True
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from foveal import configtools
from foveal.configtools import option
from foveal.errors import ConfigError, DataError, TrainingInterrupted
from foveal.training.runs import TrainResult, mark, resolve_run, say, set_determinism, weights_of
from foveal.utils_io import atomic_write_text

import numpy as np

from foveal.data.boxes import BoxedImages, load_boxes, split_boxed

if TYPE_CHECKING:  # Keras and TensorFlow wait until a run starts, so `foveal --help` stays fast
    import keras

    from foveal.models import ModelCard

Optimizer = Literal["sgd", "adam", "adamw", "nadam", "rmsprop"]
Schedule = Literal["constant", "step", "exponential", "cosine", "one-cycle"]
DEFAULT_DATA = "../shared/datasets/raccoon"
DEFAULT_MODEL_OPTIONS = {"width": 16}


@dataclass
class LocalizeConfig:
    """All options of a localization training run (see ``foveal localize train --help``)."""

    # data
    data: str = option(DEFAULT_DATA, "box annotations: a Pascal VOC folder (annotations/, images/, "
                       "optional train.txt/val.txt/test.txt), a CSV file (filename,width,height,class,"
                       "xmin,ymin,xmax,ymax) or a folder of train*.csv/test*.csv", group="data")
    test_data: str | None = option(None, "separate test annotations (else the dataset's test split, "
                                   "or --test-split of train)", group="data")
    val_split: float = option(0.1, "fraction of train held out for validation when the dataset "
                              "has no val split", group="data")
    test_split: float = option(0.2, "fraction of train held out for testing when there is no "
                               "test split", group="data")
    image_size: list[int] = option([128], "input SIZE or HEIGHT WIDTH (images are stretched to it)", group="data")
    channels: int = option(3, "1 (gray) or 3 (RGB)", group="data")
    augment: str = option("standard", "box-aware augmentation: none, standard (flip,crop,brightness,"
                          "contrast) or a list like 'flip,crop=0.7,brightness=0.1'", group="data")
    cache: Literal["auto", "memory", "none"] = option("auto", "cache decoded images in memory "
                                                       "('auto': when under 1 GiB)", group="data")
    skip_invalid: bool = option(False, "skip images with bad annotations or files (counted) instead "
                                "of stopping", group="data")
    clip_tolerance: float = option(3.0, "pixels a box may stick out of its image and be clipped "
                                   "(with a warning) rather than refused", group="data")

    # model
    model: str = option("resnet18", "backbone architecture (see `foveal models`), used without its "
                        "classifier", group="model")
    model_options: dict[str, Any] = option(DEFAULT_MODEL_OPTIONS, "backbone options (the default suits "
                                           "resnet18/geron_cnn; use {} for others)", group="model")
    preprocessing: str | None = option(None, "rescale, tf, torch, caffe or none (default: the "
                                       "backbone's)", group="model")
    pooling: Literal["avg", "flatten"] = option("avg", "how the last feature map reaches the heads: global "
                                                "average pooling (the texts') or flatten (keeps positions)",
                                                group="model")
    dropout: float = option(0.3, "dropout on the pooled features before the two heads", group="model")
    l2: float = option(0.0, "L2 penalty on every kernel", group="model")
    class_loss_weight: float = option(0.8, "weight of the class loss (Géron: 0.8)", group="model")
    box_loss_weight: float = option(0.2, "weight of the box loss (Géron: 0.2)", group="model")

    # optimisation
    epochs: int = option(60, "number of epochs", group="training")
    batch_size: int = option(16, "images per step", group="training")
    optimizer: Optimizer = option("adam", "optimizer", group="training")
    learning_rate: float = option(1e-3, "peak learning rate", group="training")
    schedule: Schedule = option("cosine", "learning-rate schedule", group="training")
    warmup_epochs: float = option(0.0, "linear warm-up epochs", group="training")
    early_stopping: int = option(0, "stop after this many epochs without improvement of --monitor "
                                 "and restore the best weights (0: off)", group="training")
    monitor: str = option("val_box_iou", "metric that picks best.keras (and early stopping)", group="training")
    seed: int = option(42, "random seed for splits, shuffling, augmentation and initialisation", group="training")
    deterministic: bool = option(True, "make runs repeatable on CPU (TensorFlow op determinism)", group="training")

    # outputs
    output: str = option("runs", "folder that receives the run folder", group="output")
    name: str | None = option(None, "run folder name (default: localize-MODEL-DATA-TIMESTAMP)", group="output")
    tensorboard: bool = option(False, "write TensorBoard logs to RUN/tensorboard", group="output")
    report_images: int = option(16, "test images drawn in the report", group="output")
    progress: bool = option(True, "show progress bars", group="output")

    def validate(self) -> None:
        """Check ranges that the types alone cannot express."""
        from foveal.localization.pipeline import parse_augment

        checks = [
            (0.0 <= self.val_split < 1.0 and 0.0 <= self.test_split < 1.0, "val_split and test_split must be in [0, 1)"),
            (self.val_split + self.test_split < 1.0, "val_split + test_split must be below 1"),
            (len(self.image_size) in (1, 2) and min(self.image_size) >= 16, "image_size must be SIZE or HEIGHT WIDTH, at least 16"),
            (self.channels in (1, 3), "channels must be 1 or 3"),
            (self.epochs >= 1 and self.batch_size >= 1, "epochs and batch_size must be at least 1"),
            (self.learning_rate > 0, "learning_rate must be positive"),
            (0.0 <= self.dropout < 1.0, "dropout must be in [0, 1)"),
            (self.l2 >= 0 and self.clip_tolerance >= 0, "l2 and clip_tolerance must not be negative"),
            (self.class_loss_weight >= 0 and self.box_loss_weight > 0,
             "box_loss_weight must be positive and class_loss_weight not negative"),
            (self.early_stopping >= 0 and self.report_images >= 0, "early_stopping and report_images must not be negative"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        parse_augment(self.augment)

    @property
    def image_hw(self) -> tuple[int, int]:
        return (int(self.image_size[0]), int(self.image_size[-1]))


LocalizeResult = TrainResult  # the same run-folder result as classification


# ---------------------------------------------------------------------------------------- data


def load_splits(cfg: LocalizeConfig) -> dict[str, BoxedImages]:
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
    for name, part in parts.items():
        if part.class_names != names:
            raise DataError(f"{part.origin}: classes {part.class_names} differ from train's {names}",
                            hint="give the same classes in every split (a classes.txt fixes their order)")
        if len(names) >= 2:
            parts[name] = _drop_unboxed(part)
    return parts


def _drop_unboxed(data: BoxedImages) -> BoxedImages:
    """Images without a box have no class to learn when there are several classes."""
    keep = np.flatnonzero([len(b) > 0 for b in data.boxes])
    if len(keep) < len(data):
        say(f"{data.origin}: {len(data) - len(keep)} image(s) without boxes left out (several classes)")
    return data.subset(keep)


def mean_box(data: BoxedImages) -> list[float]:
    """The mean normalised corner box of the training images: the trivial baseline."""
    from foveal.localization.pipeline import targets_of

    corners, _, valid = targets_of(data)
    return [round(float(v), 6) for v in corners[valid].mean(axis=0)] if valid.any() else [0.0, 0.0, 1.0, 1.0]


# ------------------------------------------------------------------------------------ training


def _resolve(config: LocalizeConfig | None, resume: str | Path | None,
             overrides: dict[str, Any]) -> tuple[LocalizeConfig, Path, dict[str, Any] | None]:
    return resolve_run(LocalizeConfig, config, resume, overrides, name_prefix="localize")


def _new_model(cfg: LocalizeConfig, num_classes: int, steps_per_epoch: int) -> keras.Model:
    from foveal.localization.model import build_localizer, compile_localizer
    from foveal.training.schedules import make_optimizer, make_schedule

    shape = (*cfg.image_hw, cfg.channels)
    try:
        model = build_localizer(cfg.model, num_classes=num_classes, input_shape=shape, preprocessing=cfg.preprocessing,
                                pooling=cfg.pooling, dropout=cfg.dropout, l2=cfg.l2, **cfg.model_options)
    except ConfigError as exc:
        if cfg.model_options != DEFAULT_MODEL_OPTIONS or "has no option" not in exc.message:
            raise
        raise ConfigError(f"{exc.message} (the default --model-options {DEFAULT_MODEL_OPTIONS} suit resnet18)",
                          hint=f"pass --model-options {{}} with --model {cfg.model}; {exc.hint}") from None
    lr = make_schedule(cfg.schedule, learning_rate=cfg.learning_rate, steps_per_epoch=steps_per_epoch,
                       epochs=cfg.epochs, warmup_epochs=cfg.warmup_epochs)
    compile_localizer(model, make_optimizer(cfg.optimizer, lr), num_classes=num_classes,
                      class_weight=cfg.class_loss_weight, box_weight=cfg.box_loss_weight)
    return model


def _init_heads(model: keras.Model, train: BoxedImages) -> None:
    from foveal.localization.metrics import encode_boxes
    from foveal.localization.model import init_heads
    from foveal.localization.pipeline import targets_of

    corners, _, valid = targets_of(train)
    if valid.any():
        encoded = np.asarray(encode_boxes(corners[valid])).mean(axis=0)
        init_heads(model, encoded, presence_rate=float(valid.mean()))


def train_localizer(config: LocalizeConfig | None = None, *, resume: str | Path | None = None,
                    **overrides: Any) -> LocalizeResult:
    """Train a localizer and write a run folder; see the module docstring.

    Args:
        config: the options (default: :class:`LocalizeConfig`'s).
        resume: a run folder to continue from its last finished epoch; its ``config.yaml`` is
            used, with ``overrides`` (e.g. ``epochs=60``) on top.
        **overrides: options that replace those of ``config``.

    Returns:
        A :class:`LocalizeResult`; ``interrupted`` is True when a signal stopped the run.
    """
    from foveal.localization.model import BOX_FORMAT
    from foveal.models import MODELS, ModelCard, load_model

    cfg, run_dir, state = _resolve(config, resume, overrides)
    MODELS.get(cfg.model)  # unknown names fail before any data is read
    set_determinism(cfg.seed, cfg.deterministic)
    parts = load_splits(cfg)
    train, val, test = parts["train"], parts.get("val"), parts.get("test")
    names = train.class_names
    steps = math.ceil(len(train) / cfg.batch_size)
    start_epoch = 0
    if state is not None:
        model, _ = load_model(run_dir / "last.keras", compile=True)
        start_epoch = int(state["epoch"])
        say(f"resuming {run_dir} after epoch {start_epoch} of {cfg.epochs}")
    else:
        model = _new_model(cfg, len(names), steps)
        _init_heads(model, train)
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / "config.yaml", configtools.to_yaml(cfg))
    card = ModelCard(
        architecture=cfg.model, class_names=list(names), input_shape=(*cfg.image_hw, cfg.channels),
        preprocessing=getattr(_layer(model, "preprocess"), "mode", "none"), keep_aspect=False, task="localize",
        training={"data": cfg.data, "run": run_dir.name, "box_format": BOX_FORMAT,
                  "class_head": "presence" if len(names) == 1 else "softmax",
                  "target_box": "largest box of each image", "mean_box": mean_box(train)},
    )
    sizes = ", ".join(f"{k} {len(v)}" for k, v in (("train", train), ("val", val), ("test", test)) if v is not None)
    say(f"data: {cfg.data} ({len(names)} class(es) {names}; images {sizes}; "
        f"{train.num_boxes} training boxes)")
    say(f"model: {cfg.model} localizer, input {model.input_shape[1:]}, {model.count_params():,} parameters")
    say(f"run folder: {run_dir}")

    history: dict[str, list[float]] = {k: list(v) for k, v in (state or {}).get("history", {}).items()}
    if start_epoch < cfg.epochs:
        if _fit(cfg, model, card, train, val, run_dir, history, state, start_epoch):
            return LocalizeResult(run_dir, history, None, interrupted=True)
    split, part = ("test", test) if test is not None else ("validation", val)
    metrics = _finish(cfg, model, card, split, part, run_dir, history)
    return LocalizeResult(run_dir, history, metrics)


def _layer(model: keras.Model, name: str):
    return next((layer for layer in model.layers if layer.name == name), None)


def _fit(cfg: LocalizeConfig, model: keras.Model, card: ModelCard, train: BoxedImages, val: BoxedImages | None,
         run_dir: Path, history: dict[str, list[float]], state: dict[str, Any] | None, start_epoch: int) -> bool:
    """Run ``fit`` with the resumable callbacks; return True if a signal interrupted it."""
    import keras
    
    from foveal.localization.pipeline import make_localization_pipeline
    from foveal.models import save_model
    from foveal.training import callbacks as cb

    from foveal.data.decode import decode_errors_as_data_errors

    common = dict(image_size=cfg.image_hw, channels=cfg.channels, batch_size=cfg.batch_size, cache=cfg.cache,
                  skip_invalid=cfg.skip_invalid)
    # A resumed run must not replay the shuffles of the first epochs.
    train_ds = make_localization_pipeline(train, training=True, augment=cfg.augment, seed=cfg.seed + start_epoch,
                                          **common)  # type: ignore[arg-type]
    val_ds = make_localization_pipeline(val, training=False, **common) if val is not None else None  # type: ignore[arg-type]
    monitor = cfg.monitor if val_ds is not None or not cfg.monitor.startswith("val_") else cfg.monitor[4:]
    mode = "min" if "loss" in monitor else "max"
    restored = (state or {}).get("callbacks", {})
    stateful: dict[str, Any] = {}
    if cfg.early_stopping:
        stateful["early_stopping"] = cb.ResumableEarlyStopping(
            restored=restored.get("early_stopping"), monitor=monitor, mode=mode, patience=cfg.early_stopping,
            restore_best_weights=True,
            best_weights_loader=(lambda: weights_of(run_dir / "best.keras", model)) if state else None)
    guard = cb.InterruptGuard()
    callbacks: list[keras.callbacks.Callback] = list(stateful.values())
    callbacks.append(cb.RunCheckpoint(run_dir, lambda m, p: save_model(m, p, card), monitor=monitor, mode=mode,
                                      history=history, best=(state or {}).get("best"), stateful=stateful,
                                      extra_state={"task": "localize"}))
    if cfg.tensorboard:
        callbacks.append(keras.callbacks.TensorBoard(log_dir=str(run_dir / "tensorboard"), write_graph=False))
    callbacks.append(guard)
    verbose = (1 if sys.stdout.isatty() else 2) if cfg.progress else 0
    started = time.perf_counter()
    try:
        with guard, decode_errors_as_data_errors(cfg.data):
            model.fit(train_ds, validation_data=val_ds, epochs=cfg.epochs, initial_epoch=start_epoch,
                      callbacks=callbacks, verbose=verbose)
    except TrainingInterrupted as exc:
        done = (cb.read_state(run_dir) or {}).get("epoch", 0)
        mark(run_dir, "interrupted")
        say(f"\ninterrupted by signal {exc.signum} after {done} finished epoch(s); "
            f"continue with: foveal localize train --resume {run_dir}")
        return True
    mark(run_dir, "trained", train_seconds=time.perf_counter() - started)
    return False


def _finish(cfg: LocalizeConfig, model: keras.Model, card: ModelCard, split: str, part: BoxedImages | None, run_dir: Path,
            history: dict[str, list[float]]) -> dict[str, Any] | None:
    """Score the best weights on the test split (else validation) and write the report."""
    best = run_dir / "best.keras"
    if best.is_file():
        model.load_weights(best)
    metrics, drawn = None, None
    if part is not None:
        metrics, predicted = score_localizer(model, card, part, batch_size=cfg.batch_size)
        metrics["split"] = split
        atomic_write_text(run_dir / "metrics.json", json.dumps(metrics, indent=1))
        say(f"{split}: mean IoU {metrics['mean_iou']:.4f} (mean-box baseline {metrics['baseline_mean_iou']:.4f}), "
            f"IoU>=0.5 on {metrics['iou_at_0.5']:.1%}, accuracy {metrics['accuracy']:.4f}, "
            f"{metrics['num_examples']} images")
        drawn = report_thumbnails(part, predicted, card, cfg.report_images)
    summary: dict[str, Any] = {
        "run": run_dir.name, "task": "classification + localization", "backbone": cfg.model, "data": cfg.data,
        "classes": ", ".join(card.class_names), "input": "x".join(map(str, card.input_shape)),
        "parameters": f"{model.count_params():,}", "epochs": len(history.get("loss", [])),
        "training time (s)": round(sum(history.get("epoch_seconds", [])), 1),
    }
    if metrics is not None:
        summary |= {f"{metrics['split']} mean IoU": metrics["mean_iou"],
                    "mean-box baseline IoU": metrics["baseline_mean_iou"],
                    "IoU >= 0.5": metrics["iou_at_0.5"], "class accuracy": metrics["accuracy"],
                    "images scored": metrics["num_examples"]}
    path = write_localization_report(run_dir / "report.html", title=f"foveal localization run {run_dir.name}",
                                     summary=summary, config=asdict(cfg), history=history, drawn=drawn)
    mark(run_dir, "done")
    say(f"report: {path}")
    return metrics


# ---------------------------------------------------------------------------------- evaluation


def score_localizer(model: keras.Model, card: ModelCard, data: BoxedImages, *,
                    batch_size: int = 32) -> tuple[dict[str, Any], np.ndarray]:
    """Mean IoU, IoU >= 0.5 rate and class accuracy of ``model`` on ``data``.

    IoU is taken against each image's largest box (the training target), and also against
    the best-matching of all its boxes (``mean_iou_any_box``); both are the same in pixels as
    in fractions of the image, since IoU does not change when both axes are scaled. Images
    without boxes count only in the accuracy (presence below 0.5 is correct there).
    ``baseline_mean_iou`` is the IoU of always predicting the training set's mean box.

    Returns:
        ``(metrics, predicted)``: a JSON-ready dict and the predicted normalised corners (N, 4).
    """
    import keras
    

    from foveal.localization.metrics import decode_boxes, iou
    from foveal.localization.pipeline import make_localization_pipeline, targets_of
    from foveal.localization.predict import check_card

    check_card(card)
    h, w, c = card.input_shape
    ds = make_localization_pipeline(data, image_size=(h, w), channels=c, batch_size=batch_size, training=False)
    def images_only(images, targets):
        return images

    outputs = model.predict(ds.map(images_only), verbose=0)
    predicted = keras.ops.convert_to_numpy(decode_boxes(outputs["box"]))
    class_out = np.asarray(outputs["class"])
    true, labels, valid = targets_of(data)
    ious = np.asarray(iou(predicted, true))[valid]
    scale = np.tile(data.image_sizes.astype(np.float32), 2)
    any_box = [float(np.max(np.asarray(iou(predicted[i][None], data.boxes[i] / scale[i]))))
               for i in np.flatnonzero(valid)]
    if len(card.class_names) == 1:
        correct = (class_out[:, 0] >= 0.5) == valid
    else:
        correct = (np.argmax(class_out, axis=1) == labels)[valid]
    baseline = np.asarray(iou(np.array(card.training.get("mean_box", [0, 0, 1, 1]), np.float32)[None], true))[valid]
    metrics = {
        "mean_iou": _mean(ious), "mean_iou_any_box": _mean(np.array(any_box)),
        "iou_at_0.5": _mean(ious >= 0.5), "iou_at_0.75": _mean(ious >= 0.75),
        "accuracy": _mean(correct), "baseline_mean_iou": _mean(baseline),
        "num_examples": int(len(data)), "num_boxes": int(data.num_boxes), "num_with_box": int(valid.sum()),
    }
    return metrics, predicted


def _mean(values: np.ndarray) -> float:
    return round(float(np.mean(values)), 6) if len(values) else float("nan")


def report_thumbnails(data: BoxedImages, predicted: np.ndarray, card: ModelCard, count: int,
                      size: int = 160) -> tuple[np.ndarray, list[str]] | None:
    """The first ``count`` images with the predicted (red) and true (green) box, and titles."""
    from foveal.localization.pipeline import targets_of

    from foveal.localization.draw import comparison_thumbnail
    from foveal.localization.metrics import iou
    from foveal.localization.predict import decode_file

    if count <= 0 or len(data) == 0:
        return None
    true, _, valid = targets_of(data)
    thumbs, titles = [], []
    for i in range(min(count, len(data))):
        image = decode_file(data.paths[i], card.input_shape[2])
        height, width = image.shape[:2]
        # Boxes were validated against the header size; the decoded size is the same.
        scale = np.array([width, height, width, height], np.float32)
        thumbs.append(comparison_thumbnail(image, predicted[i] * scale, data.boxes[i], size=size))
        score = f"IoU {float(np.asarray(iou(predicted[i], true[i]))):.2f}" if valid[i] else "no box"
        titles.append(f"{Path(str(data.paths[i])).name}\n{score}")
    return np.stack(thumbs), titles


def write_localization_report(path: Path, *, title: str, summary: dict[str, Any], config: dict[str, Any],
                              history: dict[str, list[float]] | None,
                              drawn: tuple[np.ndarray, list[str]] | None) -> Path:
    """The single-file HTML report: summary, curves, and the drawn test images."""
    from markupsafe import Markup

    from foveal.visualize.plots import plot_image_grid
    from foveal.visualize.report import png_data_uri, write_classification_report

    extra = []
    if drawn is not None:
        uri = png_data_uri(plot_image_grid(drawn[0], drawn[1], cols=4))
        extra.append(("Test images: predicted box red, true box green",
                      Markup('<figure><img src="{}" alt="test images with boxes"></figure>').format(uri)))
    curves = {k: v for k, v in (history or {}).items() if k != "epoch_seconds"}
    return write_classification_report(path, title=title, summary=summary, config=config,
                                       history=curves or None, metrics=None, extra_sections=extra)


def evaluate_localizer(model_path: str | Path, data: str, *, split: str = "test", batch_size: int = 32,
                       output: str | Path | None = None, skip_invalid: bool = False,
                       report_images: int = 16, class_map: str | dict | None = None) -> dict[str, Any]:
    """Score a saved localizer on one split of a box dataset; optionally write a report.

    Args:
        model_path: a ``.keras`` file written by ``foveal localize train``.
        data: box annotations (see :func:`~foveal.data.boxes.load_boxes`).
        split: ``test``, ``val`` or ``train``; a source without splits is all ``train``.
        output: folder for ``metrics.json`` and ``report.html``.
        class_map: which model class each dataset class is, when their names differ
            (see :mod:`foveal.evaluation.classes`); default: match by name.
    """
    from foveal.evaluation.classes import align_boxes
    from foveal.models import load_model

    from foveal.localization.predict import check_card

    model, card = load_model(model_path)
    check_card(card)
    parts = load_boxes(data, skip_invalid=skip_invalid)
    if split not in parts:
        if len(parts) == 1 and "train" in parts:
            split = "train"
        else:
            raise DataError(f"{data}: has no {split!r} split (it has {', '.join(parts)})",
                            hint="pass --split with one of those")
    part = align_boxes(parts[split], card.class_names, class_map)
    part = part if len(card.class_names) == 1 else _drop_unboxed(part)
    metrics, predicted = score_localizer(model, card, part, batch_size=batch_size)
    metrics["split"] = split
    if output is not None:
        out = Path(output)
        atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=1))
        summary = {"model": str(model_path), "data": data, "split": split} | {
            k: v for k, v in metrics.items() if k != "split"}
        write_localization_report(out / "report.html", title=f"foveal localization evaluation of {Path(model_path).name}",
                                  summary=summary, config={}, history=None,
                                  drawn=report_thumbnails(part, predicted, card, report_images))
    return metrics


def format_metrics(metrics: dict[str, Any]) -> str:
    """The metrics as aligned ``name  value`` lines."""
    width = max(len(k) for k in metrics)
    return "\n".join(f"{k:<{width}}  {v:.4f}" if isinstance(v, float) else f"{k:<{width}}  {v}"
                     for k, v in metrics.items())


__all__ = ["LocalizeConfig", "LocalizeResult", "evaluate_localizer", "format_metrics", "load_splits",
           "score_localizer", "train_localizer"]
