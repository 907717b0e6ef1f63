"""TensorFlow Datasets (``tfds:NAME`` or ``tfds:NAME:SPLIT``), loaded into uint8 arrays.

``tensorflow_datasets`` is an optional extra (``pip install foveal[tfds]``) and needs the
network the first time a dataset is used; without either, the error says so and suggests a
local path instead. The whole split is loaded into memory, so this suits small and medium
image sets (MNIST, CIFAR, ...).

Example:
    >>> load_tfds("mnist")["test"].images.shape     # doctest: +SKIP
    (10000, 28, 28, 1)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from foveal.data.readers import check_label_range, numbered_names
from foveal.data.source import LabeledImages
from foveal.errors import DataError

# tfds split name -> our key
_KEY = {"train": "train", "validation": "val", "val": "val", "test": "test"}


def _import_tfds() -> Any:
    try:
        import tensorflow_datasets as tfds  # type: ignore[import-not-found]
    except ImportError:
        raise DataError(
            "TensorFlow Datasets is not installed, so tfds: datasets cannot be read",
            hint="pip install foveal[tfds]  (or pass a local dataset path instead)",
        ) from None
    return tfds


def _parse(target: str) -> tuple[str, str | None]:
    name, _, split = target.partition(":")
    if not name.strip():
        raise DataError("tfds: needs a dataset name, e.g. tfds:mnist or tfds:cifar10:test")
    return name.strip(), (split.strip() or None)


def _key_for(split: str) -> str:
    """``"train[:10%]"`` -> ``"train"``; unknown split names are kept as they are."""
    base = split.split("[", 1)[0].strip().lower()
    return _KEY.get(base, base)


def _load(tfds: Any, name: str, split: str) -> tuple[np.ndarray, np.ndarray, Any]:
    try:
        data, info = tfds.load(
            name, split=split, as_supervised=True, batch_size=-1, with_info=True
        )
    except DataError:
        raise
    except Exception as exc:  # tfds raises network, registry and checksum errors alike
        raise DataError(
            f"tfds:{name}:{split} could not be loaded or downloaded "
            f"({type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''})",
            hint="check the name and the network, or download the data and pass a local path",
        ) from None
    images, labels = tfds.as_numpy(data)
    return np.asarray(images), np.asarray(labels), info


def _class_names(info: Any, labels: list[np.ndarray]) -> list[str]:
    try:
        names = info.features["label"].names
    except (AttributeError, KeyError, TypeError):
        names = None
    if names:
        return [str(n) for n in names]
    top = max((int(lab.max()) for lab in labels if len(lab)), default=0)
    return numbered_names(top + 1)


def load_tfds(target: str) -> dict[str, LabeledImages]:
    """Load ``NAME`` (train/validation/test, whichever exist) or ``NAME:SPLIT``."""
    tfds = _import_tfds()
    name, split = _parse(target)
    if split is None:
        try:
            available = list(tfds.builder(name).info.splits.keys())
        except Exception as exc:  # unknown name, or metadata needs the network
            raise DataError(
                f"tfds:{name}: dataset information could not be loaded or downloaded "
                f"({type(exc).__name__})",
                hint="check the name and the network, or pass a local dataset path instead",
            ) from None
        splits = [s for s in ("train", "validation", "test") if s in available]
    else:
        splits = [split]
    loaded = {}
    info = None
    for s in splits:
        images, labels, info = _load(tfds, name, s)
        if images.dtype != np.uint8 or images.ndim != 4:
            raise DataError(
                f"tfds:{name}:{s}: images are {images.dtype} {images.shape}; only uint8 "
                "(N, H, W, C) image classification sets are supported"
            )
        loaded[_key_for(s)] = (images, labels.astype(np.int32), s)
    names = _class_names(info, [lab for _, lab, _ in loaded.values()])
    out = {}
    for key, (images, labels, s) in loaded.items():
        origin = f"tfds:{name}:{s}"
        check_label_range(labels, names, origin)
        out[key] = LabeledImages(
            class_names=names, labels=labels, images=images, origin=origin, info={"format": "tfds"}
        )
    return out
