"""The ``tf.data`` input of instance models: decode, resize, instance-aware augmentation, pad, batch.

Each element is ``(images, targets)``:

* ``images``: float32 ``[B, H, W, C]``, pixels 0..255;
* ``targets["boxes"]``: float32 ``[B, M, 4]`` normalised corners of the input (0 on padding);
* ``targets["classes"]``: int32 ``[B, M]``, -1 on padding;
* ``targets["masks"]``: uint8 ``[B, H, W, M]``, each instance's 0/1 mask at the input's size.

``M`` is ``max_instances`` (an image with more keeps its largest). Crowd regions are not
targets (they only make detections on them neutral in the evaluation).

Order: decode (:func:`foveal.data.decode.decode_image_bytes`, the pixels every reader sees) and
masks (pycocotools) -> stretch both to the input size (masks bilinear, then >= 0.5) -> cache ->
shuffle -> augmentation (training) -> pad -> batch -> prefetch.

**Instance-aware augmentation** is :func:`foveal.data.box_augment.augment_boxes` given the
masks: one draw moves the image, the masks and the boxes together, and an instance is kept or
dropped with its mask and class.

Example:
    >>> ds = make_instance_pipeline(data, image_size=(128, 128), batch_size=4, training=True)  # doctest: +SKIP
    >>> images, targets = next(iter(ds))  # doctest: +SKIP
    >>> targets["masks"].shape  # doctest: +SKIP
    TensorShape([4, 128, 128, 20])
"""

from __future__ import annotations

import logging
from typing import Iterator

import numpy as np
import tensorflow as tf

from foveal.data.box_augment import BoxAugment, augment_boxes, parse_box_augment
from foveal.errors import ConfigError
from foveal.instance.data import InstanceImages

log = logging.getLogger("foveal")
AUTOTUNE = tf.data.AUTOTUNE
_AUTO_CACHE_BYTES = 1 << 30

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
    """(path, masks [h, w, K + 1] with a last all-zero channel, boxes [K, 4] normalised, classes [K])."""
    cut = 0
    assert data.difficult is not None
    for i in range(len(data)):
        w, h = (int(v) for v in data.image_sizes[i])
        keep = np.flatnonzero(~data.difficult[i])
        masks = data.masks(i)  # non-crowd, in box order
        if len(keep) > max_instances:
            areas = masks.reshape(-1, masks.shape[-1]).sum(axis=0)
            order = np.sort(np.argsort(-areas, kind="stable")[:max_instances])
            masks, keep = masks[..., order], keep[order]
            cut += 1
        boxes = data.boxes[i][keep] / np.array([w, h, w, h], np.float32)
        masks = np.concatenate([masks, np.zeros((h, w, 1), np.uint8)], axis=-1)
        yield (str(data.paths[i]), masks, np.clip(boxes, 0.0, 1.0).astype(np.float32),
               data.labels[i][keep].astype(np.int32))
    if cut:
        log.warning("%s: %d image(s) have more than %d instances; their largest were kept (--max-instances)",
                    data.origin, cut, max_instances)


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
    signature = (tf.TensorSpec([], tf.string), tf.TensorSpec([None, None, None], tf.uint8),
                 tf.TensorSpec([None, 4], tf.float32), tf.TensorSpec([None], tf.int32))
    ds = tf.data.Dataset.from_generator(lambda: _elements(data, max_instances), output_signature=signature)
    ds = ds.apply(tf.data.experimental.assert_cardinality(len(data)))

    def load(path, masks, boxes, classes):
        image = decode_image_bytes(tf.io.read_file(path), channels)
        image = tf.cast(tf.image.resize(tf.cast(image, tf.float32), [h, w], method="bilinear") + 0.5, tf.uint8)
        resized = tf.image.resize(tf.cast(masks, tf.float32), [h, w], method="bilinear")
        masks = tf.cast(resized >= 0.5, tf.uint8)[..., :-1]  # the last channel was a placeholder
        return image, masks, boxes, classes

    ds = ds.map(load, num_parallel_calls=AUTOTUNE)
    per_image = h * w * (channels + max(1, data.num_instances // max(len(data), 1)))
    if cache == "memory" or (cache == "auto" and len(data) * per_image < _AUTO_CACHE_BYTES):
        ds = ds.cache()

    def to_model(image, masks, boxes, classes):
        count = tf.minimum(tf.shape(classes)[0], max_instances)
        pad = max_instances - count
        image = tf.cast(image, tf.float32)
        image.set_shape([h, w, channels])
        masks = tf.pad(tf.cast(masks[..., :count], tf.uint8), [[0, 0], [0, 0], [0, pad]])
        masks.set_shape([h, w, max_instances])
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
                return augment_boxes(tf.cast(image, tf.float32), boxes, classes, pair, aug, masks=masks)

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


__all__ = ["INSTANCE_PRESETS", "images_only", "make_instance_pipeline", "parse_instance_augment"]
