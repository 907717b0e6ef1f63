"""The ``tf.data`` pipeline of the localizer: decode, resize, augment image and box together.

Each image is stretched to the model's input size; its target box (the largest) is kept in
fractions of the image, so stretching leaves it unchanged. Batches are ``(float32 pixels
0..255, {"class": ..., "box": encoded box})``.

Augmentation is the detector's (:mod:`foveal.data.box_augment`, which describes the ops),
spelt in :data:`LOCALIZATION_GRAMMAR`: ``none``, ``standard`` (``flip,crop,brightness,contrast``)
or a comma list of ``flip``, ``vflip``, ``crop=S`` (the detector's ``safe_crop``: a window
keeping the whole box, each side at least S, default 0.75), ``brightness=F`` (0.15),
``contrast=F`` (0.25), ``saturation=F`` (0.3) and ``hue=F`` (0.02). A box under one input pixel
after the crop is dropped, as in detection: the image then counts as one without a box.

Example:
    >>> ds = make_localization_pipeline(data, image_size=(128, 128), channels=3, batch_size=16,
    ...                                 training=True, augment="flip,brightness")  # doctest: +SKIP
    >>> images, targets = next(iter(ds))  # doctest: +SKIP
    >>> images.shape, targets["box"].shape  # doctest: +SKIP
    (TensorShape([16, 128, 128, 3]), TensorShape([16, 4]))
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import tensorflow as tf

from foveal.data.box_augment import AugmentGrammar, BoxAugment, augment_boxes, parse_box_augment
from foveal.data.boxes import BoxedImages
from foveal.data.decode import decode_image_bytes, map_skipping_undecodable
from foveal.data.epochs import shuffled_epochs
from foveal.data.pipeline import resize_image, should_cache
from foveal.localization.metrics import NO_BOX, encode_boxes

AUTOTUNE = tf.data.AUTOTUNE
PRESETS = {"none": "", "standard": "flip,crop,brightness,contrast"}
#: The localizer's spelling: ``crop`` is the crop that keeps the box whole. Its seed slots are
#: the ones localization runs were drawn with before it shared the detector's code.
LOCALIZATION_GRAMMAR = AugmentGrammar(
    presets=PRESETS,
    ops={"flip": "flip", "vflip": "vflip", "crop": "safe_crop", "brightness": "brightness",
         "contrast": "contrast", "saturation": "saturation", "hue": "hue"},
    defaults={"flip": None, "vflip": None, "crop": 0.75, "brightness": 0.15, "contrast": 0.25,
              "saturation": 0.3, "hue": 0.02},
    slots=("safe_crop", "flip", "brightness", "contrast", "vflip", "saturation", "hue"),
)


def parse_augment(spec: str) -> BoxAugment:
    """A localization ``--augment`` spec -> :class:`BoxAugment` (ConfigError when bad)."""
    return parse_box_augment(spec, LOCALIZATION_GRAMMAR)


def augment_example(image: tf.Tensor, corners: tf.Tensor, valid: tf.Tensor, seed: tf.Tensor,
                    aug: BoxAugment) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Augment one float32 image (0..255, at the input size) and its normalised corner box
    together; ``corners`` is a placeholder where not ``valid``, and ``valid`` turns False when
    the box was dropped. Returns ``(image, corners, valid)``."""
    boxes = tf.boolean_mask(corners[None], valid[None])  # (1, 4) or (0, 4)
    image, boxes, _ = augment_boxes(image, boxes, tf.zeros([tf.shape(boxes)[0]], tf.int32), seed, aug)
    kept = tf.shape(boxes)[0] > 0
    # The first row is the moved box when one is left, else the untouched placeholder.
    return image, tf.concat([boxes, corners[None]], axis=0)[0], valid & kept


def targets_of(data: BoxedImages) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per image: normalised corners of the largest box, its label, and whether it has one."""
    corners, labels, valid = data.normalized_largest()
    return np.clip(corners, 0.0, 1.0).astype(np.float32), labels.astype(np.int32), valid


def make_localization_pipeline(
    data: BoxedImages,
    *,
    image_size: tuple[int, int],
    channels: int,
    batch_size: int,
    training: bool,
    augment: str = "none",
    seed: int = 0,
    cache: Literal["auto", "memory", "none"] = "auto",
    skip_invalid: bool = False,
    start_epoch: int | None = None,
) -> tf.data.Dataset:
    """Batches of ``(images, {"class", "box"})`` for ``fit``/``evaluate``.

    Args:
        data: annotated images (one class: the target is presence 1/0; more: the label of the
            largest box, and images without boxes must have been removed).
        image_size: (height, width) of the model input; images are stretched to it.
        training: shuffle (seeded) and augment (see the module docstring).
        cache: keep decoded, resized images in memory (``auto``: when under 1 GiB).
        skip_invalid: leave out (and name) images that fail to decode instead of raising.
        start_epoch: training: the endless batches of epochs ``start_epoch``, ... each shuffled
            and augmented by ``(seed, epoch)`` only (:mod:`foveal.data.epochs`); None: one pass.
    """
    corners, labels, valid = targets_of(data)
    single = data.num_classes == 1
    aug = parse_augment(augment) if training else BoxAugment()
    ds = tf.data.Dataset.from_tensor_slices((data.paths.astype(str), corners, labels, valid))

    def load(path, box, label, ok):
        image = resize_image(decode_image_bytes(tf.io.read_file(path), channels), image_size, keep_aspect=False)
        return image, box, label, ok

    if skip_invalid:  # left out, named and counted in data.info["undecodable"]
        ds = map_skipping_undecodable(ds, load, data.info)
    else:
        ds = ds.map(load, num_parallel_calls=AUTOTUNE)
    size_bytes = len(data) * image_size[0] * image_size[1] * channels
    if should_cache(cache, size_bytes):
        ds = ds.cache()

    def to_model(image, box, label, ok):
        image = tf.cast(image, tf.float32)
        image.set_shape([image_size[0], image_size[1], channels])
        encoded = tf.where(ok, encode_boxes(box), tf.fill([4], NO_BOX))
        target = tf.cast(ok, tf.float32)[None] if single else label
        return image, {"class": target, "box": encoded}

    def then(ds, s, epoch):
        if aug.active:
            # One random int per element, different every epoch but fixed by ``seed`` (and the epoch).
            randoms = tf.data.Dataset.random(seed=s, rerandomize_each_iteration=epoch is None)

            def augment_fn(element, r):
                image, box, label, ok = element
                pair = tf.stack([r, tf.cast(s, tf.int64)])
                image, box, ok = augment_example(tf.cast(image, tf.float32), box, ok, pair, aug)
                return image, box, label, ok

            ds = tf.data.Dataset.zip((ds, randoms)).map(augment_fn, num_parallel_calls=AUTOTUNE)
        return ds.map(to_model, num_parallel_calls=AUTOTUNE).batch(batch_size, num_parallel_calls=AUTOTUNE)

    if training:
        ds = shuffled_epochs(ds, len(data), seed=seed, start_epoch=start_epoch, then=then)
    else:
        ds = ds.map(to_model, num_parallel_calls=AUTOTUNE).batch(batch_size, num_parallel_calls=AUTOTUNE)
    return ds.prefetch(AUTOTUNE)
