"""Instance segmentation as a task of the run engine (``foveal instance train``).

The plugin reads COCO instances (:mod:`foveal.instance.data`) and their splits, lets the model
family (:mod:`foveal.instance.family`, ``--model``) build, compile and feed its model, adds the
validation mask AP50 to each epoch's logs (it picks ``best.keras``), and scores the best
weights with COCO's box and mask AP. Everything else about a run (run folder, resume, seeds,
time budget, checkpoints, TensorBoard) is the engine's (:mod:`foveal.engine.run`).

Example:
    >>> from foveal.tasks import run_train
    >>> result = run_train("instance", InstanceConfig(data="shapes/", epochs=20))  # doctest: +SKIP
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from foveal.engine.plugin import RunData, TaskPlugin, training_summary
from foveal.instance.config import InstanceConfig
from foveal.training.runs import say
from foveal.utils_io import atomic_write_text, write_metrics

if TYPE_CHECKING:
    import keras

    from foveal.models import ModelCard


class ValidationMaskAP:
    """Keras callback adding ``val_mask_ap50`` (COCO mask AP at IoU 0.5 on the validation images),
    ``val_box_ap50``, ``val_mask_ap`` and ``val_box_ap`` (AP at IoU 0.5:0.95) to the epoch logs,
    before the checkpoint picks ``best.keras``. Epochs where they are not computed (``every`` > 1)
    carry the last values."""

    def __new__(cls, *args: Any, **kwargs: Any):  # a keras.callbacks.Callback built lazily
        import keras

        class _ValidationMaskAP(keras.callbacks.Callback):
            def __init__(self, data: Any, card: ModelCard, *, every: int, batch_size: int,
                         last: tuple[float, ...] | None = None) -> None:
                super().__init__()
                self.data, self.card, self.every, self.batch_size, self.last = data, card, every, batch_size, last

            def on_epoch_end(self, epoch, logs=None):
                from foveal.instance.predict import predict_dataset
                from foveal.instance.scoring import score_instances

                if logs is None:
                    return
                if (epoch + 1) % self.every == 0 or self.last is None:
                    found = predict_dataset(self.model, self.card, self.data, batch_size=self.batch_size,
                                            score_threshold=0.05, max_detections=None)
                    metrics = score_instances(self.data, found)
                    self.last = (metrics["mask"]["AP50"], metrics["box"]["AP50"], metrics["mask"]["AP"],
                                 metrics["box"]["AP"])
                logs["val_mask_ap50"], logs["val_box_ap50"], logs["val_mask_ap"], logs["val_box_ap"] = self.last

        return _ValidationMaskAP(*args, **kwargs)


class InstanceTask(TaskPlugin):
    """The engine's hooks for instance segmentation (see the module docstring)."""

    name = "instance"
    config_class = InstanceConfig
    data_help = ("COCO instances: a .json file (polygons or RLE), a folder of *train*/*val*/*test* .json files, or "
                 "an image + instance-label-map folder (images/ + instances/, or VOC's JPEGImages/ + "
                 "SegmentationObject/)")

    def check(self, cfg: InstanceConfig) -> None:
        from foveal.instance.family import family_named
        from foveal.models import MODELS

        family_named(cfg.model)
        MODELS.get(cfg.backbone)

    def load_data(self, cfg: InstanceConfig) -> RunData:
        from foveal.instance.data import load_instance_splits, skipped_summary

        parts = load_instance_splits(cfg.data, test_data=cfg.test_data, images=cfg.images,  # type: ignore[arg-type]
                                     val_split=cfg.val_split, test_split=cfg.test_split, seed=cfg.seed,
                                     skip_invalid=cfg.skip_invalid)
        for part in parts.values():
            line = skipped_summary(part)
            if line:
                say(line)
        train = parts["train"]
        read = train.info.get("label_maps")
        if read:
            say(f"{read['root']}: {read['instances']} instance(s) in {read['images']} image(s) read from the label "
                f"maps in {read['instances_folder']}/ ({read['class_encoding']} class encoding)")
        if train.info.get("derived_boxes") or train.info.get("crowd"):
            say(f"{train.origin}: {train.info.get('derived_boxes', 0)} box(es) derived from masks, "
                f"{train.info.get('crowd', 0)} crowd region(s) ignored")
        return RunData(train, parts.get("val"), parts.get("test"), list(train.class_names))

    def build(self, cfg: InstanceConfig, data: RunData, run_dir: Path) -> keras.Model:
        from foveal.instance.family import family_named

        return family_named(cfg.model).build(cfg, data)

    def compile(self, cfg: InstanceConfig, model: keras.Model, data: RunData, steps_per_epoch: int) -> None:
        from foveal.instance.family import family_named

        family_named(cfg.model).compile(cfg, model, steps_per_epoch)

    def restore(self, cfg: InstanceConfig, data: RunData, model: keras.Model, card: ModelCard) -> None:
        from foveal.instance.family import family_named

        family_named(cfg.model).restore(cfg, data, card)

    def card(self, cfg: InstanceConfig, data: RunData, model: keras.Model, run_dir: Path) -> ModelCard:
        from foveal.instance.family import family_named
        from foveal.models import ModelCard
        from foveal.models.io import preprocessing_of

        family = family_named(cfg.model)
        backbone = getattr(model, "backbone", model)
        return ModelCard(
            architecture=f"{cfg.model}-{cfg.backbone}", class_names=list(data.class_names),
            input_shape=(*cfg.image_hw, cfg.channels), preprocessing=preprocessing_of(backbone),
            keep_aspect=False, task="instance",
            training={"data": cfg.data, "run": run_dir.name, "model": cfg.model,
                      "category_ids": list(data.train.info.get("category_ids", [])),
                      **({"label_maps": data.train.info["label_maps"]} if data.train.info.get("label_maps") else {}),
                      "box_format": "pixel corners (x_min, y_min, x_max, y_max) of the original image; masks as "
                                    "COCO RLE", **family.card_training(cfg, model)})

    def describe(self, cfg: InstanceConfig, data: RunData, model: keras.Model) -> list[str]:
        from foveal.instance.family import family_named

        return [f"data: {cfg.data} ({len(data.class_names)} class(es); images {data.sizes()}; "
                f"{data.train.num_instances} training instances)",
                f"model: {family_named(cfg.model).describe(cfg, model)} on {cfg.backbone}, input {cfg.image_hw}, "
                f"{model.count_params():,} parameters"]

    def pipelines(self, cfg: InstanceConfig, data: RunData, *, seed: int,
                  start_epoch: int | None = None) -> tuple[Any, Any | None]:
        from foveal.instance.family import family_named

        return family_named(cfg.model).pipelines(cfg, data, seed=seed, start_epoch=start_epoch)

    def data_errors(self, cfg: InstanceConfig):
        from foveal.detection.pipeline import detection_data_errors

        return detection_data_errors(str(cfg.data))

    def monitor_without_validation(self, monitor: str) -> str:
        return "loss"  # mask AP is measured on validation images only

    def callbacks(self, cfg: InstanceConfig, model: keras.Model, card: ModelCard, data: RunData,
                  history: dict[str, list[float]]) -> list[Any]:
        if data.val is None or not len(data.val) or cfg.monitor != "val_mask_ap50":
            return []
        last = None
        if history.get("val_mask_ap50"):  # a resumed run carries its last measured values
            last = tuple((history.get(k) or [0.0])[-1] for k in ("val_mask_ap50", "val_box_ap50", "val_mask_ap",
                                                                  "val_box_ap"))
        return [ValidationMaskAP(data.val, card, every=cfg.eval_every, batch_size=cfg.batch_size, last=last)]

    def finish(self, cfg: InstanceConfig, model: keras.Model, card: ModelCard, data: RunData, run_dir: Path,
               history: dict[str, list[float]]) -> dict[str, Any] | None:
        from foveal.instance.family import family_named
        from foveal.instance.predict import predict_dataset
        from foveal.instance.report import write_instance_report
        from foveal.instance.scoring import score_instances, to_coco_results

        tuned = family_named(cfg.model).tune(cfg, model, card, data)
        if tuned is not None:  # the chosen settings go into the saved models' cards
            from foveal.models.io import replace_card

            for name in ("best.keras", "last.keras"):
                if (run_dir / name).is_file():
                    replace_card(run_dir / name, card)
        split, part = data.scored_part()
        metrics, found = None, None
        if part is not None and len(part):
            found = predict_dataset(model, card, part, batch_size=cfg.batch_size)
            metrics = score_instances(part, found, score_threshold=cfg.score_threshold)
            metrics["split"] = split
            write_metrics(run_dir, metrics)
            category_ids = [c["id"] for c in part.coco_dict()["categories"]]
            atomic_write_text(run_dir / "detections.json", json.dumps(to_coco_results(found, category_ids)))
            say(f"{split}: mask AP {metrics['mask']['AP']:.4f}, AP50 {metrics['mask']['AP50']:.4f}; box AP "
                f"{metrics['box']['AP']:.4f}, AP50 {metrics['box']['AP50']:.4f}; {metrics['num_images']} images")
        summary: dict[str, Any] = {
            "run": run_dir.name, "task": f"instance segmentation ({cfg.model})", "backbone": cfg.backbone,
            "data": cfg.data, "classes": ", ".join(card.class_names), "input": "x".join(map(str, card.input_shape)),
            **training_summary(model, history),
        }
        if metrics is not None:
            summary |= {f"{split} mask AP": metrics["mask"]["AP"], "mask AP50": metrics["mask"]["AP50"],
                        "mask AP75": metrics["mask"]["AP75"], "box AP": metrics["box"]["AP"],
                        "box AP50": metrics["box"]["AP50"], "images scored": metrics["num_images"]}
        path = write_instance_report(run_dir / "report.html", title=f"foveal instance segmentation run {run_dir.name}",
                                     summary=summary, config=asdict(cfg), history=history, data=part,
                                     instances=found, metrics=metrics, count=cfg.report_images)
        say(f"report: {path}")
        return metrics


__all__ = ["InstanceTask", "ValidationMaskAP"]
