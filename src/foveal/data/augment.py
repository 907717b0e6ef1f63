"""Augmentation as Keras layers that run inside the ``tf.data`` pipeline, on float pixels 0..255.

A spec is a preset name or a comma list of ``op`` / ``op=value`` items:

============  ==============================================================  =========
op            what it does                                                    default
============  ==============================================================  =========
flip          random horizontal flip                                          -
vflip         random vertical flip                                            -
crop=P        random crop of the image padded by P pixels (reflection)        size / 8
translate=F   random shift by up to F of the height and width                 0.1
zoom=F        scale jitter: zoom in or out by up to F                         0.1
rotate=D      random rotation by up to D degrees                              10
brightness=F  add up to +-F of the value range                                0.1
contrast=F    scale contrast by a factor in [1-F, 1+F]                        0.1
jpeg=Q        re-encode as JPEG with a quality drawn in [Q, 100]              60
============  ==============================================================  =========

Presets: ``none``; ``light`` (flip, translate=0.05); ``standard`` (flip, crop, zoom, rotate,
brightness, contrast); ``heavy`` (standard, stronger, plus jpeg); ``digits`` (translate, rotate,
zoom: no flips, which would turn a 2 into a mirror glyph).

Example:
    >>> aug = build_augmenter("flip,rotate=15", image_size=(32, 32), seed=1)
    >>> [layer.__class__.__name__ for layer in aug.layers]
    ['RandomFlip', 'RandomRotation']
"""

from __future__ import annotations

from typing import Any, Callable

import keras
import tensorflow as tf

from foveal.errors import ConfigError

PRESETS: dict[str, str] = {
    "none": "",
    "light": "flip,translate=0.05",
    "standard": "flip,crop,zoom=0.1,rotate=10,brightness=0.1,contrast=0.1",
    "heavy": "flip,crop,zoom=0.2,rotate=15,brightness=0.2,contrast=0.2,jpeg=60",
    "digits": "translate=0.1,rotate=10,zoom=0.1",
}


@keras.saving.register_keras_serializable(package="foveal")
class RandomJPEGQuality(keras.layers.Layer):
    """Re-encode each image of a batch as JPEG with a random quality in ``[min_quality, 100]``.

    Works on float pixels 0..255 (gray or RGB); inference mode is the identity.
    """

    def __init__(self, min_quality: int = 60, max_quality: int = 100, seed: int | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        if not 0 <= min_quality <= max_quality <= 100:
            raise ValueError("JPEG qualities must satisfy 0 <= min <= max <= 100")
        self.min_quality, self.max_quality, self.seed = int(min_quality), int(max_quality), seed

    def call(self, images, training=True):
        if not training:
            return images

        def one(image):
            image = tf.cast(tf.clip_by_value(tf.round(image), 0.0, 255.0), tf.uint8)
            out = tf.image.random_jpeg_quality(image, self.min_quality, self.max_quality, seed=self.seed)
            return tf.cast(out, tf.float32)

        return tf.map_fn(one, tf.cast(images, tf.float32), fn_output_signature=tf.float32)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(min_quality=self.min_quality, max_quality=self.max_quality, seed=self.seed)
        return config


def _fraction(value: str | None, default: float, op: str) -> float:
    if value is None:
        return default
    try:
        result = float(value)
    except ValueError:
        raise ConfigError(f"augmentation {op}={value!r}: expected a number") from None
    if result < 0:
        raise ConfigError(f"augmentation {op}={value!r}: must not be negative")
    return result


def _make_op(op: str, value: str | None, size: tuple[int, int], seed: int) -> keras.layers.Layer:
    h, w = size
    builders: dict[str, Callable[[], keras.layers.Layer]] = {
        "flip": lambda: keras.layers.RandomFlip("horizontal", seed=seed),
        "vflip": lambda: keras.layers.RandomFlip("vertical", seed=seed),
        "crop": lambda: _pad_crop(_fraction(value, max(1, min(h, w) // 8), op), h, w, seed),
        "translate": lambda: keras.layers.RandomTranslation(
            _fraction(value, 0.1, op), _fraction(value, 0.1, op), fill_mode="reflect", seed=seed),
        "zoom": lambda: keras.layers.RandomZoom(
            (-_fraction(value, 0.1, op), _fraction(value, 0.1, op)), fill_mode="reflect", seed=seed),
        "rotate": lambda: keras.layers.RandomRotation(
            _fraction(value, 10.0, op) / 360.0, fill_mode="reflect", seed=seed),
        "brightness": lambda: keras.layers.RandomBrightness(_fraction(value, 0.1, op), value_range=(0, 255), seed=seed),
        "contrast": lambda: keras.layers.RandomContrast(_fraction(value, 0.1, op), value_range=(0, 255), seed=seed),
        "jpeg": lambda: RandomJPEGQuality(int(_fraction(value, 60, op)), 100, seed=seed),
    }
    if op not in builders:
        raise ConfigError(
            f"unknown augmentation {op!r}",
            hint=f"use a preset ({', '.join(PRESETS)}) or ops from: {', '.join(builders)}",
        )
    return builders[op]()


def _pad_crop(pad: float, h: int, w: int, seed: int) -> keras.layers.Layer:
    # A crop of the reflection-padded image is the same as a shift with reflected borders,
    # and RandomTranslation draws a different shift for every image of the batch.
    return keras.layers.RandomTranslation(pad / h, pad / w, fill_mode="reflect", seed=seed, name="random_crop")


def parse_spec(spec: str) -> list[tuple[str, str | None]]:
    """``"standard"`` or ``"flip,rotate=15"`` -> ``[(op, value), ...]``."""
    spec = spec.strip()
    if spec.lower() in PRESETS:
        spec = PRESETS[spec.lower()]
    items = []
    for part in filter(None, (p.strip() for p in spec.split(","))):
        op, _, value = part.partition("=")
        items.append((op.strip().lower(), value.strip() or None))
    return items


def build_augmenter(spec: str, image_size: tuple[int, int], seed: int = 0) -> keras.Sequential | None:
    """A ``keras.Sequential`` of random layers for ``spec``, or None for no augmentation."""
    items = parse_spec(spec)
    if not items:
        return None
    layers = [_make_op(op, value, image_size, seed + i) for i, (op, value) in enumerate(items)]
    return keras.Sequential(layers, name="augment")
