"""Video clip classification as a task of the run engine: CNN features per frame, then a
sequence model.

The plugin scans a folder of class subfolders of clips, samples frames (``--sampling``),
computes each frame's features with a frozen backbone once (cached as ``.npy``), pads the
sequences with a mask and trains the sequence model (:mod:`foveal.video.models`) through the
engine's ``fit``. The best weights are scored on the test split (else validation) next to the
temporal-average-pooling baseline trained on the same split, and ``--folds K`` adds a stratified
K-fold cross-validation of both. The two-step design (features, then an LSTM) is Planche &
Andres ch. 8's, after Donahue et al. (LRCN, CVPR 2015).

The run folder holds, beside the engine's files, ``backbone.keras`` (the feature extractor, so
``foveal video predict`` needs nothing else) and ``cv.json`` with ``--folds``.

Example:
    >>> from foveal.tasks import run_train
    >>> run_train("video", VideoConfig(data="clips/", backbone="runs/cifar/best.keras", folds=5))  # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from foveal.engine.plugin import RunData, TaskPlugin
from foveal.errors import DataError
from foveal.training.runs import say
from foveal.utils_io import atomic_write_text
from foveal.video.config import VideoConfig

if TYPE_CHECKING:
    import keras

    from foveal.models import ModelCard

BACKBONE_FILE = "backbone.keras"


@dataclass
class ClipSet:
    """Padded feature sequences of some clips: ``x (N, T, D)``, ``y (N,)`` and their files."""

    x: np.ndarray
    y: np.ndarray
    paths: list[str]

    def __len__(self) -> int:
        return len(self.y)

    def take(self, index: np.ndarray) -> "ClipSet":
        return ClipSet(self.x[index], self.y[index], [self.paths[i] for i in index])


def load_features(cfg: VideoConfig, extractor: Any = None) -> tuple[ClipSet, list[str], dict[str, Any]]:
    """Scan ``cfg.data``, compute (or read cached) features of every clip and pad them.

    Returns:
        (all clips, class names, facts: ``extractor``, ``skipped``, ``steps``, ``stats``, ``seconds``).
    """
    from foveal.video.decode import scan_video_folder
    from foveal.video.features import FeatureExtractor, dataset_features
    from foveal.video.sampling import Sampling, pad_sequences

    clips, names = scan_video_folder(cfg.data)
    sampling = Sampling.parse(cfg.sampling)
    if extractor is None:
        extractor = FeatureExtractor.create(cfg.backbone, cfg.frame_hw, options=cfg.backbone_options, seed=cfg.seed)
    cache = cfg.feature_cache or str(Path(cfg.output) / "video-features")
    stats: dict[str, Any] = {}
    started = time.perf_counter()
    every = max(1, len(clips) // 10)

    def progress(done: int, total: int) -> None:
        if cfg.progress and (done % every == 0 or done == total):
            say(f"features: {done}/{total} clips")

    feats, kept, skipped = dataset_features(extractor, clips, sampling, cache=cache, skip_invalid=cfg.skip_invalid,
                                            scene_threshold=cfg.scene_threshold, progress=progress, stats=stats)
    seconds = time.perf_counter() - started
    if not feats:
        raise DataError(f"{cfg.data}: no clip could be read ({len(skipped)} skipped)")
    labels = np.array([clips[i].label for i in kept])
    present = sorted(set(labels.tolist()))
    if len(present) < 2:
        raise DataError(f"{cfg.data}: only one class has readable clips after skipping {len(skipped)}")
    x, _ = pad_sequences(feats, cfg.max_frames or None)
    say(f"features: {len(feats)} clip(s), {x.shape[1]} steps of {x.shape[2]} values "
        f"({stats.get('cached', 0)} from the cache in {cache}; {seconds:.1f} s)"
        + (f"; skipped {len(skipped)}" if skipped else ""))
    return (ClipSet(x, labels, [str(clips[i].path) for i in kept]), names,
            {"extractor": extractor, "skipped": skipped, "steps": int(x.shape[1]), "stats": stats,
             "seconds": seconds, "cache": cache})


def split_clips(clips: ClipSet, val: float, test: float, seed: int) -> tuple[ClipSet, ClipSet | None, ClipSet | None]:
    """Stratified train / validation / test parts (empty fractions give None)."""
    from foveal.data.splits import stratified_indices

    fractions = [f for f in (val, test) if f > 0]
    parts = stratified_indices(clips.y, fractions, seed) if fractions else [np.arange(len(clips))]
    train = clips.take(parts[0])
    rest = iter(parts[1:])
    val_part = clips.take(next(rest)) if val > 0 else None
    test_part = clips.take(next(rest)) if test > 0 else None
    return train, val_part, test_part


def build_for(cfg: VideoConfig, name: str, train: ClipSet, num_classes: int):
    """The ``name`` sequence model for ``train``'s shapes, standardising with its feature statistics."""
    from foveal.video.models import build_sequence_model, feature_stats

    return build_sequence_model(name, steps=train.x.shape[1], dim=train.x.shape[2], num_classes=num_classes,
                                units=cfg.units, dense=cfg.dense, dropout=cfg.dropout, deltas=cfg.deltas,
                                stats=feature_stats(train.x))


def compile_for(cfg: VideoConfig, model: Any, steps_per_epoch: int) -> None:
    from foveal.engine.optim import jit_compile_of, optimizer_for

    model.compile(optimizer=optimizer_for(cfg, model, steps_per_epoch), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"], jit_compile=jit_compile_of(cfg))


def fit_plain(cfg: VideoConfig, name: str, train: ClipSet, num_classes: int, *, seed: int,
              val: ClipSet | None = None) -> Any:
    """A fresh ``name`` model trained on ``train`` for ``cfg.epochs`` (the best validation
    epoch's weights when ``val`` is given, else the last epoch's)."""
    import keras

    keras.utils.set_random_seed(seed)
    model = build_for(cfg, name, train, num_classes)
    compile_for(cfg, model, max(1, math.ceil(len(train) / cfg.batch_size)))
    callbacks = []
    if val is not None:
        callbacks.append(keras.callbacks.EarlyStopping(monitor="val_accuracy", patience=cfg.epochs,
                                                       restore_best_weights=True, mode="max"))
    model.fit(train.x, train.y, batch_size=cfg.batch_size, epochs=cfg.epochs, verbose=0, shuffle=True,
              validation_data=(val.x, val.y) if val is not None else None, callbacks=callbacks)
    return model


def cross_validate(cfg: VideoConfig, clips: ClipSet, num_classes: int, models: list[str]) -> dict[str, Any]:
    """Stratified ``cfg.folds``-fold cross-validation of each of ``models`` on the cached features:
    every fold trains a fresh model for ``cfg.epochs`` (no early stopping: the held-out fold
    picks nothing) and scores the held-out fold. Returns per-fold and mean accuracies."""
    from sklearn.model_selection import StratifiedKFold

    folds = StratifiedKFold(n_splits=cfg.folds, shuffle=True, random_state=cfg.seed)
    results: dict[str, Any] = {"folds": cfg.folds, "models": {}}
    started = time.perf_counter()
    for name in models:
        accs = []
        for k, (train_idx, test_idx) in enumerate(folds.split(np.zeros(len(clips)), clips.y)):
            model = fit_plain(cfg, name, clips.take(train_idx), num_classes, seed=cfg.seed + k)
            probs = model.predict(clips.x[test_idx], verbose=0, batch_size=64)
            accs.append(float(np.mean(np.argmax(probs, 1) == clips.y[test_idx])))
            say(f"cv {name} fold {k + 1}/{cfg.folds}: accuracy {accs[-1]:.4f}")
        results["models"][name] = {"per_fold": accs, "mean": float(np.mean(accs)), "std": float(np.std(accs))}
        say(f"cv {name}: mean accuracy {np.mean(accs):.4f} (+- {np.std(accs):.4f})")
    results["seconds"] = time.perf_counter() - started
    return results


class VideoTask(TaskPlugin):
    """The engine's hooks for video clip classifiers."""

    name = "video"
    config_class = VideoConfig
    data_help = "a folder of class subfolders of video clips"

    def check(self, cfg: VideoConfig) -> None:
        from foveal.video.sampling import Sampling

        Sampling.parse(cfg.sampling)

    def load_data(self, cfg: VideoConfig) -> RunData:
        clips, names, facts = load_features(cfg)
        train, val, test = split_clips(clips, cfg.val_split, cfg.test_split, cfg.seed)
        return RunData(train, val, test, names, extra={**facts, "all": clips})

    def build(self, cfg: VideoConfig, data: RunData, run_dir: Path) -> keras.Model:
        return build_for(cfg, cfg.model, data.train, len(data.class_names))

    def compile(self, cfg: VideoConfig, model: keras.Model, data: RunData, steps_per_epoch: int) -> None:
        compile_for(cfg, model, steps_per_epoch)

    def card(self, cfg: VideoConfig, data: RunData, model: keras.Model, run_dir: Path) -> ModelCard:
        from foveal.models import ModelCard

        extractor = data.extra["extractor"]
        backbone_file = None
        if not extractor.spec.startswith("keras:"):  # keras.applications nets are rebuilt from Keras' cache
            extractor.model.save(run_dir / BACKBONE_FILE)
            backbone_file = BACKBONE_FILE
        h, w = cfg.frame_hw
        return ModelCard(
            architecture=f"video_{cfg.model}", class_names=list(data.class_names), input_shape=(h, w, 3),
            preprocessing="none", task="video",
            training={"data": cfg.data, "run": run_dir.name, "backbone": cfg.backbone, "backbone_file": backbone_file,
                      "backbone_options": cfg.backbone_options, "feature_dim": int(extractor.dim),
                      "sampling": cfg.sampling, "scene_threshold": cfg.scene_threshold,
                      "steps": data.extra["steps"], "frame_size": [h, w], "model": cfg.model,
                      "deltas": cfg.deltas})

    def describe(self, cfg: VideoConfig, data: RunData, model: keras.Model) -> list[str]:
        skipped = data.extra["skipped"]
        lines = [f"data: {cfg.data} (classes {data.class_names}; clips {data.sizes()}"
                 + (f"; {len(skipped)} skipped" if skipped else "") + ")"]
        lines += [f"  skipped: {s}" for s in skipped[:5]]
        lines.append(f"model: {cfg.model} on {cfg.backbone} features ({cfg.sampling}, {data.extra['steps']} steps), "
                     f"{model.count_params():,} parameters")
        return lines

    def pipelines(self, cfg: VideoConfig, data: RunData, *, seed: int) -> tuple[Any, Any | None]:
        import tensorflow as tf

        train = (tf.data.Dataset.from_tensor_slices((data.train.x, data.train.y))
                 .shuffle(len(data.train), seed=seed, reshuffle_each_iteration=True).batch(cfg.batch_size))
        val = (tf.data.Dataset.from_tensor_slices((data.val.x, data.val.y)).batch(cfg.batch_size)
               if data.val is not None else None)
        return train, val

    def data_errors(self, cfg: VideoConfig):
        from contextlib import nullcontext

        return nullcontext()  # features are arrays in memory by now

    def finish(self, cfg: VideoConfig, model: keras.Model, card: ModelCard, data: RunData, run_dir: Path,
               history: dict[str, list[float]]) -> dict[str, Any] | None:
        from foveal.evaluation.classification import classification_metrics
        from foveal.visualize.report import write_classification_report

        split, part = data.scored_part()
        names = data.class_names
        metrics: dict[str, Any] | None = None
        if part is not None:
            probs = model.predict(part.x, verbose=0, batch_size=64)
            metrics = classification_metrics(part.y, probs, names, top_k=1)
            metrics["split"] = split
            say(f"{split}: {cfg.model} accuracy {metrics['accuracy']:.4f} on {len(part)} clip(s)")
            if cfg.baseline and cfg.model != "avgpool":
                base = fit_plain(cfg, "avgpool", data.train, len(names), seed=cfg.seed, val=data.val)
                acc = float(np.mean(np.argmax(base.predict(part.x, verbose=0), 1) == part.y))
                metrics["baseline_avgpool_accuracy"] = acc
                say(f"{split}: avgpool baseline accuracy {acc:.4f}")
        else:
            metrics = {}
        metrics["skipped_clips"] = len(data.extra["skipped"])
        metrics["feature_seconds"] = round(float(data.extra["seconds"]), 2)
        metrics["features_from_cache"] = int(data.extra["stats"].get("cached", 0))
        cv = None
        if cfg.folds:
            models = [cfg.model] + (["avgpool"] if cfg.model != "avgpool" else [])
            cv = cross_validate(cfg, data.extra["all"], len(names), models)
            atomic_write_text(run_dir / "cv.json", json.dumps(cv, indent=1))
            metrics["cv"] = cv
        atomic_write_text(run_dir / "metrics.json", json.dumps(metrics, indent=1))
        summary: dict[str, Any] = {
            "run": run_dir.name, "task": "video classification", "model": cfg.model, "backbone": cfg.backbone,
            "sampling": cfg.sampling, "data": cfg.data, "classes": ", ".join(names),
            "parameters": f"{model.count_params():,}", "epochs": len(history.get("loss", [])),
            "skipped clips": len(data.extra["skipped"]), "feature extraction (s)": f"{data.extra['seconds']:.1f}",
        }
        if "accuracy" in metrics:
            summary[f"{split} accuracy"] = metrics["accuracy"]
        if "baseline_avgpool_accuracy" in metrics:
            summary[f"{split} accuracy, avgpool baseline"] = metrics["baseline_avgpool_accuracy"]
        sections = []
        if cv is not None:
            lines = [f"{name}: mean {r['mean']:.4f} (std {r['std']:.4f}); folds "
                     + ", ".join(f"{a:.4f}" for a in r["per_fold"]) for name, r in cv["models"].items()]
            sections.append((f"{cfg.folds}-fold cross-validation", "\n".join(lines)))
        path = write_classification_report(
            run_dir / "report.html", title=f"foveal video run {run_dir.name}", summary=summary, config=asdict(cfg),
            history=history, metrics=metrics if "accuracy" in metrics else None, extra_sections=sections)
        say(f"report: {path}")
        return metrics


__all__ = ["BACKBONE_FILE", "ClipSet", "VideoTask", "cross_validate", "fit_plain", "load_features", "split_clips"]
