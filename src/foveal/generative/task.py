"""Generative models as a task of the run engine: VAE, DCGAN and conditional GAN.

The plugin reads the images, builds the model (which owns its ``train_step``), compiles it
with one optimizer (VAE) or two (GANs: generator and discriminator, both saved in
``last.keras`` and restored on ``--resume``), adds the per-epoch sample grids and sample
quality callbacks, and at the end scores the best weights and writes the report. Resume,
seeds, checkpoints and the time budget are the engine's (:mod:`foveal.engine.run`).

The judge of sample quality is a classifier trained on the same data: ``--classifier auto``
trains a small LeNet-5 before the first epoch and keeps it as ``RUN/classifier.keras`` (a
resumed run reuses it, so its numbers stay comparable); see :mod:`foveal.generative.quality`.

Example:
    >>> from foveal.tasks import run_train
    >>> run_train("generate", GenerateConfig(data="mnist", model="cgan", epochs=5))  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from foveal.engine.plugin import RunData, TaskPlugin
from foveal.errors import ConfigError
from foveal.generative.config import GenerateConfig
from foveal.training.runs import say
from foveal.utils_io import write_metrics

if TYPE_CHECKING:
    import keras

    from foveal.generative.quality import Judge
    from foveal.models import ModelCard

JUDGE_FILE = "classifier.keras"


class GenerateTask(TaskPlugin):
    """The engine's hooks for generative models."""

    name = "generate"
    config_class = GenerateConfig
    data_help = "an image folder, IDX/CIFAR folder, .npz, .tfrecord, or mnist / fashion_mnist"

    def check(self, cfg: GenerateConfig) -> None:
        if cfg.classifier not in ("auto", "none") and not Path(cfg.classifier).is_file():
            raise ConfigError(f"--classifier {cfg.classifier}: file not found",
                              hint="pass a .keras classifier trained on the same data, auto or none")
        if cfg.inception_weights and cfg.inception_weights != "imagenet" and not Path(cfg.inception_weights).is_file():
            raise ConfigError(f"--inception-weights {cfg.inception_weights}: file not found",
                              hint="pass keras.applications' InceptionV3 .h5 weights file (offline there is no download)")

    def load_data(self, cfg: GenerateConfig) -> RunData:
        from foveal.generative.data import load_generative_data

        return load_generative_data(cfg)

    def build(self, cfg: GenerateConfig, data: RunData, run_dir: Path) -> keras.Model:
        from foveal.generative.models import build_generative

        steps = self.steps_per_epoch(cfg, data)
        return build_generative(cfg.model, image_shape=data.extra["image_shape"], latent_dim=cfg.resolved_latent_dim(),
                                num_classes=len(data.class_names), width=cfg.width, likelihood=cfg.likelihood,
                                sigma=cfg.sigma, kl_warmup_steps=round(cfg.kl_warmup_epochs * steps),
                                label_smoothing=cfg.label_smoothing, dropout=cfg.dropout,
                                conditioning=cfg.conditioning, seed=cfg.seed)

    def restore(self, cfg: GenerateConfig, data: RunData, model: keras.Model, card: ModelCard) -> None:
        data.extra["image_shape"] = tuple(card.input_shape)

    def compile(self, cfg: GenerateConfig, model: keras.Model, data: RunData, steps_per_epoch: int) -> None:
        from foveal.engine.optim import jit_compile_of

        model.compile(**optimizers_for(cfg, model, steps_per_epoch), jit_compile=jit_compile_of(cfg))

    def card(self, cfg: GenerateConfig, data: RunData, model: keras.Model, run_dir: Path) -> ModelCard:
        from foveal.models import ModelCard

        data.extra["run_dir"] = run_dir
        return ModelCard(architecture=cfg.model, class_names=list(data.class_names),
                         input_shape=tuple(model.image_shape), preprocessing="none", task="generate",
                         training={"data": cfg.data, "run": run_dir.name, "latent_dim": model.latent_dim,
                                   "conditional": bool(getattr(model, "conditional", False)),
                                   "likelihood": cfg.likelihood if cfg.model == "vae" else None})

    def describe(self, cfg: GenerateConfig, data: RunData, model: keras.Model) -> list[str]:
        h, w, c = data.extra["image_shape"]
        parts = ([f"encoder {model.encoder.count_params():,}", f"decoder {model.decoder.count_params():,}"]
                 if cfg.model == "vae" else
                 [f"generator {model.generator.count_params():,}", f"discriminator {model.discriminator.count_params():,}"])
        return [f"data: {cfg.data} ({len(data.class_names)} class(es); {data.sizes()}), images {h}x{w}x{c}",
                f"model: {cfg.model}, latent size {model.latent_dim}; parameters: {', '.join(parts)}"]

    def pipelines(self, cfg: GenerateConfig, data: RunData, *, seed: int,
                  start_epoch: int | None = None) -> tuple[Any, Any | None]:
        from foveal.generative.data import pipeline

        shape = data.extra["image_shape"]
        common = dict(cache=cfg.cache, skip_invalid=cfg.skip_invalid)
        train = pipeline(data.train, shape, cfg.batch_size, training=True, seed=seed, start_epoch=start_epoch, **common)
        val = (pipeline(data.val, shape, cfg.batch_size, training=False, **common)
               if cfg.model == "vae" and data.val is not None else None)
        return train, val

    def monitor(self, cfg: GenerateConfig, data: RunData) -> str:
        if cfg.monitor != "auto":
            return cfg.monitor
        if cfg.model == "vae":
            return "val_loss"
        return "frechet" if cfg.classifier != "none" and cfg.quality_samples else "epochs_done"

    def callbacks(self, cfg: GenerateConfig, model: keras.Model, card: ModelCard, data: RunData,
                  history: dict[str, list[float]]) -> list[Any]:
        from foveal.generative.callbacks import SampleGrids, SampleQuality

        run_dir = data.extra["run_dir"]
        judge = prepare_judge(cfg, data, run_dir)
        real = class_ids = None
        if judge is not None and cfg.quality_samples:
            real = real_stats(cfg, data, judge)
            class_ids = judge_class_ids(card.class_names, judge) if getattr(model, "conditional", False) else None
        return [SampleGrids(run_dir, card.class_names, cfg.seed, tensorboard=cfg.tensorboard),
                SampleQuality(judge, real, cfg.quality_samples, cfg.seed, class_ids)]

    def finish(self, cfg: GenerateConfig, model: keras.Model, card: ModelCard, data: RunData, run_dir: Path,
               history: dict[str, list[float]]) -> dict[str, Any] | None:
        from foveal.generative.report import write_generative_report
        from foveal.generative.scoring import score_generator

        split, part = data.scored_part()
        if part is None:
            split, part = "train", data.train
        judge = data.extra.get("judge") or prepare_judge(cfg, data, run_dir)
        metrics, figures = score_generator(model, card, part, judge=judge, count=cfg.quality_samples or 1000,
                                           inception_weights=cfg.inception_weights, seed=cfg.seed,
                                           batch_size=cfg.batch_size, skip_invalid=cfg.skip_invalid)
        metrics["split"] = split
        write_metrics(run_dir, metrics)
        for name, pixels in figures.items():
            from foveal.generative.sampling import write_png

            write_png(run_dir / f"{name}.png", pixels)
            if cfg.tensorboard:
                from foveal.generative.callbacks import tensorboard_image

                tensorboard_image(run_dir / "tensorboard" / "samples", name, pixels, len(history.get("epochs_done", [])))
        say(f"{split}: {format_headline(metrics)}")
        summary: dict[str, Any] = {
            "run": run_dir.name, "task": "generation", "model": cfg.model, "data": cfg.data,
            "classes": len(card.class_names), "image": "x".join(map(str, card.input_shape)),
            "latent size": model.latent_dim, "parameters": f"{model.count_params():,}",
            "epochs": len(history.get("epochs_done", [])),
            "training time (s)": round(sum(history.get("epoch_seconds", [])), 1)}
        path = write_generative_report(run_dir / "report.html", title=f"foveal generative run {run_dir.name}",
                                       summary=summary, config=asdict(cfg), history=history, metrics=metrics,
                                       figures=figures, epoch_grids=sorted((run_dir / "samples").glob("epoch_*.png")))
        say(f"report: {path}")
        return metrics


def optimizers_for(cfg: GenerateConfig, model: keras.Model, steps_per_epoch: int) -> dict[str, Any]:
    """``compile`` arguments: the VAE's optimizer, or a GAN's generator and discriminator optimizers
    (Adam with ``--beta-1``, Radford et al. 2016, unless another ``--optimizer`` is asked for)."""
    import keras

    from foveal.engine.optim import optimizer_for
    from foveal.training.schedules import make_schedule

    lr_cfg = replace(cfg, learning_rate=cfg.resolved_learning_rate())
    if cfg.model == "vae":
        return {"optimizer": optimizer_for(lr_cfg, model, steps_per_epoch)}

    def one() -> keras.optimizers.Optimizer:
        if cfg.optimizer != "adam":
            return optimizer_for(lr_cfg, model, steps_per_epoch)
        schedule = make_schedule(cfg.schedule, learning_rate=lr_cfg.learning_rate, steps_per_epoch=steps_per_epoch,
                                 epochs=cfg.epochs, warmup_epochs=cfg.warmup_epochs)
        return keras.optimizers.Adam(schedule, beta_1=cfg.beta_1)

    return {"optimizer": one(), "d_optimizer": one()}


def prepare_judge(cfg: GenerateConfig, data: RunData, run_dir: Path) -> Judge | None:
    """The run's judge: ``--classifier``'s file, the run's own ``classifier.keras``, or a new one
    trained now (``auto``); None for ``none`` or data with one class."""
    from foveal.generative.quality import classifier_judge

    if "judge" in data.extra:
        return data.extra["judge"]
    judge = None
    if cfg.classifier == "auto":
        path = Path(run_dir) / JUDGE_FILE
        if not path.is_file():
            if len(data.class_names) < 2:
                say("no judge classifier (the data has one class): no classifier-space scores; "
                    "pass --inception-weights for the FID")
            else:
                train_judge(cfg, data, path)
        judge = classifier_judge(path) if path.is_file() else None
    elif cfg.classifier != "none":
        judge = classifier_judge(cfg.classifier)
    data.extra["judge"] = judge
    return judge


def train_judge(cfg: GenerateConfig, data: RunData, path: Path) -> dict[str, Any]:
    """Train a LeNet-5 on the run's training images for ``--classifier-epochs`` and save it (a foveal
    classifier file) at ``path``; returns its test (else validation) accuracy."""
    import keras

    from foveal.engine.optim import build_before_fit
    from foveal.generative.data import pipeline
    from foveal.models import ModelCard, build_model, save_model
    from foveal.models.io import preprocessing_of

    shape = data.extra["image_shape"]
    keras.utils.set_random_seed(cfg.seed)
    model = build_model("lenet5", num_classes=len(data.class_names), input_shape=shape, preprocessing="rescale")
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                  metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")])
    say(f"judge: training a LeNet-5 classifier on the training images for {cfg.classifier_epochs} epoch(s)")
    common = dict(cache=cfg.cache, skip_invalid=cfg.skip_invalid)
    train = pipeline(data.train, shape, 64, training=True, seed=cfg.seed, **common)
    build_before_fit(model, train.element_spec)
    model.fit(train, epochs=cfg.classifier_epochs, verbose=0, shuffle=False)
    split, part = data.scored_part()
    facts: dict[str, Any] = {"data": cfg.data, "purpose": "judge of a generative run's samples"}
    if part is not None:
        accuracy = float(model.evaluate(pipeline(part, shape, 256, training=False, **common), verbose=0,
                                        return_dict=True)["accuracy"])
        facts[f"{split}_accuracy"] = round(accuracy, 4)
        say(f"judge: {split} accuracy {accuracy:.4f}")
    card = ModelCard(architecture="lenet5", class_names=list(data.class_names), input_shape=shape,
                     preprocessing=preprocessing_of(model), training=facts)
    save_model(model, path, card, include_optimizer=False)
    return facts


def real_stats(cfg: GenerateConfig, data: RunData, judge: Judge):
    """The held-out real images' features (validation, else test, else train) for the per-epoch scores."""
    from foveal.generative.data import images01
    from foveal.generative.quality import RealStats

    part = data.val if data.val is not None else (data.test if data.test is not None else data.train)
    images, _ = images01(part, data.extra["image_shape"], cfg.quality_samples, seed=cfg.seed,
                         skip_invalid=cfg.skip_invalid)
    return RealStats.of(judge, images)


def judge_class_ids(class_names: list[str], judge: Judge) -> np.ndarray:
    """The judge's index of each of the generator's classes (matched by name)."""
    missing = [n for n in class_names if n not in judge.class_names]
    if missing:
        raise ConfigError(f"the classifier {judge.source} does not know the class(es) {missing[:5]} of the generator",
                          hint="judge with a classifier trained on the same data (its classes: "
                               f"{', '.join(judge.class_names[:10])})")
    return np.array([judge.class_names.index(n) for n in class_names], np.int32)


def format_headline(metrics: dict[str, Any]) -> str:
    """``negative ELBO 98.1 nats; classifier-space Frechet 3.2, kernel 0.010; requested-class accuracy 0.97``."""
    parts = []
    if metrics.get("neg_elbo") is not None:
        parts.append(f"negative ELBO {metrics['neg_elbo']:.2f} nats/image")
    if metrics.get("frechet") is not None:
        parts.append(f"classifier-space Frechet distance {metrics['frechet']:.4g}, kernel distance "
                     f"{metrics['kernel_distance']:.4g}")
    if metrics.get("class_accuracy") is not None:
        parts.append(f"requested-class accuracy {metrics['class_accuracy']:.4f}")
    if metrics.get("inception_fid") is not None:
        parts.append(f"Inception FID {metrics['inception_fid']:.4g}")
    return "; ".join(parts) or "no scores (no judge classifier)"


__all__ = ["GenerateTask", "format_headline", "judge_class_ids", "optimizers_for", "prepare_judge", "train_judge"]
