"""``foveal train``: from a :class:`TrainConfig` to a run folder with models and a report.

A run folder holds ``config.yaml`` (the resolved options), ``history.csv``, ``best.keras`` and
``last.keras`` (self-describing model files), ``state.json`` (what ``--resume`` needs),
``metrics.json`` (test metrics), ``report.html`` and ``tensorboard/``.

Example:
    >>> from foveal.config import TrainConfig
    >>> result = train(TrainConfig(data="digits", model="lenet5", epochs=2, output="/tmp/runs"))  # doctest: +SKIP
    >>> result.metrics["accuracy"] > 0.5  # doctest: +SKIP
    True
"""

from __future__ import annotations

import json
import math
import re
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from foveal import configtools
from foveal.config import TrainConfig
from foveal.data.balance import balanced_class_weights, oversample
from foveal.data.decode import decode_errors_as_data_errors
from foveal.data.pipeline import make_pipeline
from foveal.data.readers import load_dataset
from foveal.data.source import LabeledImages, Splits
from foveal.data.splits import make_splits
from foveal.errors import ConfigError, DataError, TrainingInterrupted
from foveal.evaluation.run import score
from foveal.models import MODELS, ModelCard, build_model, save_model
from foveal.training import callbacks as cb
from foveal.training.schedules import make_optimizer, make_schedule
from foveal.utils_io import atomic_write_text


@dataclass
class TrainResult:
    """What a training run produced."""

    run_dir: Path
    history: dict[str, list[float]]
    metrics: dict[str, Any] | None
    interrupted: bool = False

    @property
    def best_model(self) -> Path:
        best = self.run_dir / "best.keras"
        return best if best.exists() else self.run_dir / "last.keras"


def say(message: str) -> None:
    print(message, flush=True)


def set_determinism(seed: int, deterministic: bool) -> None:
    """Seed Python, NumPy, TensorFlow and Keras; make TensorFlow's ops deterministic if asked."""
    keras.utils.set_random_seed(seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()


def _run_name(cfg: TrainConfig) -> str:
    data = re.sub(r"[^A-Za-z0-9]+", "-", Path(cfg.data.rstrip("/")).name or cfg.data).strip("-") or "data"
    return f"{cfg.model}-{data}-{time.strftime('%Y%m%d-%H%M%S')}"


def prepare_data(cfg: TrainConfig) -> Splits:
    """Read the dataset(s) and make the splits the config asks for."""
    load = dict(skip_invalid=cfg.skip_invalid, verify=cfg.verify, max_image_pixels=cfg.max_image_pixels)
    splits = make_splits(
        load_dataset(cfg.data, **load),
        val_split=cfg.val_split, test_split=cfg.test_split, seed=cfg.seed,
        val_data=load_dataset(cfg.val_data, **load) if cfg.val_data else None,
        test_data=load_dataset(cfg.test_data, **load) if cfg.test_data else None,
    )
    if splits.train.num_classes < 2:
        raise DataError(f"{splits.train.origin}: classification needs at least two classes, found "
                        f"{splits.train.class_names}")
    return splits


def input_shape_for(cfg: TrainConfig, train: LabeledImages) -> tuple[int, int, int]:
    """(H, W, C): the config's, else the model's default size with the data's channels."""
    default = MODELS.get(cfg.model).meta["input_shape"]
    h, w = cfg.image_hw or default[:2]
    channels = cfg.channels
    if channels is None:
        if train.images is not None:
            channels = 1 if train.images.ndim == 3 or train.images.shape[-1] == 1 else 3
        else:
            channels = default[2]
    return (int(h), int(w), int(channels))


def _standardize_stats(train: LabeledImages, channels: int) -> tuple[list[float], list[float]]:
    """Per-channel mean and std in pixel units, from (a sample of) the training images."""
    if train.images is None:
        raise ConfigError("preprocessing 'standardize' needs in-memory data (arrays); "
                          "use 'rescale' or 'tf' for image folders")
    sample = train.images[:10_000].astype(np.float64)
    if sample.ndim == 3:
        sample = sample[..., None]
    if sample.shape[-1] != channels:
        sample = sample.mean(axis=-1, keepdims=True).repeat(channels, axis=-1)
    axes = tuple(range(sample.ndim - 1))
    return sample.mean(axis=axes).tolist(), (sample.std(axis=axes) + 1e-6).tolist()


def _new_model(cfg: TrainConfig, splits: Splits, input_shape: tuple[int, int, int]) -> keras.Model:
    options = dict(cfg.model_options)
    if cfg.dropout is not None:
        options["dropout"] = cfg.dropout
    stats = _standardize_stats(splits.train, input_shape[2]) if cfg.preprocessing == "standardize" else None
    return build_model(cfg.model, num_classes=splits.train.num_classes, input_shape=input_shape,
                       preprocessing=cfg.preprocessing, preprocessing_stats=stats,
                       l1=cfg.l1, l2=cfg.l2, **options)


def _compile(model: keras.Model, cfg: TrainConfig, steps_per_epoch: int, num_classes: int) -> None:
    lr = make_schedule(cfg.schedule, learning_rate=cfg.learning_rate, steps_per_epoch=steps_per_epoch,
                       epochs=cfg.epochs, warmup_epochs=cfg.warmup_epochs, step_epochs=cfg.step_epochs,
                       gamma=cfg.gamma, min_learning_rate=cfg.min_learning_rate)
    optimizer = make_optimizer(cfg.optimizer, lr, momentum=cfg.momentum, nesterov=cfg.nesterov,
                               weight_decay=cfg.weight_decay)
    metrics: list[Any] = [keras.metrics.CategoricalAccuracy(name="accuracy")]
    k = min(cfg.top_k, num_classes - 1)
    if k > 1:
        metrics.append(keras.metrics.TopKCategoricalAccuracy(k=k, name=f"top_{k}_accuracy"))
    model.compile(optimizer=optimizer,
                  loss=keras.losses.CategoricalCrossentropy(label_smoothing=cfg.label_smoothing),
                  metrics=metrics)


def _monitor_mode(monitor: str) -> str:
    return "min" if "loss" in monitor else "max"


def train(config: TrainConfig | None = None, *, resume: str | Path | None = None, **overrides: Any) -> TrainResult:
    """Train a classifier and write a run folder; see the module docstring.

    Args:
        config: the options (defaults to :class:`TrainConfig`'s).
        resume: a run folder to continue from its last finished epoch; its ``config.yaml``
            is used, with ``overrides`` (e.g. ``epochs=20`` to train longer) on top.
        **overrides: options that replace those of ``config``.

    Returns:
        A :class:`TrainResult`; ``interrupted`` is True when a signal stopped the run.
    """
    state: dict[str, Any] | None = None
    if resume is not None:
        run_dir = Path(resume)
        state = cb.read_state(run_dir)
        if state is None or not (run_dir / "last.keras").is_file() or not (run_dir / "config.yaml").is_file():
            raise ConfigError(f"{run_dir}: nothing to resume (no finished epoch saved there)",
                              hint="pass the folder of a run that finished at least one epoch")
        base = configtools.load_yaml(run_dir / "config.yaml")
        cfg = configtools.from_mapping(TrainConfig, base | overrides, source=str(run_dir / "config.yaml"))
    else:
        cfg = config or TrainConfig()
        if overrides:
            cfg = configtools.from_mapping(TrainConfig, {**_as_dict(cfg), **overrides})
        else:
            cfg.validate()
        run_dir = Path(cfg.output) / (cfg.name or _run_name(cfg))
        if (run_dir / "state.json").exists():
            raise ConfigError(f"run folder {run_dir} already holds a run",
                              hint=f"continue it with --resume {run_dir}, or choose another --name")
    MODELS.get(cfg.model)  # unknown names fail before any data is read
    set_determinism(cfg.seed, cfg.deterministic)

    splits = prepare_data(cfg)
    train_data = oversample(splits.train, cfg.seed) if cfg.oversample else splits.train
    input_shape = input_shape_for(cfg, splits.train)
    class_names = splits.train.class_names
    steps_per_epoch = math.ceil(len(train_data) / cfg.batch_size)
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / "config.yaml", configtools.to_yaml(cfg))

    start_epoch = 0
    if state is not None:
        from foveal.models.io import load_model

        model, _ = load_model(run_dir / "last.keras", compile=True)
        start_epoch = int(state["epoch"])
        say(f"resuming {run_dir} after epoch {start_epoch} of {cfg.epochs}")
    else:
        model = _new_model(cfg, splits, input_shape)
        _compile(model, cfg, steps_per_epoch, len(class_names))
    card = ModelCard(architecture=cfg.model, class_names=list(class_names), input_shape=input_shape,
                     preprocessing=_preprocessing_of(model), keep_aspect=cfg.keep_aspect,
                     training={"data": cfg.data, "run": run_dir.name})

    def save(m: keras.Model, path: Path) -> None:
        save_model(m, path, card)

    _describe(cfg, splits, model, run_dir)
    history: dict[str, list[float]] = {k: list(v) for k, v in (state or {}).get("history", {}).items()}
    interrupted = False
    if start_epoch < cfg.epochs:
        interrupted = _fit(cfg, model, splits, train_data, input_shape, run_dir, save, history, state, start_epoch)
    if interrupted:
        return TrainResult(run_dir, history, None, interrupted=True)
    metrics = _finish(cfg, model, card, splits, run_dir, history)
    return TrainResult(run_dir, history, metrics)


def _as_dict(cfg: TrainConfig) -> dict[str, Any]:
    from dataclasses import asdict

    return asdict(cfg)


def _preprocessing_of(model: keras.Model) -> str:
    layer = next((layer for layer in model.layers if layer.name == "preprocess"), None)
    return getattr(layer, "mode", "none")


def _describe(cfg: TrainConfig, splits: Splits, model: keras.Model, run_dir: Path) -> None:
    sizes = ", ".join(f"{name} {len(part)}" for name, part in
                      (("train", splits.train), ("val", splits.val), ("test", splits.test)) if part is not None)
    say(f"data: {cfg.data} ({splits.train.num_classes} classes; {sizes})")
    say(f"model: {cfg.model}, input {model.input_shape[1:]}, {model.count_params():,} parameters")
    say(f"run folder: {run_dir}")


def _fit(cfg, model, splits, train_data, input_shape, run_dir, save, history, state, start_epoch) -> bool:
    """Run ``fit`` with the resumable callbacks; return True if a signal interrupted it."""
    size = input_shape[:2]
    common = dict(image_size=size, channels=input_shape[2], batch_size=cfg.batch_size,
                  keep_aspect=cfg.keep_aspect, skip_invalid=cfg.skip_invalid)
    # A resumed run must not replay the shuffles of the first epochs.
    train_ds = make_pipeline(train_data, training=True, augment=cfg.augment, cache=cfg.cache,
                             shuffle_buffer=cfg.shuffle_buffer, seed=cfg.seed + start_epoch, **common)
    val_ds = make_pipeline(splits.val, training=False, cache=cfg.cache, **common) if splits.val else None
    monitor = cfg.monitor if val_ds is not None or not cfg.monitor.startswith("val_") else cfg.monitor[4:]
    mode = _monitor_mode(monitor)
    restored = (state or {}).get("callbacks", {})
    stateful: dict[str, Any] = {}
    callbacks: list[keras.callbacks.Callback] = []
    if cfg.early_stopping:
        stateful["early_stopping"] = cb.ResumableEarlyStopping(
            restored=restored.get("early_stopping"), monitor=monitor, mode=mode, patience=cfg.early_stopping,
            restore_best_weights=True,
            best_weights_loader=(lambda: _weights_of(run_dir / "best.keras", model)) if state else None)
    if cfg.schedule == "plateau":
        stateful["plateau"] = cb.ResumablePlateau(
            restored=restored.get("plateau"), monitor=monitor, mode=mode, factor=cfg.gamma,
            patience=cfg.plateau_patience, min_lr=cfg.min_learning_rate)
    callbacks += stateful.values()
    guard = cb.InterruptGuard()
    callbacks.append(cb.RunCheckpoint(run_dir, save, monitor=monitor, mode=mode, history=history,
                                      best=(state or {}).get("best"), stateful=stateful, extra_state={}))
    if cfg.tensorboard:
        callbacks.append(keras.callbacks.TensorBoard(log_dir=str(run_dir / "tensorboard"), write_graph=False))
    callbacks.append(guard)
    class_weight = balanced_class_weights(train_data.labels, train_data.num_classes) if cfg.class_weight == "balanced" else None
    verbose = (1 if sys.stdout.isatty() else 2) if cfg.progress else 0
    started = time.perf_counter()
    try:
        with guard, decode_errors_as_data_errors(cfg.data):
            model.fit(train_ds, validation_data=val_ds, epochs=cfg.epochs, initial_epoch=start_epoch,
                      callbacks=callbacks, class_weight=class_weight, verbose=verbose, shuffle=False)
    except TrainingInterrupted as exc:
        done = (cb.read_state(run_dir) or {}).get("epoch", 0)
        _mark(run_dir, "interrupted")
        say(f"\ninterrupted by signal {exc.signum} after {done} finished epoch(s); "
            f"continue with: foveal train --resume {run_dir}")
        return True
    _mark(run_dir, "trained", train_seconds=time.perf_counter() - started)
    return False


def _weights_of(path: Path, model: keras.Model) -> list[np.ndarray] | None:
    if not path.is_file():
        return None
    clone = keras.models.clone_model(model)
    clone.load_weights(path)
    return clone.get_weights()


def _mark(run_dir: Path, status: str, **extra: Any) -> None:
    state = cb.read_state(run_dir)
    if state is not None:
        state["status"] = status
        state.update(extra)
        atomic_write_text(run_dir / cb.STATE_FILE, json.dumps(state, indent=1))


def _finish(cfg: TrainConfig, model: keras.Model, card: ModelCard, splits: Splits, run_dir: Path,
            history: dict[str, list[float]]) -> dict[str, Any] | None:
    """Score the best weights on the test split (else validation) and write the report."""
    from foveal.visualize.report import write_classification_report

    best = run_dir / "best.keras"
    if best.is_file():
        model.load_weights(best)
    part_name, part = ("test", splits.test) if splits.test is not None else ("validation", splits.val)
    metrics = None
    scored = None
    if part is not None:
        scored = score(model, card, part, batch_size=cfg.batch_size, top_k=cfg.top_k,
                       keep_misclassified=cfg.report_misclassified, skip_invalid=cfg.skip_invalid)
        metrics = scored.metrics | {"split": part_name}
        atomic_write_text(run_dir / "metrics.json", json.dumps(metrics, indent=1))
        say(f"{part_name} accuracy: {metrics['accuracy']:.4f} on {metrics['num_examples']} images")
    state = cb.read_state(run_dir) or {}
    epochs_done = len(next(iter(history.values()), []))
    summary: dict[str, Any] = {
        "run": run_dir.name, "model": cfg.model, "data": cfg.data,
        "classes": len(card.class_names), "input": "x".join(map(str, card.input_shape)),
        "parameters": f"{model.count_params():,}", "epochs": epochs_done,
        "training time (s)": round(sum(history.get("epoch_seconds", [])), 1),
    }
    if metrics is not None:
        summary[f"{part_name} accuracy"] = round(metrics["accuracy"], 4)
    misclassified = None
    if scored is not None and scored.misclassified_titles:
        misclassified = (scored.misclassified_images, scored.misclassified_titles)
    report = write_classification_report(
        run_dir / "report.html", title=f"foveal run {run_dir.name}", summary=summary,
        config=_as_dict(cfg), history=history, metrics=metrics, misclassified=misclassified)
    _mark(run_dir, "done", best=state.get("best"))
    say(f"report: {report}")
    return metrics


__all__ = ["TrainResult", "train", "replace"]
