"""Image enhancement as a task of the run engine: denoising and super-resolution.

The plugin reads any image folder (or dataset of arrays), holds out validation and test
images, builds the enhancement model with its pixel loss and a PSNR metric, feeds degraded
random patches (:mod:`.pipeline`) and scores whole test images of the best weights next to the
baseline (:mod:`.score`). Everything else about a run is the engine's (:mod:`foveal.engine.run`).

Example:
    >>> from foveal.engine.run import train_task
    >>> train_task(EnhanceTask(), EnhanceConfig(data="photos/", model="espcn", scale=3))  # doctest: +SKIP
"""

from __future__ import annotations

import math
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from foveal.engine.plugin import RunData, TaskPlugin, training_summary
from foveal.enhancement.config import EnhanceConfig
from foveal.tasks import trainer
from foveal.training.runs import say
from foveal.utils_io import write_metrics

if TYPE_CHECKING:
    import keras

    from foveal.models import ModelCard

CHANNEL_NAMES = {1: ["gray"], 3: ["red", "green", "blue"]}


class EnhanceTask(TaskPlugin):
    """The engine's hooks for image enhancement models."""

    name = "enhance"
    config_class = EnhanceConfig
    data_help = "a folder of images (any layout) or a dataset of arrays (IDX folder, .npz, mnist, cifar10)"
    head_prefixes = ("dec", "output", "code")

    def check(self, cfg: EnhanceConfig) -> None:
        cfg.validate()

    def load_data(self, cfg: EnhanceConfig) -> RunData:
        from foveal.enhancement.data import check_sizes, read_images, split

        opts = dict(channels=cfg.channels, skip_invalid=cfg.skip_invalid, verify=cfg.verify)
        parts = read_images(cfg.data, **opts)
        train = parts["train"]
        channels = cfg.channels or train.channels
        opts["channels"] = channels
        test = (read_images(cfg.test_data, option="--test-data", **opts)["train"] if cfg.test_data
                else parts.get("test"))
        if test is None:
            train, test = split(train, cfg.test_split, cfg.seed)
        val = read_images(cfg.val_data, option="--val-data", **opts)["train"] if cfg.val_data else parts.get("val")
        if val is None:
            train, val = split(train, cfg.val_split, cfg.seed + 1)
        need = cfg.patch_size or cfg.factor
        what = f"the {cfg.patch_size}x{cfg.patch_size} patch (--patch-size)" if cfg.patch_size else \
            f"the x{cfg.factor} scale factor"
        train = check_sizes(train, need, what, skip_invalid=cfg.skip_invalid)
        if val is not None:
            val = check_sizes(val, need, what, skip_invalid=cfg.skip_invalid)
        if not cfg.patch_size:
            for part, label in ((train, "--data"), (val, "validation")):
                if part is not None and part.same_size() is None:
                    from foveal.errors import ConfigError

                    raise ConfigError(f"--patch-size 0 trains on whole images, but the {label} images differ in size",
                                      hint="pass --patch-size, e.g. 96")
        for part in (train, val, test):
            if part is not None:
                part.channels = channels
        return RunData(train, val, test, CHANNEL_NAMES[channels], extra={"channels": channels})

    def steps_per_epoch(self, cfg: EnhanceConfig, data: RunData) -> int:
        return cfg.steps_per_epoch or max(1, math.ceil(len(data.train) * cfg.patches_per_image / cfg.batch_size))

    def fit_steps(self, cfg: EnhanceConfig, data: RunData) -> int | None:
        return self.steps_per_epoch(cfg, data)

    def build(self, cfg: EnhanceConfig, data: RunData, run_dir: Path) -> keras.Model:
        from foveal.enhancement.models import build_enhancer

        return build_enhancer(cfg.model, channels=data.extra["channels"], scale=cfg.factor,
                              options=cfg.model_options, input_size=cfg.lr_patch)

    def compile(self, cfg: EnhanceConfig, model: keras.Model, data: RunData, steps_per_epoch: int) -> None:
        from foveal.engine.optim import jit_compile_of, optimizer_for
        from foveal.enhancement.models import psnr

        model.compile(optimizer=optimizer_for(cfg, model, steps_per_epoch), loss=cfg.loss, metrics=[psnr],
                      jit_compile=jit_compile_of(cfg))

    def card(self, cfg: EnhanceConfig, data: RunData, model: keras.Model, run_dir: Path) -> ModelCard:
        from foveal.enhancement.degrade import describe_corruption
        from foveal.enhancement.models import input_multiple
        from foveal.models import ModelCard

        fixed = model.input_shape[1]
        side = cfg.lr_patch or (data.train.sizes[0][0] // cfg.factor)
        return ModelCard(
            architecture=cfg.model, class_names=list(data.class_names),
            input_shape=(int(fixed or side), int(model.input_shape[2] or side), data.extra["channels"]),
            preprocessing="rescale", keep_aspect=False, task="enhance",
            training={"data": cfg.data, "run": run_dir.name, "scale": cfg.factor,
                      "corruption": describe_corruption(cfg.corruption_spec),
                      "multiple": input_multiple(cfg.model, cfg.model_options), "tile": cfg.tile,
                      "fixed_size": int(fixed) if fixed else None, "patch_size": cfg.patch_size,
                      "baseline": "bicubic", "loss": cfg.loss, "model_options": dict(cfg.model_options)})

    def describe(self, cfg: EnhanceConfig, data: RunData, model: keras.Model) -> list[str]:
        from foveal.enhancement.degrade import describe_corruption

        return [f"data: {cfg.data} ({data.extra['channels']} channel(s); images {data.sizes()})",
                f"model: {cfg.model} x{cfg.factor}, corruption {describe_corruption(cfg.corruption_spec)}, "
                f"{model.count_params():,} parameters; patches {cfg.patch_size or 'whole images'}"]

    def pipelines(self, cfg: EnhanceConfig, data: RunData, *, seed: int,
                  start_epoch: int | None = None) -> tuple[Any, Any | None]:
        from foveal.enhancement.models import input_multiple
        from foveal.enhancement.pipeline import patch_dataset

        common = dict(patch=cfg.patch_size or None, scale=cfg.factor, corruption=cfg.corruption_spec,
                      batch_size=cfg.batch_size, multiple=input_multiple(cfg.model, cfg.model_options),
                      cache=cfg.cache)
        train = patch_dataset(data.train, training=True, seed=seed, start_epoch=start_epoch,
                              steps_per_epoch=self.steps_per_epoch(cfg, data), patches_per_image=cfg.patches_per_image,
                              augment=cfg.augment, **common)
        val = patch_dataset(data.val, training=False, seed=cfg.seed, **common) if data.val is not None else None
        return train, val

    def finish(self, cfg: EnhanceConfig, model: keras.Model, card: ModelCard, data: RunData, run_dir: Path,
               history: dict[str, list[float]]) -> dict[str, Any] | None:
        from foveal.enhancement.report import write_enhancement_report
        from foveal.enhancement.score import format_headline, score_enhancer

        split, part = data.scored_part()
        metrics, strips = None, []
        if part is not None:
            metrics, strips = score_enhancer(model, card, part, report_images=cfg.report_images,
                                             skip_invalid=cfg.skip_invalid)
            metrics["split"] = split
            write_metrics(run_dir, metrics)
            say(f"{split}: {format_headline(metrics)}")
        summary: dict[str, Any] = {
            "run": run_dir.name, "task": "image enhancement", "model": f"{cfg.model} x{cfg.factor}",
            "data": cfg.data, "corruption": card.training["corruption"], **training_summary(model, history),
        }
        if metrics is not None:
            h = metrics["headline"]
            summary[f"{split} {h} (dB)"] = metrics["model"][h]
            summary[f"{split} {h} of {metrics['baseline_name']} (dB)"] = metrics["baseline"][h]
            summary["gain (dB)"] = metrics["gain"][h]
        path = write_enhancement_report(run_dir / "report.html", title=f"foveal enhancement run {run_dir.name}",
                                        summary=summary, config=asdict(cfg), history=history, metrics=metrics,
                                        strips=strips)
        say(f"report: {path}")
        return metrics


train_enhancer = trainer("enhance", "train_enhancer", "an enhancement model")


__all__ = ["EnhanceTask", "train_enhancer"]
