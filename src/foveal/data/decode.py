"""Turn stored images into ``tf.data`` elements of ``(uint8 HxWxC, int32 label)``.

Decoding uses TensorFlow's own decoders (JPEG incl. CMYK, PNG incl. 16-bit, BMP, GIF first
frame), run in parallel by ``tf.data``; gray, RGB and RGBA sources are converted to the channel
count asked for. Files that fail to decode stop the run with a :class:`DataError` naming the
file (see :func:`decode_errors_as_data_errors`), unless ``skip_invalid`` is set.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from typing import Any, Callable, Iterator

import numpy as np
import tensorflow as tf

from foveal.errors import DataError

AUTOTUNE = tf.data.AUTOTUNE
log = logging.getLogger("foveal")


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


def decode_image_bytes(contents: tf.Tensor, channels: int, *, orient: bool = True) -> tf.Tensor:
    """Decode JPEG/PNG/BMP/GIF bytes to a uint8 image with ``channels`` (1 or 3) channels.

    The file is decoded with its own channel count (TensorFlow refuses ``channels=1`` for
    BMP, GIF and CMYK JPEG), then converted: alpha dropped, gray repeated to RGB, RGB
    turned to luma. Gray sources asked for as gray keep their exact values.

    With ``orient`` (the default), a JPEG is turned upright by its EXIF orientation
    (:func:`exif_orientation`, :func:`orient_image`), as PIL's ``ImageOps.exif_transpose``,
    photo viewers and annotation tools show it. Every reader (image folders, box and mask
    datasets, TFRecord records), ``predict``, ``serve`` and the SavedModel's encoded-bytes
    signature decode through here, so all of them see the same pixels.
    """
    if orient and not tf.executing_eagerly() and contents.shape.rank == 0:
        return _traced_decoder(channels)(contents)  # inside a graph: one call op, traced once per process
    return _decode_and_orient(contents, channels, orient)


def _decode_and_orient(contents: tf.Tensor, channels: int, orient: bool) -> tf.Tensor:
    image = _decode(contents, channels)
    return orient_image(image, exif_orientation(contents)) if orient else image


_TRACED_BYTE_DECODERS: dict[int, Callable[[tf.Tensor], tf.Tensor]] = {}


def _traced_decoder(channels: int) -> Callable[[tf.Tensor], tf.Tensor]:
    """:func:`decode_image_bytes` (EXIF orientation included) as one ``tf.function`` per channel
    count, traced once per process and called from every graph that decodes bytes (the box, mask,
    localization and instance pipelines, TFRecord records, the SavedModel's ``predict_images``).

    Inlined, the EXIF header parse and the eight-way orientation switch were traced again for
    every new ``tf.data`` map and every export: 0.96 s of CPU each time, against 0.06 s through
    this one call op (3-channel map, measured under load 22 on 2 cores). The ops, and so
    the pixels, are the same (tested); eager callers (``predict``, ``serve``) run the ops directly."""
    if channels not in _TRACED_BYTE_DECODERS:
        _TRACED_BYTE_DECODERS[channels] = tf.function(
            lambda contents: _decode_and_orient(contents, channels, True),
            input_signature=[tf.TensorSpec([], tf.string)], autograph=False)
    return _TRACED_BYTE_DECODERS[channels]


def _decode(contents: tf.Tensor, channels: int) -> tf.Tensor:
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


EXIF_HEAD_BYTES = 65_536  # where a JPEG's EXIF block is looked for (it is one segment, < 64 KiB)
_EXIF_ENTRIES = 64  # IFD0 entries read (they are sorted by tag; orientation, 0x0112, comes early)
_EXIF_SIGNATURE = (0xFF, 0xE1, None, None, 0x45, 0x78, 0x69, 0x66, 0x00, 0x00)  # APP1, length, "Exif\0\0"


def exif_orientation(contents: tf.Tensor) -> tf.Tensor:
    """The EXIF orientation (int32, 1..8) of encoded image bytes: 1 for anything but a JPEG
    whose first APP1 "Exif" segment's IFD0 holds a valid orientation tag.

    Read in the graph (TensorFlow ops only, no Python), so it runs inside ``tf.data`` and in
    exported SavedModels. The first 64 KiB are searched for the APP1 ``Exif`` segment; its
    TIFF header gives the byte order and IFD0's offset, and IFD0's entries are scanned for tag
    0x0112 (a SHORT, stored in the first two bytes of the value field). Every read is clamped
    to the bytes present, so damaged EXIF gives some orientation (or 1), never an error; the
    same files as PIL's ``Image.getexif()`` are turned (tested for all eight values).

    Example:
        >>> int(exif_orientation(tf.constant(open("phone.jpg", "rb").read())))  # doctest: +SKIP
        6
    """
    head = tf.strings.substr(contents, 0, EXIF_HEAD_BYTES)
    # Most files have no EXIF block: two cheap byte-string ops decide, and only the others are parsed.
    tagged = tf.equal(tf.strings.substr(head, 0, 2), b"\xff\xd8") & \
        (tf.size(tf.raw_ops.StringSplitV2(input=tf.reshape(head, [1]), sep=b"Exif\x00\x00", maxsplit=1).values)
         > 1)
    return tf.cond(tagged, lambda: _parse_orientation(head), lambda: tf.constant(1, tf.int32))


def _parse_orientation(head: tf.Tensor) -> tf.Tensor:
    head = tf.io.decode_raw(head, tf.uint8)
    data = tf.concat([tf.cast(head, tf.int32), tf.zeros([16], tf.int32)], 0)  # never empty
    size = tf.shape(data)[0]

    def at(index):
        return tf.gather(data, tf.clip_by_value(index, 0, size - 1))

    span = size - len(_EXIF_SIGNATURE)
    found = tf.ones([tf.maximum(span, 0)], tf.bool)
    for k, byte in enumerate(_EXIF_SIGNATURE):
        if byte is not None:
            found = found & tf.equal(data[k:k + tf.maximum(span, 0)], byte)
    is_jpeg = tf.equal(data[0], 0xFF) & tf.equal(data[1], 0xD8)
    tiff = tf.cast(tf.argmax(tf.cast(found, tf.int32), output_type=tf.int32), tf.int32) + 10
    little = tf.equal(at(tiff), 0x49)  # "II": Intel order; "MM": Motorola

    def u16(i):
        return tf.where(little, at(i) + 256 * at(i + 1), 256 * at(i) + at(i + 1))

    def offset(i):  # a 32-bit TIFF offset; one beyond the bytes read counts as "not here"
        high, low = tf.where(little, u16(i + 2), u16(i)), tf.where(little, u16(i), u16(i + 2))
        return tf.where(tf.equal(high, 0), low, EXIF_HEAD_BYTES)

    ifd = tiff + offset(tiff + 4)
    count = u16(ifd)
    entries = ifd + 2 + 12 * tf.range(_EXIF_ENTRIES)
    hit = tf.equal(u16(entries), _ORIENTATION_TAG) & (tf.range(_EXIF_ENTRIES) < count)
    value = u16(entries[tf.argmax(tf.cast(hit, tf.int32), output_type=tf.int32)] + 8)
    ok = is_jpeg & tf.reduce_any(found) & tf.reduce_any(hit) & (value >= 1) & (value <= 8)
    return tf.where(ok, value, 1)


_ORIENTATION_TAG = 0x0112


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
    # A switch over the eight cases (tracing it costs ~0.7 s per pipeline under load). A
    # branch-free "transpose by a computed perm, then reverse" traces 15x faster, but a uint8
    # Transpose outside a switch branch makes oneDNN log an error line ("supports DT_UINT8 only
    # on platforms with AVX-512") on every command: users would see framework noise.
    index = tf.clip_by_value(tf.cast(orientation, tf.int32) - 1, 0, 7)
    out = tf.switch_case(index, cases)
    out.set_shape([None, None, image.shape[-1]])
    return out


def decode_path(path: tf.Tensor, channels: int) -> tf.Tensor:
    """Read and decode one image file (turned upright by its EXIF orientation)."""
    return decode_image_bytes(tf.io.read_file(path), channels)


UNDECODABLE = "undecodable"  # the ``info`` key listing the files a pipeline skipped


def record_undecodable(info: dict[str, Any], what: str = "the file could not be read or decoded as an image"
                       ) -> Callable[[tf.Tensor], bool]:
    """A ``tf.py_function`` body that notes a skipped file (or record) in ``info["undecodable"]``
    once, with a warning, and returns False (for ``Dataset.filter``)."""
    def record(name: tf.Tensor) -> bool:
        text = name.numpy().decode("utf-8", "replace")
        with _RECORD_LOCK:
            seen = info.setdefault(UNDECODABLE, [])
            if text not in seen:
                seen.append(text)
                log.warning("skipping %s: %s", text, what)
        return False

    return record


_RECORD_LOCK = threading.Lock()


def map_skipping_undecodable(ds: tf.data.Dataset, load: Callable[..., Any], info: dict[str, Any],
                             name: Callable[..., tf.Tensor] | None = None) -> tf.data.Dataset:
    """``ds.map(load)`` that leaves out the elements whose ``load`` fails (a file that cannot be
    read or decoded) and lists each of them, by ``name(*element)`` (default: the element's
    first part, its path), in ``info["undecodable"]`` with a warning.

    ``Dataset.ignore_errors`` drops such elements without saying which or how many; here each
    element is loaded inside a one-element dataset whose error is caught, followed by a
    stand-in flagged as failed, so the failure can be seen and counted. The order of ``ds`` is
    kept. The run engine reports the count at the end of a run (``state.json``,
    ``metrics.json``).

    Example:
        >>> info = {}
        >>> ds = map_skipping_undecodable(paths_ds, lambda p: decode_path(p, 3), info)  # doctest: +SKIP
        >>> _ = list(ds); info.get("undecodable")  # doctest: +SKIP
        ['photos/cut.jpg']
    """
    name = name or (lambda *element: element[0])
    spec = ds.map(load).element_spec

    def blank(s):
        shape = [d if d is not None else 0 for d in s.shape]
        return tf.fill(shape, tf.constant("", tf.string)) if s.dtype == tf.string else tf.zeros(shape, s.dtype)

    def one(*element):
        good = tf.data.Dataset.from_tensors(element).map(lambda *e: (load(*e), True, name(*e))).ignore_errors()
        stand_in = (tf.nest.map_structure(blank, spec), False, name(*element))
        return good.concatenate(tf.data.Dataset.from_tensors(stand_in)).take(1)

    record = record_undecodable(info)

    def kept(value, ok, key):
        return tf.cond(ok, lambda: tf.constant(True), lambda: tf.py_function(record, [key], Tout=tf.bool))

    ds = ds.interleave(one, cycle_length=AUTOTUNE, num_parallel_calls=AUTOTUNE, deterministic=True)
    return ds.filter(kept).map(lambda value, ok, key: value)


def dataset_from_paths(
    paths: np.ndarray, labels: np.ndarray, channels: int, skip_invalid: bool = False,
    shuffle_seed: Any = None, info: dict[str, Any] | None = None, reshuffle: bool = True,
) -> tf.data.Dataset:
    """Elements decoded from image files, streamed (memory does not grow with N).

    With ``shuffle_seed``, the file list is shuffled with a buffer as large as the list
    before decoding: folders are read class by class, and a smaller image buffer later
    would give batches of two or three classes. Only strings sit in this buffer. The order
    changes each time the dataset is iterated, unless ``reshuffle`` is False.
    With ``skip_invalid``, files that fail to decode are left out and listed in
    ``info["undecodable"]`` (see :func:`map_skipping_undecodable`).
    """
    ds = tf.data.Dataset.from_tensor_slices((paths.astype(str), labels.astype(np.int32)))
    if shuffle_seed is not None:
        ds = ds.shuffle(max(len(paths), 1), seed=shuffle_seed, reshuffle_each_iteration=reshuffle)

    def load(path: tf.Tensor, label: tf.Tensor):
        return decode_path(path, channels), label

    if skip_invalid:
        return map_skipping_undecodable(ds, load, info if info is not None else {})
    decode = _traced_decode_path(channels)
    return ds.map(lambda path, label: (decode(path), label), num_parallel_calls=AUTOTUNE)


_TRACED_DECODERS: dict[int, Callable[[tf.Tensor], tf.Tensor]] = {}


def _traced_decode_path(channels: int) -> Callable[[tf.Tensor], tf.Tensor]:
    """:func:`decode_path` as one ``tf.function`` per channel count, traced once per process.

    ``Dataset.map`` traces its function for every new dataset; with the decoder (EXIF
    orientation included) inlined that cost 0.5 s of CPU per pipeline, which every run, scorer
    and test paid several times over. Called from the map function, the traced decoder is one
    call op: a new pipeline costs 0.05 s. The pixels are identical (tested)."""
    if channels not in _TRACED_DECODERS:
        _TRACED_DECODERS[channels] = tf.function(lambda path: decode_path(path, channels),
                                                 input_signature=[tf.TensorSpec([], tf.string)])
    return _TRACED_DECODERS[channels]


def dataset_from_tfrecord(spec, labels: np.ndarray, channels: int, skip_invalid: bool = False,
                          info: dict[str, Any] | None = None):
    """Elements read from TFRecord files (see :mod:`foveal.data.readers.tfrecord`); with
    ``skip_invalid``, records that fail to parse or decode are left out and listed in
    ``info["undecodable"]`` as ``FILE#INDEX`` (INDEX: the record's number in its file)."""
    from foveal.data.readers.tfrecord import parse_record, selected_records

    parse = parse_record(spec, channels)
    records = selected_records(spec)
    if skip_invalid:
        counts = (info or {}).get("records_per_file") or {}
        sizes = [int(counts.get(f, -1)) for f in spec.files]
        chosen = None if spec.record_indices is None else tf.constant(np.asarray(spec.record_indices, np.int64))
        ends = tf.constant(np.cumsum(sizes), tf.int64) if min(sizes, default=-1) >= 0 else None
        files = tf.constant(list(spec.files))

        def name(i, record):  # FILE#INDEX, the record's number in its file, as elsewhere
            number = i if chosen is None else tf.gather(chosen, i)
            if ends is None:  # the per-file counts are unknown: the number over all files
                return tf.strings.join([files[0] if len(spec.files) == 1 else "record", "#",
                                        tf.strings.as_string(number)])
            k = tf.minimum(tf.searchsorted(ends, tf.reshape(number, [1]), side="right")[0], len(sizes) - 1)
            start = tf.where(k > 0, tf.gather(ends, tf.maximum(k - 1, 0)), tf.constant(0, tf.int64))
            return tf.strings.join([tf.gather(files, k), "#", tf.strings.as_string(number - start)])

        return map_skipping_undecodable(records.enumerate(), lambda i, r: parse(r), info if info is not None else {},
                                        name=name)
    # Reading records (and selecting some) hides the count from tf.data; without it Keras warns
    # "your input ran out of data" at the end of every epoch.
    ds = records.map(parse, num_parallel_calls=AUTOTUNE)
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
