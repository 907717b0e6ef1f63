"""Read any supported dataset spec into :class:`~foveal.data.source.LabeledImages` splits.

:func:`load_dataset` looks at the spec (a name such as ``digits``, ``tfds:NAME``, a file, a
glob or a folder), picks the reader module for that format and returns the splits the source
has, keyed ``"train"``, ``"val"`` and ``"test"``. Each format lives in its own module
(``digits``, ``idx``, ``cifar``, ``npz``, ``tfrecord``, ``tfds``, ``folder``); they are imported
only when used, so importing this package stays cheap. The small helpers at the end are shared
by those modules.

Example:
    >>> splits = load_dataset("digits")
    >>> splits["train"].images.shape
    (1797, 8, 8, 1)
"""

from __future__ import annotations

import glob as _glob
from pathlib import Path
from typing import Any

import numpy as np

from foveal.data.imagecheck import DEFAULT_MAX_PIXELS
from foveal.data.source import LabeledImages
from foveal.errors import ConfigError, DataError

__all__ = [
    "SPLIT_KEYS",
    "convert_to_tfrecord",
    "describe_formats",
    "detect_format",
    "load_dataset",
]

SPLIT_KEYS = ("train", "val", "test")
VERIFY_MODES = ("none", "header", "full")
_GLOB_CHARS = set("*?[")

_FORMATS = (
    ("digits | sklearn:digits", "scikit-learn's 1,797 8x8 digits (offline)"),
    ("tfds:NAME[:SPLIT]", "a TensorFlow Datasets dataset (needs `pip install foveal[tfds]`)"),
    ("mnist | fashion_mnist | cifar10 | cifar100", "downloaded once by keras.datasets (online), then cached"),
    ("DIR with IDX files", "MNIST / Fashion-MNIST train-images-idx3-ubyte[.gz] etc."),
    ("FILE-images-idx3-ubyte[.gz]", "one IDX image file with its labels file beside it"),
    ("DIR with CIFAR batches", "cifar-10-batches-py or cifar-100-python (python pickles)"),
    ("FILE.npz", "arrays x_train,y_train[,x_val,y_val][,x_test,y_test] or x,y or images,labels"),
    ("FILE.tfrecord | GLOB | DIR", "TFRecord files of tf.train.Example (image bytes + label)"),
    ("DIR/<class>/*.jpg", "an image folder, one subfolder per class"),
    ("DIR/{train,val,test}/<class>/", "an image folder already split"),
)


def describe_formats() -> str:
    """A short list of the dataset specs :func:`load_dataset` accepts (for ``--help``)."""
    width = max(len(spec) for spec, _ in _FORMATS)
    return "\n".join(f"  {spec.ljust(width)}  {what}" for spec, what in _FORMATS)


def _unknown(spec: str, why: str) -> DataError:
    return DataError(f"{spec}: {why}", hint="supported datasets:\n" + describe_formats())


def detect_format(spec: str) -> tuple[str, Any]:
    """Which reader handles ``spec``, and the target it should read.

    Returns:
        ``(kind, target)`` with kind one of ``digits``, ``tfds``, ``idx``, ``idx-file``,
        ``cifar``, ``npz``, ``tfrecord``, ``folder``. The target is a :class:`Path`, except for
        ``digits`` (None), ``tfds`` (the text after ``tfds:``) and ``tfrecord`` (the spec).

    Raises:
        DataError: the spec names nothing that exists, or nothing readable.
    """
    text = str(spec).strip()
    if text.lower() in ("digits", "sklearn:digits"):
        return "digits", None
    if text.lower().startswith("sklearn:"):
        raise _unknown(text, "only sklearn:digits is available from scikit-learn")
    if text.lower().startswith("tfds:"):
        return "tfds", text[len("tfds:") :]
    path = Path(text).expanduser()
    if not path.exists():
        from foveal.data.readers.keras_datasets import keras_dataset_name

        if keras_dataset_name(text) is not None:
            return "keras", keras_dataset_name(text)
        if _GLOB_CHARS & set(text):
            if _glob.glob(text):
                return "tfrecord", text
            raise _unknown(text, "no files match this pattern")
        raise _unknown(text, "no such file or folder")
    if path.is_file():
        return _detect_file(path)
    return _detect_dir(path)


def _detect_file(path: Path) -> tuple[str, Any]:
    from foveal.data.readers import idx

    name = path.name.lower()
    if name.endswith(".npz"):
        return "npz", path
    if ".tfrecord" in name:
        return "tfrecord", str(path)
    if idx.IDX_NAME.match(path.name) or "idx3-ubyte" in name:
        return "idx-file", path
    raise _unknown(str(path), "not a dataset file this tool reads")


def _detect_dir(path: Path) -> tuple[str, Any]:
    from foveal.data.readers import cifar, idx, tfrecord

    if idx.find_idx_files(path):
        return "idx", path
    if cifar.find_cifar(path) is not None:
        return "cifar", path
    if tfrecord.tfrecord_files_in(path):
        return "tfrecord", str(path)
    return "folder", path


def load_dataset(
    spec: str,
    *,
    skip_invalid: bool = False,
    verify: str = "header",
    max_image_pixels: int = DEFAULT_MAX_PIXELS,
    channels_hint: int | None = None,
) -> dict[str, LabeledImages]:
    """Read a dataset and return the splits it has.

    Args:
        spec: what to read; see :func:`describe_formats`.
        skip_invalid: for image folders and TFRecords, drop unreadable files or records
            (with one warning, and the list in ``info["skipped"]``) instead of stopping.
        verify: how image files are checked before use: ``"none"``, ``"header"`` (PIL opens
            each file: format, mode, size) or ``"full"`` (every image is decoded).
        max_image_pixels: refuse images larger than this (decompression bombs).
        channels_hint: the channel count the caller will decode to. No current reader needs
            it (channels are converted when decoding); accepted so callers can always pass it.

    Returns:
        ``{"train": ..., "val": ..., "test": ...}`` with only the keys the source has; every
        split shares the same class names.

    Raises:
        DataError: the spec cannot be read; the message names the file and the problem.

    Example:
        >>> load_dataset("data/pets")["train"].class_names      # doctest: +SKIP
        ['cat', 'dog']
    """
    del channels_hint  # see the docstring
    if verify not in VERIFY_MODES:
        raise ConfigError(
            f"unknown verify mode {verify!r}", hint=f"use one of {', '.join(VERIFY_MODES)}"
        )
    kind, target = detect_format(spec)
    if kind == "digits":
        from foveal.data.readers import digits

        return digits.load_digits_dataset()
    if kind == "tfds":
        from foveal.data.readers import tfds

        return tfds.load_tfds(target)
    if kind == "keras":
        from foveal.data.readers.keras_datasets import load_keras_dataset

        return load_keras_dataset(target)
    if kind == "idx":
        from foveal.data.readers import idx

        return idx.load_idx_dir(target)
    if kind == "idx-file":
        from foveal.data.readers import idx

        return idx.load_idx_file(target)
    if kind == "cifar":
        from foveal.data.readers import cifar

        return cifar.load_cifar(target)
    if kind == "npz":
        from foveal.data.readers import npz

        return npz.load_npz(target)
    if kind == "tfrecord":
        from foveal.data.readers import tfrecord

        return tfrecord.load_tfrecords(
            target, skip_invalid=skip_invalid, verify=verify, max_pixels=max_image_pixels
        )
    from foveal.data.readers import folder

    return folder.load_folder(
        target, skip_invalid=skip_invalid, verify=verify, max_pixels=max_image_pixels
    )


def convert_to_tfrecord(
    spec: str, output_dir: str | Path, *, image_format: str = "png", shards: int = 1, **load_kw
) -> dict[str, list[str]]:
    """Convert any supported dataset to TFRecord files, one set per split.

    See :func:`foveal.data.readers.tfrecord.convert_to_tfrecord`.
    """
    from foveal.data.readers import tfrecord

    return tfrecord.convert_to_tfrecord(
        spec, output_dir, image_format=image_format, shards=shards, **load_kw
    )


# ----------------------------------------------------------- helpers for the reader modules


def numbered_names(count: int) -> list[str]:
    """``["0", "1", ..., str(count - 1)]``."""
    return [str(i) for i in range(count)]


def read_classes_txt(path: Path) -> list[str]:
    """Class names from a ``classes.txt`` (one per line; blank lines ignored)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(
            f"{path}: cannot read the class list: {exc}",
            hint="classes.txt must be UTF-8 text with one class name per line",
        ) from None
    names = [line.strip() for line in lines if line.strip()]
    if not names:
        raise DataError(f"{path}: the class list is empty", hint="write one class name per line")
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise DataError(f"{path}: repeated class names {dup}", hint="class names must be unique")
    return names


def classes_txt_beside(folder: Path) -> list[str] | None:
    """The names in ``folder/classes.txt``, or None when there is no such file."""
    path = folder / "classes.txt"
    return read_classes_txt(path) if path.is_file() else None


def _first_outside(labels: np.ndarray, count: int) -> tuple[int, int, int] | None:
    """(index, value, how many) of the labels outside ``0..count-1``, or None."""
    outside = np.flatnonzero((labels < 0) | (labels >= count))
    if not len(outside):
        return None
    return int(outside[0]), int(labels[outside[0]]), len(outside)


def check_label_range(labels: np.ndarray, class_names: list[str], origin: str) -> None:
    """Raise a DataError naming ``origin``, the index and the value of a label with no class."""
    _refuse_outside(np.asarray(labels), len(class_names), origin, f"{len(class_names)} class names; ",
                    "labels must be integers 0..K-1; fix the labels or the class list")


def _refuse_outside(labels: np.ndarray, count: int, origin: str, why: str, hint: str, tail: str = "") -> None:
    """Raise a DataError for the first label of ``labels`` outside ``0..count-1``, if any."""
    found = _first_outside(labels, count)
    if found is None:
        return
    index, value, many = found
    more = f"; {many} labels are outside" if many > 1 else ""
    raise DataError(f"{origin}: label {value} at index {index} is outside the class range 0..{count - 1} "
                    f"({why}labels span {int(np.min(labels))}..{int(np.max(labels))}{more}){tail}", hint=hint)


def infer_class_count(labeled: list[tuple[str, np.ndarray]], minimum: int = 0) -> int:
    """The class count implied by labels when no class list is given.

    The classes are the contiguous run of label values that starts at the smallest one (so
    1..26 still gives 27 classes, class 0 unused, as EMNIST letters store them), and at least
    ``minimum``. A value past a gap would silently add classes that have no example (a stray
    253 among 0..9 made 254 classes), so it is refused, naming the file, index and value.

    Args:
        labeled: ``(origin, labels)`` for every split.
        minimum: the smallest count to assume (10 for MNIST-style IDX files).
    """
    arrays = [np.asarray(lab) for _, lab in labeled if len(lab)]
    if not arrays:
        return minimum
    used = np.unique(np.concatenate(arrays))
    nonnegative = used[used >= 0]
    breaks = np.flatnonzero(np.diff(nonnegative) != 1)
    last = nonnegative[breaks[0]] if len(breaks) else (nonnegative[-1] if len(nonnegative) else -1)
    count = max(minimum, int(last) + 1)
    for origin, lab in labeled:
        _refuse_outside(np.asarray(lab), count, origin, "the range the other labels form; ",
                        "fix the label, or list every class name (classes.txt beside the files, "
                        "or a class_names array in an .npz) if the classes really go that high",
                        tail="; it would add classes without examples")
    return count
