"""Classification with localization as a task of the run engine: a class head and a box head.

The plugin reads box annotations (one target box per image: its largest), builds the two-head
model on a zoo backbone (heads started at the mean box and the class frequencies), and scores
the best weights by IoU against the mean-box baseline. Everything else about a run is the
engine's (:mod:`foveal.engine.run`).

Example:
    >>> from foveal.engine.run import train_task
    >>> train_task(LocalizeTask(), LocalizeConfig(data="raccoon/", epochs=2))  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from foveal.engine.plugin import RunData, TaskPlugin, default_options_explained, training_summary
from foveal.localization.train import DEFAULT_MODEL_OPTIONS, LocalizeConfig
from foveal.training.runs import say

if TYPE_CHECKING:
    import keras

    from foveal.models import ModelCard


class LocalizeTask(TaskPlugin):
    """The engine's hooks for localizers."""

    name = "localize"
    supports_distribution = True  # the engine's default distributed_batches: its own pipelines, split
    config_class = LocalizeConfig
    data_help = "box annotations: a Pascal VOC folder or a CSV file (the largest box of each image is the target)"
    head_prefixes = ("head_", "class", "box")

    def check(self, cfg: LocalizeConfig) -> None:
        from foveal.models import MODELS

        MODELS.get(cfg.model)  # unknown names fail before any data is read

    def load_data(self, cfg: LocalizeConfig) -> RunData:
        from foveal.localization.train import load_splits

        parts = load_splits(cfg)
        return RunData(parts["train"], parts.get("val"), parts.get("test"), list(parts["train"].class_names))

    def build(self, cfg: LocalizeConfig, data: RunData, run_dir: Path) -> keras.Model:
        from foveal.localization.metrics import encode_boxes
        from foveal.localization.model import build_localizer, init_heads
        from foveal.localization.pipeline import targets_of

        with default_options_explained(cfg.model_options, DEFAULT_MODEL_OPTIONS, "--model-options", "--model",
                                       cfg.model):
            model = build_localizer(cfg.model, num_classes=len(data.class_names), input_shape=(*cfg.image_hw, cfg.channels),
                                    preprocessing=cfg.preprocessing, pooling=cfg.pooling, dropout=cfg.dropout,
                                    l2=cfg.l2, **cfg.model_options)
        corners, _, valid = targets_of(data.train)
        if valid.any():
            encoded = np.asarray(encode_boxes(corners[valid])).mean(axis=0)
            init_heads(model, encoded, presence_rate=float(valid.mean()))
        return model

    def compile(self, cfg: LocalizeConfig, model: keras.Model, data: RunData, steps_per_epoch: int) -> None:
        from foveal.engine.optim import optimizer_for
        from foveal.localization.model import compile_localizer

        compile_localizer(model, optimizer_for(cfg, model, steps_per_epoch), num_classes=len(data.class_names),
                          class_weight=cfg.class_loss_weight, box_weight=cfg.box_loss_weight)

    def card(self, cfg: LocalizeConfig, data: RunData, model: keras.Model, run_dir: Path) -> ModelCard:
        from foveal.localization.model import BOX_FORMAT
        from foveal.localization.train import mean_box
        from foveal.models import ModelCard
        from foveal.models.io import preprocessing_of

        names = data.class_names
        return ModelCard(
            architecture=cfg.model, class_names=list(names), input_shape=(*cfg.image_hw, cfg.channels),
            preprocessing=preprocessing_of(model), keep_aspect=False, task="localize",
            training={"data": cfg.data, "run": run_dir.name, "box_format": BOX_FORMAT,
                      "class_head": "presence" if len(names) == 1 else "softmax",
                      "target_box": "largest box of each image", "mean_box": mean_box(data.train)})

    def describe(self, cfg: LocalizeConfig, data: RunData, model: keras.Model) -> list[str]:
        return [f"data: {cfg.data} ({len(data.class_names)} class(es) {data.class_names}; images {data.sizes()}; "
                f"{data.train.num_boxes} training boxes)",
                f"model: {cfg.model} localizer, input {model.input_shape[1:]}, {model.count_params():,} parameters"]

    def pipelines(self, cfg: LocalizeConfig, data: RunData, *, seed: int,
                  start_epoch: int | None = None) -> tuple[Any, Any | None]:
        from foveal.localization.pipeline import make_localization_pipeline

        common = dict(image_size=cfg.image_hw, channels=cfg.channels, batch_size=cfg.batch_size, cache=cfg.cache,
                      skip_invalid=cfg.skip_invalid)
        train = make_localization_pipeline(data.train, training=True, augment=cfg.augment, seed=seed,
                                           start_epoch=start_epoch,
                                           **common)  # type: ignore[arg-type]
        val = (make_localization_pipeline(data.val, training=False, **common)  # type: ignore[arg-type]
               if data.val is not None else None)
        return train, val

    def finish(self, cfg: LocalizeConfig, model: keras.Model, card: ModelCard, data: RunData, run_dir: Path,
               history: dict[str, list[float]]) -> dict[str, Any] | None:
        from foveal.localization.train import report_thumbnails, score_localizer, write_localization_report

        split, part = data.scored_part()
        metrics, drawn = None, None
        if part is not None:
            metrics, predicted = score_localizer(model, card, part, batch_size=cfg.batch_size)
            metrics["split"] = split
            say(f"{split}: mean IoU {metrics['mean_iou']:.4f} (mean-box baseline {metrics['baseline_mean_iou']:.4f}), "
                f"IoU>=0.5 on {metrics['iou_at_0.5']:.1%}, accuracy {metrics['accuracy']:.4f}, "
                f"{metrics['num_examples']} images")
            drawn = report_thumbnails(part, predicted, card, cfg.report_images)
        summary: dict[str, Any] = {
            "run": run_dir.name, "task": "classification + localization", "backbone": cfg.model, "data": cfg.data,
            "classes": ", ".join(card.class_names), "input": "x".join(map(str, card.input_shape)),
            **training_summary(model, history),
        }
        if metrics is not None:
            summary |= {f"{split} mean IoU": metrics["mean_iou"], "mean-box baseline IoU": metrics["baseline_mean_iou"],
                        "IoU >= 0.5": metrics["iou_at_0.5"], "class accuracy": metrics["accuracy"],
                        "images scored": metrics["num_examples"]}
        path = write_localization_report(run_dir, metrics, title=f"foveal localization run {run_dir.name}",
                                         summary=summary, config=asdict(cfg), history=history, drawn=drawn)
        say(f"report: {path}")
        return metrics
