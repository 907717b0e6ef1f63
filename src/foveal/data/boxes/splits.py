"""Train / val / test parts of a box dataset, as every box task (detect, localize) reads them.

Splits: the dataset's own (``train.txt``/``val.txt``/``test.txt`` of a VOC folder, COCO or YOLO
split files), else a separate test dataset, else seeded fractions of the training images.

Example:
    >>> parts = load_box_splits("raccoon/", val_split=0.1, test_split=0.2)  # doctest: +SKIP
    >>> sorted(parts)  # doctest: +SKIP
    ['test', 'train', 'val']
"""

from __future__ import annotations

from foveal.data.boxes.source import BoxedImages, split_boxed
from foveal.errors import DataError


def load_box_splits(data: str, *, test_data: str | None = None, val_split: float = 0.1, test_split: float = 0.2,
                    seed: int = 42, skip_invalid: bool = False, tolerance: float = 3.0) -> dict[str, BoxedImages]:
    """The parts of ``data`` (see the module docstring); every part has the training classes.

    Raises:
        DataError: no training annotations, or a part whose classes differ from train's.
    """
    from foveal.data.boxes import load_boxes

    common = dict(skip_invalid=skip_invalid, tolerance=tolerance)
    parts = load_boxes(data, **common)  # type: ignore[arg-type]
    if "train" not in parts:
        raise DataError(f"{data}: no training annotations (no train split)")
    names = parts["train"].class_names
    if test_data:
        other = load_boxes(test_data, class_names=names, **common)  # type: ignore[arg-type]
        parts["test"] = other.get("test") or other["train"]
    return complete_splits(parts, val_split=val_split, test_split=test_split, seed=seed)


def complete_splits(parts: dict, *, val_split: float, test_split: float, seed: int) -> dict:
    """``parts`` with a missing ``val`` / ``test`` cut from ``train`` by seeded fractions (0: none),
    after checking that every part has the training classes (box and instance datasets alike).

    Raises:
        DataError: a part whose classes differ from train's.
    """
    names = parts["train"].class_names
    wanted = {}
    if "val" not in parts and val_split > 0:
        wanted["val"] = val_split
    if "test" not in parts and test_split > 0:
        wanted["test"] = test_split
    if wanted:
        parts.update(split_boxed(parts["train"], wanted, seed=seed))
    for part in parts.values():
        if part.class_names != names:
            raise DataError(f"{part.origin}: classes {part.class_names} differ from train's {names}",
                            hint="give the same classes in every split (a classes.txt fixes their order)")
    return parts


__all__ = ["complete_splits", "load_box_splits"]
