"""Stratified, seeded train / validation / test splits, and the splits of a finished training run."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from foveal.data.source import LabeledImages, Splits
from foveal.errors import ConfigError, DataError


def _apportion(counts: np.ndarray, fraction: float) -> np.ndarray:
    """Per-class sizes summing to round(fraction * total), by largest remainder."""
    quotas = fraction * counts
    sizes = np.floor(quotas).astype(np.int64)
    short = int(np.floor(fraction * counts.sum() + 0.5)) - int(sizes.sum())
    if short > 0:
        order = np.argsort(-(quotas - sizes), kind="stable")
        sizes[order[:short]] += 1
    return np.minimum(sizes, counts)


def stratified_indices(labels: np.ndarray, fractions: list[float], seed: int) -> list[np.ndarray]:
    """Split example indices into ``len(fractions) + 1`` parts, keeping class proportions.

    Each part gets ``round(fraction * N)`` examples, shared among classes in proportion to
    their size (largest remainder); each class is shuffled with ``seed``. The first part gets
    the rest. Indices inside each part are sorted.

    Example:
        >>> train, val = stratified_indices(np.array([0, 0, 0, 0, 1, 1, 1, 1]), [0.25], seed=0)
        >>> len(train), len(val)
        (6, 2)
    """
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    remaining = counts.copy()
    sizes = []
    for frac in fractions:
        size = _apportion(counts, frac)
        size = np.minimum(size, remaining)
        remaining -= size
        sizes.append(size)
    parts: list[list[np.ndarray]] = [[] for _ in range(len(fractions) + 1)]
    for c, cls in enumerate(classes):
        idx = np.flatnonzero(labels == cls)
        rng.shuffle(idx)
        start = 0
        for p, size in enumerate(sizes, start=1):
            parts[p].append(idx[start:start + size[c]])
            start += size[c]
        parts[0].append(idx[start:])
    return [np.sort(np.concatenate(p)) if p else np.array([], dtype=np.int64) for p in parts]


def make_splits(
    parts: dict[str, LabeledImages],
    *,
    val_split: float,
    test_split: float,
    seed: int,
    val_data: dict[str, LabeledImages] | None = None,
    test_data: dict[str, LabeledImages] | None = None,
) -> Splits:
    """Combine what the dataset has with what must be carved out of its training part.

    Validation comes from ``val_data``, else the dataset's own ``val`` part, else
    ``val_split`` of train. Test comes from ``test_data``, else the dataset's ``test`` part,
    else ``test_split`` of train.
    """
    if "train" not in parts:
        raise DataError(f"the dataset has no training part (found: {', '.join(parts) or 'nothing'})")
    train = parts["train"]
    val = _first_part(val_data) if val_data else parts.get("val")
    test = _first_part(test_data) if test_data else parts.get("test")
    fractions = [val_split if val is None else 0.0, test_split if test is None else 0.0]
    if any(fractions):
        keep, val_idx, test_idx = stratified_indices(train.labels, fractions, seed)
        if val is None and fractions[0]:
            val = train.subset(val_idx, origin=f"{train.origin} (validation split)")
        if test is None and fractions[1]:
            test = train.subset(test_idx, origin=f"{train.origin} (test split)")
        train = train.subset(keep)
    for name, part in (("validation", val), ("test", test)):
        if part is not None and part.class_names != train.class_names:
            raise DataError(
                f"the {name} data has classes {part.class_names[:10]} but train has {train.class_names[:10]}",
                hint="give both the same class subfolders (or the same class list)",
            )
    if len(train) == 0:
        raise DataError(f"{train.origin}: no training images left after the splits")
    return Splits(train=train, val=val if val is not None and len(val) else None,
                  test=test if test is not None and len(test) else None)


def _first_part(parts: dict[str, LabeledImages]) -> LabeledImages:
    for key in ("test", "val", "train"):
        if key in parts:
            return parts[key]
    raise DataError("the extra dataset has no images")


def pick_split(parts: dict, split: str, data: str) -> tuple[str, object]:
    """``(name, part)`` of the part ``split`` that a command scores; a dataset of one part (a
    source without splits) stands for any split.

    Raises:
        DataError: naming ``data``, the missing split and the ones it has.
    """
    if split in parts:
        return split, parts[split]
    if len(parts) == 1:
        return next(iter(parts.items()))
    raise DataError(f"{data}: has no {split!r} split (it has {', '.join(parts)})", hint="pass --split with one of those")


def training_run_splits(model_path: str | Path | None, split: str, config_class: type, load_splits: Callable,
                        overrides: dict, what: str = "image") -> dict:
    """The parts that the training run of ``model_path`` split its data into, rebuilt from its
    ``config.yaml`` (with ``overrides``, e.g. ``data``) by the task's ``load_splits``, for
    ``evaluate --split train|val|test``; ``split`` must be one of them."""
    from foveal import configtools

    if split not in ("train", "val", "test"):
        raise ConfigError(f"--split must be all, train, val or test, got {split!r}")
    saved = Path(model_path).parent / "config.yaml" if model_path else None
    if saved is None or not saved.is_file():
        raise ConfigError(f"--split {split} needs the run's config.yaml beside {model_path or 'the model'}",
                          hint=f"use --split all to score every {what} of --data")
    parts = load_splits(configtools.from_mapping(config_class, configtools.load_yaml(saved) | overrides,
                                                 source=str(saved)))
    if split not in parts:
        raise DataError(f"the training run had no {split!r} split (it had {', '.join(parts)})")
    return parts
