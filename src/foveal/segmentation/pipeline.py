"""The ``tf.data`` input of the segmentation trainer: decode, resize, crop and augment pairs.

Pairs are optionally stretched to ``image_size`` (masks by nearest neighbour) and cached; training
shuffles them and takes one :class:`~foveal.segmentation.augment.SegmentationAugment` draw (with
the random crop) per pair, evaluation pads whole images to a multiple of the stride with the
ignore label. Batches are ``(float32 pixels 0..255, target)``: a (B, H, W) label map, or
(B, H, W, 2) labels + pixel weights with U-Net border weights (see :mod:`.losses`).

Augmentation spec (``--augment``): a preset name or a comma list of ops.

==============  ===================================================================  ========
op              what it does                                                         default
==============  ===================================================================  ========
hflip, vflip    mirror left-right / top-bottom with probability 1/2                  -
rot90           rotate by 0, 90, 180 or 270 degrees                                  -
angle=D         rotate by a further angle drawn from [-D, D] degrees                 10
scale=LO-HI     zoom by a factor drawn log-uniformly from [LO, HI]                   0.8-1.25
elastic=S       U-Net's elastic deformation: 3x3 grid of displacements, std S px     10
brightness=F    add up to +-F x 255 to the image                                     0.1
contrast=F      scale the image's contrast by a factor in [1-F, 1+F]                 0.1
==============  ===================================================================  ========

Presets: ``none`` (crop only), ``flips``, ``standard`` (natural images) and ``microscopy``
(rotation-free textures such as micrographs), spelt out in :data:`PRESETS`.

Example:
    >>> aug = parse_augment("microscopy", crop_size=(256, 256))
    >>> aug.elastic_sigma, aug.rot90
    (10.0, True)
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable

import numpy as np

from foveal.errors import ConfigError
from foveal.segmentation.augment import SegmentationAugment, augment_dataset

PRESETS: dict[str, str] = {
    "none": "",
    "flips": "hflip",
    "standard": "hflip,scale=0.8-1.25,brightness=0.1,contrast=0.1",
    "microscopy": "hflip,vflip,rot90,angle=10,scale=0.9-1.1,elastic=10,brightness=0.05,contrast=0.1",
}
#: op -> (SegmentationAugment field, default value); flags have no value.
OPS: dict[str, tuple[str, Any]] = {
    "hflip": ("hflip", None), "vflip": ("vflip", None), "rot90": ("rot90", None),
    "angle": ("max_angle", 10.0), "scale": ("scale", (0.8, 1.25)), "elastic": ("elastic_sigma", 10.0),
    "brightness": ("brightness", 0.1), "contrast": ("contrast", 0.1),
}


def parse_augment(spec: str, *, crop_size: tuple[int, int] | None = None,
                  ignore_label: int = 255) -> SegmentationAugment:
    """A preset name or ``"hflip,angle=15,elastic=8"`` -> :class:`SegmentationAugment` (ConfigError
    for an unknown op or a bad value)."""
    text = PRESETS.get(spec.strip(), spec)
    values: dict[str, Any] = {"hflip": False}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, raw = (s.strip() for s in item.partition("="))
        if name not in OPS:
            raise ConfigError(f"unknown segmentation augmentation {name!r}",
                              hint=f"use a preset ({', '.join(PRESETS)}) or a comma list of {', '.join(OPS)}")
        field, default = OPS[name]
        if default is None:
            if sep:
                raise ConfigError(f"segmentation augmentation {name!r} takes no value")
            values[field] = True
        elif not sep:
            values[field] = default
        else:
            values[field] = _parse_value(name, raw)
    return SegmentationAugment(crop_size=crop_size, ignore_label=ignore_label, **values)


def _parse_value(name: str, raw: str) -> Any:
    try:
        if name == "scale":
            lo, _, hi = raw.partition("-")
            pair = (float(lo), float(hi or lo))
            if not 0 < pair[0] <= pair[1]:
                raise ValueError
            return pair
        value = float(raw)
        if value < 0:
            raise ValueError
        return value
    except ValueError:
        form = "LO-HI with 0 < LO <= HI, e.g. scale=0.8-1.25" if name == "scale" else "a number >= 0"
        raise ConfigError(f"segmentation augmentation {name}={raw!r}: expected {form}") from None


def make_segmentation_pipeline(
    data,
    *,
    channels: int,
    batch_size: int,
    training: bool,
    image_size: tuple[int, int] | None = None,
    crop_size: tuple[int, int] | None = None,
    augment: SegmentationAugment | None = None,
    stride: int = 32,
    seed: int = 0,
    repeat: bool = False,
    cache: str = "auto",
    skip_invalid: bool = False,
    weight_map: Callable[[np.ndarray], np.ndarray] | None = None,
    start_epoch: int | None = None,
    steps_per_epoch: int | None = None,
):
    """Batches of ``(images, targets)`` from a :class:`~foveal.segmentation.data.SegmentationImages`.

    Args:
        training: shuffle, crop (``crop_size``; None: whole images) and augment, else whole
            images padded to a multiple of ``stride``.
        image_size: (height, width) every pair is stretched to first; None keeps file sizes.
        augment: the random transformations (None: crop only); its ``crop_size`` is replaced.
        repeat: repeat the training data forever (for a fixed number of steps per epoch).
        cache: ``memory``, ``none`` or ``auto`` (memory when the decoded pairs fit in 1 GiB).
        weight_map: ``mask -> HxW float32 weights`` (U-Net border weights), once per pair.
        start_epoch: training: the endless batches of epochs ``start_epoch``, ... each shuffled
            and augmented by ``(seed, epoch)`` only (:mod:`foveal.data.epochs`); None: one pass.
        steps_per_epoch: with ``repeat`` and ``start_epoch``: the batches of one epoch.
    """
    import tensorflow as tf

    from foveal.data.epochs import shuffled_epochs
    from foveal.data.pipeline import resize_image

    ignore = data.ignore_label
    ds = data.to_tf_dataset(channels, skip_invalid=skip_invalid)
    if image_size is not None:
        size = tuple(int(v) for v in image_size)

        def resize(image, mask):
            mask = tf.image.resize(mask[..., None], size, method="nearest")[..., 0]
            return resize_image(image, size, keep_aspect=False), mask

        ds = ds.map(resize, num_parallel_calls=tf.data.AUTOTUNE)
    if weight_map is not None:
        def add_weights(image, mask):
            weights = tf.numpy_function(lambda m: weight_map(m).astype(np.float32), [mask], tf.float32)
            weights.set_shape(mask.shape)
            return image, mask, weights

        ds = ds.map(add_weights, num_parallel_calls=tf.data.AUTOTUNE)
    if _should_cache(data, channels, image_size, cache):
        ds = ds.cache()
    def batched(ds):
        if not training or crop_size is None:
            ds = ds.map(lambda *pair: _pad_to_stride(*pair, stride=stride, ignore=ignore),
                        num_parallel_calls=tf.data.AUTOTUNE)
            values = (0.0, ignore) if weight_map is None else (0.0, ignore, 0.0)
            return ds.padded_batch(batch_size, padding_values=tuple(tf.constant(v, t) for v, t in
                                                                    zip(values, (tf.float32, tf.int32, tf.float32))))
        return ds.batch(batch_size)

    def then(ds, s, epoch):
        if repeat:
            ds = ds.repeat()
        aug = augment if augment is not None else SegmentationAugment(hflip=False, ignore_label=ignore)
        crop = None if crop_size is None else tuple(int(v) for v in crop_size)
        ds = batched(augment_dataset(ds, replace(aug, crop_size=crop), seed=s))
        return ds.take(steps_per_epoch) if repeat and epoch is not None and steps_per_epoch else ds

    if training:
        ds = shuffled_epochs(ds, len(data), seed=seed, start_epoch=start_epoch, then=then)
    else:
        ds = batched(ds)
    if weight_map is not None:
        ds = ds.map(lambda image, mask, weights: (image, tf.stack([tf.cast(mask, tf.float32), weights], -1)))
    return ds.prefetch(tf.data.AUTOTUNE)


def _pad_to_stride(image, mask, weights=None, *, stride: int, ignore: int):
    """Pad bottom/right to a multiple of ``stride``: the mask with ``ignore``, the rest with zeros."""
    import tensorflow as tf

    shape = tf.shape(mask)
    pads = [[0, (stride - shape[0] % stride) % stride], [0, (stride - shape[1] % stride) % stride]]
    image = tf.pad(tf.cast(image, tf.float32), [*pads, [0, 0]])
    mask = tf.pad(tf.cast(mask, tf.int32), pads, constant_values=ignore)
    return (image, mask) if weights is None else (image, mask, tf.pad(weights, pads))


def _should_cache(data, channels: int, image_size, cache: str) -> bool:
    from foveal.data.pipeline import should_cache
    from foveal.segmentation.data import image_size as header_size

    if cache != "auto" or len(data) == 0:
        return should_cache(cache, None)
    h, w = image_size or header_size(data.image_paths[0])
    return should_cache(cache, len(data) * h * w * (channels + 1))
