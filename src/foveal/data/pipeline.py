"""The ``tf.data`` input pipeline: decode, resize, cache, shuffle, batch, augment, prefetch.

Images stay uint8 until after batching (a cache holds 1 byte a pixel), then become float32
pixels 0..255: scaling to what the network wants is the model's own ``Preprocess`` layer, so
training and inference cannot disagree.

Example:
    >>> from foveal.data.readers import load_dataset
    >>> train = load_dataset("digits")["train"]
    >>> ds = make_pipeline(train, image_size=(32, 32), channels=1, batch_size=64, training=True)
    >>> images, labels = next(iter(ds))
    >>> images.shape, labels.shape
    (TensorShape([64, 32, 32, 1]), TensorShape([64, 10]))
"""

from __future__ import annotations

from typing import Literal

import tensorflow as tf

from foveal.data.augment import alternating_flip, augmentation_epoch, build_augmenter, parse_spec
from foveal.data.epochs import epoch_stream, interleave_sources, mixed_counts
from foveal.data.source import LabeledImages
from foveal.errors import DataError

AUTOTUNE = tf.data.AUTOTUNE
EXTRA_SEED = 7919  # the extra source's shuffle and interleaving streams: apart from the real ones
AUTO_CACHE_BYTES = 1 << 30  # ``--cache auto`` keeps decoded data in memory when it fits in 1 GiB


def should_cache(cache: str, nbytes: float | None) -> bool:
    """Whether ``--cache`` (``memory``, ``none`` or ``auto``) keeps ``nbytes`` of decoded data in memory;
    ``auto``: under :data:`AUTO_CACHE_BYTES` (an unknown size, None, is not cached)."""
    return cache == "memory" or (cache == "auto" and nbytes is not None and nbytes < AUTO_CACHE_BYTES)


def resize_image(image: tf.Tensor, size: tuple[int, int], keep_aspect: bool) -> tf.Tensor:
    """Resize a uint8 HxWxC image to ``size`` (stretch, or pad to keep the aspect ratio).

    Images already at ``size`` pass through untouched, decided statically for arrays and at
    run time for decoded files (whose size is unknown when the graph is built).
    """
    static = image.shape[:2]
    if static[0] == size[0] and static[1] == size[1]:
        return image

    def resized() -> tf.Tensor:
        if keep_aspect:
            out = tf.image.resize_with_pad(tf.cast(image, tf.float32), size[0], size[1], antialias=True)
        else:
            out = tf.image.resize(image, size, method="bilinear", antialias=True)
        return tf.cast(tf.clip_by_value(tf.round(out), 0, 255), tf.uint8)

    if static[0] is not None and static[1] is not None:
        return resized()
    shape = tf.shape(image)
    same = tf.logical_and(tf.equal(shape[0], size[0]), tf.equal(shape[1], size[1]))
    out = tf.cond(same, lambda: image, resized)
    out.set_shape([size[0], size[1], image.shape[-1]])
    return out


def make_pipeline(
    data: LabeledImages,
    *,
    image_size: tuple[int, int],
    channels: int,
    batch_size: int,
    training: bool,
    augment: str = "none",
    cache: Literal["auto", "memory", "none"] = "auto",
    shuffle_buffer: int = 10_000,
    seed: int = 0,
    keep_aspect: bool = False,
    skip_invalid: bool = False,
    one_hot: bool = True,
    start_epoch: int | None = None,
    extra: LabeledImages | None = None,
    extra_ratio: float = 0.5,
) -> tf.data.Dataset:
    """Batches of ``(float32 images 0..255, labels)`` for ``fit``, ``evaluate`` or ``predict``.

    Args:
        data: the images and labels.
        image_size: (height, width) the model takes.
        channels: 1 or 3.
        training: shuffle and augment (validation and test pipelines do neither).
        augment: an augmentation spec (see :mod:`foveal.data.augment`).
        cache: keep decoded, resized uint8 images in memory after the first epoch;
            ``auto`` caches data that is in memory already and streams files.
        seed: shuffle and augmentation seed.
        one_hot: labels as one-hot float vectors (needed for label smoothing), else int32.
        start_epoch: training: the endless batches of epochs ``start_epoch``, ... each shuffled
            by ``(seed, epoch)`` only, so a resumed run replays them (``fit`` needs
            ``steps_per_epoch``; see :mod:`foveal.data.epochs`); None: one pass, reshuffled each
            time it is iterated.
        extra: training: a second source mixed into every epoch (``--extra-data``), labelled in
            ``data``'s classes (see :func:`foveal.evaluation.run.align_classes`): each epoch holds
            every image of ``data`` once and ``mixed_counts(len(data), extra_ratio)[1]`` of
            ``extra`` (a fresh seeded shuffle of it, repeated when it is smaller), interleaved in a
            seeded order (:func:`foveal.data.epochs.interleave_sources`).
        extra_ratio: the epoch's share of ``extra`` images, in (0, 1).
    """
    cached = cache == "memory" or (cache == "auto" and not data.streams_from_disk)

    def decoded(shuffle_seed, reshuffle: bool = True, source: LabeledImages = data) -> tf.data.Dataset:
        ds = source.to_tf_dataset(channels, skip_invalid=skip_invalid, shuffle_seed=shuffle_seed, reshuffle=reshuffle)
        return ds.map(lambda x, y: (resize_image(x, image_size, keep_aspect), y), num_parallel_calls=AUTOTUNE)

    # A cache holds one fixed order of the files (a seeded shuffle: folders are read class by class);
    # uncached files are shuffled anew each epoch before decoding; arrays have nothing to shuffle there.
    if cached:
        base = decoded(seed if training else None, reshuffle=not (training and start_epoch is not None)).cache()
    else:
        base = decoded(None) if not (training and data.streams_from_disk) else None
    num_classes = data.num_classes
    mix = training and extra is not None
    if mix:
        assert extra is not None
        if len(extra) == 0:
            raise DataError(f"{extra.origin or 'the extra training data'}: no images to read (--extra-data)")
        if extra.class_names != data.class_names:
            raise DataError(f"{extra.origin or 'the extra training data'}: its classes {extra.class_names} are not "
                            f"the training data's {data.class_names}",
                            hint="relabel it first (foveal.evaluation.run.align_classes matches classes by name)")
        counts = mixed_counts(len(data), extra_ratio)
        extra_cached = cache == "memory" or (cache == "auto" and not extra.streams_from_disk)
        extra_base = (decoded(seed + EXTRA_SEED, reshuffle=start_epoch is None, source=extra).cache()
                      if extra_cached else None)
    altflip = training and any(op == "altflip" for op, _ in parse_spec(augment))
    counter = augmentation_epoch() if altflip and start_epoch is None else None  # set by AugmentationEpoch in fit

    def to_model_input(x, y):
        x = tf.cast(x, tf.float32)
        x.set_shape([None, image_size[0], image_size[1], channels])
        return x, (tf.one_hot(y, num_classes) if one_hot else y)

    def one_epoch(s, epoch) -> tf.data.Dataset:
        ds = base if base is not None else decoded(s if training else None)
        if training:
            ds = ds.shuffle(min(shuffle_buffer, max(len(data), 1)), seed=s, reshuffle_each_iteration=epoch is None)
        if mix:
            assert extra is not None
            more = extra_base if extra_base is not None else decoded(s + EXTRA_SEED, source=extra)
            more = more.shuffle(min(shuffle_buffer, len(extra)), seed=s + EXTRA_SEED, reshuffle_each_iteration=epoch is None)
            ds = interleave_sources(ds, more, counts, seed=s + EXTRA_SEED + 1, reshuffle=epoch is None)
            if not skip_invalid:
                ds = ds.apply(tf.data.experimental.assert_cardinality(sum(counts)))
        ds = ds.batch(batch_size, num_parallel_calls=AUTOTUNE).map(to_model_input, num_parallel_calls=AUTOTUNE)
        if altflip:
            ds = alternating_flip(ds, seed, counter if epoch is None else epoch)
        return ds

    ds = epoch_stream(one_epoch, seed=seed, start_epoch=start_epoch if training else None)
    augmenter = build_augmenter(augment, image_size, seed) if training else None
    if augmenter is not None:
        ds = ds.map(lambda x, y: (augmenter(x, training=True), y), num_parallel_calls=AUTOTUNE)
    ds = ds.prefetch(AUTOTUNE)
    if counter is not None:
        ds._foveal_epoch_counter = counter  # keep alternating_flip's epoch variable alive
    return ds
