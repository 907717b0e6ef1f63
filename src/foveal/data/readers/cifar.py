"""CIFAR-10 and CIFAR-100 in their original "python version" layout.

CIFAR-10: ``data_batch_1`` .. ``data_batch_5``, ``test_batch`` and ``batches.meta``;
CIFAR-100: ``train``, ``test`` and ``meta`` (fine labels by default). Each batch is a pickled
dict whose ``data`` is a uint8 array (N, 3072): one row is the red, green and blue 32x32
planes one after the other, so rows are reshaped to (3, 32, 32) and moved to channels-last.

The pickles are read with an unpickler that only builds numpy arrays, lists and strings, so a
tampered file cannot run code.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import Any

import numpy as np

from foveal.data.readers import check_label_range, numbered_names
from foveal.data.source import LabeledImages
from foveal.errors import DataError

CIFAR10_NAMES = [
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
]  # fmt: skip
SUBFOLDERS = ("cifar-10-batches-py", "cifar-100-python")
_ROW = 3 * 32 * 32
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def _unpickle(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            obj = _SafeUnpickler(f, encoding="bytes").load()
    except OSError as exc:
        raise DataError(f"{path}: cannot read the file ({exc.strerror or exc})") from None
    except Exception as exc:  # truncated or foreign pickles raise many kinds of errors
        raise DataError(
            f"{path}: not a CIFAR python batch ({type(exc).__name__}: {exc})",
            hint="use the 'python version' archive (cifar-10-python.tar.gz), extracted",
        ) from None
    if not isinstance(obj, dict):
        raise DataError(f"{path}: not a CIFAR python batch (holds a {type(obj).__name__})")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in obj.items()}


def _numbered_batches(folder: Path) -> list[Path]:
    found = [p for p in folder.glob("data_batch_*") if re.fullmatch(r"data_batch_\d+", p.name)]
    return sorted(found, key=lambda p: int(p.name.rsplit("_", 1)[1]))


def find_cifar(folder: Path) -> tuple[str, Path] | None:
    """``("cifar10" | "cifar100", batch folder)`` if ``folder`` or a known subfolder holds CIFAR."""
    for candidate in (folder, *(folder / s for s in SUBFOLDERS)):
        if not candidate.is_dir():
            continue
        if _numbered_batches(candidate) or (candidate / "batches.meta").is_file():
            return "cifar10", candidate
        if (candidate / "meta").is_file() and (candidate / "train").is_file():
            return "cifar100", candidate
    return None


def _decode_names(values: Any, path: Path, key: str) -> list[str]:
    if not isinstance(values, list):
        raise DataError(f"{path}: '{key}' is not a list of names")
    return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in values]


def _read_batch(path: Path, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    batch = _unpickle(path)
    if "data" not in batch or label_key not in batch:
        raise DataError(
            f"{path}: a CIFAR batch needs 'data' and '{label_key}' entries; it has "
            f"{sorted(batch)}"
        )
    data = np.asarray(batch["data"])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != _ROW:
        raise DataError(
            f"{path}: 'data' is {data.dtype} {data.shape}; expected uint8 (N, {_ROW})",
            hint="use the 'python version' of CIFAR, not the binary or MATLAB one",
        )
    labels = np.asarray(batch[label_key], dtype=np.int64)
    if labels.shape != (len(data),):
        raise DataError(f"{path}: {len(data)} images but {labels.size} labels")
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels.astype(np.int32)


def _split(files: list[Path], label_key: str, names: list[str]) -> LabeledImages:
    parts = [_read_batch(p, label_key) for p in files]
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    origin = str(files[0]) if len(files) == 1 else f"{files[0].parent}/{files[0].name}.."
    check_label_range(labels, names, origin)
    return LabeledImages(
        class_names=names, labels=labels, images=images, origin=origin, info={"format": "cifar"}
    )


def _cifar10(folder: Path) -> dict[str, LabeledImages]:
    train = _numbered_batches(folder)
    if not train:
        raise DataError(f"{folder}: CIFAR-10 folder without data_batch_1..5 files")
    meta = folder / "batches.meta"
    names = (
        _decode_names(_unpickle(meta).get("label_names"), meta, "label_names")
        if meta.is_file()
        else list(CIFAR10_NAMES)
    )
    out = {"train": _split(train, "labels", names)}
    if (folder / "test_batch").is_file():
        out["test"] = _split([folder / "test_batch"], "labels", names)
    return out


def _cifar100(folder: Path, label_mode: str) -> dict[str, LabeledImages]:
    meta_path = folder / "meta"
    meta = _unpickle(meta_path)
    key = f"{label_mode}_label_names"
    names = _decode_names(meta[key], meta_path, key) if key in meta else numbered_names(
        100 if label_mode == "fine" else 20
    )
    label_key = f"{label_mode}_labels"
    out = {"train": _split([folder / "train"], label_key, names)}
    if (folder / "test").is_file():
        out["test"] = _split([folder / "test"], label_key, names)
    return out


def load_cifar(folder: Path, *, label_mode: str = "fine") -> dict[str, LabeledImages]:
    """Read CIFAR-10 or CIFAR-100 python batches into uint8 (N, 32, 32, 3) arrays.

    Args:
        folder: the batch folder, or a folder holding ``cifar-10-batches-py`` or
            ``cifar-100-python``.
        label_mode: CIFAR-100 only: ``"fine"`` (100 classes) or ``"coarse"`` (20).

    Returns:
        ``{"train": ..., "test": ...}`` (test when the test batch is there).
    """
    found = find_cifar(folder)
    if found is None:
        raise DataError(
            f"{folder}: no CIFAR batches (data_batch_N / batches.meta, or train / meta)",
            hint="point at the extracted cifar-10-batches-py or cifar-100-python folder",
        )
    variant, where = found
    if variant == "cifar10":
        return _cifar10(where)
    if label_mode not in ("fine", "coarse"):
        raise DataError(f"unknown CIFAR-100 label mode {label_mode!r}", hint="use fine or coarse")
    return _cifar100(where, label_mode)
