"""Video clip classification as a task of the run engine: CNN features per frame, then a
sequence model; or a model trained end to end on the raw frames.

The plugin scans a folder of class subfolders of clips, samples frames (``--sampling``),
computes each frame's features with a frozen backbone once (cached as ``.npy``), pads the
sequences with a mask and trains the sequence model (:mod:`foveal.video.models`) through the
engine's ``fit``. The best weights are scored on the test split (else validation) next to the
temporal-average-pooling baseline trained on the same split, and ``--folds K`` adds a stratified
K-fold cross-validation of both. The two-step design (features, then an LSTM) is Planche &
Andres ch. 8's, after Donahue et al. (LRCN, CVPR 2015).

End-to-end models (``cnn-lstm``, ``convlstm``, ``r2plus1d``; :mod:`foveal.video.endtoend`) train
on the sampled frames themselves (decoded once, resized to ``--frame-size``, padded with a mask
like the features), through the same engine (``--mixed-precision``, ``--time-budget``, resume,
``--freeze-backbone-epochs`` for ``cnn-lstm``); ``--cache`` says whether the decoded frames are
kept in memory (and in the frame cache) or decoded again every epoch. Their avgpool baseline is
the feature route's: the temporal mean of the frozen ``--backbone`` features of the same frames.

The run folder holds, beside the engine's files, ``backbone.keras`` (the feature extractor of a
feature model, so ``foveal video predict`` needs nothing else) and ``cv.json`` with ``--folds``.

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
from foveal.errors import ConfigError, DataError
from foveal.training.runs import say
from foveal.utils_io import atomic_write_text, write_metrics
from foveal.video.config import VideoConfig

if TYPE_CHECKING:
    import keras

    from foveal.models import ModelCard

BACKBONE_FILE = "backbone.keras"


@dataclass
class ClipSet:
    """Some clips: padded feature sequences ``x (N, T, D)`` or, for end-to-end models, zero-padded
    uint8 frames ``x (N, T, H, W, 3)`` with ``lengths`` (real frames per clip); ``x`` is None when
    the frames are decoded again every epoch (``--cache none``). ``y (N,)`` and their files."""

    x: np.ndarray | None
    y: np.ndarray
    paths: list[str]
    lengths: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.y)

    def take(self, index: np.ndarray) -> "ClipSet":
        return ClipSet(None if self.x is None else self.x[index], self.y[index], [self.paths[i] for i in index],
                       None if self.lengths is None else self.lengths[index])

    def inputs(self) -> np.ndarray:
        """What the model takes: the features, or the frames as float32 with padding frames of -1."""
        if self.lengths is None:
            return self.x
        from foveal.video.endtoend import padded_input

        return padded_input(self.x, self.lengths)


def _labelled(cfg: VideoConfig, clips: list[Any], kept: list[int], skipped: list[str]) -> np.ndarray:
    if not kept:
        raise DataError(f"{cfg.data}: no clip could be read ({len(skipped)} skipped)")
    labels = np.array([clips[i].label for i in kept])
    if len(set(labels.tolist())) < 2:
        raise DataError(f"{cfg.data}: only one class has readable clips after skipping {len(skipped)}")
    return labels


def _progress(cfg: VideoConfig, what: str, total: int):
    every = max(1, total // 10)

    def progress(done: int, total: int) -> None:
        if cfg.progress and (done % every == 0 or done == total):
            say(f"{what}: {done}/{total} clips")

    return progress


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
    cache = None if cfg.cache == "none" else (cfg.feature_cache or str(Path(cfg.output) / "video-features"))
    stats: dict[str, Any] = {}
    started = time.perf_counter()
    feats, kept, skipped = dataset_features(extractor, clips, sampling, cache=cache, skip_invalid=cfg.skip_invalid,
                                            scene_threshold=cfg.scene_threshold,
                                            progress=_progress(cfg, "features", len(clips)), stats=stats)
    seconds = time.perf_counter() - started
    labels = _labelled(cfg, clips, kept, skipped)
    x, _ = pad_sequences(feats, cfg.max_frames or None)
    where = (f"{stats.get('cached', 0)} from the cache in {cache}" if cache is not None
             else "--cache none: feature cache not used")
    say(f"features: {len(feats)} clip(s), {x.shape[1]} steps of {x.shape[2]} values ({where}; {seconds:.1f} s)"
        + (f"; skipped {len(skipped)}" if skipped else ""))
    return (ClipSet(x, labels, [str(clips[i].path) for i in kept]), names,
            {"extractor": extractor, "skipped": skipped, "steps": int(x.shape[1]), "stats": stats,
             "seconds": seconds, "cache": cache})


def _frames_per_clip(cfg: VideoConfig, clips: list[Any], sampling: Any) -> int | None:
    """The frames ``sampling`` takes from the longest clip, from the headers (None for ``scene``:
    known only after decoding)."""
    from foveal.video.decode import probe
    from foveal.video.sampling import even_indices

    if cfg.max_frames:
        return int(cfg.max_frames)
    if sampling.strategy == "scene":
        return None
    most = 1
    for clip in clips:
        try:
            info = probe(clip.path)
        except DataError:
            continue  # named when it is read
        if sampling.strategy == "even":
            most = max(most, len(even_indices(info.frames, int(sampling.amount))) if info.frames else 1)
        else:
            most = max(most, int(math.ceil(info.duration * sampling.amount)) + 1)
    return most


def load_frames(cfg: VideoConfig) -> tuple[ClipSet, list[str], dict[str, Any]]:
    """Scan ``cfg.data`` and decode every clip's sampled frames (end-to-end models), or with
    ``--cache none`` (or ``auto`` over 1 GiB) only check that every clip opens: the frames are then
    decoded every epoch by :meth:`VideoTask.pipelines`.

    Returns:
        (all clips, class names, facts: ``skipped``, ``steps``, ``stats``, ``seconds``, ``cache``,
        ``stream``: True when the frames are decoded every epoch).
    """
    from foveal.data.pipeline import should_cache
    from foveal.video.decode import probe, scan_video_folder
    from foveal.video.features import dataset_frames, each_clip
    from foveal.video.sampling import Sampling

    clips, names = scan_video_folder(cfg.data)
    sampling = Sampling.parse(cfg.sampling)
    h, w = cfg.frame_hw
    mode = cfg.cache
    steps = _frames_per_clip(cfg, clips, sampling)
    if mode == "auto":
        estimate = None if steps is None else len(clips) * steps * h * w * 3
        mode = "memory" if estimate is None or should_cache(mode, estimate) else "none"
        if mode == "none":
            say(f"--cache auto: the decoded frames would take {estimate / 2 ** 30:.1f} GiB (over 1 GiB): "
                "they are decoded again every epoch (--cache memory keeps them)")
    stats: dict[str, Any] = {}
    started = time.perf_counter()
    if mode == "none":
        if steps is None:
            raise ConfigError("--cache none with --sampling scene:N needs --max-frames (the frames per clip are "
                              "known only after decoding)", hint="pass --max-frames, or --cache memory")
        _, kept, skipped = each_clip(lambda path: np.ones(1) if probe(path) else np.zeros(0), clips,
                                     skip_invalid=cfg.skip_invalid)
        labels = _labelled(cfg, clips, kept, skipped)
        say(f"frames: {len(kept)} clip(s) of up to {steps} frames of {h}x{w}, decoded again every epoch "
            "(--cache none)" + (f"; skipped {len(skipped)}" if skipped else ""))
        return (ClipSet(None, labels, [str(clips[i].path) for i in kept]), names,
                {"skipped": skipped, "steps": steps, "stats": stats, "seconds": time.perf_counter() - started,
                 "cache": None, "stream": True})
    cache = cfg.feature_cache or str(Path(cfg.output) / "video-features")
    frames, kept, skipped = dataset_frames(clips, sampling, (h, w), cache=cache, skip_invalid=cfg.skip_invalid,
                                           scene_threshold=cfg.scene_threshold,
                                           progress=_progress(cfg, "frames", len(clips)), stats=stats)
    seconds = time.perf_counter() - started
    labels = _labelled(cfg, clips, kept, skipped)
    from foveal.video.endtoend import pad_clips

    x, lengths = pad_clips(frames, cfg.max_frames or None)
    say(f"frames: {len(frames)} clip(s), {x.shape[1]} frames of {h}x{w} each ({x.nbytes / 2 ** 20:.0f} MiB in "
        f"memory; {stats.get('cached', 0)} from the cache in {cache}; {seconds:.1f} s)"
        + (f"; skipped {len(skipped)}" if skipped else ""))
    return (ClipSet(x, labels, [str(clips[i].path) for i in kept], lengths), names,
            {"skipped": skipped, "steps": int(x.shape[1]), "stats": stats, "seconds": seconds, "cache": cache,
             "stream": False})


def decoded(cfg: VideoConfig, part: ClipSet, steps: int) -> ClipSet:
    """``part`` with its frames decoded (a no-op when they are in memory already)."""
    if part.x is not None or not cfg.end_to_end:
        return part
    from foveal.video.endtoend import pad_clips
    from foveal.video.features import clip_frames
    from foveal.video.sampling import Sampling

    sampling = Sampling.parse(cfg.sampling)
    frames = [clip_frames(p, sampling, cfg.frame_hw, scene_threshold=cfg.scene_threshold) for p in part.paths]
    x, lengths = pad_clips(frames, steps)
    return ClipSet(x, part.y, part.paths, lengths)


def streamed(cfg: VideoConfig, part: ClipSet, steps: int, *, seed: int, shuffle: bool,
             start_epoch: int | None = None) -> Any:
    """A ``tf.data`` pipeline that decodes ``part``'s clips again every epoch (``--cache none``):
    batches of ``(frames float32 with padding frames of -1, labels)``; the order is shuffled anew
    each epoch from ``seed`` (with ``start_epoch``, the endless epochs ``start_epoch``, ... each
    from ``(seed, epoch)`` only: :mod:`foveal.data.epochs`)."""
    import itertools

    import tensorflow as tf

    from foveal.video.endtoend import pad_clips, padded_input
    from foveal.video.features import clip_frames
    from foveal.video.sampling import Sampling

    sampling, (h, w) = Sampling.parse(cfg.sampling), cfg.frame_hw
    epochs = itertools.count()

    def clips(order_seed=None):
        order_seed = seed + next(epochs) if order_seed is None else int(order_seed)
        order = np.random.default_rng(order_seed).permutation(len(part)) if shuffle else np.arange(len(part))
        for i in order:
            try:
                frames = clip_frames(part.paths[i], sampling, (h, w), scene_threshold=cfg.scene_threshold)
            except DataError:
                if cfg.skip_invalid:
                    continue
                raise
            x, lengths = pad_clips([frames], steps)
            yield padded_input(x, lengths)[0], np.int64(part.y[i])

    spec = (tf.TensorSpec((steps, h, w, 3), tf.float32), tf.TensorSpec((), tf.int64))

    def one_epoch(s, epoch):
        if epoch is None:
            ds = tf.data.Dataset.from_generator(clips, output_signature=spec)
        else:
            ds = tf.data.Dataset.from_generator(clips, args=(s,), output_signature=spec)
        if not cfg.skip_invalid:  # a known length: Keras counts the steps instead of running out of data
            ds = ds.apply(tf.data.experimental.assert_cardinality(len(part)))
        return ds.batch(cfg.batch_size)

    from foveal.data.epochs import epoch_stream

    return epoch_stream(one_epoch, seed=seed, start_epoch=start_epoch if shuffle else None).prefetch(1)


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


_FRAME_CNNS: dict[str, Any] = {}


def frame_cnn(cfg: VideoConfig) -> Any:
    """A fresh copy of ``cnn-lstm``'s per-frame CNN (``--backbone`` cut at its global pooling, with
    the backbone's own weights) computing under ``--mixed-precision``; a backbone file is loaded
    once per process, so every cross-validation fold starts from the same weights without reading it again."""
    from foveal.training.precision import with_policy
    from foveal.video.features import FeatureExtractor

    key = json.dumps([cfg.backbone, list(cfg.frame_hw), cfg.backbone_options, cfg.seed], sort_keys=True, default=str)
    if key not in _FRAME_CNNS:
        _FRAME_CNNS[key] = FeatureExtractor.create(cfg.backbone, cfg.frame_hw, options=cfg.backbone_options,
                                                   seed=cfg.seed).model
    return with_policy(_FRAME_CNNS[key], cfg.mixed_precision)


def build_for(cfg: VideoConfig, name: str, train: ClipSet, num_classes: int, steps: int | None = None):
    """The ``name`` model for ``train``'s shapes: a sequence model standardising with its feature
    statistics, or an end-to-end model of its frames (``cnn-lstm`` with a fresh ``--backbone``)."""
    from foveal.video.endtoend import END_TO_END_MODELS, build_end_to_end
    from foveal.video.models import build_sequence_model, feature_stats

    if name in END_TO_END_MODELS:
        backbone = frame_cnn(cfg) if name == "cnn-lstm" else None
        return build_end_to_end(name, steps=steps or train.x.shape[1], frame_hw=cfg.frame_hw, num_classes=num_classes,
                                backbone=backbone, units=cfg.units, dense=cfg.dense, dropout=cfg.dropout,
                                filters=cfg.filters)
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
    epoch's weights when ``val`` is given, else the last epoch's). End-to-end models train under
    ``cfg.mixed_precision``; ``cnn-lstm`` with its CNN frozen for ``cfg.freeze_backbone_epochs``
    first; ``cfg.time_budget`` bounds each call."""
    import keras

    from foveal.training.budget import TimeBudget
    from foveal.training.precision import dtype_policy
    from foveal.video.endtoend import END_TO_END_MODELS, FRAME_CNN

    keras.utils.set_random_seed(seed)
    with dtype_policy(cfg.mixed_precision if name in END_TO_END_MODELS else "none"):
        model = build_for(cfg, name, train, num_classes)
    steps = max(1, math.ceil(len(train) / cfg.batch_size))
    callbacks: list[Any] = []
    if val is not None:
        callbacks.append(keras.callbacks.EarlyStopping(monitor="val_accuracy", patience=cfg.epochs,
                                                       restore_best_weights=True, mode="max"))
    budget = TimeBudget(cfg.time_budget) if cfg.time_budget else None
    x = train.inputs()
    validation = (val.inputs(), val.y) if val is not None else None
    frozen = min(cfg.freeze_backbone_epochs, cfg.epochs) if name == "cnn-lstm" else 0
    if frozen:
        model.get_layer(FRAME_CNN).trainable = False
        compile_for(cfg, model, steps)
        model.fit(x, train.y, batch_size=cfg.batch_size, epochs=frozen, verbose=0, shuffle=True,
                  validation_data=validation, callbacks=callbacks + ([budget] if budget else []))
        model.get_layer(FRAME_CNN).trainable = True
    if budget is None or not budget.exhausted:
        compile_for(cfg, model, steps)
        model.fit(x, train.y, batch_size=cfg.batch_size, epochs=cfg.epochs, initial_epoch=frozen, verbose=0,
                  shuffle=True, validation_data=validation, callbacks=callbacks + ([budget] if budget else []))
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
            probs = model.predict(clips.take(test_idx).inputs(), verbose=0, batch_size=16)
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
        if cfg.end_to_end and cfg.folds and cfg.cache == "none":
            raise ConfigError("--folds with an end-to-end model needs the decoded frames in memory",
                              hint="leave out --cache none (or --folds)")
        if cfg.end_to_end and cfg.deltas:
            say(f"--deltas: applies to feature models only (the frame-to-frame feature change); --model {cfg.model} "
                "learns motion from the frames: ignored")

    def load_data(self, cfg: VideoConfig) -> RunData:
        clips, names, facts = load_frames(cfg) if cfg.end_to_end else load_features(cfg)
        train, val, test = split_clips(clips, cfg.val_split, cfg.test_split, cfg.seed)
        return RunData(train, val, test, names, extra={**facts, "all": clips})

    def build(self, cfg: VideoConfig, data: RunData, run_dir: Path) -> keras.Model:
        return build_for(cfg, cfg.model, data.train, len(data.class_names), steps=data.extra["steps"])

    def compile(self, cfg: VideoConfig, model: keras.Model, data: RunData, steps_per_epoch: int) -> None:
        compile_for(cfg, model, steps_per_epoch)

    # --freeze-backbone-epochs: only cnn-lstm has a backbone that trains
    def phases(self, cfg: VideoConfig) -> list[Any]:
        from foveal.engine.plugin import Phase

        if cfg.freeze_backbone_epochs and cfg.model != "cnn-lstm":
            why = ("its backbone is always frozen (features computed once)" if not cfg.end_to_end
                   else "it has no pretrained backbone (trained from scratch)")
            say(f"--freeze-backbone-epochs {cfg.freeze_backbone_epochs}: applies to --model cnn-lstm only; "
                f"--model {cfg.model}: {why}: ignored")
            return [Phase(1, cfg.epochs)]
        return super().phases(cfg)

    def set_backbone_trainable(self, model: keras.Model, trainable: bool) -> int:
        """Freeze or unfreeze the per-frame CNN of ``cnn-lstm`` (the TimeDistributed layer)."""
        from foveal.video.endtoend import FRAME_CNN

        layer = model.get_layer(FRAME_CNN)
        layer.trainable = trainable
        return sum(1 for sub in layer.layer._flatten_layers(include_self=False) if sub.weights)

    def card(self, cfg: VideoConfig, data: RunData, model: keras.Model, run_dir: Path) -> ModelCard:
        from foveal.models import ModelCard

        h, w = cfg.frame_hw
        facts: dict[str, Any] = {"data": cfg.data, "run": run_dir.name, "backbone": cfg.backbone,
                                 "backbone_options": cfg.backbone_options, "sampling": cfg.sampling,
                                 "scene_threshold": cfg.scene_threshold, "steps": data.extra["steps"],
                                 "frame_size": [h, w], "model": cfg.model}
        if cfg.end_to_end:
            facts["end_to_end"] = True
        else:
            extractor = data.extra["extractor"]
            backbone_file = None
            if not extractor.spec.startswith("keras:"):  # keras.applications nets are rebuilt from Keras' cache
                extractor.model.save(run_dir / BACKBONE_FILE)
                backbone_file = BACKBONE_FILE
            facts.update(backbone_file=backbone_file, feature_dim=int(extractor.dim), deltas=cfg.deltas)
        return ModelCard(architecture=f"video_{cfg.model}", class_names=list(data.class_names), input_shape=(h, w, 3),
                         preprocessing="none", task="video", training=facts)

    def describe(self, cfg: VideoConfig, data: RunData, model: keras.Model) -> list[str]:
        skipped = data.extra["skipped"]
        lines = [f"data: {cfg.data} (classes {data.class_names}; clips {data.sizes()}"
                 + (f"; {len(skipped)} skipped" if skipped else "") + ")"]
        lines += [f"  skipped: {s}" for s in skipped[:5]]
        if cfg.end_to_end:
            h, w = cfg.frame_hw
            what = f"end to end on {data.extra['steps']} frames of {h}x{w} ({cfg.sampling})" + (
                f", per-frame CNN {cfg.backbone}" if cfg.model == "cnn-lstm" else "")
        else:
            what = f"on {cfg.backbone} features ({cfg.sampling}, {data.extra['steps']} steps)"
        lines.append(f"model: {cfg.model} {what}, {model.count_params():,} parameters")
        return lines

    def pipelines(self, cfg: VideoConfig, data: RunData, *, seed: int,
                  start_epoch: int | None = None) -> tuple[Any, Any | None]:
        import tensorflow as tf

        from foveal.data.epochs import shuffled_epochs

        if data.extra.get("stream"):
            steps = data.extra["steps"]
            return (streamed(cfg, data.train, steps, seed=seed, shuffle=True, start_epoch=start_epoch),
                    streamed(cfg, data.val, steps, seed=seed, shuffle=False) if data.val is not None else None)

        def part(clips: ClipSet) -> Any:
            if clips.lengths is None:
                return tf.data.Dataset.from_tensor_slices((clips.x, clips.y))
            return tf.data.Dataset.from_tensor_slices((clips.x, clips.lengths, clips.y)).map(_frames_input)

        train = shuffled_epochs(part(data.train), len(data.train), seed=seed, start_epoch=start_epoch,
                                then=lambda ds, s, e: ds.batch(cfg.batch_size)).prefetch(1)
        val = None
        if data.val is not None:
            val = part(data.val)
            val = val.batch(cfg.batch_size) if data.val.lengths is None else _batched(val, cfg.batch_size)
        return train, val

    def data_errors(self, cfg: VideoConfig):
        from contextlib import nullcontext

        return nullcontext()  # features and frames are arrays in memory by now (or named when decoded)

    def finish(self, cfg: VideoConfig, model: keras.Model, card: ModelCard, data: RunData, run_dir: Path,
               history: dict[str, list[float]]) -> dict[str, Any] | None:
        from foveal.evaluation.classification import classification_metrics
        from foveal.visualize.report import write_classification_report

        split, part = data.scored_part()
        names = data.class_names
        steps = data.extra["steps"]
        stream = bool(data.extra.get("stream"))
        metrics: dict[str, Any] | None = None
        features: _BaselineFeatures | None = None
        if cfg.baseline and cfg.model != "avgpool":
            if stream:
                say("avgpool baseline: not trained (the frames are decoded every epoch with --cache none; "
                    "the baseline's features need them in memory)")
            elif cfg.end_to_end:
                features = _BaselineFeatures(cfg, data.extra["all"])
        if part is not None:
            part = decoded(cfg, part, steps)
            probs = model.predict(part.inputs(), verbose=0, batch_size=16)
            metrics = classification_metrics(part.y, probs, names, top_k=1)
            metrics["split"] = split
            say(f"{split}: {cfg.model} accuracy {metrics['accuracy']:.4f} on {len(part)} clip(s)")
            if cfg.baseline and cfg.model != "avgpool" and not stream:
                train_b, val_b, part_b = data.train, data.val, part
                if features is not None:
                    train_b, part_b = features.of(data.train), features.of(part)
                    val_b = features.of(data.val) if data.val is not None else None
                base = fit_plain(cfg, "avgpool", train_b, len(names), seed=cfg.seed, val=val_b)
                acc = float(np.mean(np.argmax(base.predict(part_b.x, verbose=0), 1) == part_b.y))
                metrics["baseline_avgpool_accuracy"] = acc
                say(f"{split}: avgpool baseline accuracy {acc:.4f}"
                    + (f" (on frozen {cfg.backbone} features)" if features is not None else ""))
        else:
            metrics = {}
        metrics["skipped_clips"] = len(data.extra["skipped"])
        seconds_key = "frames_seconds" if cfg.end_to_end else "feature_seconds"
        metrics[seconds_key] = round(float(data.extra["seconds"]), 2)
        metrics["frames_from_cache" if cfg.end_to_end else "features_from_cache"] = \
            int(data.extra["stats"].get("cached", 0))
        cv = None
        if cfg.folds and stream:
            say("--folds: skipped: the frames are decoded every epoch (--cache auto found them over 1 GiB; "
                "--cache memory keeps them)")
        elif cfg.folds:
            if cfg.end_to_end:
                cv = cross_validate(cfg, data.extra["all"], len(names), [cfg.model])
                if features is not None:
                    base_cv = cross_validate(cfg, features.of(data.extra["all"]), len(names), ["avgpool"])
                    cv["models"].update(base_cv["models"])
                    cv["seconds"] += base_cv["seconds"]
            else:
                models = [cfg.model] + (["avgpool"] if cfg.model != "avgpool" else [])
                cv = cross_validate(cfg, data.extra["all"], len(names), models)
            atomic_write_text(run_dir / "cv.json", json.dumps(cv, indent=1))
            metrics["cv"] = cv
        write_metrics(run_dir, metrics)
        summary: dict[str, Any] = {
            "run": run_dir.name, "task": "video classification", "model": cfg.model, "backbone": cfg.backbone,
            "sampling": cfg.sampling, "data": cfg.data, "classes": ", ".join(names),
            "parameters": f"{model.count_params():,}", "epochs": len(history.get("loss", [])),
            "skipped clips": len(data.extra["skipped"]),
            ("decoding (s)" if cfg.end_to_end else "feature extraction (s)"): f"{data.extra['seconds']:.1f}",
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


def _frames_input(frames: Any, length: Any, label: Any) -> tuple[Any, Any]:
    """One in-memory clip as the model takes it: float32 pixels, the padding frames set to -1."""
    import tensorflow as tf

    from foveal.video.endtoend import PAD_VALUE

    x = tf.cast(frames, tf.float32)
    padding = tf.range(tf.shape(x)[0]) >= tf.cast(length, tf.int32)
    x = tf.where(padding[:, None, None, None], tf.constant(PAD_VALUE, tf.float32), x)
    return x, label


def _batched(ds: Any, batch_size: int) -> Any:
    return ds.batch(batch_size).prefetch(1)


class _BaselineFeatures:
    """The avgpool baseline's inputs for an end-to-end run: the frozen ``--backbone`` features of
    the decoded frames of every clip, computed once (at the first :meth:`of`)."""

    def __init__(self, cfg: VideoConfig, clips: ClipSet) -> None:
        self.cfg, self.clips, self.sets = cfg, clips, None

    def of(self, part: ClipSet) -> ClipSet:
        from foveal.video.features import FeatureExtractor
        from foveal.video.sampling import pad_sequences

        if self.sets is None:
            cfg = self.cfg
            started = time.perf_counter()
            extractor = FeatureExtractor.create(cfg.backbone, cfg.frame_hw, options=cfg.backbone_options,
                                                seed=cfg.seed)
            feats = [extractor(x[:n]) for x, n in zip(self.clips.x, self.clips.lengths)]
            padded, _ = pad_sequences(feats, self.clips.x.shape[1])
            self.sets = ClipSet(padded, self.clips.y, self.clips.paths)
            self.index = {p: i for i, p in enumerate(self.clips.paths)}
            say(f"avgpool baseline: {cfg.backbone} features of the {len(feats)} clips' frames "
                f"({time.perf_counter() - started:.1f} s)")
        return self.sets.take(np.array([self.index[p] for p in part.paths], np.int64))


__all__ = ["BACKBONE_FILE", "ClipSet", "VideoTask", "cross_validate", "decoded", "fit_plain", "load_features",
           "load_frames", "split_clips", "streamed"]
