"""Semantic segmentation as a task of the run engine: U-Net and FCN on image + mask pairs.

The plugin reads mask folders (or COCO polygons/RLE) and their splits, builds the segmenter with
its pixel loss and streaming confusion metrics, feeds random crops (with optional U-Net border
weight maps) and scores whole images of the best weights. Everything else about a run is the
engine's (:mod:`foveal.engine.run`).

Example:
    >>> from foveal.engine.run import train_task
    >>> train_task(SegmentTask(), SegmentConfig(data="isbi/train", classes=["membrane", "cell"]))  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from foveal.engine.plugin import RunData, TaskPlugin, training_summary
from foveal.errors import ConfigError
from foveal.segmentation.train import SegmentConfig
from foveal.training.runs import say

if TYPE_CHECKING:
    import keras

    from foveal.models import ModelCard


class SegmentTask(TaskPlugin):
    """The engine's hooks for semantic segmenters."""

    name = "segment"
    supports_distribution = True  # the engine's default distributed_batches: its own pipelines, split
    config_class = SegmentConfig
    data_help = "a folder of images/ + masks/ (or ISBI's image/ + label/), or a COCO instances .json"
    # the decoders' layers (U-Net: bottleneck and up path; FCN: fc6/fc7 and the score/upsampling
    # layers); the rest is the encoder that a frozen first phase keeps
    head_prefixes = ("head_", "bottleneck", "up", "logits", "fc6", "fc7", "score", "decoder")

    def check(self, cfg: SegmentConfig) -> None:
        crop = cfg.crop_hw
        if crop is not None and (crop[0] % cfg.stride or crop[1] % cfg.stride):
            raise ConfigError(f"--crop-size {crop[0]}x{crop[1]} is not a multiple of {cfg.model}'s stride "
                              f"{cfg.stride}")

    def load_data(self, cfg: SegmentConfig) -> RunData:
        from foveal.segmentation.train import class_index, guess_channels, load_splits, resolve_weights, skipped_of

        parts = load_splits(cfg)
        train = parts["train"]
        names = list(train.class_names)
        foreground = class_index(cfg.foreground, names, "foreground")
        if foreground is None and len(names) == 2:
            foreground = 1
        return RunData(train, parts.get("val"), parts.get("test"), names, extra={
            "channels": cfg.channels or guess_channels(train), "foreground": foreground,
            "class_weights": resolve_weights(cfg.class_weights, train), "skipped": skipped_of(parts)})

    def steps_per_epoch(self, cfg: SegmentConfig, data: RunData) -> int:
        return cfg.steps_per_epoch or super().steps_per_epoch(cfg, data)

    def fit_steps(self, cfg: SegmentConfig, data: RunData) -> int | None:
        return cfg.steps_per_epoch or None

    def build(self, cfg: SegmentConfig, data: RunData, run_dir: Path) -> keras.Model:
        from foveal.segmentation.train import build_segmenter

        return build_segmenter(cfg.model, num_classes=len(data.class_names), channels=data.extra["channels"],
                               options=cfg.model_options)

    def compile(self, cfg: SegmentConfig, model: keras.Model, data: RunData, steps_per_epoch: int) -> None:
        from foveal.engine.optim import jit_compile_of, optimizer_for
        from foveal.segmentation.train import make_loss, make_metrics

        n = len(data.class_names)
        model.compile(optimizer=optimizer_for(cfg, model, steps_per_epoch),
                      loss=make_loss(cfg, n, data.extra["class_weights"]),
                      metrics=make_metrics(n, cfg.ignore_label, data.extra["foreground"]),
                      jit_compile=jit_compile_of(cfg))

    def card(self, cfg: SegmentConfig, data: RunData, model: keras.Model, run_dir: Path) -> ModelCard:
        from foveal.models import ModelCard
        from foveal.models.io import preprocessing_of

        train, names, crop, foreground = data.train, data.class_names, cfg.crop_hw, data.extra["foreground"]
        colours = train.palette if train.palette is not None else train.colours
        return ModelCard(
            architecture=cfg.model, class_names=list(names),
            input_shape=(*(crop or cfg.image_hw or (cfg.stride * 8,) * 2), data.extra["channels"]),
            preprocessing=preprocessing_of(model), keep_aspect=False, task="segment",
            training={"data": cfg.data, "run": run_dir.name, "image_size": list(cfg.image_hw) if cfg.image_hw else None,
                      "crop_size": list(crop) if crop else None, "stride": cfg.stride, "tile": cfg.tile,
                      "ignore_label": cfg.ignore_label, "mask_format": train.mask_format,
                      "palette": None if colours is None else np.asarray(colours).tolist(),
                      "indexed_masks": train.colours is not None,
                      "foreground": None if foreground is None else names[foreground], "loss": cfg.loss,
                      "class_weights": data.extra["class_weights"]})

    def describe(self, cfg: SegmentConfig, data: RunData, model: keras.Model) -> list[str]:
        skipped, weights = data.extra["skipped"], data.extra["class_weights"]
        lines = [f"data: {cfg.data} ({data.train.mask_format} masks, classes {data.class_names}; pairs "
                 f"{data.sizes()}" + (f"; {len(skipped)} skipped" if skipped else "") + ")"]
        lines += [f"  skipped: {problem}" for problem in skipped[:5]]
        lines.append(f"model: {cfg.model}, {data.extra['channels']} channel(s), {model.count_params():,} parameters; "
                     f"loss {cfg.loss}" + (f", class weights {weights}" if weights else ""))
        return lines

    def pipelines(self, cfg: SegmentConfig, data: RunData, *, seed: int,
                  start_epoch: int | None = None) -> tuple[Any, Any | None]:
        from foveal.segmentation.pipeline import make_segmentation_pipeline, parse_augment
        from foveal.segmentation.train import border_weight_fn

        common = dict(channels=data.extra["channels"], batch_size=cfg.batch_size, image_size=cfg.image_hw,
                      stride=cfg.stride, cache=cfg.cache, skip_invalid=cfg.skip_invalid)
        weight_fn = border_weight_fn(cfg, data.class_names, None)
        train = make_segmentation_pipeline(
            data.train, training=True, crop_size=cfg.crop_hw, seed=seed, repeat=cfg.steps_per_epoch > 0,
            start_epoch=start_epoch, steps_per_epoch=cfg.steps_per_epoch or None,
            augment=parse_augment(cfg.augment, ignore_label=cfg.ignore_label), weight_map=weight_fn, **common)
        val = (make_segmentation_pipeline(data.val, training=False, weight_map=weight_fn, **common)
               if data.val is not None else None)
        return train, val

    def monitor(self, cfg: SegmentConfig, data: RunData) -> str:
        if cfg.monitor != "auto":
            return cfg.monitor
        return "val_foreground_dice" if data.extra["foreground"] is not None else "val_mean_iou"

    def finish(self, cfg: SegmentConfig, model: keras.Model, card: ModelCard, data: RunData, run_dir: Path,
               history: dict[str, list[float]]) -> dict[str, Any] | None:
        from foveal.segmentation.train import format_headline, score_segmenter, write_results

        split, part = data.scored_part()
        skipped = data.extra["skipped"]
        metrics, examples = None, []
        if part is not None:
            metrics, examples = score_segmenter(model, card, part, report_images=cfg.report_images,
                                                skip_invalid=cfg.skip_invalid)
            metrics["split"] = split
            metrics["skipped_pairs"] = len(skipped) + metrics.pop("skipped_images")
            say(f"{split}: {format_headline(metrics)}")
        summary: dict[str, Any] = {
            "run": run_dir.name, "task": "semantic segmentation", "model": cfg.model, "data": cfg.data,
            "classes": ", ".join(card.class_names), **training_summary(model, history), "skipped pairs": len(skipped),
        }
        path = write_results(run_dir, metrics, examples, card, title=f"foveal segmentation run {run_dir.name}",
                             summary=summary, config=asdict(cfg), history=history, ignore_label=cfg.ignore_label)
        say(f"report: {path}")
        return metrics
