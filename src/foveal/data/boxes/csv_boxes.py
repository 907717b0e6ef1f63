"""Box annotations as one CSV file, one row per box.

The layout is the one the TensorFlow Object Detection API tutorials and the raccoon dataset's
``train_labels.csv`` use::

    filename,width,height,class,xmin,ymin,xmax,ymax
    raccoon-1.jpg,650,417,raccoon,81,88,522,408

``width`` and ``height`` are optional (the image file's own size is used anyway); rows of the
same ``filename`` are the boxes of one image, which keeps the position of its first row. A row
with empty ``class`` and box columns lists an image without boxes (a negative). Images are
looked up in ``images`` if given, else next to the CSV file, else in an ``images/`` folder next
to it or one level up.

Example:
    >>> data = read_box_csv("train_labels.csv", images="images/")  # doctest: +SKIP
    >>> data.class_names  # doctest: +SKIP
    ['raccoon']
"""

from __future__ import annotations

import csv
from pathlib import Path

from foveal.data.boxes.source import CLIP_TOLERANCE, AnnotatedImage, BoxedImages, build_boxed_images
from foveal.errors import DataError

REQUIRED_COLUMNS = ("filename", "class", "xmin", "ymin", "xmax", "ymax")
_HINT = "expected a header filename,width,height,class,xmin,ymin,xmax,ymax and one row per box"


def read_box_csv(
    path: str | Path,
    images: str | Path | None = None,
    *,
    class_names: list[str] | None = None,
    skip_invalid: bool = False,
    tolerance: float = CLIP_TOLERANCE,
    max_image_pixels: int | None = None,
) -> BoxedImages:
    """Read a one-row-per-box CSV file into a :class:`BoxedImages`.

    Args:
        path: the CSV file.
        images: the image folder (default: searched as the module docstring says).
        class_names: fixed class list (names outside it are errors); default: sorted names found.
        skip_invalid: leave out images with problems instead of raising :class:`DataError`.
        tolerance, max_image_pixels: passed to :func:`~foveal.data.boxes.source.build_boxed_images`.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"annotation file not found: {path}")
    folders = _image_folders(path, images)
    records: dict[str, AnnotatedImage] = {}
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            columns = [c.strip().lower() for c in (reader.fieldnames or [])]
            missing = [c for c in REQUIRED_COLUMNS if c not in columns]
            if missing:
                raise DataError(f"{path}: missing column(s) {', '.join(missing)}", hint=_HINT)
            reader.fieldnames = columns
            for line, row in enumerate(reader, start=2):
                _add_row(records, row, f"{path}:{line}", folders)
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not a UTF-8 text file ({exc.reason})", hint=_HINT) from None
    except csv.Error as exc:
        raise DataError(f"{path}: not a readable CSV file ({exc})", hint=_HINT) from None
    if not records:
        raise DataError(f"{path}: no rows", hint=_HINT)
    return build_boxed_images(list(records.values()), origin=str(path), class_names=class_names,
                              skip_invalid=skip_invalid, tolerance=tolerance, max_image_pixels=max_image_pixels)


def _image_folders(path: Path, images: str | Path | None) -> list[Path]:
    if images is not None:
        folder = Path(images)
        if not folder.is_dir():
            raise DataError(f"image folder not found: {folder}")
        return [folder]
    return [f for f in (path.parent, path.parent / "images", path.parent.parent / "images") if f.is_dir()]


def _add_row(records: dict[str, AnnotatedImage], row: dict, where: str, folders: list[Path]) -> None:
    name = (row.get("filename") or "").strip()
    if not name:
        # A row without a file cannot be attached to any image: keep it as its own problem.
        records[where] = AnnotatedImage("", where, problem="empty filename")
        return
    record = records.get(name)
    if record is None:
        image = next((str(f / name) for f in folders if (f / name).is_file()), "")
        record = AnnotatedImage(image, where, declared_size=_size(row))
        if not image:
            record.problem = f"image {name!r} not found in {', '.join(map(str, folders)) or 'any folder'}"
        records[name] = record
    if record.problem:
        return
    cls = (row.get("class") or "").strip()
    values = [(row.get(k) or "").strip() for k in ("xmin", "ymin", "xmax", "ymax")]
    if not cls and not any(values):
        return  # an image listed without boxes
    try:
        box = tuple(float(v) for v in values)
    except ValueError:
        record.problem = f"row {where.rsplit(':', 1)[-1]}: non-numeric box {values}"
        return
    if not cls:
        record.problem = f"row {where.rsplit(':', 1)[-1]}: a box without a class"
        return
    record.objects.append((cls, box, False))  # type: ignore[arg-type]


def _size(row: dict) -> tuple[int, int] | None:
    try:
        return int(float(row.get("width") or "")), int(float(row.get("height") or ""))
    except ValueError:
        return None


__all__ = ["read_box_csv"]
