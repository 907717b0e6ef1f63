"""Model families of the instance task: what differs between Mask R-CNN and other instance models.

The instance task (:mod:`foveal.instance.task`) reads data, runs the engine, scores and reports
the same way whatever the model; a :class:`Family` supplies the rest: building and compiling
the model, its training batches, the facts its card records, and turning a batch of model inputs
into :class:`~foveal.instance.scoring.ImageInstances` in each original image's pixels. A family
is one row of :data:`FAMILIES` (``--model NAME``, recorded in the card's ``training["model"]``).

Example:
    >>> family_named("mask-rcnn").title
    'Mask R-CNN'
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from foveal.errors import ConfigError, ModelError

if TYPE_CHECKING:
    import keras

    from foveal.engine.plugin import RunData
    from foveal.instance.scoring import ImageInstances

#: ``--model`` name -> ``module:Class`` of its family
FAMILIES: dict[str, str] = {
    "mask-rcnn": "foveal.instance.family:MaskRCNNFamily",
    "unet-watershed": "foveal.instance.watershed_family:UNetWatershedFamily",
}


class Family:
    """The hooks of one instance model family (see the module docstring)."""

    name = ""
    title = ""

    def build(self, cfg: Any, data: RunData) -> keras.Model:
        raise NotImplementedError

    def compile(self, cfg: Any, model: keras.Model, steps_per_epoch: int) -> None:
        raise NotImplementedError

    def restore(self, cfg: Any, data: RunData, card: Any) -> None:
        """Take back what a resumed run derived from its data (e.g. anchor sizes)."""

    def pipelines(self, cfg: Any, data: RunData, *, seed: int,
                  start_epoch: int | None = None) -> tuple[Any, Any | None]:
        from foveal.instance.pipeline import make_instance_pipeline

        common = dict(image_size=cfg.image_hw, channels=cfg.channels, batch_size=cfg.batch_size, cache=cfg.cache,
                      max_instances=cfg.max_instances)
        train = make_instance_pipeline(data.train, training=True, augment=cfg.augment, seed=seed,
                                       start_epoch=start_epoch, **common)
        val = (make_instance_pipeline(data.val, training=False, **common)
               if data.val is not None and len(data.val) else None)
        return train, val

    def card_training(self, cfg: Any, model: keras.Model) -> dict[str, Any]:
        """Facts of the model for its card's ``training`` (``model`` is added by the task)."""
        return {}

    def describe(self, cfg: Any, model: keras.Model) -> str:
        return self.title

    def tune(self, cfg: Any, model: keras.Model, card: Any, data: RunData) -> dict[str, Any] | None:
        """After training, before the test scoring: choose post-processing settings on the
        validation data and write them into ``card.training`` (the task then rewrites the
        card of ``best.keras``); returns what was chosen, or None when nothing was."""
        return None

    def predict_batch(self, model: keras.Model, card: Any, images: np.ndarray, sizes: Sequence[tuple[int, int]], *,
                      score_threshold: float | None = None, max_detections: int | None = None,
                      mask_threshold: float | None = None) -> list[ImageInstances]:
        """Instances of a batch of model inputs ``[N, H, W, C]`` (0..255, stretched from images
        of ``sizes`` (width, height)), in each original image's pixels.

        ``model`` is a Keras model or anything with its ``predict_on_batch`` (an export's runner
        dressed by :func:`foveal.instance.export_check.instance_model`)."""
        raise NotImplementedError

    def to_instances(self, out: dict[str, np.ndarray], card: Any, sizes: Sequence[tuple[int, int]], *,
                     score_threshold: float | None = None, max_detections: int | None = None,
                     mask_threshold: float | None = None) -> list[ImageInstances]:
        """Instances of a batch of the model's outputs (what :meth:`predict_batch` computes from
        them; an export's runner and ``foveal serve`` call it with the export's outputs)."""
        raise NotImplementedError


def family_named(name: str) -> Family:
    """The family of ``--model NAME``."""
    ref = FAMILIES.get(name)
    if ref is None:
        raise ConfigError(f"unknown instance model {name!r}", hint=f"known: {', '.join(FAMILIES)}")
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)()


def family_of(card: Any) -> Family:
    """The family that wrote a model card."""
    name = (card.training or {}).get("model")
    if name not in FAMILIES:
        raise ModelError(f"the instance model's card names the model family {name!r}, which this foveal does not know",
                         hint=f"known: {', '.join(FAMILIES)}; it may come from a newer foveal")
    return family_named(name)


class MaskRCNNFamily(Family):
    """Mask R-CNN (:mod:`foveal.instance.mask_rcnn`)."""

    name = "mask-rcnn"
    title = "Mask R-CNN"

    def build(self, cfg: Any, data: RunData) -> keras.Model:
        from foveal.detection.two_stage_run import build_two_stage
        from foveal.instance.mask_rcnn import build_mask_rcnn

        return build_two_stage(build_mask_rcnn, cfg, data, head_width=cfg.head_width, mask_width=cfg.mask_width,
                               mask_convs=cfg.mask_convs)

    def compile(self, cfg: Any, model: keras.Model, steps_per_epoch: int) -> None:
        from foveal.engine.optim import optimizer_for

        model.compile(optimizer=optimizer_for(cfg, model, steps_per_epoch))  # own losses; never XLA

    def restore(self, cfg: Any, data: RunData, card: Any) -> None:
        data.extra["anchor_sizes"] = list(card.training["anchor_sizes"])

    def card_training(self, cfg: Any, model: keras.Model) -> dict[str, Any]:
        return {"backbone": cfg.backbone, "level": model.level, "stride": model.stride, "fpn": bool(model.fpn_levels),
                "anchor_sizes": list(model.rcnn.anchor_sizes), "anchor_ratios": list(model.rcnn.anchor_ratios),
                "anchor_scales": list(model.rcnn.anchor_scales), "mask_size": model.mask_size,
                "mask_threshold": cfg.mask_threshold, "score_threshold": cfg.score_threshold,
                "iou_threshold": cfg.iou_threshold, "roi_canonical": float(model.rcnn.roi_canonical)}

    def describe(self, cfg: Any, model: keras.Model) -> str:
        return (f"Mask R-CNN ({model.level}, stride {model.stride}, {model.rcnn.num_anchors} anchors, "
                f"{model.mask_size}x{model.mask_size} masks from {model.mask_convs} conv(s) of {model.mask_width})")

    def predict_batch(self, model: keras.Model, card: Any, images: np.ndarray, sizes: Sequence[tuple[int, int]], *,
                      score_threshold: float | None = None, max_detections: int | None = None,
                      mask_threshold: float | None = None) -> list[ImageInstances]:
        from foveal.detection.scoring import postprocess_settings

        with postprocess_settings(model, score_threshold=score_threshold, max_detections=max_detections) as active:
            out = {k: np.asarray(v) for k, v in model.predict_on_batch(np.asarray(images, np.float32)).items()}
        return self.to_instances(out, card, sizes, score_threshold=float(active["score_threshold"]),
                                 mask_threshold=mask_threshold)

    def to_instances(self, out: dict[str, np.ndarray], card: Any, sizes: Sequence[tuple[int, int]], *,
                     score_threshold: float | None = None, max_detections: int | None = None,
                     mask_threshold: float | None = None) -> list[ImageInstances]:
        """The detections after NMS (``boxes`` normalised corners, ``scores``, ``classes``,
        ``num_detections``, ``masks [N, D, m, m]``) with each mask pasted into its image
        (:func:`~foveal.instance.masks.paste_masks`, at the card's mask threshold) as RLE.
        The outputs are taken as they are (``score_threshold`` is the threshold they were cut at)."""
        from foveal.detection.pipeline import to_image_pixels
        from foveal.instance.masks import encode_rle, paste_masks
        from foveal.instance.scoring import ImageInstances

        threshold = float(mask_threshold if mask_threshold is not None else card.training.get("mask_threshold", 0.5))
        cut = float(score_threshold if score_threshold is not None else card.training.get("score_threshold", 0.25))
        input_hw = tuple(card.input_shape[:2])
        result = []
        for i, (w, h) in enumerate(sizes):
            n = int(out["num_detections"][i])
            boxes = to_image_pixels(np.asarray(out["boxes"][i][:n]), (w, h), input_hw, False)
            pasted = paste_masks(out["masks"][i][:n], boxes, h, w, threshold)
            result.append(ImageInstances(boxes, np.asarray(out["scores"][i][:n], np.float64),
                                         np.asarray(out["classes"][i][:n]).astype(np.int64), cut,
                                         [encode_rle(m) for m in pasted]))
        return result


__all__ = ["FAMILIES", "Family", "MaskRCNNFamily", "family_named", "family_of"]
