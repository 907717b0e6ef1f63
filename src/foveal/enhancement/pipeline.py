"""``tf.data`` input of enhancement training: random patches, degraded on the fly.

Each element is ``(model input, target)``: the input in raw pixels (0..255, 8-bit levels) as
the model takes them, the target in [0, 1]. Training repeats the images forever (``fit`` counts
``steps_per_epoch``), shuffles them, cuts ``patches_per_image`` random ``patch`` x ``patch``
windows from each (optionally flipped and turned), and degrades each window with its own
stateless seed (:func:`foveal.enhancement.degrade.degrade`): noise for denoising, bicubic
downscaling (and any corruption) for super-resolution. Validation cuts the same windows with
the same degradation every epoch.

Example:
    >>> ds = patch_dataset(images, training=True, patch=96, scale=3, corruption=(),  # doctest: +SKIP
    ...                    batch_size=16, seed=0)
    >>> next(iter(ds))[0].shape  # doctest: +SKIP
    TensorShape([16, 32, 32, 3])
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from foveal.data.epochs import epoch_stream
from foveal.data.pipeline import should_cache
from foveal.enhancement.data import ImageSet
from foveal.enhancement.degrade import Corruption, degrade


def image_dataset(images: ImageSet) -> tf.data.Dataset:
    """uint8 HxWxC images, in order (files decoded in parallel)."""
    if images.images is not None:
        from foveal.enhancement.data import to_channels

        array = images.images
        if array.shape[-1] != images.channels:
            array = np.stack([to_channels(a, images.channels) for a in array])
        return tf.data.Dataset.from_tensor_slices(array)
    from foveal.data.decode import dataset_from_paths

    paths = np.asarray(images.paths)
    ds = dataset_from_paths(paths, np.zeros(len(paths), np.int32), images.channels)
    return ds.map(lambda image, label: image, num_parallel_calls=tf.data.AUTOTUNE)


def _bytes(images: ImageSet) -> int:
    return sum(h * w * images.channels for h, w in images.sizes)


def crop_to_multiple(image, multiple: int):
    """The top-left part of ``image`` whose sides are multiples of ``multiple``."""
    shape = tf.shape(image)
    return image[:shape[0] // multiple * multiple, :shape[1] // multiple * multiple]


def _augment(patch, seed):
    turns = tf.random.stateless_uniform([], seed, 0, 4, tf.int32)
    flip = tf.random.stateless_uniform([], tf.random.experimental.stateless_fold_in(seed, 1)) < 0.5
    patch = tf.image.rot90(patch, turns)
    return tf.cond(flip, lambda: tf.image.flip_left_right(patch), lambda: patch)


def patch_dataset(images: ImageSet, *, training: bool, patch: int | None, scale: int, corruption: Corruption,
                  batch_size: int, seed: int, patches_per_image: int = 1, augment: bool = True,
                  multiple: int = 1, cache: str = "auto", start_epoch: int | None = None,
                  steps_per_epoch: int | None = None) -> tf.data.Dataset:
    """Batches of ``(input pixels 0..255, target in [0, 1])`` (see the module docstring).

    ``patch`` is the target's side (None: whole images, cropped to multiples of ``scale *
    multiple``; they must share one size to be batched). Training batches are an endless
    stream; with ``start_epoch``, epochs ``start_epoch``, ... of ``steps_per_epoch`` batches,
    each drawn from ``(seed, epoch)`` only (:mod:`foveal.data.epochs`: a resume replays them).
    """
    ds = image_dataset(images)
    if should_cache(cache, _bytes(images) if images.images is None else None):  # arrays are in memory already
        ds = ds.cache()
    k = int(patches_per_image)
    step = scale * multiple

    def one_epoch(s, epoch):
        out = ds
        if training:
            out = out.repeat().shuffle(min(len(images), 4096), seed=s, reshuffle_each_iteration=epoch is None)
        out = out.enumerate()
        if k > 1:
            out = out.flat_map(lambda i, image: tf.data.Dataset.range(k).map(lambda j: (i * k + j, image)))

        def make(index, image):
            base = tf.stack([tf.cast(s, tf.int64), tf.cast(index, tf.int64)])
            ref = tf.cast(image, tf.float32) / 255.0
            if patch:
                ref = tf.image.stateless_random_crop(ref, [patch, patch, images.channels],
                                                     tf.random.experimental.stateless_fold_in(base, 0))
            else:
                ref = crop_to_multiple(ref, step)
            if training and augment:
                ref = _augment(ref, tf.random.experimental.stateless_fold_in(base, 1))
            x = degrade(ref, scale=scale, corruption=corruption,
                        seed=tf.random.experimental.stateless_fold_in(base, 2))
            return x * 255.0, ref

        out = out.map(make, num_parallel_calls=tf.data.AUTOTUNE)
        if training and k > 1:
            out = out.shuffle(max(4 * batch_size, k), seed=s + 1)
        out = out.batch(batch_size)
        return out.take(steps_per_epoch) if epoch is not None and steps_per_epoch else out

    return epoch_stream(one_epoch, seed=seed, start_epoch=start_epoch if training else None).prefetch(
        tf.data.AUTOTUNE)


__all__ = ["crop_to_multiple", "image_dataset", "patch_dataset"]
