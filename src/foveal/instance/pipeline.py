"""The ``tf.data`` input of instance models: decode, resize, instance-aware augmentation, pad, batch.

Each element is ``(images, targets)``:

* ``images``: float32 ``[B, H, W, C]``, pixels 0..255;
* ``targets["boxes"]``: float32 ``[B, M, 4]`` normalised corners of the input (0 on padding);
* ``targets["classes"]``: int32 ``[B, M]``, -1 on padding;
* ``targets["masks"]``: uint8 ``[B, M, S, S]``, each instance's mask in its box's frame
  (``S`` = :data:`~foveal.instance.masks.MASK_GRID`, 0..255 coverage; :func:`~foveal.instance.masks.box_mask`),
  which :func:`~foveal.instance.masks.mask_targets` cuts the mask head's targets from.

``M`` is ``max_instances`` (an image with more keeps its largest). Crowd regions are not
targets (they only make detections on them neutral in the evaluation). Masks in box frames
make memory grow with the number of instances times ``S x S``, not times the image's area: an
ISBI-like slice of 115 cells at 512 x 512 holds 0.47 MB of masks instead of 30 MB, in the cache
and in every batch (``benchmarks/instance_mask_memory.py`` measures both).

Order: decode (:func:`foveal.data.decode.decode_image_bytes`, the pixels every reader sees) and
masks (pycocotools, one at a time, each resampled into its box's frame at the image's own
resolution) -> stretch the image to the input size -> cache -> shuffle -> augmentation
(training) -> pad -> batch -> prefetch.

**Instance-aware augmentation** uses :mod:`foveal.data.box_augment`'s specs and draws: one
window (crop, scale, translate) is sampled from the image
(:func:`~foveal.data.box_augment.sample_window`), the boxes go through the same map
(:func:`~foveal.data.box_augment.boxes_in_window`), and an instance is kept or dropped together
with its mask and class (``min_visible`` of its box in view). A mask in its box's frame does not
change under that map, except where the window clips its box: then the clipped part of the frame
is resampled (:func:`~foveal.instance.masks.reframe_box_masks`). Flips turn the image, the boxes
and the masks in their frames together; photometric ops change the image only.

Example:
    >>> ds = make_instance_pipeline(data, image_size=(128, 128), batch_size=4, training=True)  # doctest: +SKIP
    >>> images, targets = next(iter(ds))  # doctest: +SKIP
    >>> targets["masks"].shape  # doctest: +SKIP
    TensorShape([4, 20, 64, 64])
"""

from __future__ import annotations

import logging
from typing import Iterator

import numpy as np
import tensorflow as tf

from foveal.data.box_augment import (
    BoxAugment,
    _draw_inputs,
    _photometric,
    _view_window,
    boxes_in_window,
    flip_boxes_horizontally,
    flip_boxes_vertically,
    parse_box_augment,
    sample_window,
)
from foveal.data.pipeline import should_cache
from foveal.errors import ConfigError
from foveal.instance.data import InstanceImages

log = logging.getLogger("foveal")
AUTOTUNE = tf.data.AUTOTUNE

#: instance augmentation presets (detection's op names)
INSTANCE_PRESETS = {
    "none": "none",
    "light": "flip,brightness=0.1,contrast=0.1",
    "instance": "flip,crop=0.6,scale=0.2,min_visible=0.5,brightness=0.15,contrast=0.2,saturation=0.2",
}


def parse_instance_augment(spec: str) -> BoxAugment:
    """An augmentation spec: a preset of :data:`INSTANCE_PRESETS`, or detection's op list
    (:func:`foveal.data.box_augment.parse_box_augment`; ``safe_crop`` included)."""
    return parse_box_augment(INSTANCE_PRESETS.get(spec, spec))


def _elements(data: InstanceImages, max_instances: int) -> Iterator[tuple]:
    """(path, masks [K, S, S] in their boxes' frames, boxes [K, 4] normalised, classes [K])."""
    from pycocotools import mask as mask_utils

    from foveal.instance.masks import MASK_GRID, box_mask, decode_rle

    cut = 0
    assert data.difficult is not None
    for i in range(len(data)):
        w, h = (int(v) for v in data.image_sizes[i])
        keep = np.flatnonzero(~data.difficult[i])  # non-crowd, in box order
        if len(keep) > max_instances:
            segs = data.segmentations[i]
            areas = np.array([mask_utils.area({"size": segs[k]["size"], "counts": segs[k]["counts"].encode("ascii")})
                              for k in keep], np.float64)
            keep = keep[np.sort(np.argsort(-areas, kind="stable")[:max_instances])]
            cut += 1
        boxes = np.clip(data.boxes[i][keep] / np.array([w, h, w, h], np.float32), 0.0, 1.0)
        frames = boxes * np.array([w, h, w, h], np.float32)
        masks = np.zeros((len(keep), MASK_GRID, MASK_GRID), np.uint8)
        for j, k in enumerate(keep):  # one full-size mask at a time
            masks[j] = box_mask(decode_rle(data.segmentations[i][k]), frames[j])
        yield (str(data.paths[i]), masks, boxes.astype(np.float32), data.labels[i][keep].astype(np.int32))
    if cut:
        log.warning("%s: %d image(s) have more than %d instances; their largest were kept (--max-instances)",
                    data.origin, cut, max_instances)


def augment_instances(image: tf.Tensor, masks: tf.Tensor, boxes: tf.Tensor, classes: tf.Tensor, seed: tf.Tensor,
                      cfg: BoxAugment | str) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]:
    """Augment one image with its instances by one random draw (see the module docstring).

    Args:
        image: float32 ``[H, W, C]`` 0..255.
        masks: ``[K, S, S]`` in their boxes' frames (0..255 coverage, any numeric dtype).
        boxes: ``[K, 4]`` normalised corners; classes: ``[K]``.
        seed: ``(2,)`` seed of the stateless draws.
        cfg: a :class:`~foveal.data.box_augment.BoxAugment` or a spec.

    Returns:
        ``(image, masks uint8 [K', S, S], boxes [K', 4], classes [K'])``: the instances in view.
    """
    from foveal.instance.masks import reframe_box_masks

    cfg, image, boxes, classes, slot = _draw_inputs(image, boxes, classes, seed, cfg)
    masks = tf.cast(masks, tf.float32)
    if cfg.geometric:
        window = _view_window(cfg, slot, boxes)
        image = sample_window(image, window)
        clipped, kept = boxes_in_window(boxes, tf.range(tf.shape(boxes)[0]), window, cfg.min_visible,
                                        tf.shape(image)[:2])
        origin, extent = tf.tile(window[:2], [2]), tf.tile(window[2:] - window[:2], [2])
        moved = (tf.gather(boxes, kept) - origin) / extent  # the kept boxes, unclipped, in the window
        size = tf.tile(tf.maximum(moved[:, 2:] - moved[:, :2], 1e-6), [1, 2])
        masks = reframe_box_masks(tf.gather(masks, kept), (clipped - tf.tile(moved[:, :2], [1, 2])) / size)
        boxes, classes = clipped, tf.gather(classes, kept)
    if cfg.flip:
        do = tf.random.stateless_uniform([], slot["flip"]) < 0.5
        image = tf.cond(do, lambda: tf.reverse(image, axis=[1]), lambda: image)
        masks = tf.cond(do, lambda: tf.reverse(masks, axis=[2]), lambda: masks)
        boxes = tf.cond(do, lambda: flip_boxes_horizontally(boxes), lambda: boxes)
    if cfg.vflip:
        do = tf.random.stateless_uniform([], slot["vflip"]) < 0.5
        image = tf.cond(do, lambda: tf.reverse(image, axis=[0]), lambda: image)
        masks = tf.cond(do, lambda: tf.reverse(masks, axis=[1]), lambda: masks)
        boxes = tf.cond(do, lambda: flip_boxes_vertically(boxes), lambda: boxes)
    image = _photometric(image, cfg, slot)
    return tf.clip_by_value(image, 0.0, 255.0), tf.cast(tf.round(masks), tf.uint8), boxes, classes


def make_instance_pipeline(data: InstanceImages, *, image_size: tuple[int, int], channels: int = 3,
                           batch_size: int = 8, training: bool = False, augment: str | BoxAugment = "none",
                           seed: int = 0, max_instances: int = 50, cache: str = "auto",
                           start_epoch: int | None = None) -> tf.data.Dataset:
    """The batches of ``data`` (see the module docstring).

    Args:
        data: the images and their instances.
        image_size: (height, width) of the model input (images are stretched to it).
        channels: 1 or 3.
        training: shuffle (seeded) and augment.
        augment: a spec (see :func:`parse_instance_augment`); used only in training.
        seed: shuffle and augmentation seed.
        max_instances: ``M``, instances per image kept (the largest).
        cache: ``memory``, ``none`` or ``auto`` (cache when the resized images and masks take under 1 GiB).
        start_epoch: training: the endless batches of epochs ``start_epoch``, ... each shuffled
            and augmented by ``(seed, epoch)`` only (:mod:`foveal.data.epochs`); None: one pass.
    """
    from foveal.data.decode import decode_image_bytes
    from foveal.data.epochs import shuffled_epochs

    if cache not in ("auto", "memory", "none"):
        raise ConfigError(f"cache must be auto, memory or none, not {cache!r}")
    if max_instances < 1:
        raise ConfigError(f"max_instances must be at least 1, got {max_instances}")
    aug = parse_instance_augment(augment) if isinstance(augment, str) else augment
    h, w = (int(v) for v in image_size)
    from foveal.instance.masks import MASK_GRID

    signature = (tf.TensorSpec([], tf.string), tf.TensorSpec([None, MASK_GRID, MASK_GRID], tf.uint8),
                 tf.TensorSpec([None, 4], tf.float32), tf.TensorSpec([None], tf.int32))
    ds = tf.data.Dataset.from_generator(lambda: _elements(data, max_instances), output_signature=signature)
    ds = ds.apply(tf.data.experimental.assert_cardinality(len(data)))

    def load(path, masks, boxes, classes):
        image = decode_image_bytes(tf.io.read_file(path), channels)
        image = tf.cast(tf.image.resize(tf.cast(image, tf.float32), [h, w], method="bilinear") + 0.5, tf.uint8)
        return image, masks, boxes, classes  # masks stay in their boxes' frames

    ds = ds.map(load, num_parallel_calls=AUTOTUNE)
    per_image = h * w * channels + MASK_GRID * MASK_GRID * max(1, data.num_instances // max(len(data), 1))
    if should_cache(cache, len(data) * per_image):
        ds = ds.cache()

    def to_model(image, masks, boxes, classes):
        count = tf.minimum(tf.shape(classes)[0], max_instances)
        pad = max_instances - count
        image = tf.cast(image, tf.float32)
        image.set_shape([h, w, channels])
        masks = tf.pad(tf.cast(masks[:count], tf.uint8), [[0, pad], [0, 0], [0, 0]])
        masks.set_shape([max_instances, MASK_GRID, MASK_GRID])
        boxes = tf.pad(boxes[:count], [[0, pad], [0, 0]])
        boxes.set_shape([max_instances, 4])
        classes = tf.pad(classes[:count], [[0, pad]], constant_values=-1)
        classes.set_shape([max_instances])
        return image, {"boxes": boxes, "classes": classes, "masks": masks}

    def then(ds, s, epoch):
        if training and aug.active:
            randoms = tf.data.Dataset.random(seed=s, rerandomize_each_iteration=epoch is None)

            def augment_fn(element, r):
                image, masks, boxes, classes = element
                pair = tf.stack([r, tf.cast(s, tf.int64)])
                return augment_instances(tf.cast(image, tf.float32), masks, boxes, classes, pair, aug)

            ds = tf.data.Dataset.zip((ds, randoms)).map(augment_fn, num_parallel_calls=AUTOTUNE)
        return ds.map(to_model, num_parallel_calls=AUTOTUNE).batch(batch_size, drop_remainder=False)

    if training:
        ds = shuffled_epochs(ds, len(data), seed=seed, start_epoch=start_epoch, then=then)
    else:
        ds = then(ds, seed, None)
    return ds.prefetch(AUTOTUNE)


def images_only(images: tf.Tensor, targets: dict[str, tf.Tensor]) -> tf.Tensor:
    """Map function dropping the targets (for ``predict``)."""
    return images


__all__ = ["INSTANCE_PRESETS", "augment_instances", "images_only", "make_instance_pipeline", "parse_instance_augment"]
