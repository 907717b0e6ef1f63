"""TFRecord files of ``tf.train.Example``: read them, stream them, and write them.

Each record holds ``image`` (encoded JPEG/PNG/BMP/GIF bytes), ``label`` (int64) and optionally
``class_name`` (bytes). Reading makes one fast pass that parses only the label features, so the
labels and class names are known up front while the images stay on disk; training then streams
the records with :func:`records_dataset`. Class names come from a ``classes.txt`` beside the
files, else from the ``class_name`` values, else they are ``"0"`` .. ``"K-1"``.

A spec is a file, a glob or a folder. Files whose names contain a ``train``, ``val``
(``valid``, ``validation``) or ``test`` token (``train-00000-of-00004.tfrecord``,
``mnist-test.tfrecord``) are grouped into those splits; otherwise everything is ``"train"``.

Records are numbered 0, 1, ... over all files in order; a collection's
``TFRecordFiles.record_indices`` picks records by that number. :func:`write_tfrecord` and
:func:`convert_to_tfrecord` turn any supported dataset into such files.

TensorFlow is imported inside the functions that use it.

Example:
    >>> files = convert_to_tfrecord("digits", "out/digits")          # doctest: +SKIP
    >>> load_tfrecords("out/digits")["train"].num_classes             # doctest: +SKIP
    10
"""

from __future__ import annotations

import glob
import io
import os
import re
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from foveal.data.readers import check_label_range, classes_txt_beside, numbered_names
from foveal.data.source import LabeledImages, TFRecordFiles
from foveal.errors import ConfigError, DataError

CLASS_KEY = "class_name"
_SPLIT_TOKEN = re.compile(r"(?:^|[-_.])(train|val|valid|validation|test)(?=[-_.]|$)", re.I)
_TOKEN_KEY = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}
_SCAN_BATCH = 1024
_FORMATS = {"png": "PNG", "jpeg": "JPEG", "jpg": "JPEG"}


# ----------------------------------------------------------------------------- finding files


def tfrecord_files_in(folder: Path) -> list[str]:
    """The files in ``folder`` whose names contain ``.tfrecord``, sorted."""
    try:
        return sorted(
            str(p) for p in folder.iterdir() if p.is_file() and ".tfrecord" in p.name.lower()
        )
    except OSError:
        return []


def _files_for(spec: str) -> list[str]:
    path = Path(spec).expanduser()
    if path.is_dir():
        files = tfrecord_files_in(path)
        where = f"{path}: no *.tfrecord files in the folder"
    elif path.is_file():
        files, where = [str(path)], ""
    else:
        files = sorted(p for p in glob.glob(os.path.expanduser(spec)) if os.path.isfile(p))
        where = f"{spec}: no files match this pattern"
    if not files:
        raise DataError(where, hint="pass a .tfrecord file, a folder of them, or a glob")
    return files


def group_by_split(files: list[str]) -> dict[str, list[str]]:
    """``{"train": [...], "val": [...], "test": [...]}`` by the split token in each name.

    Without any split token, all files are ``"train"``. With some, every file needs one.
    """
    keys = {}
    for f in files:
        match = _SPLIT_TOKEN.search(Path(f).name)
        keys[f] = _TOKEN_KEY[match.group(1).lower()] if match else None
    if all(k is None for k in keys.values()):
        return {"train": list(files)}
    odd = [f for f, k in keys.items() if k is None]
    if odd:
        raise DataError(
            f"{odd[0]}: has no train/val/test in its name, while other files do",
            hint="rename the files (train-*.tfrecord, val-*.tfrecord, test-*.tfrecord) or "
            "pass one split's files",
        )
    out: dict[str, list[str]] = {}
    for f, k in keys.items():
        out.setdefault(k, []).append(f)
    return {k: out[k] for k in ("train", "val", "test") if k in out}


# ---------------------------------------------------------------------------- label pass


def _scan_file(path: str, label_key: str) -> tuple[np.ndarray, dict[int, set[str]]]:
    """Labels of every record in ``path`` and the class names seen per label."""
    import tensorflow as tf

    features = {
        label_key: tf.io.FixedLenFeature([], tf.int64),
        CLASS_KEY: tf.io.FixedLenFeature([], tf.string, default_value=""),
    }
    ds = tf.data.TFRecordDataset(path).batch(_SCAN_BATCH)
    ds = ds.map(lambda s: tf.io.parse_example(s, features)).prefetch(2)
    parts: list[np.ndarray] = []
    names: dict[int, set[str]] = {}
    try:
        for batch in ds.as_numpy_iterator():
            labels = batch[label_key]
            parts.append(labels)
            texts = batch[CLASS_KEY]
            if texts.size and texts.any():
                for lab, name in set(zip(labels.tolist(), texts.tolist())):
                    if name:
                        names.setdefault(lab, set()).add(name.decode("utf-8", "replace"))
    except tf.errors.DataLossError as exc:
        raise DataError(
            f"{path}: not a TFRecord file, or a corrupt or truncated one ({_first_line(exc)})",
            hint="write the file again (a partial copy or download also causes this), or "
            "check that the pattern only matches TFRecord files",
        ) from None
    except tf.errors.InvalidArgumentError as exc:
        raise DataError(
            f"{path}: records without an int64 '{label_key}' feature ({_first_line(exc)})",
            hint="each tf.train.Example needs 'image' (bytes) and 'label' (int64) features",
        ) from None
    labels = np.concatenate(parts) if parts else np.zeros(0, np.int64)
    return labels, names


def _first_line(exc: Exception) -> str:
    text = getattr(exc, "message", None) or str(exc)
    return text.strip().splitlines()[0][:200] if text.strip() else type(exc).__name__


def _names_from_records(
    seen: dict[int, set[str]], count: int, origin: str
) -> list[str] | None:
    if not seen:
        return None
    for label, names in seen.items():
        if len(names) > 1:
            raise DataError(
                f"{origin}: label {label} has several class names {sorted(names)}",
                hint="every record of a class must carry the same class_name",
            )
    return [next(iter(seen[i])) if i in seen else str(i) for i in range(count)]


def load_tfrecords(
    spec: str, *, image_key: str = "image", label_key: str = "label", skip_invalid: bool = False,
    verify: str = "header", max_pixels: int | None = None,
) -> dict[str, LabeledImages]:
    """Read the labels of TFRecord files and return record-backed splits.

    Args:
        spec: a ``.tfrecord`` file, a folder of them or a glob.
        image_key, label_key: the feature names in the records.
        skip_invalid: check every record's image (``verify``: ``header`` or ``full``) and
            leave the bad ones out, with one warning and ``info["skipped"]``
            (``{"FILE#INDEX": problem}``), as folders do. Without it records are not opened
            here; a bad one stops the run later, named by its index.
        max_pixels: the decompression-bomb limit of that check.

    Returns:
        The splits; ``info["records_per_file"]`` gives each file's record count.
    """
    files = _files_for(spec)
    groups = {"train": files} if len(files) == 1 else group_by_split(files)
    scanned: dict[str, tuple[np.ndarray, dict[str, int]]] = {}
    seen: dict[int, set[str]] = {}
    for split, split_files in groups.items():
        parts, per_file = [], {}
        for f in split_files:
            labels, names = _scan_file(f, label_key)
            if labels.size and labels.min() < 0:
                raise DataError(f"{f}: negative label {int(labels.min())}")
            parts.append(labels)
            per_file[f] = int(labels.size)
            for lab, n in names.items():
                seen.setdefault(lab, set()).update(n)
        labels = np.concatenate(parts)
        if labels.size == 0:
            raise DataError(f"{split_files[0]}: no records", hint="the TFRecord files are empty")
        scanned[split] = (labels, per_file)
    top = max(int(lab.max()) for lab, _ in scanned.values())
    origin = files[0]
    names = classes_txt_beside(Path(files[0]).parent)
    if names is None:
        names = _names_from_records(seen, top + 1, origin) or numbered_names(top + 1)
    out = {}
    for split, (labels, per_file) in scanned.items():
        first = next(iter(per_file))
        split_origin = first if len(per_file) == 1 else f"{first} (+{len(per_file) - 1} files)"
        check_label_range(labels, names, split_origin)
        out[split] = LabeledImages(
            class_names=names,
            labels=labels.astype(np.int32),
            tfrecord=TFRecordFiles(tuple(per_file), None, image_key, label_key),
            origin=split_origin,
            info={"format": "tfrecord", "records_per_file": per_file},
        )
        if skip_invalid and verify != "none":
            out[split] = _without_bad_records(out[split], verify == "full", max_pixels)
    return out


def _without_bad_records(data: LabeledImages, full: bool, max_pixels: int | None) -> LabeledImages:
    """``data`` less the records whose image fails the check, with one warning and the list."""
    import warnings

    from foveal.data.imagecheck import DEFAULT_MAX_PIXELS
    from foveal.data.inspect import record_probes

    probes = record_probes(data, full, max_pixels or DEFAULT_MAX_PIXELS)
    bad = {p.path: p.problem for p in probes if p.problem is not None}
    if not bad:
        return data
    keep = np.asarray([i for i, p in enumerate(probes[: len(data)]) if p.problem is None], np.int64)
    kept = replace(data.subset(keep), info={**data.info, "skipped": bad})
    warnings.warn(f"skipping {len(bad)} invalid record(s) in {data.origin} (listed in info['skipped'])",
                  stacklevel=4)
    return kept


# ---------------------------------------------------------------------------- streaming


def selected_records(spec: TFRecordFiles):
    """A ``tf.data.Dataset`` of the serialized records ``spec`` selects.

    Records come in file order (ascending record number), not in the order of
    ``record_indices``; a number listed twice yields its record twice.
    """
    import tensorflow as tf

    ds = tf.data.TFRecordDataset(list(spec.files))
    if spec.record_indices is None:
        return ds
    wanted = np.asarray(spec.record_indices, dtype=np.int64).ravel()
    if wanted.size == 0:
        return ds.take(0)
    if wanted.min() < 0:
        raise DataError(f"{spec.files[0]}: negative record index {int(wanted.min())}")
    counts = np.bincount(wanted)
    ds = ds.take(len(counts)).enumerate()  # nothing after the last wanted record is read
    if counts.max() == 1:
        mask = tf.constant(counts.astype(bool))
        return ds.filter(lambda i, _: tf.gather(mask, i)).map(lambda _, r: r)
    repeats = tf.constant(counts)
    return ds.flat_map(
        lambda i, r: tf.data.Dataset.from_tensors(r).repeat(tf.gather(repeats, i))
    )


def parse_record(spec: TFRecordFiles, channels: int):
    """A function: serialized ``tf.train.Example`` -> ``(uint8 HxWxC image, int32 label)``."""
    import tensorflow as tf

    from foveal.data.decode import decode_image_bytes

    features = {
        spec.image_key: tf.io.FixedLenFeature([], tf.string),
        spec.label_key: tf.io.FixedLenFeature([], tf.int64),
    }

    def parse(serialized):
        example = tf.io.parse_single_example(serialized, features)
        image = decode_image_bytes(example[spec.image_key], channels)  # EXIF orientation applied
        return image, tf.cast(example[spec.label_key], tf.int32)

    return parse


def records_dataset(spec: TFRecordFiles, channels: int):
    """Decoded ``(uint8 HxWxC image, int32 label)`` pairs of the records ``spec`` selects.

    Args:
        spec: the files and the selection (see :func:`selected_records` for the order).
        channels: 1 or 3.
    """
    import tensorflow as tf

    return selected_records(spec).map(parse_record(spec, channels), num_parallel_calls=tf.data.AUTOTUNE)


# ---------------------------------------------------------------------------- writing


def _encode_array(image: np.ndarray, fmt: str) -> bytes:
    from PIL import Image

    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if fmt == "JPEG" and image.ndim == 3 and image.shape[-1] == 4:
        raise DataError(
            "JPEG cannot store an alpha channel", hint="write RGBA images with image_format='png'"
        )
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    return buffer.getvalue()


def _encoded_images(data: LabeledImages, fmt: str) -> Iterator[tuple[bytes, int]]:
    """``(encoded image bytes, label)`` for every example, in order."""
    if data.images is not None:
        for image, label in zip(data.images, data.labels):
            yield _encode_array(image, fmt), int(label)
    elif data.paths is not None:
        for path, label in zip(data.paths, data.labels):
            try:
                with open(str(path), "rb") as f:
                    yield f.read(), int(label)
            except OSError as exc:
                raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
    else:
        raise AssertionError("record-backed data is copied record by record")


def _example(image: bytes, label: int, name: str) -> bytes:
    import tensorflow as tf

    feature = {
        "image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[image])),
        "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
        CLASS_KEY: tf.train.Feature(bytes_list=tf.train.BytesList(value=[name.encode()])),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def _records_of(data: LabeledImages, fmt: str) -> Iterator[bytes]:
    if data.tfrecord is not None:
        # Copy the stored records as they are, but under the standard feature names.
        spec = data.tfrecord
        if (spec.image_key, spec.label_key) == ("image", "label"):
            for record in selected_records(spec).as_numpy_iterator():
                yield record
            return
        import tensorflow as tf

        features = {
            spec.image_key: tf.io.FixedLenFeature([], tf.string),
            spec.label_key: tf.io.FixedLenFeature([], tf.int64),
        }
        parsed = selected_records(spec).map(lambda s: tf.io.parse_single_example(s, features))
        for ex in parsed.as_numpy_iterator():
            label = int(ex[spec.label_key])
            yield _example(ex[spec.image_key], label, data.class_names[label])
        return
    for image, label in _encoded_images(data, fmt):
        yield _example(image, label, data.class_names[label])


def shard_paths(path: str | Path, shards: int) -> list[str]:
    """``out/train.tfrecord`` -> ``[out/train-00000-of-00004.tfrecord, ...]`` (itself if 1)."""
    path = Path(path)
    if shards == 1:
        return [str(path)]
    stem, dot, ext = path.name.partition(".")
    return [
        str(path.with_name(f"{stem}-{i:05d}-of-{shards:05d}{dot}{ext}")) for i in range(shards)
    ]


def _write_classes_txt(folder: Path, names: list[str]) -> None:
    target = folder / "classes.txt"
    if target.is_file():
        existing = classes_txt_beside(folder)
        if existing != names:
            raise DataError(
                f"{target}: lists other class names than the data being written",
                hint="write to an empty folder, or remove the old classes.txt",
            )
        return
    target.write_text("\n".join(names) + "\n", encoding="utf-8")


def write_tfrecord(
    data: LabeledImages, path: str | Path, *, image_format: str = "png", shards: int = 1
) -> list[str]:
    """Write ``data`` as TFRecord file(s) of ``tf.train.Example`` and return their paths.

    Arrays are encoded (PNG is lossless; JPEG at quality 95), image files are copied byte for
    byte, records are copied as stored. Records are spread over ``shards`` files in order, so
    record ``i`` of the output is example ``i`` of ``data``. A ``classes.txt`` is written
    beside the files so the class names and their order survive.

    Args:
        data: any :class:`LabeledImages`.
        path: the output file, e.g. ``out/train.tfrecord``; with ``shards > 1`` the files are
            ``out/train-00000-of-000NN.tfrecord`` and so on.
        image_format: ``"png"`` or ``"jpeg"``, for array data only.
        shards: how many files to write.

    Example:
        >>> write_tfrecord(load_dataset("digits")["train"], "out/train.tfrecord")  # doctest: +SKIP
        ['out/train.tfrecord']
    """
    import tensorflow as tf

    fmt = _FORMATS.get(image_format.lower())
    if fmt is None:
        raise ConfigError(f"unknown image format {image_format!r}", hint="use png or jpeg")
    if shards < 1:
        raise ConfigError(f"shards must be at least 1, got {shards}")
    paths = shard_paths(path, shards)
    folder = Path(paths[0]).parent
    folder.mkdir(parents=True, exist_ok=True)
    _write_classes_txt(folder, list(data.class_names))
    bounds = np.linspace(0, len(data), shards + 1).round().astype(int)
    records = _records_of(data, fmt)
    for shard, out in enumerate(paths):
        with tf.io.TFRecordWriter(out) as writer:
            for _ in range(bounds[shard], bounds[shard + 1]):
                writer.write(next(records))
    return paths


def convert_to_tfrecord(
    spec: str,
    output_dir: str | Path,
    *,
    image_format: str = "png",
    shards: int = 1,
    **load_kw: Any,
) -> dict[str, list[str]]:
    """Convert any dataset :func:`~foveal.data.readers.load_dataset` reads into TFRecords.

    Writes ``OUTPUT_DIR/<split>.tfrecord`` (or shards of it) for every split, and
    ``classes.txt``; the folder then reads back with ``load_dataset(OUTPUT_DIR)``.

    Args:
        spec: the source dataset.
        output_dir: where to write.
        image_format: ``"png"`` or ``"jpeg"`` for array sources.
        shards: files per split.
        **load_kw: passed to ``load_dataset`` (e.g. ``skip_invalid=True``).

    Returns:
        ``{split: [file, ...]}``.
    """
    from foveal.data.readers import load_dataset
    from foveal.utils_io import ensure_output_dir

    out_dir = ensure_output_dir(output_dir, "--output")  # before reading: fail fast
    splits = load_dataset(spec, **load_kw)
    return {
        split: write_tfrecord(
            data, out_dir / f"{split}.tfrecord", image_format=image_format, shards=shards
        )
        for split, data in splits.items()
    }
