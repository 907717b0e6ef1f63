"""The in-memory description of images annotated with boxes, shared by every box reader.

A :class:`BoxedImages` lists image files with, for each image, zero or more boxes in absolute
pixel corner coordinates ``[x_min, y_min, x_max, y_max]`` (float32, x to the right, y down,
continuous coordinates: a box covering the whole of a W x H image is ``[0, 0, W, H]``) and one
class index per box. Localization trains on one box per image (:meth:`BoxedImages.largest`);
detection will use all of them. Images without boxes are kept: they are the negatives a
detector (or a single-class localizer's presence output) learns from.

Box readers (:mod:`~foveal.data.boxes.voc`, :mod:`~foveal.data.boxes.csv_boxes`) share the
validation in :func:`check_box`, so every format reports the same problems the same way.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from foveal.errors import DataError
from foveal.utils_io import is_utf8_path, printable_path

log = logging.getLogger("foveal")

CLIP_TOLERANCE = 3.0
"""Pixels a coordinate may lie outside the image and still be clipped (with a warning)."""
SILENT_CLIP = 0.5
"""Pixels outside the image clipped without a warning: rounding (YOLO's 6 decimals, a float
written as text) puts an edge box a hair outside, which is no annotation error."""


@dataclass(frozen=True)
class BoxedImages:
    """Image files with their boxes and box classes.

    Attributes:
        paths: (N,) array of image file paths.
        boxes: N float32 arrays of shape (K_i, 4), absolute pixels ``[x_min, y_min, x_max, y_max]``.
        labels: N int32 arrays of shape (K_i,), class index of each box.
        class_names: class index -> name.
        image_sizes: (N, 2) int array of ``(width, height)`` in pixels, from the image files.
        difficult: N bool arrays of shape (K_i,) (Pascal VOC's flag; all False elsewhere).
        origin: where the annotations came from, for messages and reports.
        info: facts a reader passes on, e.g. ``skipped`` (list of ``(file, reason)``).

    Example:
        >>> data = BoxedImages(paths=np.array(["a.jpg"]), boxes=[np.array([[1, 2, 30, 40]], np.float32)],
        ...                    labels=[np.array([0], np.int32)], class_names=["cat"],
        ...                    image_sizes=np.array([[64, 48]]))
        >>> len(data), data.num_boxes
        (1, 1)
    """

    paths: np.ndarray
    boxes: list[np.ndarray]
    labels: list[np.ndarray]
    class_names: list[str]
    image_sizes: np.ndarray
    difficult: list[np.ndarray] | None = None
    origin: str = ""
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.paths)
        if not (len(self.boxes) == len(self.labels) == len(self.image_sizes) == n):
            raise ValueError(f"{self.origin}: paths, boxes, labels and image_sizes differ in length")
        if self.difficult is None:
            object.__setattr__(self, "difficult", [np.zeros(len(b), bool) for b in self.boxes])
        for boxes, labels in zip(self.boxes, self.labels):
            if boxes.shape != (len(labels), 4):
                raise ValueError(f"{self.origin}: boxes of shape {boxes.shape} for {len(labels)} labels")
            if len(labels) and (labels.min() < 0 or labels.max() >= len(self.class_names)):
                raise DataError(f"{self.origin}: a box label is outside 0..{len(self.class_names) - 1}")

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def num_boxes(self) -> int:
        return int(sum(len(b) for b in self.boxes))

    def counts(self) -> dict[str, int]:
        """Number of boxes per class name, in class order."""
        all_labels = np.concatenate([*self.labels, np.zeros(0, np.int32)])
        c = np.bincount(all_labels, minlength=self.num_classes)
        return {name: int(c[i]) for i, name in enumerate(self.class_names)}

    def subset(self, indices: np.ndarray, origin: str | None = None) -> "BoxedImages":
        """The images at ``indices``, in that order."""
        idx = [int(i) for i in np.asarray(indices, dtype=np.int64)]
        assert self.difficult is not None
        return replace(
            self, paths=self.paths[idx], boxes=[self.boxes[i] for i in idx], labels=[self.labels[i] for i in idx],
            image_sizes=self.image_sizes[idx], difficult=[self.difficult[i] for i in idx],
            origin=origin or self.origin,
        )

    def largest(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One box per image: the largest by area (ties: the first listed).

        Returns:
            ``(boxes, labels, has_box)``: float32 (N, 4) absolute corners, int32 (N,) labels and
            bool (N,). Images without boxes get the box ``[0, 0, 0, 0]`` and label 0 with
            ``has_box`` False.
        """
        n = len(self)
        out_boxes = np.zeros((n, 4), np.float32)
        out_labels = np.zeros(n, np.int32)
        has_box = np.zeros(n, bool)
        for i, (boxes, labels) in enumerate(zip(self.boxes, self.labels)):
            if len(boxes):
                k = int(np.argmax(box_areas(boxes)))
                out_boxes[i], out_labels[i], has_box[i] = boxes[k], labels[k], True
        return out_boxes, out_labels, has_box

    def normalized_largest(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`largest` with corners divided by the image width and height (0..1)."""
        boxes, labels, has_box = self.largest()
        scale = np.tile(self.image_sizes.astype(np.float32), 2)  # (w, h, w, h)
        return boxes / np.maximum(scale, 1), labels, has_box


def box_areas(boxes: np.ndarray) -> np.ndarray:
    """Areas of corner-format boxes (K, 4); degenerate boxes have area 0."""
    boxes = np.asarray(boxes, dtype=np.float64)
    return np.clip(boxes[..., 2] - boxes[..., 0], 0, None) * np.clip(boxes[..., 3] - boxes[..., 1], 0, None)


class BoxProblem(ValueError):
    """One box that cannot be used as given (the reader names the file)."""


def check_box(box: tuple[float, float, float, float], width: int, height: int, *,
              where: str, tolerance: float = CLIP_TOLERANCE) -> np.ndarray:
    """Validate one ``[x_min, y_min, x_max, y_max]`` box against a ``width`` x ``height`` image.

    Coordinates up to ``tolerance`` pixels outside the image are clipped to it with a warning
    (annotation tools often write -1 or W+1), silently up to half a pixel (rounding); further out, or a box with ``x_max <= x_min`` or
    ``y_max <= y_min`` (after clipping), raises :class:`BoxProblem`.

    Args:
        box: the corners as read.
        width, height: the image size in pixels.
        where: file (and object) named in messages.
        tolerance: pixels of slack before an outside coordinate is an error.

    Returns:
        The (possibly clipped) box as float32.
    """
    x0, y0, x1, y1 = (float(v) for v in box)
    if not all(np.isfinite([x0, y0, x1, y1])):
        raise BoxProblem(f"{where}: box {box} has a non-numeric coordinate")
    limits = (width, height, width, height)
    outside = [v for v, lim in zip((x0, y0, x1, y1), limits) if v < 0 or v > lim]
    worst = max((max(-v, v - lim) for v, lim in zip((x0, y0, x1, y1), limits) if v < 0 or v > lim), default=0.0)
    if worst > tolerance:
        raise BoxProblem(f"{where}: box {_fmt(box)} lies outside the {width}x{height} image "
                         f"(by {worst:g} px)")
    if outside:
        clipped = (min(max(x0, 0.0), width), min(max(y0, 0.0), height),
                   min(max(x1, 0.0), width), min(max(y1, 0.0), height))
        if worst > SILENT_CLIP:
            log.warning("%s: box %s clipped to the %dx%d image", where, _fmt(box), width, height)
        x0, y0, x1, y1 = clipped
    if x1 <= x0 or y1 <= y0:
        raise BoxProblem(f"{where}: degenerate box {_fmt(box)} (needs x_max > x_min and y_max > y_min)")
    return np.array([x0, y0, x1, y1], np.float32)


def _fmt(box) -> str:
    return "[" + ", ".join(f"{float(v):g}" for v in box) + "]"


@dataclass
class AnnotatedImage:
    """One image's annotation as a reader parsed it, before validation.

    Attributes:
        image: path of the image file ("" when the annotation names none that exists).
        where: the annotation file (and row) for messages.
        objects: ``(class name, (x_min, y_min, x_max, y_max), difficult)`` per box.
        declared_size: ``(width, height)`` written in the annotation, if any.
        problem: set when the annotation itself could not be read.
    """

    image: str
    where: str
    objects: list[tuple[str, tuple[float, float, float, float], bool]] = field(default_factory=list)
    declared_size: tuple[int, int] | None = None
    problem: str | None = None


def build_boxed_images(
    records: list[AnnotatedImage],
    *,
    origin: str,
    class_names: list[str] | None = None,
    skip_invalid: bool = False,
    tolerance: float = CLIP_TOLERANCE,
    max_image_pixels: int | None = None,
) -> BoxedImages:
    """Validate parsed annotations against their image files and build a :class:`BoxedImages`.

    Every image header is read (PIL, a few hundred bytes each) for the true size, which wins
    over a size written in the annotation. An image with any problem (annotation unreadable,
    image missing or unreadable, unknown class, box degenerate or outside the image) is an
    error naming the file, or, with ``skip_invalid``, left out whole (a half-annotated image
    would teach the wrong boxes) and listed in ``info["skipped"]``.

    Args:
        records: the parsed annotations, in the order wanted.
        origin: the dataset, for messages.
        class_names: the fixed class list; names outside it are problems. Default: the
            sorted names found in the images kept.
        skip_invalid: skip problem images with a warning instead of raising.
        tolerance: pixels a box may stick out of its image and still be clipped (:func:`check_box`).
        max_image_pixels: decompression-bomb limit for the header check.
    """
    from foveal.data.imagecheck import DEFAULT_MAX_PIXELS, probe_files

    if class_names is not None and len(set(class_names)) != len(class_names):
        raise DataError(f"{origin}: the class list repeats a name: {class_names}")
    limit = max_image_pixels or DEFAULT_MAX_PIXELS
    for record in records:
        if not (is_utf8_path(record.image) and is_utf8_path(record.where)):
            # TensorFlow cannot take such a path, nor can a message print it: name it here.
            record.where = printable_path(record.where)
            record.image, record.problem = printable_path(record.image), "path is not valid UTF-8 (rename the file or its folder)"
    readable = [r for r in records if r.problem is None and r.image]
    probes = {p.path: p for p in probe_files([r.image for r in readable], full=False, max_pixels=limit,
                                               progress=False)}
    known = set(class_names) if class_names is not None else None
    kept: list[tuple[AnnotatedImage, np.ndarray, list[str], np.ndarray, tuple[int, int]]] = []
    skipped: list[tuple[str, str]] = []
    for record in records:
        try:
            kept.append(_validate(record, probes, known, tolerance))
        except BoxProblem as exc:
            if not skip_invalid:
                raise DataError(str(exc), hint="fix or remove the annotation, or pass --skip-invalid") from None
            log.warning("skipping %s", exc)
            skipped.append((record.where, str(exc)))
    names = class_names if class_names is not None else sorted({n for _, _, ns, _, _ in kept for n in ns})
    if not kept:
        raise DataError(f"{origin}: no usable annotated images" + (f" ({len(skipped)} skipped)" if skipped else ""))
    index = {name: i for i, name in enumerate(names)}
    return BoxedImages(
        paths=np.array([r.image for r, *_ in kept]),
        boxes=[b for _, b, _, _, _ in kept],
        labels=[np.array([index[n] for n in ns], np.int32) for _, _, ns, _, _ in kept],
        class_names=list(names),
        image_sizes=np.array([size for *_, size in kept], np.int64).reshape(-1, 2),
        difficult=[d for _, _, _, d, _ in kept],
        origin=origin,
        info={"skipped": skipped} if skipped else {},
    )


def _validate(record: AnnotatedImage, probes: dict, known: set[str] | None, tolerance: float):
    if record.problem is not None:
        raise BoxProblem(f"{record.where}: {record.problem}")
    if not record.image:
        raise BoxProblem(f"{record.where}: the image file it names was not found")
    probe = probes[record.image]
    if probe.problem is not None:
        raise BoxProblem(f"{record.image}: {probe.problem} (annotated in {record.where})")
    # Boxes are read on the image as shown (EXIF orientation applied), as the decoder gives it.
    width, height = (int(v) for v in probe.shown_size)
    objects = record.objects
    declared = tuple(record.declared_size) if record.declared_size and all(record.declared_size) else None
    if declared is not None and declared != (width, height):
        if probe.orientation != 1 and declared == (probe.width, probe.height):
            # Drawn by a tool that ignored the EXIF orientation: the boxes follow the image's turn.
            log.warning("%s: the annotation says %dx%d, the image as stored; its EXIF orientation %d shows it "
                        "as %dx%d, so the boxes are turned with it", record.where, *declared, probe.orientation,
                        width, height)
            stored = (int(probe.width), int(probe.height))
            objects = [(n, orient_box(b, probe.orientation, stored), h) for n, b, h in objects]
        else:
            log.warning("%s: the annotation says %dx%d but the image is %dx%d; using the image's size",
                        record.where, *declared, width, height)
    boxes, names, difficult = [], [], []
    for k, (name, box, hard) in enumerate(objects):
        where = f"{record.where} (object {k + 1}, {name!r})"
        if known is not None and name not in known:
            raise BoxProblem(f"{where}: unknown class {name!r} (classes: {', '.join(sorted(known))})")
        boxes.append(check_box(box, width, height, where=where, tolerance=tolerance))
        names.append(name)
        difficult.append(bool(hard))
    return (record, np.array(boxes, np.float32).reshape(-1, 4), names, np.array(difficult, bool),
            (width, height))


def orient_box(box: tuple[float, float, float, float], orientation: int,
               stored_size: tuple[int, int]) -> tuple[float, float, float, float]:
    """A box ``[x_min, y_min, x_max, y_max]`` on an image as stored (``stored_size`` = width,
    height) moved to the same place on the image turned by its EXIF ``orientation``, as
    PIL's ``ImageOps.exif_transpose`` and :func:`foveal.data.decode.orient_image` turn it.

    Example:
        >>> orient_box((0, 0, 10, 5), 6, (100, 50))  # turned a quarter clockwise: 50 wide now
        (45.0, 0.0, 50.0, 10.0)
    """
    w, h = stored_size
    turn = {
        1: lambda x, y: (x, y), 2: lambda x, y: (w - x, y), 3: lambda x, y: (w - x, h - y),
        4: lambda x, y: (x, h - y), 5: lambda x, y: (y, x), 6: lambda x, y: (h - y, x),
        7: lambda x, y: (h - y, w - x), 8: lambda x, y: (y, w - x),
    }.get(int(orientation), lambda x, y: (x, y))
    (ax, ay), (bx, by) = turn(box[0], box[1]), turn(box[2], box[3])
    return (float(min(ax, bx)), float(min(ay, by)), float(max(ax, bx)), float(max(ay, by)))


def split_boxed(data: BoxedImages, fractions: dict[str, float], seed: int) -> dict[str, BoxedImages]:
    """Seeded random split of ``data`` into parts of the given fractions; the rest is ``train``.

    Example:
        >>> parts = split_boxed(data, {"val": 0.1, "test": 0.2}, seed=0)  # doctest: +SKIP
    """
    n = len(data)
    order = np.random.default_rng(seed).permutation(n)
    parts: dict[str, BoxedImages] = {}
    start = 0
    for name, fraction in fractions.items():
        count = int(round(fraction * n))
        if fraction > 0 and count == 0 and n > 1:
            count = 1
        if count:
            parts[name] = data.subset(np.sort(order[start:start + count]), origin=f"{data.origin} ({name})")
        start += count
    if start >= n:
        raise DataError(f"{data.origin}: {n} images are too few for the split {fractions}")
    parts["train"] = data.subset(np.sort(order[start:]), origin=f"{data.origin} (train)")
    return parts


__all__ = ["AnnotatedImage", "BoxProblem", "BoxedImages", "CLIP_TOLERANCE", "box_areas",
           "build_boxed_images", "check_box", "orient_box", "split_boxed"]
