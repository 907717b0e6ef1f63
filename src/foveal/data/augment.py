"""Augmentation as Keras layers that run inside the ``tf.data`` pipeline, on float pixels 0..255.

A spec is a preset name or a comma list of ``op`` / ``op=value`` items:

============  ==============================================================  =========
op            what it does                                                    default
============  ==============================================================  =========
flip          random horizontal flip                                          -
altflip       alternating flip (airbench): a seeded half of the images mirrored   -
              in even epochs, the other half in odd epochs (every image is seen
              both ways every two epochs); applied by the pipeline, per image
vflip         random vertical flip                                            -
crop=P        random crop of the image padded by P pixels (reflection): a shift   size / 8
              by a whole number of pixels drawn uniformly in [-P, P] each way
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
    # A crop of the reflection-padded image is a shift with reflected borders by whole pixels
    # (RandomTranslation would interpolate sub-pixel shifts, blurring the image).
    return RandomShift(int(round(pad)), seed=seed, name="random_crop")


@keras.saving.register_keras_serializable(package="foveal")
class RandomShift(keras.layers.Layer):
    """Random crops of the reflection-padded images: each image shifted by whole pixels
    ``(dy, dx)``, each drawn uniformly from ``-pad..pad`` (airbench's translate=2).

    Example:
        >>> import numpy as np
        >>> out = RandomShift(2, seed=0)(np.zeros((4, 8, 8, 3), "float32"), training=True)
        >>> tuple(out.shape)
        (4, 8, 8, 3)
    """

    def __init__(self, pad: int, seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pad, self.seed = int(pad), seed
        self._generator = tf.random.Generator.from_seed(seed or 0)

    def call(self, images, training=True):
        if not training or self.pad == 0:
            return images
        p = self.pad
        shape = tf.shape(images)
        n, h, w = shape[0], shape[1], shape[2]
        padded = tf.pad(images, [[0, 0], [p, p], [p, p], [0, 0]], mode="REFLECT")
        shifts = self._generator.uniform([n, 2], -p, p + 1, dtype=tf.int32)
        rows = tf.range(h)[None, :] + p - shifts[:, :1]  # content moves down by dy
        cols = tf.range(w)[None, :] + p - shifts[:, 1:]
        out = tf.gather(padded, rows, axis=1, batch_dims=1)
        return tf.gather(out, cols, axis=2, batch_dims=1)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return super().get_config() | {"pad": self.pad, "seed": self.seed}


_EPOCH: list[tf.Variable] = []


def augmentation_epoch() -> tf.Variable:
    """The epoch the training pipelines' epoch-dependent augmentation (``altflip``) uses.

    :class:`AugmentationEpoch` sets it at the start of every epoch of ``fit``, before that
    epoch's iterator is made (one variable per process: one run at a time).
    """
    if not _EPOCH:
        with tf.init_scope():
            _EPOCH.append(tf.Variable(0, dtype=tf.int64, trainable=False, name="augmentation_epoch"))
    return _EPOCH[0]


class AugmentationEpoch(keras.callbacks.Callback):
    """Keras callback: tells :func:`augmentation_epoch` which epoch begins (resumed runs too)."""

    def on_epoch_begin(self, epoch, logs=None) -> None:
        # Only a pipeline with altflip creates (and reads) the variable, and distributed pipelines
        # refuse altflip: creating or assigning it inside a strategy's scope would tie it to that
        # strategy, and the next run under another one fails ("Mixing different tf.distribute.Strategy").
        if _EPOCH and not tf.distribute.has_strategy():
            _EPOCH[0].assign(int(epoch))


def alternating_flip(ds: tf.data.Dataset, seed: int = 0,
                     epoch: tf.Variable | tf.Tensor | None = None) -> tf.data.Dataset:
    """Batches of ``ds`` (images, labels) with airbench's alternating flip.

    Jordan (arXiv:2404.00498, section 3.6): instead of flipping each image at random every
    epoch, a random half is mirrored in the first epoch and every image's flip alternates from
    epoch to epoch, so consecutive epochs always show each image both ways. Which half is a
    seeded hash of the image's pixels (so it holds whatever order the batches come in). The
    epoch is read from ``epoch`` (the trainer passes :func:`augmentation_epoch`, which
    :class:`AugmentationEpoch` sets) or is the epoch tensor of a dataset of epochs
    (:func:`foveal.data.epochs.epoch_stream`); without one, each new iterator of the dataset counts as
    an epoch (plain loops; Keras' ``fit`` makes more iterators than epochs).

    Example:
        >>> import numpy as np
        >>> x = np.arange(6, dtype="float32").reshape(1, 2, 3, 1)
        >>> ds = alternating_flip(tf.data.Dataset.from_tensors((x, np.zeros(1))))
        >>> a, b = [float(next(iter(ds))[0][0, 0, 0, 0]) for _ in range(2)]
        >>> sorted([a, b])
        [0.0, 2.0]
    """
    def flip(x, y, e):
        flat = tf.reshape(tf.cast(x, tf.float32), [tf.shape(x)[0], -1])
        digest = tf.strings.to_hash_bucket_strong(
            tf.strings.reduce_join(tf.strings.as_string(tf.cast(flat[:, ::7], tf.int32)), axis=1, separator=","),
            2, key=[int(seed), 0x5EED])
        mirrored = tf.math.floormod(digest + tf.cast(e, tf.int64), 2) == 1
        return tf.where(mirrored[:, None, None, None], tf.reverse(x, axis=[2]), x), y

    if isinstance(epoch, tf.Variable):
        out = ds.map(lambda x, y: flip(x, y, epoch.read_value()), num_parallel_calls=tf.data.AUTOTUNE)
        out._foveal_epoch_counter = epoch
        return out
    if epoch is not None:  # the epoch of a dataset of epochs (foveal.data.epochs)
        return ds.map(lambda x, y: flip(x, y, epoch), num_parallel_calls=tf.data.AUTOTUNE)
    counter = tf.Variable(-1, dtype=tf.int64, trainable=False, name="alternating_flip_epoch")
    count = tf.data.Dataset.range(1).map(lambda _: counter.assign_add(1)).flat_map(
        lambda e: tf.data.Dataset.from_tensors(e).repeat())
    out = tf.data.Dataset.zip((ds, count)).map(lambda batch, e: flip(*batch, e), num_parallel_calls=tf.data.AUTOTUNE)
    out._foveal_epoch_counter = counter  # the variable lives as long as the dataset
    return out


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
    items = [(op, value) for op, value in parse_spec(spec) if op != "altflip"]  # the pipeline's (see above)
    if not items:
        return None
    layers = [_make_op(op, value, image_size, seed + i) for i, (op, value) in enumerate(items)]
    return keras.Sequential(layers, name="augment")
