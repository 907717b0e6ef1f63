"""The ``tf.data`` pipeline of the localizer: decode, resize, augment image and box together.

Each image is decoded and stretched to the model's input size. Its target box (the largest,
see :meth:`~foveal.data.boxes.BoxedImages.largest`) is kept in fractions of the image size, so
stretching leaves it unchanged. Geometric augmentation moves image and box together;
photometric augmentation touches the image only. Batches are ``(float32 pixels 0..255,
{"class": ..., "box": encoded box})``.

Augmentation spec: ``none`` or a comma list of ops (``op`` or ``op=value``):

===========  ======================================================================  =======
op           what it does                                                            default
===========  ======================================================================  =======
flip         horizontal flip with probability 1/2; the box is mirrored too           -
crop=S       random crop that keeps the whole box, each side at least S of the       0.75
             image, stretched back to the input size (the box follows)
brightness=F add up to +-F x 255 to every pixel                                      0.15
contrast=F   scale contrast about the mean by a factor in [1-F, 1+F]                 0.25
===========  ======================================================================  =======

``standard`` is ``flip,crop,brightness,contrast``. Random draws come from stateless ops seeded
per element from ``seed`` (re-drawn each epoch), so a run is repeatable.

Example:
    >>> ds = make_localization_pipeline(data, image_size=(128, 128), channels=3, batch_size=16,
    ...                                 training=True, augment="flip,brightness")  # doctest: +SKIP
    >>> images, targets = next(iter(ds))  # doctest: +SKIP
    >>> images.shape, targets["box"].shape  # doctest: +SKIP
    (TensorShape([16, 128, 128, 3]), TensorShape([16, 4]))
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import tensorflow as tf

from foveal.data.boxes import BoxedImages
from foveal.data.decode import decode_image_bytes
from foveal.data.pipeline import resize_image
from foveal.errors import ConfigError
from foveal.localization.metrics import NO_BOX, encode_boxes

AUTOTUNE = tf.data.AUTOTUNE
PRESETS = {"none": "", "standard": "flip,crop,brightness,contrast"}
DEFAULTS = {"flip": None, "crop": 0.75, "brightness": 0.15, "contrast": 0.25}
_AUTO_CACHE_BYTES = 1 << 30  # cache decoded images when they fit in 1 GiB


@dataclass(frozen=True)
class BoxAugment:
    """Parsed augmentation spec (``None`` = op off)."""

    flip: bool = False
    crop: float | None = None
    brightness: float | None = None
    contrast: float | None = None

    @property
    def active(self) -> bool:
        return self.flip or any(v is not None for v in (self.crop, self.brightness, self.contrast))


def parse_augment(spec: str) -> BoxAugment:
    """``"flip,crop=0.5"`` -> :class:`BoxAugment`; unknown ops raise :class:`ConfigError`."""
    spec = PRESETS.get(spec.strip(), spec)
    values: dict[str, object] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name, sep, raw = item.partition("=")
        name = name.strip()
        if name not in DEFAULTS:
            raise ConfigError(f"unknown box augmentation {name!r}",
                              hint=f"use none, standard, or a comma list of {', '.join(DEFAULTS)}")
        if name == "flip":
            if sep:
                raise ConfigError("box augmentation 'flip' takes no value")
            values["flip"] = True
            continue
        try:
            value = float(raw) if sep else float(DEFAULTS[name])  # type: ignore[arg-type]
        except ValueError:
            raise ConfigError(f"box augmentation {name!r}: {raw!r} is not a number") from None
        if not (0.0 < value <= 1.0) or (name == "crop" and value >= 1.0):
            raise ConfigError(f"box augmentation {name}={value:g} is out of range (0, 1{')' if name == 'crop' else ']'}")
        values[name] = value
    return BoxAugment(**values)  # type: ignore[arg-type]


def flip_boxes(corners: tf.Tensor) -> tf.Tensor:
    """Mirror normalised corner boxes left-right: x -> 1 - x (min and max swap)."""
    return tf.stack([1.0 - corners[..., 2], corners[..., 1], 1.0 - corners[..., 0], corners[..., 3]], axis=-1)


def augment_example(image: tf.Tensor, corners: tf.Tensor, valid: tf.Tensor, seed: tf.Tensor,
                    aug: BoxAugment, size: tuple[int, int]) -> tuple[tf.Tensor, tf.Tensor]:
    """Augment one float32 image (H, W, C, 0..255) and its normalised corner box together.

    ``seed`` is a shape-(2,) int tensor for the stateless random ops; ``valid`` is False for
    images without a box, whose placeholder box is left as it is.
    """
    seeds = tf.random.experimental.stateless_split(seed, num=5)
    if aug.crop is not None:
        image, corners = _random_crop(image, corners, valid, seeds[0], aug.crop, size)
    if aug.flip:
        do_flip = tf.random.stateless_uniform([], seeds[1]) < 0.5
        image = tf.cond(do_flip, lambda: tf.reverse(image, axis=[1]), lambda: image)
        corners = tf.where(do_flip & valid, flip_boxes(corners), corners)
    if aug.brightness is not None:
        delta = tf.random.stateless_uniform([], seeds[2], -aug.brightness, aug.brightness) * 255.0
        image = image + delta
    if aug.contrast is not None:
        factor = tf.random.stateless_uniform([], seeds[3], 1.0 - aug.contrast, 1.0 + aug.contrast)
        mean = tf.reduce_mean(image, axis=[0, 1], keepdims=True)
        image = (image - mean) * factor + mean
    return tf.clip_by_value(image, 0.0, 255.0), corners


def _random_crop(image, corners, valid, seed, min_scale: float, size: tuple[int, int]):
    """Crop a window that contains the box, then stretch it back to ``size``."""
    # Without a box any window will do; pretend the box is the centre point.
    box = tf.where(valid, corners, tf.constant([0.5, 0.5, 0.5, 0.5]))
    u = tf.random.stateless_uniform([3], seed)
    scale = min_scale + (1.0 - min_scale) * u[0]
    extent = tf.minimum(tf.maximum(scale, tf.stack([box[2] - box[0], box[3] - box[1]])), 1.0)  # (w, h)
    low = tf.maximum(0.0, box[2:] - extent)  # window start range keeps the box inside
    high = tf.minimum(box[:2], 1.0 - extent)
    start = low + (high - low) * u[1:]
    window = tf.concat([start, start + extent], axis=0)  # x0, y0, x1, y1
    cropped = tf.image.crop_and_resize(image[None], [[window[1], window[0], window[3], window[2]]], [0], size)[0]
    new = (corners - tf.tile(start, [2])) / tf.tile(extent, [2])
    return cropped, tf.where(valid, tf.clip_by_value(new, 0.0, 1.0), corners)


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
) -> tf.data.Dataset:
    """Batches of ``(images, {"class", "box"})`` for ``fit``/``evaluate``.

    Args:
        data: annotated images (one class: the class target is presence 1/0; two or more:
            the label of the largest box; images without boxes must have been removed).
        image_size: (height, width) of the model input; images are stretched to it.
        channels: 1 or 3.
        batch_size: images per batch.
        training: shuffle (seeded) and augment.
        augment: see the module docstring.
        seed: shuffle and augmentation seed.
        cache: keep decoded, resized uint8 images in memory after the first epoch (``auto``:
            when they take less than 1 GiB).
        skip_invalid: drop images that fail to decode instead of raising.
    """
    corners, labels, valid = targets_of(data)
    single = data.num_classes == 1
    aug = parse_augment(augment) if training else BoxAugment()
    ds = tf.data.Dataset.from_tensor_slices((data.paths.astype(str), corners, labels, valid))

    def load(path, box, label, ok):
        image = resize_image(decode_image_bytes(tf.io.read_file(path), channels), image_size, keep_aspect=False)
        return image, box, label, ok

    ds = ds.map(load, num_parallel_calls=AUTOTUNE)
    if skip_invalid:
        ds = ds.ignore_errors(log_warning=True)
    size_bytes = len(data) * image_size[0] * image_size[1] * channels
    if cache == "memory" or (cache == "auto" and size_bytes < _AUTO_CACHE_BYTES):
        ds = ds.cache()
    if training:
        ds = ds.shuffle(max(len(data), 1), seed=seed, reshuffle_each_iteration=True)
        if aug.active:
            # One random int per element, different every epoch but fixed by ``seed``.
            randoms = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
            ds = tf.data.Dataset.zip((ds, randoms))

            def augment_fn(element, r):
                image, box, label, ok = element
                pair = tf.stack([r, tf.constant(seed, tf.int64)])
                image, box = augment_example(tf.cast(image, tf.float32), box, ok, pair, aug, image_size)
                return image, box, label, ok

            ds = ds.map(augment_fn, num_parallel_calls=AUTOTUNE)

    def to_model(image, box, label, ok):
        image = tf.cast(image, tf.float32)
        image.set_shape([image_size[0], image_size[1], channels])
        encoded = tf.where(ok, encode_boxes(box), tf.fill([4], NO_BOX))
        target = tf.cast(ok, tf.float32)[None] if single else label
        return image, {"class": target, "box": encoded}

    ds = ds.map(to_model, num_parallel_calls=AUTOTUNE)
    return ds.batch(batch_size, num_parallel_calls=AUTOTUNE).prefetch(AUTOTUNE)


__all__ = ["BoxAugment", "PRESETS", "augment_example", "flip_boxes", "make_localization_pipeline",
           "parse_augment", "targets_of"]
