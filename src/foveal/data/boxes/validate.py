"""A report of every problem in a box dataset, by kind, with counts and file names.

:func:`validate_boxes` reads the dataset with ``skip_invalid`` so that one bad image does not
hide the others, and sorts each skipped image's reason into a kind. A reader stops at an
image's first problem, so an image with two bad boxes is listed once.

Example:
    >>> print(validate_boxes("../shared/datasets/raccoon").format())  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from foveal.data.boxes.source import BoxedImages

KINDS = {
    "degenerate_box": ("degenerate",),
    "outside_image": ("outside the",),
    "unknown_class": ("unknown class",),
    "annotation_without_image": ("annotation without image", "has no annotation file"),
    "missing_image": ("not found", "cannot", "unreadable image", "truncated", "not an image", "decompression"),
}


@dataclass
class BoxReport:
    """Problems found in a box dataset.

    Attributes:
        problems: kind -> list of ``(file, message)``; kinds: ``degenerate_box``,
            ``outside_image``, ``unknown_class``, ``missing_image`` (missing or unreadable),
            ``annotation_without_image``, ``unreadable_annotation``, ``other``.
        images_without_boxes: image files with no box (fine for a detector: negatives).
        images, boxes: what was usable.
    """

    problems: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    images_without_boxes: list[str] = field(default_factory=list)
    images: int = 0
    boxes: int = 0

    @property
    def ok(self) -> bool:
        return not any(self.problems.values())

    def counts(self) -> dict[str, int]:
        return {k: len(v) for k, v in self.problems.items() if v} | {
            "images_without_boxes": len(self.images_without_boxes)}

    def format(self) -> str:
        lines = [f"{self.images} usable images, {self.boxes} boxes, "
                 f"{len(self.images_without_boxes)} images without boxes"]
        for kind, items in self.problems.items():
            if items:
                lines.append(f"{kind}: {len(items)}")
                lines += [f"  {msg}" for _, msg in items]
        lines.append("OK" if self.ok else "problems found")
        return "\n".join(lines)


def classify(message: str) -> str:
    """The kind of problem a reader's message describes."""
    low = message.lower()
    if any(k in low for k in ("unreadable xml", "not a voc", "expected 'class", "unreadable label", "no <name>",
                              "non-numeric")):
        return "unreadable_annotation"
    return next((kind for kind, keys in KINDS.items() if any(k in low for k in keys)), "other")


def validate_boxes(source: "str | Path | BoxedImages | dict[str, BoxedImages]") -> BoxReport:
    """Check a box dataset (a path :func:`load_boxes` reads, or data already read).

    Raises:
        DataError: the dataset cannot be read at all (unknown layout, nothing usable).
    """
    from foveal.data.boxes import load_boxes

    if isinstance(source, BoxedImages):
        splits = {"data": source}
    elif isinstance(source, dict):
        splits = source
    else:
        splits = load_boxes(source, skip_invalid=True)
    report = BoxReport()
    for boxed in splits.values():
        for where, message in boxed.info.get("skipped", []):
            report.problems.setdefault(classify(message), []).append((str(where).split(" (")[0], message))
        report.images += len(boxed)
        report.boxes += boxed.num_boxes
        report.images_without_boxes += [str(p) for p, b in zip(boxed.paths, boxed.boxes) if len(b) == 0]
    return report


__all__ = ["BoxReport", "classify", "validate_boxes"]
