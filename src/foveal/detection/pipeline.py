"""The ``tf.data`` pipeline of the detector: decode, resize or letterbox, augment, pad, batch.

Each element is ``(images, targets)``: float32 ``images [B, H, W, C]`` (pixels 0..255; the
model's ``Preprocess`` layer scales them), ``targets["boxes"] [B, M, 4]`` (normalised corners of
the image the model sees, padding rows 0) and ``targets["classes"] [B, M]`` (-1 on padding).
Images with more than ``M = max_boxes`` boxes keep their largest; images without boxes stay, as
negatives. Difficult/crowd boxes are left out of the targets (the evaluation ignores
detections that match them).

Stages: decode (an unreadable file stops the run naming it, :func:`detection_data_errors`; with
``skip_invalid`` it is skipped in training and replaced by a gray image otherwise, so
predictions stay aligned with ``data``) -> stretch or letterbox (uint8) -> cache -> shuffle ->
box augmentation (:mod:`foveal.data.box_augment`, training) -> pad -> batch -> multi-scale
resize (training) -> prefetch. In training, ``extra`` (a second source, mixed per epoch at
``extra_ratio``: :mod:`foveal.data.epochs`) and ``target`` (unlabelled images of a domain to
adapt to, :mod:`foveal.detection.adapt`, batched beside the source batch as ``{"images",
"target"}``) run the same stages from seeds of their own. Multi-scale training (Redmon &
Farhadi, "YOLO9000", CVPR 2017, sec. 2) resizes each batch to a square size drawn from
``multi_scale``, after preparing the images at the largest one; boxes, being fractions, stay.

Example:
    >>> data = load_boxes("../shared/datasets/raccoon")["train"]  # doctest: +SKIP
    >>> images, targets = next(iter(make_detection_pipeline(data, image_size=416, training=True)))  # doctest: +SKIP
    >>> images.shape, targets["boxes"].shape  # doctest: +SKIP
    (TensorShape([8, 416, 416, 3]), TensorShape([8, 100, 4]))
"""

from __future__ import annotations

import contextlib
import logging
import re
from typing import Any, Iterator, Sequence

import numpy as np
import tensorflow as tf

from foveal.data.box_augment import FILL_VALUE, augment_boxes, parse_box_augment
from foveal.data.boxes import BoxedImages
from foveal.data.decode import decode_image_bytes, record_undecodable
from foveal.data.epochs import epoch_stream, interleave_sources, mixed_counts
from foveal.data.pipeline import resize_image, should_cache
from foveal.detection.config import STRIDE
from foveal.errors import ConfigError, DataError

log = logging.getLogger("foveal")

AUTOTUNE = tf.data.AUTOTUNE
_CACHE_CHOICES = ("auto", "memory", "none")
_UNDECODABLE = "foveal-undecodable-image:"


# ---------------------------------------------------------------------------- targets


def pad_targets(boxes: tf.Tensor, classes: tf.Tensor, max_boxes: int) -> tuple[tf.Tensor, tf.Tensor]:
    """Pad (or cut to the ``max_boxes`` largest) one image's boxes to exactly ``max_boxes`` rows.

    Padding rows are ``[0, 0, 0, 0]`` with class -1; kept boxes stay in their original order.
    """
    count = tf.shape(boxes)[0]

    def largest():
        area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        index = tf.sort(tf.math.top_k(area, k=max_boxes).indices)
        return tf.gather(boxes, index), tf.gather(classes, index)

    boxes, classes = tf.cond(count > max_boxes, largest, lambda: (boxes, classes))
    missing = max_boxes - tf.shape(boxes)[0]
    boxes = tf.pad(boxes, [[0, missing], [0, 0]])
    classes = tf.pad(classes, [[0, missing]], constant_values=-1)
    boxes.set_shape([max_boxes, 4])
    classes.set_shape([max_boxes])
    return boxes, classes


def images_only(images: tf.Tensor, targets: dict[str, tf.Tensor]) -> tf.Tensor:
    """``ds.map(images_only)``: the batches without their targets, for ``model.predict``."""
    return images


# ---------------------------------------------------------------------------- geometry


def _hw(image_size: int | Sequence[int]) -> tuple[int, int]:
    size = (image_size, image_size) if isinstance(image_size, (int, np.integer)) else tuple(image_size)
    if len(size) != 2 or not all(isinstance(s, (int, np.integer)) and s > 0 for s in size):
        raise ConfigError(f"image_size must be a positive SIZE or (HEIGHT, WIDTH), got {image_size!r}")
    return int(size[0]), int(size[1])


def check_multi_scale(sizes: Sequence[int] | None) -> tuple[int, ...]:
    """Validate multi-scale sizes: positive multiples of 32 (the coarsest grid's stride)."""
    bad = [s for s in sizes or () if not isinstance(s, (int, np.integer)) or s <= 0 or s % STRIDE]
    if bad:
        raise ConfigError(f"multi_scale sizes must be positive multiples of {STRIDE}; "
                          f"{', '.join(map(str, bad))} {'is' if len(bad) == 1 else 'are'} not",
                          hint="e.g. 320,352,384,416,448,480,512")
    return tuple(int(s) for s in sizes or ())


def letterbox_geometry(width: int, height: int, input_hw: tuple[int, int]) -> tuple[int, int, int, int]:
    """Where a ``width`` x ``height`` image lands when letterboxed into ``input_hw``.

    The image is scaled by the smaller of the two ratios to ``(new_w, new_h)`` (rounded to whole
    pixels) and centred with whole-pixel offsets; the rest is gray (:data:`FILL_VALUE`).

    Returns:
        ``(new_w, new_h, left, top)`` in input pixels.

    Example:
        >>> letterbox_geometry(200, 100, (64, 64))
        (64, 32, 0, 16)
    """
    in_h, in_w = input_hw
    scale = min(in_w / max(width, 1), in_h / max(height, 1))
    new_w = int(min(max(np.round(width * scale), 1), in_w))
    new_h = int(min(max(np.round(height * scale), 1), in_h))
    return new_w, new_h, (in_w - new_w) // 2, (in_h - new_h) // 2


def to_image_pixels(boxes: np.ndarray, image_wh: tuple[int, int], input_hw: tuple[int, int],
                    keep_aspect: bool) -> np.ndarray:
    """Normalised corners on the model input -> pixel corners in the original image.

    The exact inverse of this pipeline's resizing (stretch, or :func:`letterbox_geometry`),
    clipped to the image.

    Example:
        >>> to_image_pixels(np.array([[0.0, 0.25, 1.0, 0.75]]), (200, 100), (64, 64), keep_aspect=True)
        array([[  0.,   0., 200., 100.]])
    """
    width, height = image_wh
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    in_h, in_w = input_hw
    if keep_aspect:
        new_w, new_h, left, top = letterbox_geometry(width, height, input_hw)
        x = (b[:, [0, 2]] * in_w - left) / new_w * width
        y = (b[:, [1, 3]] * in_h - top) / new_h * height
    else:
        x, y = b[:, [0, 2]] * width, b[:, [1, 3]] * height
    out = np.stack([x[:, 0], y[:, 0], x[:, 1], y[:, 1]], axis=-1)
    return np.clip(out, 0.0, np.array([width, height, width, height], np.float64))


def letterbox(image: tf.Tensor, boxes: tf.Tensor, size: tuple[int, int]) -> tuple[tf.Tensor, tf.Tensor]:
    """Scale a uint8 image to fit ``size`` keeping its aspect ratio, pad with gray, move the boxes.

    Same arithmetic as :func:`letterbox_geometry` (which gives the inverse for predictions).
    """
    shape = tf.shape(image)
    h, w = tf.cast(shape[0], tf.float32), tf.cast(shape[1], tf.float32)
    in_h, in_w = size
    scale = tf.minimum(in_w / tf.maximum(w, 1.0), in_h / tf.maximum(h, 1.0))
    new_w = tf.cast(tf.clip_by_value(tf.round(w * scale), 1.0, float(in_w)), tf.int32)
    new_h = tf.cast(tf.clip_by_value(tf.round(h * scale), 1.0, float(in_h)), tf.int32)
    left, top = (in_w - new_w) // 2, (in_h - new_h) // 2
    resized = tf.image.resize(image, tf.stack([new_h, new_w]), method="bilinear", antialias=True)
    resized = tf.clip_by_value(tf.round(resized), 0.0, 255.0)
    padded = tf.pad(resized - FILL_VALUE, [[top, in_h - new_h - top], [left, in_w - new_w - left], [0, 0]]) + FILL_VALUE
    out = tf.cast(padded, tf.uint8)
    out.set_shape([in_h, in_w, image.shape[-1]])
    fx, fy = tf.cast(new_w, tf.float32) / in_w, tf.cast(new_h, tf.float32) / in_h
    ox, oy = tf.cast(left, tf.float32) / in_w, tf.cast(top, tf.float32) / in_h
    moved = boxes * tf.stack([fx, fy, fx, fy]) + tf.stack([ox, oy, ox, oy])
    return out, moved


# ---------------------------------------------------------------------------- errors


@contextlib.contextmanager
def detection_data_errors(origin: str) -> Iterator[None]:
    """Turn the pipeline's error for an unreadable file into a one-line :class:`DataError` naming it.

    Example:
        >>> with detection_data_errors("raccoon"):  # doctest: +SKIP
        ...     model.fit(train_ds, epochs=3)
    """
    try:
        yield
    except tf.errors.OpError as exc:
        found = re.search(re.escape(f"[{_UNDECODABLE}]") + r" \[([^\]\n]*)\]", str(exc))
        if found is None:
            raise
        raise DataError(
            f"{found.group(1)}: the file could not be read or decoded as an image ({origin})",
            hint="replace or remove the file (`foveal datasets inspect PATH` lists bad files), "
                 "or pass --skip-invalid to skip such images",
        ) from None


# ---------------------------------------------------------------------------- pipeline


def make_detection_pipeline(
    data: BoxedImages,
    *,
    image_size: int | tuple[int, int] = 416,
    channels: int = 3,
    batch_size: int = 8,
    training: bool = False,
    augment: str = "detect",
    seed: int = 0,
    max_boxes: int | None = 100,
    cache: str = "auto",
    skip_invalid: bool = False,
    multi_scale: Sequence[int] | None = None,
    keep_aspect: bool = False,
    drop_remainder: bool = False,
    extra: BoxedImages | None = None,
    extra_ratio: float = 0.5,
    target: BoxedImages | None = None,
    start_epoch: int | None = None,
) -> tf.data.Dataset:
    """Batches of ``(images, {"boxes", "classes"})`` for a detector (see the module docstring).

    Args:
        image_size: SIZE or (HEIGHT, WIDTH) of the model input.
        training: shuffle (seeded), augment, mix ``extra``, pair ``target`` and apply
            ``multi_scale``; otherwise ``data``'s order, unaugmented.
        augment: a box augmentation spec (:mod:`foveal.data.box_augment`), used in training.
        max_boxes: ``M``; None: as many as the most crowded image has (scoring).
        cache: ``memory``, ``none``, or ``auto``: cache the decoded images when under 1 GiB.
        multi_scale: square sizes, multiples of 32, drawn per batch in training.
        keep_aspect: letterbox (scale to fit, pad with gray) instead of stretching.
        extra, extra_ratio: a second training source and its share of each epoch, in (0, 1).
        target: images of the domain to adapt to (their boxes unused).
        start_epoch: training: the endless batches of epochs ``start_epoch``, ... each drawn from
            ``(seed, epoch)`` only (:mod:`foveal.data.epochs`); None: one pass.

    Raises:
        ConfigError: a bad size, ``cache``, ``augment``, ``multi_scale`` or ``extra_ratio`` value.
        DataError: ``data`` (or ``extra``) holds no images.
    """
    size = _hw(image_size)
    scales = check_multi_scale(multi_scale)
    aug = parse_box_augment(augment)  # parsed even when unused, so a typo shows up at once
    if channels not in (1, 3):
        raise ConfigError(f"channels must be 1 or 3, not {channels}")
    if cache not in _CACHE_CHOICES:
        raise ConfigError(f"cache must be one of {', '.join(_CACHE_CHOICES)}, not {cache!r}")
    for part, what in ((data, "the dataset"), (extra if training else None, "the extra training data"),
                       (target if training else None, "the target images")):
        if part is not None and len(part) == 0:
            raise DataError(f"{part.origin or what}: no images to read")
    if max_boxes is None:
        max_boxes = max([1, *(len(b) for b in data.boxes)])
    if batch_size < 1 or max_boxes < 1:
        raise ConfigError("batch_size and max_boxes must be at least 1")
    multi = bool(training and scales)
    base = (max(scales), max(scales)) if multi else size
    common = dict(channels=channels, base=base, keep_aspect=keep_aspect, training=training, aug=aug,
                  max_boxes=max_boxes, cache=cache, skip_invalid=skip_invalid)
    real_epoch = _source_epochs(data, **common)  # type: ignore[arg-type]
    mix = bool(training and extra is not None)
    if mix:
        real_count, extra_count = mixed_counts(len(data), extra_ratio)
        extra_epoch = _source_epochs(extra, **common)  # type: ignore[arg-type]
    pair = None
    if training and target is not None:
        from foveal.detection.adapt import target_pairing

        target_epoch = _source_epochs(target, **common)  # type: ignore[arg-type]
        pair = target_pairing(target_epoch, lambda image: _as_input(image, base, channels),
                              images=real_count + extra_count if mix else len(data), targets=len(target),
                              batch_size=batch_size)

    def to_model(image, b, c):
        b, c = pad_targets(b, c, max_boxes)
        return _as_input(image, base, channels), {"boxes": b, "classes": c}

    def one_epoch(s, epoch) -> tf.data.Dataset:
        """One epoch of batches; every random draw (order, mixing, augmentation, sizes) from ``s``."""
        ds = real_epoch(s, epoch)
        if mix:
            more = extra_epoch(s + _EXTRA_SEED, epoch)
            ds = interleave_sources(ds, more, (real_count, extra_count), seed=s + _EXTRA_SEED + 1,
                                    reshuffle=epoch is None)
            if not skip_invalid:
                ds = ds.apply(tf.data.experimental.assert_cardinality(real_count + extra_count))
        ds = ds.map(to_model, num_parallel_calls=AUTOTUNE)
        ds = ds.batch(batch_size, drop_remainder=drop_remainder, num_parallel_calls=AUTOTUNE)
        ds = _multi_scale(ds, scales, s, channels, rerandomize=epoch is None) if multi else ds
        return pair(ds, s, epoch) if pair else ds

    ds = epoch_stream(one_epoch, seed=seed, start_epoch=start_epoch) if training else one_epoch(seed, None)
    return ds.prefetch(AUTOTUNE)


_EXTRA_SEED = 7919  # the extra source's shuffle and augmentation streams: apart from the real ones


def _as_input(image: tf.Tensor, base: tuple[int, int], channels: int) -> tf.Tensor:
    image = tf.cast(image, tf.float32)
    image.set_shape([base[0], base[1], channels])
    return image


def _source_epochs(data: BoxedImages, *, channels: int, base: tuple[int, int], keep_aspect: bool, training: bool,
                   aug, max_boxes: int, cache: str, skip_invalid: bool):
    """One source's epochs: ``epoch(s, e)`` gives its ``(image, boxes, classes)`` elements decoded,
    resized, and in training shuffled and augmented from the seed ``s``."""
    cached = should_cache(cache, len(data) * base[0] * base[1] * channels)
    files = tf.data.Dataset.from_tensor_slices((data.paths.astype(str), *_target_arrays(data, max_boxes)))

    def decoded(ds: tf.data.Dataset) -> tf.data.Dataset:
        ds = ds.interleave(_loader(channels, base, keep_aspect), cycle_length=AUTOTUNE,
                           num_parallel_calls=AUTOTUNE, deterministic=True)
        if skip_invalid:
            record = record_undecodable(data.info)

            def noted(ok, path):
                return tf.cond(ok, lambda: tf.constant(True), lambda: tf.py_function(record, [path], Tout=tf.bool))

            if training:
                ds = ds.filter(lambda image, b, c, ok, path: noted(ok, path))
            else:  # keep a blank stand-in so outputs stay aligned with ``data``
                ds = ds.map(lambda image, b, c, ok, path: (image, b, c, noted(ok, path)))
            ds = ds.map(lambda image, b, c, *_: (image, b, c), num_parallel_calls=AUTOTUNE)
        else:
            ds = ds.map(_fail_on_undecodable, num_parallel_calls=AUTOTUNE)
        if not (skip_invalid and training):
            # One image per file, but interleave hides the count; without it Keras warns "your
            # input ran out of data" at the end of every epoch.
            ds = ds.apply(tf.data.experimental.assert_cardinality(len(data)))
        return ds

    # Uncached, the file list is shuffled (cheap, and the order then varies per epoch); cached,
    # the decoded images are.
    source = decoded(files).cache() if cached else files

    def epoch(s, e) -> tf.data.Dataset:
        ds = source.shuffle(max(len(data), 1), seed=s, reshuffle_each_iteration=e is None) if training else source
        if not cached:
            ds = decoded(ds)
        if training and aug.active:
            # One random int per element, different every epoch but fixed by ``seed`` (and the epoch).
            randoms = tf.data.Dataset.random(seed=s, rerandomize_each_iteration=e is None)

            def augment_fn(element, r):
                image, b, c = element
                pair = tf.stack([r, tf.cast(s, tf.int64)])
                return augment_boxes(tf.cast(image, tf.float32), b, c, pair, aug)

            ds = tf.data.Dataset.zip((ds, randoms)).map(augment_fn, num_parallel_calls=AUTOTUNE)
        return ds

    return epoch


def _target_arrays(data: BoxedImages, max_boxes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every image's learnt boxes (normalised, clipped) and classes, padded, with their counts;
    warns when some images have more than ``max_boxes`` (cut after augmentation)."""
    assert data.difficult is not None
    keep = [~np.asarray(hard, bool) for hard in data.difficult]
    counts = np.array([int(k.sum()) for k in keep], np.int32)
    crowded = int((counts > max_boxes).sum())
    if crowded:
        log.warning("%s: %d image(s) have more than %d boxes (up to %d); the %d largest are kept",
                    data.origin or "detection data", crowded, max_boxes, int(counts.max()), max_boxes)
    boxes = np.zeros((len(data), int(counts.max()), 4), np.float32)
    classes = np.full((len(data), int(counts.max())), -1, np.int32)
    for i, (b, labels, k, (w, h)) in enumerate(zip(data.boxes, data.labels, keep, data.image_sizes)):
        scale = np.maximum(np.array([w, h, w, h], np.float32), 1)
        boxes[i, :counts[i]] = np.clip(np.asarray(b, np.float32).reshape(-1, 4)[k] / scale, 0.0, 1.0)
        classes[i, :counts[i]] = np.asarray(labels, np.int32)[k]
    return boxes, classes, counts


def _loader(channels: int, size: tuple[int, int], keep_aspect: bool):
    """Element -> a one-element dataset ``(image, boxes, classes, ok, path)``; a file that fails
    yields a placeholder with ``ok`` False, so the next stage can name it (TensorFlow's error does not)."""

    def load(path, boxes, classes, count):
        boxes, classes = boxes[:count], classes[:count]

        def decode(p):
            image = decode_image_bytes(tf.io.read_file(p), channels)
            if keep_aspect:
                image, moved = letterbox(image, boxes, size)
            else:
                image, moved = resize_image(image, size, keep_aspect=False), boxes
            return image, moved, classes, tf.constant(True), p

        good = tf.data.Dataset.from_tensors(path).map(decode).ignore_errors()
        placeholder = tf.data.Dataset.from_tensors(
            (tf.fill([size[0], size[1], channels], tf.constant(int(FILL_VALUE), tf.uint8)), tf.zeros([0, 4]),
             tf.zeros([0], tf.int32),
             tf.constant(False), path))
        return good.concatenate(placeholder).take(1)

    return load


def _fail_on_undecodable(image, boxes, classes, ok, path):
    check = tf.debugging.Assert(ok, [_UNDECODABLE, path])
    with tf.control_dependencies([check]):
        return tf.identity(image), boxes, classes


def _multi_scale(ds: tf.data.Dataset, scales: tuple[int, ...], seed: Any, channels: int, *,
                 rerandomize: bool = True) -> tf.data.Dataset:
    """Resize each batch to one size drawn from ``scales`` (seeded, a new draw per batch; new
    draws each time ``ds`` is iterated with ``rerandomize``)."""
    table = tf.constant(scales, tf.int32)
    randoms = tf.data.Dataset.random(seed=seed + 1, rerandomize_each_iteration=rerandomize)

    def resize(batch, r):
        images, targets = batch
        side = table[tf.cast(tf.math.floormod(r, len(scales)), tf.int32)]
        same = tf.equal(tf.shape(images)[1], side) & tf.equal(tf.shape(images)[2], side)
        images = tf.cond(same, lambda: images,
                         lambda: tf.clip_by_value(tf.image.resize(images, tf.stack([side, side]), method="bilinear",
                                                                  antialias=True), 0.0, 255.0))
        images.set_shape([None, None, None, channels])
        return images, targets

    return tf.data.Dataset.zip((ds, randoms)).map(resize, num_parallel_calls=AUTOTUNE)
