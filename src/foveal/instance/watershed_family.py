"""``foveal instance train --model unet-watershed``: U-Net + marker watershed as a family of the instance task.

The same run engine, data (COCO instances), scoring (COCO box and mask AP), report and
``evaluate``/``predict`` commands as Mask R-CNN (:mod:`foveal.instance.family`); what differs:

* **targets**: each training image's instances are painted into a label map (later annotations
  over earlier ones, crowd regions ignored) and turned into background / interior / boundary
  classes (:func:`~foveal.instance.watershed.instance_targets`, ``--boundary-width``) at the
  image's own resolution, then stretched to ``--image-size`` by nearest neighbour. With ``K``
  object classes the interior is split by class: the targets are ``K + 2`` classes,
  background, the interior of each object class, boundary (:func:`target_names`; one class
  gives the three of before);
* **input**: the segmentation pipeline (:func:`foveal.segmentation.pipeline.make_segmentation_pipeline`):
  optional random crops (``--crop-size``) and joint image/target augmentation
  (``--unet-augment``, segmentation's grammar: flips, quarter turns, rotation, zoom, elastic);
* **model**: a U-Net (:func:`foveal.segmentation.models.unet`, ``--unet-options``) with ``K + 2``
  output classes, trained with pixel cross-entropy + soft Dice;
* **prediction**: class probabilities at the input size, stretched back to each image, then
  :func:`~foveal.instance.watershed.watershed_instances` (``--watershed-options``) on
  P(interior) = the sum of the classes' interior probabilities; every region is an instance,
  scored by its mean interior probability. With several classes a region takes the class whose
  interior probability has the most mass over its pixels (the per-pixel class head's majority,
  weighted by confidence), and its score is multiplied by that class's share of the mass (so a
  region split between two classes scores lower).

Example:
    >>> from foveal.tasks import run_train                                             # doctest: +SKIP
    >>> run_train("instance", InstanceConfig(data="cells/annotations/instances.json",  # doctest: +SKIP
    ...           model="unet-watershed", image_size=[512], crop_size=[256]))
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from foveal.errors import ConfigError
from foveal.instance.family import Family

if TYPE_CHECKING:
    import keras

    from foveal.engine.plugin import RunData
    from foveal.instance.scoring import ImageInstances

#: U-Net options used unless ``--unet-options`` says otherwise
DEFAULT_UNET_OPTIONS: dict[str, Any] = {"width": 16, "depth": 4, "batch_norm": True}
IGNORE = 255


def unet_options(cfg: Any) -> dict[str, Any]:
    """The U-Net builder options of a config (defaults updated with ``--unet-options``)."""
    return DEFAULT_UNET_OPTIONS | dict(cfg.unet_options or {})


def validate_options(cfg: Any) -> None:
    """Check the unet-watershed options of an :class:`~foveal.instance.config.InstanceConfig`."""
    from foveal.instance.unet_watershed import post_options
    from foveal.segmentation.pipeline import parse_augment

    if cfg.boundary_width < 1:
        raise ConfigError(f"--boundary-width must be at least 1, got {cfg.boundary_width}")
    if len(cfg.crop_size) not in (1, 2) or any(v < 0 for v in cfg.crop_size):
        raise ConfigError("--crop-size must be 0, SIZE or HEIGHT WIDTH")
    stride = 2 ** int(unet_options(cfg).get("depth", 4))
    if any(v % stride for v in cfg.crop_size):
        raise ConfigError(f"--crop-size {cfg.crop_size} must be a multiple of the U-Net's stride {stride}")
    parse_augment(cfg.unet_augment)
    given = dict(cfg.watershed_options or {})
    if cfg.marker_threshold is not None:
        if not 0 < cfg.marker_threshold < 1:
            raise ConfigError(f"--marker-threshold must be in (0, 1), got {cfg.marker_threshold}")
        if "interior_threshold" in given and float(given["interior_threshold"]) != float(cfg.marker_threshold):
            raise ConfigError(f"--marker-threshold {cfg.marker_threshold} and --watershed-options interior_threshold="
                              f"{given['interior_threshold']} disagree", hint="give one of them")
    post_options(**given)


#: marker thresholds tried on the validation images at the end of training (see :func:`choose_marker_threshold`)
MARKER_GRID = (0.3, 0.4, 0.5, 0.6, 0.7)


def watershed_settings(cfg: Any) -> dict[str, Any]:
    """The post-processing of a config: ``--watershed-options`` with ``--marker-threshold``."""
    from foveal.instance.unet_watershed import post_options

    given = dict(cfg.watershed_options or {})
    if cfg.marker_threshold is not None:
        given["interior_threshold"] = float(cfg.marker_threshold)
    return post_options(**given)


def marker_threshold_fixed(cfg: Any) -> bool:
    """Whether the user set the marker threshold (``--marker-threshold`` or ``interior_threshold``)."""
    return cfg.marker_threshold is not None or "interior_threshold" in dict(cfg.watershed_options or {})


def choose_marker_threshold(model: Any, card: Any, data: Any, grid: Sequence[float] = MARKER_GRID, *,
                            batch_size: int = 8) -> dict[str, Any]:
    """The marker threshold of ``grid`` whose instances score the best COCO mask AP on ``data``
    (the validation images); ties go to the value nearest 0.5, the default.

    The U-Net runs once; only the watershed is repeated per threshold (on the same class
    probabilities), and every candidate's mask AP is scored as :func:`~foveal.instance.scoring.score_instances`
    scores it (:func:`~foveal.instance.scoring.segm_evaluate`, equal to pycocotools).

    Returns:
        ``{"grid": [...], "val_mask_ap": [...], "chosen": value}``.
    """
    import dataclasses

    from foveal.detection.pipeline import detection_data_errors, make_detection_pipeline
    from foveal.instance.scoring import segm_evaluate, to_coco_results

    h, w, c = card.input_shape
    ds = make_detection_pipeline(data, image_size=(h, w), channels=c, batch_size=batch_size, training=False,
                                 augment="none", cache="none", max_boxes=None)
    with detection_data_errors(data.origin or "validation data"):
        probs = np.concatenate([np.asarray(model.predict_on_batch(images)) for images, _ in ds])
    sizes = [(int(a), int(b)) for a, b in data.image_sizes]
    gt = data.coco_dict()
    category_ids = [c["id"] for c in gt["categories"]]
    family, scores = UNetWatershedFamily(), []
    for value in grid:
        training = dict(card.training)
        training["watershed"] = dict(training.get("watershed", {})) | {"interior_threshold": float(value)}
        trial = dataclasses.replace(card, training=training)
        found = family.to_instances({"probabilities": probs}, trial, sizes, score_threshold=0.001)
        scores.append(float(segm_evaluate(gt, to_coco_results(found, category_ids))["AP"]))  # as score_instances
    best = max(range(len(grid)), key=lambda k: (round(scores[k], 9), -abs(float(grid[k]) - 0.5)))
    return {"grid": [float(v) for v in grid], "val_mask_ap": [round(v, 6) for v in scores],
            "chosen": float(grid[best])}


def crop_hw(cfg: Any) -> tuple[int, int] | None:
    if not cfg.crop_size or min(cfg.crop_size) == 0:
        return None
    return int(cfg.crop_size[0]), int(cfg.crop_size[-1])


def target_names(class_names: Sequence[str]) -> list[str]:
    """The U-Net's target classes for these object classes: ``background, interior, boundary``
    for one; ``background, interior:NAME..., boundary`` for several (the interior by class)."""
    from foveal.instance.watershed import TARGET_CLASSES

    if len(class_names) == 1:
        return list(TARGET_CLASSES)
    return ["background", *(f"interior:{name}" for name in class_names), "boundary"]


def class_instances(probabilities: np.ndarray, labels: np.ndarray, scores: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Each watershed region's class and score from ``K + 2`` class probabilities (background,
    K interiors, boundary): the class with the most interior probability over the region's
    pixels; its score times that class's share of the region's interior mass."""
    count = int(scores.shape[0])
    k = probabilities.shape[-1] - 2
    if k == 1 or count == 0:
        return np.zeros(count, np.int64), np.asarray(scores, np.float64)
    flat = labels.ravel()
    mass = np.stack([np.bincount(flat, weights=probabilities[..., 1 + c].ravel(), minlength=count + 1)[1:count + 1]
                     for c in range(k)], axis=-1)  # [count, K]
    classes = np.argmax(mass, axis=-1)
    share = mass[np.arange(count), classes] / np.maximum(mass.sum(axis=-1), 1e-12)
    return classes.astype(np.int64), np.asarray(scores, np.float64) * share


class TargetImages:
    """:class:`~foveal.instance.data.InstanceImages` seen as (image, target) pairs, the interface
    :func:`~foveal.segmentation.pipeline.make_segmentation_pipeline` reads (:func:`target_names`)."""

    def __init__(self, data: Any, boundary_width: int) -> None:
        self.data, self.boundary_width, self.ignore_label = data, int(boundary_width), IGNORE
        self.image_paths = np.asarray([str(p) for p in data.paths])

    def __len__(self) -> int:
        return len(self.data)

    def targets(self, index: int) -> np.ndarray:
        """HxW uint8: 0 background, 1 interior, 2 boundary, 255 crowd (no loss); with K classes,
        1 + c the interior of class c and K + 1 boundary."""
        from foveal.instance.masks import decode_rle
        from foveal.instance.watershed import instance_targets

        w, h = (int(v) for v in self.data.image_sizes[index])
        labels = np.zeros((h, w), np.int32)
        crowd = np.zeros((h, w), bool)
        for k, (rle, is_crowd) in enumerate(zip(self.data.segmentations[index], self.data.difficult[index])):
            mask = decode_rle(rle).astype(bool)
            if is_crowd:
                crowd |= mask
            else:
                labels[mask] = k + 1
        out = instance_targets(labels, self.boundary_width)
        k = len(self.data.class_names)
        if k > 1:
            of_label = np.concatenate([[0], 1 + np.asarray(self.data.labels[index], np.int64)]).astype(np.uint8)
            out = np.where(out == 1, of_label[labels], np.where(out == 2, k + 1, 0)).astype(np.uint8)
        out[crowd] = IGNORE
        return out

    def to_tf_dataset(self, channels: int = 3, skip_invalid: bool = False):
        import tensorflow as tf

        from foveal.data.decode import decode_image_bytes

        def load(path, index):
            image = decode_image_bytes(tf.io.read_file(path), channels)
            target = tf.numpy_function(lambda i: self.targets(int(i)), [index], tf.uint8, stateful=False)
            target.set_shape([None, None])
            return image, target

        ds = tf.data.Dataset.from_tensor_slices((self.image_paths, np.arange(len(self), dtype=np.int64)))
        return ds.map(load, num_parallel_calls=tf.data.AUTOTUNE)


class UNetWatershedFamily(Family):
    """U-Net + marker watershed (see the module docstring)."""

    name = "unet-watershed"
    title = "U-Net + watershed"

    def build(self, cfg: Any, data: RunData) -> keras.Model:
        from foveal.segmentation.train import build_segmenter

        if len(data.class_names) > IGNORE - 2:
            raise ConfigError(f"U-Net + watershed takes at most {IGNORE - 2} classes; the data has "
                              f"{len(data.class_names)}", hint="use --model mask-rcnn")
        return build_segmenter("unet", num_classes=len(data.class_names) + 2, channels=cfg.channels,
                               options=unet_options(cfg),
                               preprocessing=cfg.preprocessing)

    def compile(self, cfg: Any, model: keras.Model, steps_per_epoch: int) -> None:
        from foveal.engine.optim import optimizer_for
        from foveal.segmentation.losses import CrossEntropyDice

        model.compile(optimizer=optimizer_for(cfg, model, steps_per_epoch),
                      loss=CrossEntropyDice(int(model.output_shape[-1]), ignore_label=IGNORE))

    def pipelines(self, cfg: Any, data: RunData, *, seed: int,
                  start_epoch: int | None = None) -> tuple[Any, Any | None]:
        from foveal.segmentation.pipeline import make_segmentation_pipeline, parse_augment

        stride = 2 ** int(unet_options(cfg).get("depth", 4))
        common = dict(channels=cfg.channels, batch_size=cfg.batch_size, image_size=cfg.image_hw, stride=stride,
                      cache=cfg.cache)
        train = make_segmentation_pipeline(TargetImages(data.train, cfg.boundary_width), training=True,
                                           crop_size=crop_hw(cfg), seed=seed, start_epoch=start_epoch,
                                           augment=parse_augment(cfg.unet_augment), **common)
        val = (make_segmentation_pipeline(TargetImages(data.val, cfg.boundary_width), training=False, **common)
               if data.val is not None and len(data.val) else None)
        return train, val

    def card_training(self, cfg: Any, model: keras.Model) -> dict[str, Any]:
        objects = int(model.output_shape[-1]) - 2  # the card's classes, in order
        return {"unet_options": unet_options(cfg), "boundary_width": cfg.boundary_width,
                "target_classes": target_names([str(c) for c in range(objects)] if objects > 1 else ["object"]),
                "watershed": watershed_settings(cfg),
                "marker_threshold": "given" if marker_threshold_fixed(cfg) else "default",
                "score_threshold": cfg.score_threshold, "max_detections": cfg.max_detections}

    def tune(self, cfg: Any, model: keras.Model, card: Any, data: RunData) -> dict[str, Any] | None:
        """Choose the marker threshold on the validation images (:func:`choose_marker_threshold`)
        unless the user set it; the card's ``watershed`` settings take it (``marker_threshold``:
        ``"validation"``, and ``marker_threshold_search`` records the grid and its scores)."""
        from foveal.training.runs import say

        if marker_threshold_fixed(cfg) or data.val is None or not len(data.val):
            return None
        search = choose_marker_threshold(model, card, data.val, batch_size=cfg.batch_size)
        card.training["watershed"] = dict(card.training["watershed"]) | {"interior_threshold": search["chosen"]}
        card.training.update(marker_threshold="validation", marker_threshold_search=search)
        say(f"marker threshold {search['chosen']} (validation mask AP " + ", ".join(
            f"{v}: {ap:.4f}" for v, ap in zip(search["grid"], search["val_mask_ap"])) + ")")
        return search

    def describe(self, cfg: Any, model: keras.Model) -> str:
        options = unet_options(cfg)
        return (f"U-Net + watershed (width {options.get('width')}, depth {options.get('depth')}; targets background/"
                f"interior/boundary of {cfg.boundary_width} px; crops {crop_hw(cfg) or 'none'})")

    def predict_batch(self, model: keras.Model, card: Any, images: np.ndarray, sizes: Sequence[tuple[int, int]], *,
                      score_threshold: float | None = None, max_detections: int | None = None,
                      mask_threshold: float | None = None) -> list[ImageInstances]:
        probs = np.asarray(model.predict_on_batch(np.asarray(images, np.float32)))
        return self.to_instances({"probabilities": probs}, card, sizes, score_threshold=score_threshold,
                                 max_detections=max_detections)

    def to_instances(self, out: dict[str, np.ndarray], card: Any, sizes: Sequence[tuple[int, int]], *,
                     score_threshold: float | None = None, max_detections: int | None = None,
                     mask_threshold: float | None = None) -> list[ImageInstances]:
        """Class probabilities ``{"probabilities": [N, h, w, K + 2]}`` stretched back to each image's
        size, then the card's watershed (:func:`~foveal.instance.watershed.watershed_instances`)
        on background, the summed interiors and boundary, each region's class by
        :func:`class_instances`: the instances scoring at least ``score_threshold`` (default:
        the card's), best first."""
        import tensorflow as tf
        from pycocotools import mask as mask_utils

        from foveal.evaluation.detection import mask_to_rle
        from foveal.instance.scoring import ImageInstances
        from foveal.instance.unet_watershed import post_options
        from foveal.instance.watershed import watershed_instances

        training = card.training or {}
        post = post_options(**training.get("watershed", {}))
        threshold = float(score_threshold if score_threshold is not None else training.get("score_threshold", 0.25))
        limit = int(max_detections if max_detections is not None else training.get("max_detections", 100))
        result = []
        for p, (w, h) in zip(np.asarray(out["probabilities"]), sizes):
            if p.shape[:2] != (h, w):
                p = tf.image.resize(p, (h, w), method="bilinear").numpy()
            if p.shape[-1] > 3:  # K interiors: the watershed sees their sum
                merged = np.stack([p[..., 0], p[..., 1:-1].sum(axis=-1), p[..., -1]], axis=-1)
                labels, scores = watershed_instances(merged, **post)
                classes, scores = class_instances(p, labels, scores)
            else:
                labels, scores = watershed_instances(p, **post)
                classes = np.zeros(len(scores), np.int64)
            order = [int(k) for k in np.argsort(-scores, kind="stable") if scores[k] >= threshold][:limit]
            rles = [mask_to_rle(labels == k + 1) for k in order]
            boxes = np.zeros((len(order), 4), np.float32)
            for j, rle in enumerate(rles):
                x, y, bw, bh = mask_utils.toBbox({"size": rle["size"], "counts": rle["counts"].encode("ascii")})
                boxes[j] = (x, y, x + bw, y + bh)
            result.append(ImageInstances(boxes, scores[order].astype(np.float64), classes[order],
                                         threshold, rles))
        return result


__all__ = ["DEFAULT_UNET_OPTIONS", "MARKER_GRID", "TargetImages", "UNetWatershedFamily", "choose_marker_threshold",
           "class_instances", "crop_hw", "target_names", "marker_threshold_fixed", "unet_options", "validate_options", "watershed_settings"]
