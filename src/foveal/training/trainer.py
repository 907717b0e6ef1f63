"""``foveal train``: from a :class:`TrainConfig` to a run folder with models and a report.

A run folder holds ``config.yaml`` (the resolved options), ``history.csv``, ``best.keras`` and
``last.keras`` (self-describing model files), ``state.json`` (what ``--resume`` needs),
``metrics.json`` (test metrics), ``report.html`` and ``tensorboard/``.

Transfer learning (``--weights``, ``--freeze``, ``--fine-tune``): the model starts from
ImageNet or file weights; phase 1 trains ``epochs`` epochs with the ``freeze`` layers frozen
(on cached bottleneck features of the frozen base with ``--bottleneck``), phase 2 unfreezes
the ``fine_tune`` layers, recompiles with the lower learning rate and trains
``fine_tune_epochs`` more. The phase is stored in ``state.json`` so ``--resume`` re-applies the
right trainable flags, and ``history.csv`` runs on across both phases with a ``phase`` column.

Speed options: ``--recipe`` fills the options not given explicitly from a preset (resolved
here, before anything else, so ``config.yaml`` holds the final values); ``--mixed-precision``
builds the model under a mixed dtype policy (the global policy is restored afterwards, and
checkpoints are saved as float32 copies); ``--jit-compile`` goes to ``model.compile``.

Distribution (``--distribute mirrored|multi-worker``, :mod:`foveal.training.distribute`): the
strategy is created first of all; models are built and compiled in its scope; ``--batch-size``
is the global batch, cut by a plan that depends only on the seed and the epoch, so 1 or N
workers train the same model; only the chief writes the run folder (the other workers write a
private temporary copy) and scores the model.

Example:
    >>> from foveal.config import TrainConfig
    >>> result = train(TrainConfig(data="digits", model="lenet5", epochs=2, output="/tmp/runs"))  # doctest: +SKIP
    >>> result.metrics["accuracy"] > 0.5  # doctest: +SKIP
    True
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import keras
import numpy as np

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
from foveal.training.whitening import has_whitening, init_whitening
from foveal.models import ModelCard, add_weight_penalty, build_model, save_model
from foveal.training import callbacks as cb
from foveal.training import distribute
from foveal.transfer.finetune import Phases
from foveal.transfer.pretrained import build_pretrained, builder_for, default_input_shape
from foveal.training.precision import as_float32, dtype_policy, is_mixed, with_loss_scaling, with_policy
from foveal.training.recipes import resolve_recipe
from foveal.training.schedules import make_optimizer, make_schedule
from foveal.memcheck import check_training_memory
from foveal.training.runs import TrainResult, mark, resolve_run, saved_model, say, set_determinism, weights_of
from foveal.utils_io import atomic_write_text


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


def _weights_card(cfg: TrainConfig) -> ModelCard | None:
    """The card of a ``.keras`` file given as ``--weights``, else None."""
    if cfg.weights is None or cfg.weights == "imagenet" or not cfg.weights.endswith(".keras"):
        return None
    from foveal.models.io import read_card

    return read_card(cfg.weights)


def input_shape_for(cfg: TrainConfig, train: LabeledImages) -> tuple[int, int, int]:
    """(H, W, C): the config's, else the model's default size with the data's channels.

    With ``--weights imagenet`` the channels default to 3 (gray images are repeated to RGB);
    with a ``.keras`` weights file, size and channels default to that model's.
    """
    source = _weights_card(cfg)
    default = (tuple(source.input_shape) if source is not None
               else default_input_shape(cfg.model, builder_for(cfg.model, cfg.weights)))
    h, w = cfg.image_hw or default[:2]
    channels = cfg.channels
    if channels is None:
        if cfg.weights == "imagenet":
            channels = 3
        elif source is not None:
            channels = default[2]
        elif train.images is not None:
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
    """The model of ``cfg``, built under its mixed-precision policy."""
    with dtype_policy(cfg.mixed_precision):
        return _build(cfg, splits, input_shape)


def _build(cfg: TrainConfig, splits: Splits, input_shape: tuple[int, int, int]) -> keras.Model:
    options = dict(cfg.model_options)
    builder = builder_for(cfg.model, cfg.weights)
    if cfg.dropout is not None and builder == "foveal":
        options["dropout"] = cfg.dropout
    stats = _standardize_stats(splits.train, input_shape[2]) if cfg.preprocessing == "standardize" else None
    if cfg.weights is None and builder == "foveal":
        return build_model(cfg.model, num_classes=splits.train.num_classes, input_shape=input_shape,
                           preprocessing=cfg.preprocessing, preprocessing_stats=stats,
                           l1=cfg.l1, l2=cfg.l2, **options)
    if stats is not None:
        if builder == "keras":
            raise ConfigError("preprocessing 'standardize' is for foveal's own architectures",
                              hint="keras.applications models use the preprocessing their weights expect")
        options["preprocessing_stats"] = stats
    model = build_pretrained(cfg.model, weights=cfg.weights, num_classes=splits.train.num_classes,
                             input_shape=input_shape, preprocessing=cfg.preprocessing,
                             dropout=cfg.dropout if builder == "keras" else None,
                             class_names=list(splits.train.class_names), **options)
    if cfg.l1 or cfg.l2:
        add_weight_penalty(model, l1=cfg.l1, l2=cfg.l2)
    report = getattr(model, "_foveal_weight_transfer", None)
    say(report.summary() if report is not None else f"weights: {cfg.weights or 'random'} ({builder} {cfg.model})")
    return model


def _init_whitening(model: keras.Model, cfg: TrainConfig, train: LabeledImages,
                    input_shape: tuple[int, int, int], sample: int = 5000) -> None:
    """Set the frozen ``whiten`` layer (airbench) from a seeded sample of training images."""
    rng = np.random.default_rng(cfg.seed)
    chosen = np.sort(rng.choice(len(train), min(sample, len(train)), replace=False))
    ds = make_pipeline(train.subset(chosen), image_size=input_shape[:2], channels=input_shape[2], batch_size=500,
                       training=False, keep_aspect=cfg.keep_aspect, skip_invalid=cfg.skip_invalid, cache="none")
    images = np.concatenate([np.asarray(x) for x, _ in ds])
    init_whitening(model, images)
    say(f"whitening layer set from the 2x2 patches of {len(images)} training images (frozen)")


def _compile(model: keras.Model, cfg: TrainConfig, steps_per_epoch: int, num_classes: int) -> None:
    lr = make_schedule(cfg.schedule, learning_rate=cfg.learning_rate, steps_per_epoch=steps_per_epoch,
                       epochs=cfg.epochs, warmup_epochs=cfg.warmup_epochs, step_epochs=cfg.step_epochs,
                       gamma=cfg.gamma, min_learning_rate=cfg.min_learning_rate)
    optimizer = make_optimizer(cfg.optimizer, lr, momentum=cfg.momentum, nesterov=cfg.nesterov,
                               weight_decay=cfg.weight_decay, bias_lr_scale=cfg.bias_lr_scale)
    if is_mixed(model):
        optimizer = with_loss_scaling(optimizer, cfg.mixed_precision)
    k = min(cfg.top_k, num_classes - 1)
    if cfg.distill_from:
        from foveal.shrink.distill import DistillationLoss, HardLabelAccuracy

        loss: Any = DistillationLoss(cfg.distill_temperature, cfg.distill_alpha, cfg.label_smoothing)
        metrics: list[Any] = [HardLabelAccuracy(1, name="accuracy")]
        if k > 1:
            metrics.append(HardLabelAccuracy(k, name=f"top_{k}_accuracy"))
    else:
        loss = keras.losses.CategoricalCrossentropy(label_smoothing=cfg.label_smoothing)
        metrics = [keras.metrics.CategoricalAccuracy(name="accuracy")]
        if k > 1:
            metrics.append(keras.metrics.TopKCategoricalAccuracy(k=k, name=f"top_{k}_accuracy"))
    jit = {"auto": "auto", "on": True, "off": False}[cfg.jit_compile]
    model.compile(optimizer=optimizer, loss=loss, metrics=metrics, jit_compile=jit)
    if jit is True and not model.jit_compile:
        say("note: XLA is off despite --jit-compile on (Keras disables it under TensorFlow op "
            "determinism: add --no-deterministic)")


def _teacher(cfg: TrainConfig, class_names: list[str]) -> keras.Model | None:
    """The distillation teacher, checked against the data's classes; None without distillation."""
    if not cfg.distill_from:
        return None
    import foveal.shrink.distill  # noqa: F401  registers the loss and metric
    from foveal.models.io import load_model

    teacher, card = load_model(cfg.distill_from)
    if card.class_names != list(class_names):
        raise ConfigError(f"teacher {cfg.distill_from} knows classes {card.class_names[:10]}, "
                          f"the data has {list(class_names)[:10]}",
                          hint="distil from a teacher trained on the same classes")
    teacher.trainable = False
    return teacher


def _monitor_mode(monitor: str) -> str:
    return "min" if "loss" in monitor else "max"


def train(config: TrainConfig | None = None, *, resume: str | Path | None = None,
          callbacks: list[keras.callbacks.Callback] | None = None, **overrides: Any) -> TrainResult:
    """Train a classifier and write a run folder; see the module docstring.

    Args:
        config: the options (defaults to :class:`TrainConfig`'s).
        resume: a run folder to continue from its last finished epoch; its ``config.yaml``
            is used, with ``overrides`` (e.g. ``epochs=20`` to train longer) on top.
        callbacks: extra Keras callbacks for every ``fit`` (e.g. a benchmark's per-epoch test
            evaluation; setting ``model.stop_training`` ends the run early, as finished).
        **overrides: options that replace those of ``config``.

    Returns:
        A :class:`TrainResult`; ``interrupted`` is True when a signal stopped the run. On a
        multi-worker run's non-chief workers, ``metrics`` is None (the chief scores).

    Raises:
        FovealError: for user errors, including a worker that cannot be reached at start-up
            or is lost during training (``--distribute multi-worker``).
    """
    state: dict[str, Any] | None = None
    if resume is None:
        config, overrides = _with_recipe(config, overrides), {}
    cfg, run_dir, state = resolve_run(TrainConfig, config, resume, overrides)
    # A multi-worker strategy must exist before any other TensorFlow work in the process.
    dist = distribute.start(cfg.distribute, workers=cfg.workers, worker_index=cfg.worker_index,
                            timeout=cfg.worker_timeout, collective_timeout=cfg.collective_timeout,
                            devices=cfg.devices, say=say)
    try:
        dist.check_same_options(_as_dict(cfg))
        return _train(cfg, run_dir, state, dist, list(callbacks or []))
    finally:
        dist.cleanup()


def _train(cfg: TrainConfig, public_dir: Path, state: dict[str, Any] | None, dist: distribute.Distribution,
           callbacks: list[keras.callbacks.Callback]) -> TrainResult:
    # Unknown names and missing files fail before any data is read; a resumed run needs no
    # weights file any more (its weights are in last.keras).
    saved_card = _saved_card(public_dir) if state is not None else None
    _check_model_and_weights(cfg, check_file=state is None)
    set_determinism(cfg.seed, cfg.deterministic)

    splits = prepare_data(cfg)
    train_data = oversample(splits.train, cfg.seed) if cfg.oversample else splits.train
    input_shape = tuple(saved_card.input_shape) if saved_card else input_shape_for(cfg, splits.train)
    class_names = splits.train.class_names
    if dist.active and cfg.batch_size < dist.num_replicas:
        raise ConfigError(f"--batch-size {cfg.batch_size} is smaller than the {dist.num_replicas} replicas",
                          hint="the batch size is the global batch: give every replica at least one image")
    steps_per_epoch = (distribute.batch_layout(len(train_data), cfg.batch_size, dist.num_replicas).steps
                       if dist.active else math.ceil(len(train_data) / cfg.batch_size))
    if steps_per_epoch < 1:
        raise DataError(f"{cfg.data}: {len(train_data)} training image(s) cannot fill one step of "
                        f"{dist.num_replicas} replicas")
    # Workers other than the chief write into a private copy of the run folder.
    run_dir = dist.private_run_dir(public_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    # The cluster is per launch, not part of the run: a resume names it again.
    atomic_write_text(run_dir / "config.yaml", configtools.to_yaml(replace(cfg, workers=None, worker_index=None)))
    saved_cfg, cfg = cfg, _scaled(cfg, dist)

    phases = Phases.from_config(cfg)
    total = cfg.epochs + cfg.fine_tune_epochs
    start_epoch, phase, phase_start = 0, 1, 0
    if state is not None:
        from foveal.models.io import load_model

        start_epoch = int(state["epoch"])
        phase, phase_start = int(state.get("phase", 1)), int(state.get("phase_start", 0))
        if phase == 1 and phases.two_phase and start_epoch >= cfg.epochs:
            phase, phase_start = 2, start_epoch
        if cfg.distill_from:
            import foveal.shrink.distill  # noqa: F401  registers the saved loss and metrics
        with dist.scope():
            model, _ = load_model(run_dir / "last.keras", compile=True)
            if cfg.mixed_precision != "none":
                model = _mixed_copy(model, cfg, steps_per_epoch, len(class_names))
        say(f"resuming {public_dir} after epoch {start_epoch} of {total}"
            + (f" (phase {phase})" if phases.two_phase else ""))
    else:
        with dist.scope():
            model = _new_model(cfg, splits, input_shape)
        if has_whitening(model):
            _init_whitening(model, cfg, train_data, input_shape)
    check_training_memory(model, cfg.batch_size)  # a clear refusal, not ResourceExhaustedError mid-fit
    builder = saved_card.training.get("builder") if saved_card else None
    training_facts: dict[str, Any] = {"data": cfg.data, "run": run_dir.name,
                                      "builder": builder or builder_for(cfg.model, cfg.weights)}
    if cfg.weights is not None:
        training_facts["weights"] = cfg.weights
    training_facts["mixed_precision"] = cfg.mixed_precision
    if cfg.recipe:
        training_facts["recipe"] = cfg.recipe
    if dist.active:
        training_facts["distribute"] = {"strategy": cfg.distribute, "replicas": dist.num_replicas,
                                        "workers": dist.num_workers, "global_batch": cfg.batch_size}
    if cfg.learning_rate != saved_cfg.learning_rate:
        training_facts["learning_rate"] = cfg.learning_rate
    card = ModelCard(architecture=cfg.model, class_names=list(class_names), input_shape=input_shape,
                     preprocessing=_preprocessing_of(model), keep_aspect=cfg.keep_aspect,
                     training=training_facts)

    def save(m: keras.Model, path: Path) -> None:
        save_model(_float32_for_saving(m), path, card)

    _describe(cfg, splits, model, public_dir)
    if dist.active:
        say(dist.describe(cfg.batch_size))
        if not dist.is_chief:
            say(f"worker {dist.worker_index} writes no run folder (the chief does); it keeps a private copy "
                f"in {run_dir} until the end")
    history: dict[str, list[float]] = {k: list(v) for k, v in (state or {}).get("history", {}).items()}
    run = _Run(cfg, splits, train_data, input_shape, run_dir, save, history, steps_per_epoch, len(class_names),
               callbacks, dist)
    interrupted, seconds, fitted = False, 0.0, False
    if run.out_of_time:
        say(f"time budget of {cfg.time_budget:g} s already spent; scoring best.keras")
    elif phase == 1:
        if start_epoch < cfg.epochs:
            restored = (state or {}).get("callbacks", {}) if state is not None else None
            if cfg.bottleneck:
                interrupted, seconds = _fit_bottleneck(run, model, phases, start_epoch, restored)
            else:
                _prepare_phase(run, model, phases, 1, resumed=state is not None)
                interrupted, seconds = _fit(run, model, start_epoch, cfg.epochs, phase=1, phase_start=0,
                                            restored=restored)
            fitted = True
        if not interrupted and phases.two_phase and not run.out_of_time:
            phase, phase_start = 2, int((cb.read_state(run_dir) or {}).get("epoch", start_epoch))
            _enter_phase_two(run_dir, phase_start)
            start_epoch, state = phase_start, None
    if phase == 2 and not interrupted and not run.out_of_time:
        fresh = start_epoch <= phase_start
        _prepare_phase(run, model, phases, 2, resumed=not fresh)
        end = phase_start + cfg.fine_tune_epochs
        if start_epoch < end:
            restored = None if fresh else (state or {}).get("callbacks", {})
            interrupted, more = _fit(run, model, start_epoch, end, phase=2, phase_start=phase_start,
                                     restored=restored)
            seconds += more
            fitted = True
    if interrupted:
        return TrainResult(public_dir, history, None, interrupted=True)
    if run.budget is not None and run.budget.exhausted:
        say(f"time budget of {cfg.time_budget:g} s reached after {len(history.get('loss', []))} epoch(s)")
    if fitted:
        mark(run_dir, "trained", train_seconds=seconds, time_budget_reached=run.out_of_time)
    if not dist.is_chief:
        say(f"worker {dist.worker_index} done; the chief scores the model and writes the report")
        return TrainResult(public_dir, history, None)
    if dist.active:  # score with a plain copy: evaluation under the strategy would need every worker
        from foveal.models.io import load_model

        best = run_dir / "best.keras"
        model = load_model(best if best.is_file() else run_dir / "last.keras")[0]
    metrics = _finish(saved_cfg, model, card, splits, run_dir, history, phases)
    return TrainResult(run_dir, history, metrics)


def _scaled(cfg: TrainConfig, dist: distribute.Distribution) -> TrainConfig:
    """``cfg`` with the learning rates of ``--lr-scaling`` (saying what was done when it matters)."""
    lr, message = distribute.scale_learning_rate(cfg.learning_rate, cfg.batch_size, cfg.lr_reference_batch,
                                                 cfg.lr_scaling)
    if cfg.lr_scaling != "none" or dist.active:
        say(message)
    if cfg.lr_scaling == "none":
        return cfg
    fine_tune = cfg.fine_tune_learning_rate
    if fine_tune is not None:
        fine_tune = distribute.scale_learning_rate(fine_tune, cfg.batch_size, cfg.lr_reference_batch,
                                                   cfg.lr_scaling)[0]
    return replace(cfg, learning_rate=lr, fine_tune_learning_rate=fine_tune)


def _with_recipe(config: TrainConfig | None, overrides: dict[str, Any]) -> TrainConfig:
    """``config`` with ``overrides`` on top and its recipe filled in where neither set a value."""
    cfg = config or TrainConfig()
    explicit = cfg.explicit_options | set(k.replace("-", "_") for k in overrides)
    if overrides:
        cfg = configtools.from_mapping(TrainConfig, {**_as_dict(cfg), **overrides})
    return resolve_recipe(cfg, explicit)


def _float32_for_saving(model: keras.Model) -> keras.Model:
    """A float32 copy of a mixed-precision model, with its compiled optimizer and loss, so
    that ``last.keras`` resumes (the optimizer state is shared, not copied)."""
    if not is_mixed(model):
        return model
    copy = as_float32(model)
    if getattr(model, "optimizer", None) is not None and getattr(model, "loss", None) is not None:
        optimizer = model.optimizer
        if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
            optimizer = optimizer.inner_optimizer
        copy.compile(optimizer=optimizer, loss=model.loss, metrics=None)
    return copy


def _mixed_copy(model: keras.Model, cfg: TrainConfig, steps_per_epoch: int, num_classes: int) -> keras.Model:
    """The resumed (float32) ``model`` rebuilt under the run's mixed policy, compiled, with the
    saved optimizer state carried over variable by variable (same structure, same order)."""
    mixed = with_policy(model, cfg.mixed_precision)
    saved = getattr(model, "optimizer", None)
    _compile(mixed, cfg, steps_per_epoch, num_classes)
    if saved is not None and saved.built:
        optimizer = mixed.optimizer
        inner = getattr(optimizer, "inner_optimizer", optimizer)
        inner.build(mixed.trainable_variables)
        if len(inner.variables) == len(saved.variables):
            for target, value in zip(inner.variables, saved.variables):
                target.assign(value)
    return mixed


def _saved_card(run_dir: Path) -> ModelCard | None:
    from foveal.models.io import read_card

    return read_card(run_dir / "last.keras")


def _check_model_and_weights(cfg: TrainConfig, *, check_file: bool = True) -> None:
    from foveal.errors import ModelError
    from foveal.transfer.pretrained import PRETRAINED

    if cfg.weights == "imagenet":
        if cfg.model.lower() not in PRETRAINED:
            builder_for(cfg.model, None)  # an unknown name says so
            raise ModelError(f"foveal's own {cfg.model!r} has no ImageNet weights",
                             hint=f"models with ImageNet weights: {', '.join(PRETRAINED)}")
        return
    if cfg.weights is not None and check_file and not Path(cfg.weights).is_file():
        raise ModelError(f"weights file not found: {cfg.weights}",
                         hint="--weights takes 'imagenet', a .keras model file or a .weights.h5/.h5 file")
    builder_for(cfg.model, cfg.weights if check_file else None)


@dataclass
class _Run:
    """What every phase of one run shares."""

    cfg: TrainConfig
    splits: Splits
    train_data: LabeledImages
    input_shape: tuple[int, int, int]
    run_dir: Path
    save: Any
    history: dict[str, list[float]]
    steps_per_epoch: int
    num_classes: int
    extra_callbacks: list[Any]
    dist: distribute.Distribution
    budget: Any = None  # the TimeBudget of the current fit, with --time-budget

    @property
    def out_of_time(self) -> bool:
        """True once --time-budget is spent (counting earlier sessions of a resumed run)."""
        if not self.cfg.time_budget:
            return False
        return (self.budget is not None and self.budget.exhausted) or \
            sum(self.history.get("epoch_seconds", [])) >= self.cfg.time_budget


def _phase_config(cfg: TrainConfig, phases: Phases, phase: int) -> TrainConfig:
    """The options a phase compiles with: phase 2 has its own rate and schedule length."""
    if phase == 1:
        return cfg
    return replace(cfg, learning_rate=phases.learning_rate_of(2), epochs=max(cfg.fine_tune_epochs, 1))


def _prepare_phase(run: _Run, model: keras.Model, phases: Phases, phase: int, *, resumed: bool) -> None:
    """Set the phase's trainable flags and compile: trainable changes take effect only in a
    freshly compiled model. A resumed phase keeps its restored optimizer (with its state)
    when the flags it was saved with are unchanged."""
    manages_flags = phases.freeze is not None or phases.two_phase
    before = [v.path for v in model.trainable_variables]
    if manages_flags:
        phases.apply(model, phase)
    unchanged = before == [v.path for v in model.trainable_variables]
    if resumed and unchanged and getattr(model, "optimizer", None) is not None:
        return
    if resumed and not unchanged:
        say("the trainable layers differ from the saved run's: the optimizer starts afresh")
    with run.dist.scope():  # the optimizer belongs to the strategy it is created under
        _compile(model, _phase_config(run.cfg, phases, phase), run.steps_per_epoch, run.num_classes)
    if manages_flags:
        from foveal.transfer.freeze import trainable_counts

        c = trainable_counts(model)
        say(f"phase {phase}: {c.trainable_params:,} trainable parameters in {c.trainable_layers} layer(s), "
            f"{c.frozen_layers} layer(s) frozen; learning rate {phases.learning_rate_of(phase):g}")


def _enter_phase_two(run_dir: Path, phase_start: int) -> None:
    """Record in state.json that phase 1 is over, so a resume goes on with phase 2."""
    state = cb.read_state(run_dir)
    if state is not None:
        state.update(phase=2, phase_start=phase_start, callbacks={})
        atomic_write_text(run_dir / cb.STATE_FILE, json.dumps(state, indent=1))


class _PhaseCheckpoint(cb.RunCheckpoint):
    """RunCheckpoint that records the phase of each epoch in the history (not in the logs
    other callbacks see)."""

    def __init__(self, *args: Any, phase: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.phase = phase

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, {**(logs or {}), "phase": self.phase})


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
    phases = Phases.from_config(cfg)
    if phases.freeze is not None or phases.two_phase:
        say(phases.describe() + (" (phase 1 on bottleneck features)" if cfg.bottleneck else ""))
    say(f"run folder: {run_dir}")


def _fit(run: _Run, model: keras.Model, start_epoch: int, end_epoch: int, *, phase: int, phase_start: int,
         restored: dict[str, Any] | None) -> tuple[bool, float]:
    """Train on images from ``start_epoch`` to ``end_epoch``; return (interrupted, seconds)."""
    cfg, splits = run.cfg, run.splits
    if run.dist.active:
        return _fit_distributed(run, model, start_epoch, end_epoch, phase=phase, phase_start=phase_start,
                                restored=restored)
    size = run.input_shape[:2]
    common = dict(image_size=size, channels=run.input_shape[2], batch_size=cfg.batch_size,
                  keep_aspect=cfg.keep_aspect, skip_invalid=cfg.skip_invalid)
    # A resumed run (or a new phase) must not replay the shuffles of the first epochs.
    train_ds = make_pipeline(run.train_data, training=True, augment=cfg.augment, cache=cfg.cache,
                             shuffle_buffer=cfg.shuffle_buffer, seed=cfg.seed + start_epoch, **common)
    val_ds = make_pipeline(splits.val, training=False, cache=cfg.cache, **common) if splits.val else None
    teacher = _teacher(cfg, splits.train.class_names)
    if teacher is not None:
        from foveal.shrink.distill import with_teacher_targets

        train_ds = with_teacher_targets(train_ds, teacher, cfg.distill_temperature)
        val_ds = with_teacher_targets(val_ds, teacher, cfg.distill_temperature) if val_ds is not None else None
    loader = (lambda: weights_of(run.run_dir / "best.keras", model)) if restored is not None else None
    callbacks, guard = _callbacks(run, model, has_val=val_ds is not None, phase=phase, phase_start=phase_start,
                                  restored=restored, best_weights_loader=loader, save=run.save)
    return _run_fit(run, guard, lambda: model.fit(
        train_ds, validation_data=val_ds, epochs=end_epoch, initial_epoch=start_epoch, callbacks=callbacks,
        class_weight=_class_weight(run), verbose=_verbosity(cfg), shuffle=False))


def _fit_distributed(run: _Run, model: keras.Model, start_epoch: int, end_epoch: int, *, phase: int,
                     phase_start: int, restored: dict[str, Any] | None) -> tuple[bool, float]:
    """``_fit`` under a tf.distribute strategy: per-replica batches of the global batch plan
    (see :mod:`foveal.training.distribute`), the same callbacks."""
    cfg, splits, dist = run.cfg, run.splits, run.dist
    common = dict(image_size=run.input_shape[:2], channels=run.input_shape[2], batch_size=cfg.batch_size,
                  seed=cfg.seed, keep_aspect=cfg.keep_aspect, cache=cfg.cache, shuffle_buffer=cfg.shuffle_buffer)
    with decode_errors_as_data_errors(cfg.data):  # in-memory data is decoded here, once
        train_b = dist.batches(run.train_data, training=True, epochs=(start_epoch, end_epoch),
                               augment=cfg.augment, class_weight=_class_weight(run), **common)
        val_b = dist.batches(splits.val, training=False, **common) if splits.val is not None else None
    how = {"examples": "each worker loads its replicas' slices of every global batch",
           "files": "each worker reads only its own image files",
           "records": "each worker keeps every n-th record"}[train_b.sharding]
    say(f"data sharding: {train_b.sharding} ({how}); {train_b.steps} steps per epoch"
        + (f"; the last {train_b.dropped} example(s) of each epoch are left out (fewer than the replicas)"
           if train_b.dropped else ""))
    loader = (lambda: weights_of(run.run_dir / "best.keras", model)) if restored is not None else None
    callbacks, guard = _callbacks(run, model, has_val=val_b is not None, phase=phase, phase_start=phase_start,
                                  restored=restored, best_weights_loader=loader, save=run.save)

    def fit() -> None:
        with dist.fitting(model, train_b.element_spec):
            model.fit(train_b.dataset, validation_data=val_b.dataset if val_b is not None else None,
                      epochs=end_epoch, initial_epoch=start_epoch, steps_per_epoch=train_b.steps,
                      validation_steps=val_b.steps if val_b is not None else None, callbacks=callbacks,
                      verbose=_verbosity(cfg), shuffle=False)

    return _run_fit(run, guard, fit)


def _fit_bottleneck(run: _Run, model: keras.Model, phases: Phases, start_epoch: int,
                    restored: dict[str, Any] | None) -> tuple[bool, float]:
    """Phase 1 on cached features of the frozen base: only the head's layers (shared with
    ``model``) train; checkpoints save the whole ``model``. A resumed bottleneck phase keeps
    its weights but starts the head's optimizer afresh."""
    from foveal.transfer.bottleneck import compute_features, feature_split, features_dataset

    cfg, splits = run.cfg, run.splits
    phases.apply(model, 1)
    extractor, head = feature_split(model)
    geometry = dict(image_size=run.input_shape[:2], channels=run.input_shape[2], batch_size=cfg.batch_size,
                    keep_aspect=cfg.keep_aspect, skip_invalid=cfg.skip_invalid,
                    cache_dir=Path(cfg.output) / ".cache" / "bottleneck")
    started = time.perf_counter()
    train_f = compute_features(extractor, run.train_data, **geometry)
    val_f = compute_features(extractor, splits.val, **geometry) if splits.val is not None else None
    how = "read from the cache" if train_f.from_cache else f"computed in {time.perf_counter() - started:.1f} s"
    say(f"bottleneck features: {train_f.features.shape[1]} per image, {how} ({train_f.path.parent})")
    if cfg.augment != "none":
        say("note: augmentation does not apply to bottleneck features (phase 1); it does in phase 2")
    _compile(head, cfg, run.steps_per_epoch, run.num_classes)

    batches = dict(num_classes=run.num_classes, batch_size=cfg.batch_size)
    train_ds = features_dataset(train_f.features, train_f.labels, seed=cfg.seed + start_epoch, **batches)
    val = features_dataset(val_f.features, val_f.labels, **batches) if val_f is not None else None
    loader = (lambda: _headweights_of(run.run_dir / "best.keras", model, head)) if restored is not None else None
    callbacks, guard = _callbacks(run, head, has_val=val is not None, phase=1, phase_start=0, restored=restored,
                                  best_weights_loader=loader, save=lambda _head, path: run.save(model, path))
    return _run_fit(run, guard, lambda: head.fit(
        train_ds, validation_data=val, epochs=cfg.epochs, initial_epoch=start_epoch, callbacks=callbacks,
        class_weight=_class_weight(run), verbose=_verbosity(cfg), shuffle=False))


def _callbacks(run: _Run, fit_model: keras.Model, *, has_val: bool, phase: int, phase_start: int,
               restored: dict[str, Any] | None, best_weights_loader, save) -> tuple[list, cb.InterruptGuard]:
    cfg = run.cfg
    monitor = cfg.monitor if has_val or not cfg.monitor.startswith("val_") else cfg.monitor[4:]
    mode = _monitor_mode(monitor)
    restored = restored or {}
    stateful: dict[str, Any] = {}
    callbacks: list[keras.callbacks.Callback] = []
    if cfg.early_stopping:
        stateful["early_stopping"] = cb.ResumableEarlyStopping(
            restored=restored.get("early_stopping"), monitor=monitor, mode=mode, patience=cfg.early_stopping,
            restore_best_weights=True, best_weights_loader=best_weights_loader)
    if cfg.schedule == "plateau":
        stateful["plateau"] = cb.ResumablePlateau(
            restored=restored.get("plateau"), monitor=monitor, mode=mode, factor=cfg.gamma,
            patience=cfg.plateau_patience, min_lr=cfg.min_learning_rate)
    callbacks += stateful.values()
    if cfg.lookahead and phase == 1:
        from foveal.training.lookahead import Lookahead

        callbacks.append(Lookahead(total_steps=run.steps_per_epoch * cfg.epochs))
    if cfg.time_budget:
        from foveal.training.budget import TimeBudget

        run.budget = TimeBudget(cfg.time_budget, spent=float(sum(run.history.get("epoch_seconds", []))))
        callbacks.append(run.budget)
    guard = cb.InterruptGuard()
    best = (cb.read_state(run.run_dir) or {}).get("best")
    callbacks.append(_PhaseCheckpoint(run.run_dir, save, monitor=monitor, mode=mode, history=run.history,
                                      best=best, stateful=stateful,
                                      extra_state={"phase": phase, "phase_start": phase_start}, phase=phase))
    if cfg.tensorboard:
        callbacks.append(cb.tensorboard_callback(run.run_dir))
    callbacks += run.extra_callbacks
    callbacks.append(guard)
    return callbacks, guard


def _class_weight(run: _Run) -> dict[int, float] | None:
    if run.cfg.class_weight != "balanced":
        return None
    return balanced_class_weights(run.train_data.labels, run.train_data.num_classes)


def _verbosity(cfg: TrainConfig) -> int:
    return (1 if sys.stdout.isatty() else 2) if cfg.progress else 0


def _run_fit(run: _Run, guard: cb.InterruptGuard, fit) -> tuple[bool, float]:
    """Call ``fit()`` under the signal guard; return (interrupted, seconds)."""
    started = time.perf_counter()
    try:
        with guard, decode_errors_as_data_errors(run.cfg.data):
            fit()
    except TrainingInterrupted as exc:
        done = (cb.read_state(run.run_dir) or {}).get("epoch", 0)
        mark(run.run_dir, "interrupted")
        say(f"\ninterrupted by signal {exc.signum} after {done} finished epoch(s); "
            f"continue with: foveal train --resume {run.run_dir}")
        return True, time.perf_counter() - started
    return False, time.perf_counter() - started


def _headweights_of(path: Path, model: keras.Model, head: keras.Model) -> list[np.ndarray] | None:
    """The head's weights (in ``head.get_weights()`` order) as saved in the full model ``path``."""
    saved = saved_model(path)
    if saved is None:
        return None
    return [w for layer in head.layers if layer.weights for w in saved.get_layer(layer.name).get_weights()]


def _finish(cfg: TrainConfig, model: keras.Model, card: ModelCard, splits: Splits, run_dir: Path,
            history: dict[str, list[float]], phases: Phases | None = None) -> dict[str, Any] | None:
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
                       keep_misclassified=cfg.report_misclassified, skip_invalid=cfg.skip_invalid, tta=cfg.tta)
        metrics = scored.metrics | {"split": part_name, "tta": cfg.tta}
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
    if cfg.weights is not None:
        summary["initial weights"] = cfg.weights
    if phases is not None and (phases.freeze is not None or phases.two_phase):
        summary["phases"] = phases.describe() + (" (phase 1 on bottleneck features)" if cfg.bottleneck else "")
    if metrics is not None:
        summary[f"{part_name} accuracy"] = round(metrics["accuracy"], 4)
    misclassified = None
    if scored is not None and scored.misclassified_titles:
        misclassified = (scored.misclassified_images, scored.misclassified_titles)
    report = write_classification_report(
        run_dir / "report.html", title=f"foveal run {run_dir.name}", summary=summary,
        config=_as_dict(cfg), history={k: v for k, v in history.items() if k != "phase"}, metrics=metrics,
        misclassified=misclassified)
    mark(run_dir, "done", best=state.get("best"))
    say(f"report: {report}")
    return metrics


__all__ = ["TrainResult", "train", "replace"]
