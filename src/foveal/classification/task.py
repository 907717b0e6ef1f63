"""Image classification as a task of the run engine: datasets, the classifier, its loss and
scoring, and through the engine's hooks recipes, transfer phases and the bottleneck phase.

Example:
    >>> from foveal.engine.run import train_task
    >>> train_task(ClassifyTask(), TrainConfig(data="digits", model="lenet5", epochs=2))  # doctest: +SKIP
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from foveal import configtools
from foveal.config import TrainConfig
from foveal.engine.optim import build_before_fit
from foveal.engine.plugin import Phase, RunData, TaskPlugin, training_summary
from foveal.errors import ConfigError, DataError
from foveal.training.runs import saved_model, say
from foveal.utils_io import write_metrics

if TYPE_CHECKING:
    import keras

    from foveal.data.source import LabeledImages, Splits
    from foveal.engine.run import Run
    from foveal.models import ModelCard
    from foveal.transfer.finetune import Phases


class ClassifyTask(TaskPlugin):
    """The engine's hooks for image classifiers."""

    name = "classify"
    config_class = TrainConfig
    data_help = "an image folder, IDX/CIFAR folder, .npz or .tfrecord dataset"
    run_name_prefix = ""
    learning_rate_fields = ("learning_rate", "fine_tune_learning_rate")
    history_phase = True
    seconds_format = "g"
    supports_distribution = True

    # ------------------------------------------------------------------------------ set-up
    def prepare(self, config: TrainConfig | None, overrides: dict[str, Any],
                resume: str | Path | None) -> tuple[TrainConfig | None, dict[str, Any]]:
        if resume is not None:  # a resumed run's config.yaml already holds its recipe's values
            return config, overrides
        cfg = config or TrainConfig()
        explicit = cfg.explicit_options | set(k.replace("-", "_") for k in overrides)
        if overrides:
            cfg = configtools.from_mapping(TrainConfig, {**asdict(cfg), **overrides})
        from foveal.training.recipes import resolve_recipe

        return resolve_recipe(cfg, explicit), {}

    def check(self, cfg: TrainConfig) -> None:
        check_model_and_weights(cfg, check_file=True)

    def check_resumed(self, cfg: TrainConfig) -> None:
        check_model_and_weights(cfg, check_file=False)  # its weights are in last.keras now

    def load_data(self, cfg: TrainConfig) -> RunData:
        from foveal.data.balance import oversample

        splits = prepare_data(cfg)
        train = oversample(splits.train, cfg.seed) if cfg.oversample else splits.train
        data = RunData(train, splits.val, splits.test, list(splits.train.class_names), extra={"splits": splits})
        extra = load_extra(cfg, data.class_names)
        if extra is not None:
            from foveal.data.epochs import mixed_counts

            data.extra["extra_train"] = extra
            real, more = mixed_counts(len(train), cfg.extra_ratio)
            say(f"extra training data: {cfg.extra_data} ({len(extra)} images); each epoch mixes the {real} "
                f"training images with {more} of them (--extra-ratio {cfg.extra_ratio:g})")
        return data

    def epoch_examples(self, cfg: TrainConfig, data: RunData) -> int:
        count = len(data.train)
        if "extra_train" in data.extra:
            from foveal.data.epochs import mixed_counts

            count = sum(mixed_counts(count, cfg.extra_ratio))
        return count

    def build(self, cfg: TrainConfig, data: RunData, run_dir: Path) -> keras.Model:
        from foveal.transfer.pretrained import builder_for

        shape = data.extra["input_shape"] = input_shape_for(cfg, data.extra["splits"].train)
        data.extra["builder"] = builder_for(cfg.model, cfg.weights)
        data.extra["new"] = True
        return _build(cfg, data.extra["splits"], shape)

    def restore(self, cfg: TrainConfig, data: RunData, model: keras.Model, card: ModelCard) -> None:
        from foveal.transfer.pretrained import builder_for

        data.extra["input_shape"] = tuple(card.input_shape)
        data.extra["builder"] = card.training.get("builder") or builder_for(cfg.model, cfg.weights)

    def ready(self, cfg: TrainConfig, data: RunData, model: keras.Model) -> None:
        from foveal.training.whitening import has_whitening

        if data.extra.get("new") and has_whitening(model):
            _init_whitening(model, cfg, data.train, data.extra["input_shape"])

    def compile(self, cfg: TrainConfig, model: keras.Model, data: RunData, steps_per_epoch: int) -> None:
        compile_classifier(model, cfg, steps_per_epoch, len(data.class_names))

    def card(self, cfg: TrainConfig, data: RunData, model: keras.Model, run_dir: Path) -> ModelCard:
        from foveal.models import ModelCard

        facts: dict[str, Any] = {"data": cfg.data, "run": run_dir.name, "builder": data.extra["builder"]}
        if cfg.extra_data:
            facts |= {"extra_data": cfg.extra_data, "extra_ratio": cfg.extra_ratio}
        facts |= {k: getattr(cfg, k) for k in ("weights", "mixed_precision", "recipe") if getattr(cfg, k) is not None}
        # the top-level preprocess layer's mode (a base nested inside keeps its own)
        preprocess = next((layer for layer in model.layers if layer.name == "preprocess"), None)
        return ModelCard(architecture=cfg.model, class_names=list(data.class_names),
                         input_shape=data.extra["input_shape"], preprocessing=getattr(preprocess, "mode", "none"),
                         keep_aspect=cfg.keep_aspect, training=facts)

    def describe(self, cfg: TrainConfig, data: RunData, model: keras.Model) -> list[str]:
        splits = data.extra["splits"]
        sizes = ", ".join(f"{name} {len(part)}" for name, part in
                          (("train", splits.train), ("val", splits.val), ("test", splits.test)) if part is not None)
        mixed = (f"; mixed with {cfg.extra_data} ({len(data.extra['extra_train'])} images) at ratio "
                 f"{cfg.extra_ratio:g}" if "extra_train" in data.extra else "")
        lines = [f"data: {cfg.data} ({splits.train.num_classes} classes; {sizes}{mixed})",
                 f"model: {cfg.model}, input {model.input_shape[1:]}, {model.count_params():,} parameters"]
        phases = _phases_text(cfg)
        return lines + ([phases] if phases else [])

    # ---------------------------------------------------------------------------- training
    def phases(self, cfg: TrainConfig) -> list[Phase]:
        plan = _plan(cfg)
        if plan.freeze is None and not plan.two_phase:
            return [Phase(1, cfg.epochs)]

        def flags(phase: int):
            def apply(model: keras.Model) -> None:
                from foveal.transfer.freeze import trainable_counts

                plan.apply(model, phase)
                c = trainable_counts(model)
                say(f"phase {phase}: {c.trainable_params:,} trainable parameters in {c.trainable_layers} layer(s), "
                    f"{c.frozen_layers} layer(s) frozen; learning rate {plan.learning_rate_of(phase):g}")
            return apply

        first = Phase(1, cfg.epochs, flags(1))
        if not plan.two_phase:
            return [first]
        return [first, Phase(2, cfg.fine_tune_epochs, flags(2), learning_rate=plan.learning_rate_of(2),
                             schedule_epochs=max(cfg.fine_tune_epochs, 1))]

    def pipelines(self, cfg: TrainConfig, data: RunData, *, seed: int,
                  start_epoch: int | None = None) -> tuple[Any, Any | None]:
        from foveal.data.pipeline import make_pipeline

        shape = data.extra["input_shape"]
        common = dict(image_size=shape[:2], channels=shape[2], batch_size=cfg.batch_size,
                      keep_aspect=cfg.keep_aspect, skip_invalid=cfg.skip_invalid)
        train = make_pipeline(data.train, training=True, augment=cfg.augment, cache=cfg.cache,
                              shuffle_buffer=cfg.shuffle_buffer, seed=seed, start_epoch=start_epoch,
                              extra=data.extra.get("extra_train"), extra_ratio=cfg.extra_ratio, **common)
        val = make_pipeline(data.val, training=False, cache=cfg.cache, **common) if data.val else None
        if cfg.distill_from:
            from foveal.shrink.distill import with_teacher_targets

            if "teacher" not in data.extra:
                data.extra["teacher"] = _teacher(cfg, data.class_names)
            teacher = data.extra["teacher"]
            train = with_teacher_targets(train, teacher, cfg.distill_temperature)
            val = with_teacher_targets(val, teacher, cfg.distill_temperature) if val is not None else None
        return train, val

    def fit_kwargs(self, cfg: TrainConfig, data: RunData) -> dict[str, Any]:
        return {"class_weight": _class_weight(cfg, data.train)}

    def phase_callbacks(self, cfg: TrainConfig, data: RunData, phase: Phase, steps_per_epoch: int) -> list[Any]:
        if phase.number != 1:
            return []
        from foveal.data.augment import AugmentationEpoch
        from foveal.training.lookahead import Lookahead
        from foveal.training.whitening import FreezeWhiteningBias

        callbacks: list[Any] = [FreezeWhiteningBias(), AugmentationEpoch()]
        if cfg.lookahead:
            # airbench94 starts the averaging after 3 epochs (when the run has more than 3)
            start = 3 * steps_per_epoch if cfg.epochs > 3 else 0
            callbacks.append(Lookahead(total_steps=steps_per_epoch * cfg.epochs, start_step=start))
        return callbacks

    def fit_phase(self, run: Run, phase: Phase, start_epoch: int, restored: dict[str, Any] | None) -> bool | None:
        bottleneck = run.cfg.bottleneck and phase.number == 1
        return _fit_bottleneck(self, run, phase, start_epoch, restored) if bottleneck else None

    def distributed_batches(self, cfg: TrainConfig, data: RunData, dist: Any, *,
                            epochs: tuple[int, int]) -> tuple[Any, Any]:
        shape = data.extra["input_shape"]
        common = dict(image_size=shape[:2], channels=shape[2], batch_size=cfg.batch_size, seed=cfg.seed,
                      keep_aspect=cfg.keep_aspect, cache=cfg.cache, shuffle_buffer=cfg.shuffle_buffer)
        train = dist.batches(data.train, training=True, epochs=epochs, augment=cfg.augment,
                             class_weight=_class_weight(cfg, data.train), **common)
        val = dist.batches(data.val, training=False, **common) if data.val is not None else None
        how = {"examples": "each worker loads its replicas' slices of every global batch",
               "files": "each worker reads only its own image files",
               "records": "each worker keeps every n-th record"}[train.sharding]
        say(f"data sharding: {train.sharding} ({how}); {train.steps} steps per epoch"
            + (f"; the last {train.dropped} example(s) of each epoch are left out (fewer than the replicas)"
               if train.dropped else ""))
        return train, val

    # ---------------------------------------------------------------------------- results
    def finish(self, cfg: TrainConfig, model: keras.Model, card: ModelCard, data: RunData, run_dir: Path,
               history: dict[str, list[float]]) -> dict[str, Any] | None:
        from foveal.evaluation.classification import collapse_warning
        from foveal.evaluation.run import score
        from foveal.visualize.report import write_classification_report

        if cfg.recalibrate_bn:  # un-augmented training batches, no teacher targets
            from foveal.training.precise_bn import recalibrate_best

            train, _ = self.pipelines(replace(cfg, augment="none", distill_from=None), data, seed=cfg.seed)
            recalibrate_best(model, card, run_dir, train.take(cfg.recalibrate_bn))
        split, part = data.scored_part()
        metrics, scored = None, None
        if part is not None:
            scored = score(model, card, part, batch_size=cfg.batch_size, top_k=cfg.top_k,
                           keep_misclassified=cfg.report_misclassified, skip_invalid=cfg.skip_invalid, tta=cfg.tta)
            metrics = scored.metrics | {"split": split, "tta": cfg.tta}
            trained = [a for a in history.get("accuracy", []) if a == a]  # the last epoch's, NaN-free
            warning = collapse_warning(metrics, trained[-1] if trained else None)
            if warning:
                metrics["warnings"] = [warning]
            write_metrics(run_dir, metrics)
            say(f"{split} accuracy: {metrics['accuracy']:.4f} on {metrics['num_examples']} images")
            if warning:
                say(f"warning: {warning}")
        summary: dict[str, Any] = {"run": run_dir.name, "model": cfg.model, "data": cfg.data,
                                   "classes": len(card.class_names), "input": "x".join(map(str, card.input_shape)),
                                   **training_summary(model, history)}
        if cfg.weights is not None:
            summary["initial weights"] = cfg.weights
        if phases := _phases_text(cfg):
            summary["phases"] = phases
        if metrics is not None:
            summary[f"{split} accuracy"] = round(metrics["accuracy"], 4)
            if metrics.get("warnings"):
                summary["warning"] = " / ".join(metrics["warnings"])
        misclassified = ((scored.misclassified_images, scored.misclassified_titles)
                         if scored is not None and scored.misclassified_titles else None)
        report = write_classification_report(
            run_dir / "report.html", title=f"foveal run {run_dir.name}", summary=summary, config=asdict(cfg),
            history={k: v for k, v in history.items() if k != "phase"}, metrics=metrics, misclassified=misclassified)
        say(f"report: {report}")
        return metrics


def _plan(cfg: TrainConfig) -> Phases:
    from foveal.transfer.finetune import Phases

    return Phases.from_config(cfg)


def _phases_text(cfg: TrainConfig) -> str | None:
    """The transfer plan in words, None for a single plain phase."""
    plan = _plan(cfg)
    if plan.freeze is None and not plan.two_phase:
        return None
    return plan.describe() + (" (phase 1 on bottleneck features)" if cfg.bottleneck else "")


def prepare_data(cfg: TrainConfig) -> Splits:
    """Read the dataset(s) and make the splits the config asks for."""
    from foveal.data.readers import load_dataset
    from foveal.data.splits import make_splits

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


def load_extra(cfg: TrainConfig, class_names: list[str]) -> LabeledImages | None:
    """The ``--extra-data`` training images (its train split, or its only part) relabelled in
    ``--data``'s class order (a class ``--data`` lacks is refused, naming both sets), or None."""
    if not cfg.extra_data:
        return None
    from foveal.data.readers import load_dataset
    from foveal.evaluation.classes import match_classes, relabel

    parts = load_dataset(cfg.extra_data, skip_invalid=cfg.skip_invalid, verify=cfg.verify,
                         max_image_pixels=cfg.max_image_pixels)
    extra = parts.get("train") or next(iter(parts.values()))
    if len(extra) == 0:
        raise DataError(f"{cfg.extra_data}: no training images (--extra-data)")
    if extra.class_names != class_names:
        mapping = match_classes(class_names, extra.class_names, origin=f"{cfg.extra_data} (--extra-data)")
        extra = replace(extra, labels=relabel(extra.labels, mapping), class_names=list(class_names))
    return extra


def check_model_and_weights(cfg: TrainConfig, *, check_file: bool = True) -> None:
    """Fail on an unknown architecture, ImageNet weights it lacks or a missing weights file."""
    from foveal.errors import ModelError
    from foveal.transfer.pretrained import PRETRAINED, builder_for

    if cfg.distill_from:
        import foveal.shrink.distill  # noqa: F401  registers the loss and metrics a resumed run loads
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


def input_shape_for(cfg: TrainConfig, train: LabeledImages) -> tuple[int, int, int]:
    """(H, W, C): the config's, else those of a ``.keras`` weights file, else the model's default
    size with the data's channels (3 with ``--weights imagenet``)."""
    from foveal.models.io import read_card
    from foveal.transfer.pretrained import builder_for, default_input_shape

    source = read_card(cfg.weights) if cfg.weights and cfg.weights.endswith(".keras") else None
    default = (tuple(source.input_shape) if source is not None
               else default_input_shape(cfg.model, builder_for(cfg.model, cfg.weights)))
    h, w = cfg.image_hw or default[:2]
    channels = cfg.channels
    if channels is None and cfg.weights == "imagenet":
        channels = 3
    elif channels is None:
        arrays = source is None and train.images is not None
        channels = (1 if train.images.ndim == 3 or train.images.shape[-1] == 1 else 3) if arrays else default[2]
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


def _build(cfg: TrainConfig, splits: Splits, input_shape: tuple[int, int, int]) -> keras.Model:
    from foveal.models import add_weight_penalty, build_model
    from foveal.transfer.pretrained import build_pretrained, builder_for

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
    from foveal.data.pipeline import make_pipeline
    from foveal.training.whitening import init_whitening

    rng = np.random.default_rng(cfg.seed)
    chosen = np.sort(rng.choice(len(train), min(sample, len(train)), replace=False))
    ds = make_pipeline(train.subset(chosen), image_size=input_shape[:2], channels=input_shape[2], batch_size=500,
                       training=False, keep_aspect=cfg.keep_aspect, skip_invalid=cfg.skip_invalid, cache="none")
    images = np.concatenate([np.asarray(x) for x, _ in ds])
    init_whitening(model, images)
    layer = model.get_layer("whiten")
    say(f"whitening layer set from the 2x2 patches of {len(images)} training images (kernel frozen"
        + (f", bias trained for {layer.bias_epochs} epochs)" if getattr(layer, "train_bias", False) else ")"))


def compile_classifier(model: keras.Model, cfg: TrainConfig, steps_per_epoch: int, num_classes: int) -> None:
    """Compile ``model`` with the optimizer, schedule, loss and metrics of ``cfg``."""
    import keras

    from foveal.engine.optim import jit_compile_of, optimizer_for

    optimizer = optimizer_for(cfg, model, steps_per_epoch, zero_decay_default=False)
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
    jit = jit_compile_of(cfg)
    model.compile(optimizer=optimizer, loss=loss, metrics=metrics, jit_compile=jit)
    if jit is True and not model.jit_compile:
        say("note: XLA is off despite --jit-compile on (Keras disables it under TensorFlow op "
            "determinism: add --no-deterministic)")


def _teacher(cfg: TrainConfig, class_names: list[str]) -> keras.Model:
    """The distillation teacher, checked against the data's classes."""
    import foveal.shrink.distill  # noqa: F401  registers the loss and metric
    from foveal.models.io import load_model

    teacher, card = load_model(cfg.distill_from)
    if card.class_names != list(class_names):
        raise ConfigError(f"teacher {cfg.distill_from} knows classes {card.class_names[:10]}, "
                          f"the data has {list(class_names)[:10]}",
                          hint="distil from a teacher trained on the same classes")
    teacher.trainable = False
    return teacher


def _class_weight(cfg: TrainConfig, train: LabeledImages) -> dict[int, float] | None:
    if cfg.class_weight != "balanced":
        return None
    from foveal.data.balance import balanced_class_weights

    return balanced_class_weights(train.labels, train.num_classes)


def _fit_bottleneck(plugin: ClassifyTask, run: Run, phase: Phase, start_epoch: int,
                    restored: dict[str, Any] | None) -> bool:
    """Phase 1 on cached features of the frozen base: only the head's layers (shared with the
    run's model) train; checkpoints save the whole model. A resumed bottleneck phase keeps its
    weights but starts the head's optimizer afresh."""
    from foveal.engine.run import verbosity
    from foveal.transfer.bottleneck import compute_features, feature_split, features_dataset

    cfg, data, model = run.cfg, run.data, run.model
    _plan(cfg).apply(model, 1)
    extractor, head = feature_split(model)
    shape = data.extra["input_shape"]
    geometry = dict(image_size=shape[:2], channels=shape[2], batch_size=cfg.batch_size,
                    keep_aspect=cfg.keep_aspect, skip_invalid=cfg.skip_invalid,
                    cache_dir=Path(cfg.output) / ".cache" / "bottleneck")
    started = time.perf_counter()
    train_f = compute_features(extractor, data.train, **geometry)
    val_f = compute_features(extractor, data.val, **geometry) if data.val is not None else None
    how = "read from the cache" if train_f.from_cache else f"computed in {time.perf_counter() - started:.1f} s"
    say(f"bottleneck features: {train_f.features.shape[1]} per image, {how} ({train_f.path.parent})")
    if cfg.augment != "none":
        say("note: augmentation does not apply to bottleneck features (phase 1); it does in phase 2")
    plugin.compile(cfg, head, data, run.steps)

    batches = dict(num_classes=len(data.class_names), batch_size=cfg.batch_size)
    train_ds = features_dataset(train_f.features, train_f.labels, seed=cfg.seed, start_epoch=start_epoch, **batches)
    val = features_dataset(val_f.features, val_f.labels, **batches) if val_f is not None else None
    loader = (lambda: _head_weights_of(run.run_dir / "best.keras", head)) if restored is not None else None
    callbacks = run.callbacks(head, phase, 0, has_val=val is not None, restored=restored, best_weights_loader=loader,
                              save=lambda _head, path: run.save(model, path))
    build_before_fit(head, train_ds.element_spec)
    return run.guarded(callbacks, lambda: head.fit(
        train_ds, validation_data=val, epochs=cfg.epochs, initial_epoch=start_epoch, callbacks=callbacks,
        steps_per_epoch=max(1, math.ceil(len(train_f.labels) / cfg.batch_size)),
        class_weight=_class_weight(cfg, data.train), verbose=verbosity(cfg), shuffle=False))


def _head_weights_of(path: Path, head: keras.Model) -> list[np.ndarray] | None:
    """The head's weights (in ``head.get_weights()`` order) as saved in the full model ``path``."""
    saved = saved_model(path)
    if saved is None:
        return None
    return [w for layer in head.layers if layer.weights for w in saved.get_layer(layer.name).get_weights()]
