"""NumPy ``.npz`` archives of images and labels.

Accepted key sets: ``x_train, y_train`` with optional ``x_val, y_val`` and ``x_test, y_test``;
``x, y``; or ``images, labels``; plus an optional ``class_names`` array of strings. Images are
uint8 (N, H, W) or (N, H, W, C) with C in 1, 3, 4; float images in [0, 1] are scaled to 0..255
with a warning. The archive is opened with ``allow_pickle=False``: object arrays are refused.

Example:
    >>> np.savez("toy.npz", x=np.zeros((4, 8, 8), np.uint8), y=np.array([0, 1, 0, 1]))
    >>> load_npz(Path("toy.npz"))["train"].images.shape   # doctest: +SKIP
    (4, 8, 8, 1)
"""

from __future__ import annotations

import warnings
import zipfile
from pathlib import Path

import numpy as np

from foveal.data.readers import check_label_range, infer_class_count, numbered_names
from foveal.data.source import LabeledImages
from foveal.errors import DataError

_SPLIT_KEYS = {
    "train": ("x_train", "y_train"),
    "val": ("x_val", "y_val"),
    "test": ("x_test", "y_test"),
}
_SINGLE_KEYS = (("x", "y"), ("images", "labels"))
_KEYS_HINT = (
    "save the arrays as x_train, y_train (optionally x_val, y_val, x_test, y_test), "
    "or as x, y, or as images, labels"
)


def _open(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}
    except ValueError as exc:
        if "allow_pickle" in str(exc) or "Object arrays" in str(exc):
            raise DataError(
                f"{path}: holds object arrays, which are not loaded (they can run code)",
                hint="save plain numeric arrays, and class names as a string array",
            ) from None
        raise DataError(f"{path}: not a readable .npz archive ({exc})") from None
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        raise DataError(f"{path}: not a readable .npz archive ({exc})") from None


def _images(array: np.ndarray, path: Path, key: str) -> np.ndarray:
    if array.ndim == 3:
        array = array[..., None]
    if array.ndim != 4 or array.shape[-1] not in (1, 3, 4):
        raise DataError(
            f"{path}: '{key}' has shape {array.shape}; expected (N, H, W) or (N, H, W, C) "
            "with C = 1, 3 or 4"
        )
    if array.dtype == np.uint8:
        return array
    if np.issubdtype(array.dtype, np.floating):
        lo, hi = (float(array.min()), float(array.max())) if array.size else (0.0, 0.0)
        if lo < 0.0 or hi > 1.0 or not np.isfinite([lo, hi]).all():
            raise DataError(
                f"{path}: '{key}' is {array.dtype} with values {lo:g}..{hi:g}; float images "
                "must lie in [0, 1]",
                hint="save the images as uint8 0..255 (or floats scaled to [0, 1])",
            )
        warnings.warn(
            f"{path}: '{key}' is {array.dtype} in [0, 1]; scaling to uint8 0..255", stacklevel=4
        )
        return np.round(array * 255.0).astype(np.uint8)
    raise DataError(
        f"{path}: '{key}' has dtype {array.dtype}; images must be uint8 (0..255) or floats "
        "in [0, 1]",
        hint=f"convert first, e.g. np.savez(..., {key}=images.astype(np.uint8))",
    )


def _labels(array: np.ndarray, path: Path, key: str, count: int, images_key: str) -> np.ndarray:
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1 or not (np.issubdtype(array.dtype, np.integer) or array.dtype == bool):
        raise DataError(
            f"{path}: '{key}' is {array.dtype} {array.shape}; labels must be a 1-D integer "
            "array of class indices",
            hint="for one-hot labels save labels.argmax(axis=1)",
        )
    if len(array) != count:
        raise DataError(
            f"{path}: '{images_key}' holds {count} images but '{key}' {len(array)} labels"
        )
    return array.astype(np.int32)


def _class_names(arrays: dict[str, np.ndarray], labels: list[tuple[str, np.ndarray]], path: Path) -> list[str]:
    if "class_names" in arrays:
        names = arrays["class_names"]
        if names.ndim != 1 or names.dtype.kind not in "US":
            raise DataError(f"{path}: 'class_names' must be a 1-D array of strings")
        return [n.decode("utf-8") if isinstance(n, bytes) else str(n) for n in names.tolist()]
    return numbered_names(infer_class_count(labels, minimum=1))


def _pairs(arrays: dict[str, np.ndarray], path: Path) -> dict[str, tuple[str, str]]:
    if "x_train" in arrays or "y_train" in arrays:
        pairs = {s: k for s, k in _SPLIT_KEYS.items() if k[0] in arrays or k[1] in arrays}
    else:
        present = [k for k in _SINGLE_KEYS if k[0] in arrays or k[1] in arrays]
        pairs = {"train": present[0]} if present else {}
        if len(present) > 1:
            raise DataError(
                f"{path}: has both x/y and images/labels arrays; cannot tell which to use",
                hint=_KEYS_HINT,
            )
    for x_key, y_key in pairs.values():
        if x_key not in arrays or y_key not in arrays:
            have, miss = (x_key, y_key) if x_key in arrays else (y_key, x_key)
            raise DataError(f"{path}: has '{have}' but no '{miss}'", hint=_KEYS_HINT)
    if not pairs:
        raise DataError(
            f"{path}: no image/label arrays found (keys: {', '.join(sorted(arrays)) or 'none'})",
            hint=_KEYS_HINT,
        )
    return pairs


def load_npz(path: Path) -> dict[str, LabeledImages]:
    """Read an ``.npz`` archive into splits of uint8 image arrays."""
    arrays = _open(path)
    pairs = _pairs(arrays, path)
    loaded = {}
    for split, (x_key, y_key) in pairs.items():
        images = _images(arrays[x_key], path, x_key)
        loaded[split] = (images, _labels(arrays[y_key], path, y_key, len(images), x_key))
    names = _class_names(arrays, [(f"{path}:{pairs[split][1]}", lab) for split, (_, lab) in loaded.items()], path)
    out = {}
    for split, (images, labels) in loaded.items():
        origin = f"{path}:{pairs[split][0]}"
        check_label_range(labels, names, origin)
        out[split] = LabeledImages(
            class_names=names, labels=labels, images=images, origin=origin, info={"format": "npz"}
        )
    return out
