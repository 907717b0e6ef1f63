"""Turn stored images into ``tf.data`` elements of ``(uint8 HxWxC, int32 label)``.

Decoding uses TensorFlow's own decoders (JPEG incl. CMYK, PNG incl. 16-bit, BMP, GIF first
frame), run in parallel by ``tf.data``; gray, RGB and RGBA sources are converted to the channel
count asked for. Files that fail to decode stop the run with a :class:`DataError` naming the
file (see :func:`decode_errors_as_data_errors`), unless ``skip_invalid`` is set.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import numpy as np
import tensorflow as tf

from foveal.errors import DataError

AUTOTUNE = tf.data.AUTOTUNE


def _to_channels(image: tf.Tensor, channels: int) -> tf.Tensor:
    """Convert a uint8 HxWxC image (C in 1, 3, 4) to ``channels`` channels."""
    have = image.shape[-1]
    if have == channels or have is None:
        return image
    if have == 4:
        image = image[..., :3]
        have = 3
    if have == channels:
        return image
    if have == 1 and channels == 3:
        return tf.image.grayscale_to_rgb(image)
    if have == 3 and channels == 1:
        return tf.cast(tf.round(tf.image.rgb_to_grayscale(tf.cast(image, tf.float32))), tf.uint8)
    raise DataError(f"cannot convert {have}-channel images to {channels} channels")


def dataset_from_arrays(images: np.ndarray, labels: np.ndarray, channels: int) -> tf.data.Dataset:
    """Elements from an in-memory uint8 array (N, H, W, C)."""
    if images.ndim == 3:
        images = images[..., None]
    ds = tf.data.Dataset.from_tensor_slices((images, labels.astype(np.int32)))
    if images.shape[-1] != channels:
        ds = ds.map(lambda x, y: (_to_channels(x, channels), y), num_parallel_calls=AUTOTUNE)
    return ds


def decode_image_bytes(contents: tf.Tensor, channels: int) -> tf.Tensor:
    """Decode JPEG/PNG/BMP/GIF bytes to a uint8 image with ``channels`` (1 or 3) channels.

    The file is decoded with its own channel count (TensorFlow refuses ``channels=1`` for
    BMP, GIF and CMYK JPEG), then converted: alpha dropped, gray repeated to RGB, RGB
    turned to luma. Gray sources asked for as gray keep their exact values.
    """
    if channels == 3:  # every format decodes straight to RGB (gray repeated, alpha dropped)
        image = tf.io.decode_image(contents, channels=3, dtype=tf.uint8, expand_animations=False)
        image.set_shape([None, None, 3])
        return image
    image = tf.io.decode_image(contents, channels=0, dtype=tf.uint8, expand_animations=False)
    have = tf.shape(image)[-1]
    rgb = tf.cond(have >= 3, lambda: image[..., :3], lambda: tf.tile(image[..., :1], [1, 1, 3]))
    rgb.set_shape([None, None, 3])
    if channels == 3:
        return rgb
    if channels != 1:
        raise DataError(f"images can be read with 1 or 3 channels, not {channels}")
    gray = tf.cond(have >= 3, lambda: _to_channels(rgb, 1), lambda: rgb[..., :1])
    gray.set_shape([None, None, 1])
    return gray


def orient_image(image: tf.Tensor, orientation: int | tf.Tensor) -> tf.Tensor:
    """Turn a decoded HxWxC image upright by its EXIF ``orientation`` (1..8, 1 = as stored).

    TensorFlow's decoders ignore EXIF, so a phone photo tagged "rotate 90" would be used
    sideways. The eight cases are PIL's ``ImageOps.exif_transpose`` (tested against it).
    """
    def transpose() -> tf.Tensor:
        return tf.transpose(image, [1, 0, 2])

    cases = [
        lambda: image,
        lambda: tf.image.flip_left_right(image),
        lambda: tf.image.rot90(image, 2),
        lambda: tf.image.flip_up_down(image),
        transpose,
        lambda: tf.image.rot90(image, 3),
        lambda: tf.image.rot90(transpose(), 2),
        lambda: tf.image.rot90(image, 1),
    ]
    if isinstance(orientation, (int, np.integer)):
        return cases[int(orientation) - 1]() if 1 <= orientation <= 8 else image
    index = tf.clip_by_value(tf.cast(orientation, tf.int32) - 1, 0, 7)
    out = tf.switch_case(index, cases)
    out.set_shape([None, None, image.shape[-1]])
    return out


def orientation_table(orientations: dict[str, int] | None) -> tf.lookup.StaticHashTable | None:
    """A path -> EXIF orientation lookup for the files that need turning, None if none do."""
    rotated = {p: o for p, o in (orientations or {}).items() if o != 1}
    if not rotated:
        return None
    return tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(
            tf.constant(list(rotated)), tf.constant(list(rotated.values()), tf.int32)
        ),
        default_value=1,
    )


def decode_path(path: tf.Tensor, channels: int, table: tf.lookup.StaticHashTable | None = None) -> tf.Tensor:
    """Read and decode one image file, turned upright when ``table`` lists its orientation."""
    image = decode_image_bytes(tf.io.read_file(path), channels)
    return image if table is None else orient_image(image, table.lookup(path))


def dataset_from_paths(
    paths: np.ndarray, labels: np.ndarray, channels: int, skip_invalid: bool = False,
    shuffle_seed: int | None = None, orientations: dict[str, int] | None = None,
) -> tf.data.Dataset:
    """Elements decoded from image files, streamed (memory does not grow with N).

    With ``shuffle_seed``, the file list is shuffled with a buffer as large as the list
    before decoding: folders are read class by class, and a smaller image buffer later
    would give batches of two or three classes. Only strings sit in this buffer.
    ``orientations`` (``{path: EXIF orientation}``, from the header scan) turns those files
    upright; files not listed are used as stored, at no cost.
    """
    ds = tf.data.Dataset.from_tensor_slices((paths.astype(str), labels.astype(np.int32)))
    if shuffle_seed is not None:
        ds = ds.shuffle(max(len(paths), 1), seed=shuffle_seed, reshuffle_each_iteration=True)
    table = orientation_table(orientations)

    def load(path: tf.Tensor, label: tf.Tensor):
        return decode_path(path, channels, table), label

    ds = ds.map(load, num_parallel_calls=AUTOTUNE)
    if skip_invalid:
        ds = ds.ignore_errors(log_warning=True)
    return ds


def dataset_from_tfrecord(spec, labels: np.ndarray, channels: int, skip_invalid: bool = False):
    """Elements read from TFRecord files (see :mod:`foveal.data.readers.tfrecord`)."""
    from foveal.data.readers.tfrecord import records_dataset

    ds = records_dataset(spec, channels)
    if skip_invalid:
        return ds.ignore_errors(log_warning=True)  # how many survive is unknown until read
    # Reading records (and selecting some) hides the count from tf.data; without it Keras warns
    # "your input ran out of data" at the end of every epoch.
    return ds.apply(tf.data.experimental.assert_cardinality(len(labels)))


@contextlib.contextmanager
def decode_errors_as_data_errors(origin: str) -> Iterator[None]:
    """Turn TensorFlow's decode failures inside a pipeline into a :class:`DataError`."""
    try:
        yield
    except tf.errors.InvalidArgumentError as exc:
        found = _find_bad_images(origin)
        detail = found or str(exc).strip().splitlines()[0][:300]
        raise DataError(
            f"an image in {origin} could not be decoded: {detail}",
            hint="run `foveal datasets inspect PATH` to list the bad files, "
            "or pass --skip-invalid to skip them",
        ) from None


_FULL_RECHECK_LIMIT = 20_000  # images decoded again to find a bad one (a minute or so)


def _find_bad_images(origin: str, shown: int = 5) -> str | None:
    """``"FILE: problem"`` lines for the images of ``origin`` that fail a check.

    TensorFlow's decode error names neither the file nor the record, so after a failure the
    dataset is checked once more, image by image (TFRecord records named ``FILE#INDEX``): the
    header check first, then, for datasets of up to 20,000 images, a full decode. None when
    ``origin`` cannot be read again or nothing is found.
    """
    import logging

    from foveal.data.inspect import inspect_dataset

    logging.getLogger("foveal").warning("an image failed to decode; looking for it in %s", origin)
    problems: list[dict] = []
    try:
        for full in (False, True):
            report = inspect_dataset(origin, full=full)
            problems = [p for split in report["splits"].values() for p in split["problems"]]
            images = sum(split.get("num_images", 0) for split in report["splits"].values())
            if problems or images > _FULL_RECHECK_LIMIT:
                break
    except Exception:  # the diagnosis must never hide the original error
        return None
    if not problems:
        return None
    lines = [f"{p['file']}: {p['problem']}" for p in problems[:shown]]
    more = f" (and {len(problems) - shown} more)" if len(problems) > shown else ""
    return "; ".join(lines) + more
