"""Pascal VOC box annotations: one XML file per image.

Everingham et al., "The PASCAL Visual Object Classes (VOC) Challenge", IJCV 2010, define the
layout read here; labelImg and most annotation tools write it too::

    root/annotations/*.xml   (or root/Annotations/)
    root/images/*.jpg        (or root/JPEGImages/; else next to the XML files)
    root/train.txt, root/val.txt, root/test.txt   (optional; or root/ImageSets/Main/*.txt)
    root/classes.txt         (optional: the class list, one name a line, fixing their order)

A list file names one image per line, as an image file name (``raccoon-1.jpg``) or an id
without extension (``2008_000008``); both are matched to the XML of the same stem. Each
``<object>`` gives ``<name>``, ``<bndbox>`` with ``xmin ymin xmax ymax`` (integers or
decimals, kept as written: VOC's 1-based pixel indices are read as continuous coordinates,
a sub-pixel difference that every common tool also ignores) and an optional ``<difficult>``.

Example:
    >>> splits = load_voc("../shared/datasets/raccoon")  # doctest: +SKIP
    >>> len(splits["train"]), len(splits["test"])  # doctest: +SKIP
    (160, 40)
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from foveal.data.boxes.source import CLIP_TOLERANCE, AnnotatedImage, BoxedImages, build_boxed_images
from foveal.errors import DataError

ANNOTATION_DIRS = ("annotations", "Annotations")
IMAGE_DIRS = ("images", "JPEGImages", "Images")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".JPG", ".JPEG", ".PNG")
SPLIT_FILES = {"train": ("train.txt",), "val": ("val.txt", "valid.txt", "validation.txt"), "test": ("test.txt",)}
_LAYOUT_HINT = "expected ROOT/annotations/*.xml with ROOT/images/ (Pascal VOC layout)"


def is_voc_folder(path: str | Path) -> bool:
    """True when ``path`` is a folder with an annotations folder of XML files, or XML files."""
    path = Path(path)
    if not path.is_dir():
        return False
    folder = next((path / d for d in ANNOTATION_DIRS if (path / d).is_dir()), path)
    return any(folder.glob("*.xml"))


def parse_voc_xml(xml_path: Path, images_dir: Path) -> AnnotatedImage:
    """Parse one VOC XML file; problems are recorded on the result, not raised."""
    where = str(xml_path)
    try:
        root = ET.parse(xml_path).getroot()
    except (ET.ParseError, OSError) as exc:
        return AnnotatedImage("", where, problem=f"unreadable XML ({exc})")
    if root.tag != "annotation":
        return AnnotatedImage("", where, problem=f"not a VOC annotation (root element <{root.tag}>)")
    image = _find_image(images_dir, (root.findtext("filename") or "").strip(), xml_path.stem)
    record = AnnotatedImage(image or "", where, declared_size=_declared_size(root))
    if image is None:
        named = (root.findtext("filename") or "").strip() or xml_path.stem
        record.problem = f"image {named!r} not found in {images_dir}"
        return record
    for k, obj in enumerate(root.findall("object"), start=1):
        name = (obj.findtext("name") or "").strip()
        box = obj.find("bndbox")
        if not name or box is None:
            record.problem = f"object {k} has no <name> or no <bndbox>"
            return record
        try:
            corners = tuple(float(box.findtext(tag) or "nan") for tag in ("xmin", "ymin", "xmax", "ymax"))
        except ValueError:
            record.problem = f"object {k} ({name!r}) has a non-numeric <bndbox> coordinate"
            return record
        difficult = (obj.findtext("difficult") or "0").strip() in ("1", "true")
        record.objects.append((name, corners, difficult))  # type: ignore[arg-type]
    return record


def _declared_size(root: ET.Element) -> tuple[int, int] | None:
    try:
        return int(float(root.findtext("size/width") or "")), int(float(root.findtext("size/height") or ""))
    except ValueError:
        return None


def _find_image(images_dir: Path, filename: str, stem: str) -> str | None:
    """The image an XML names: its ``<filename>``, else the XML's stem with an image extension."""
    if filename:
        candidate = images_dir / Path(filename).name
        if candidate.is_file():
            return str(candidate)
    for base in dict.fromkeys((Path(filename).stem if filename else stem, stem)):
        for ext in IMAGE_EXTENSIONS:
            candidate = images_dir / f"{base}{ext}"
            if candidate.is_file():
                return str(candidate)
    return None


def read_list_file(path: str | Path) -> list[str]:
    """Stems of the images a list file names (blank lines and ``#`` comments ignored)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"list file not found: {path}")
    stems = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name = line.split()[0]  # VOC's per-class lists add a " 1" / "-1" column
            stems.append(Path(name).stem if Path(name).suffix.lower() in {e.lower() for e in IMAGE_EXTENSIONS} else name)
    return stems


def read_voc(
    annotations: str | Path,
    images: str | Path | None = None,
    *,
    list_file: str | Path | None = None,
    class_names: list[str] | None = None,
    skip_invalid: bool = False,
    tolerance: float = CLIP_TOLERANCE,
    max_image_pixels: int | None = None,
) -> BoxedImages:
    """Read a folder of VOC XML files into one :class:`BoxedImages`.

    Args:
        annotations: the folder of ``*.xml`` files.
        images: the image folder (default: ``images/`` or ``JPEGImages/`` beside
            ``annotations``, else ``annotations`` itself).
        list_file: read only the images this file lists, in its order.
        class_names: fixed class list (names outside it are errors); default: sorted names found.
        skip_invalid: leave out images with problems instead of raising :class:`DataError`.
        tolerance, max_image_pixels: passed to :func:`~foveal.data.boxes.source.build_boxed_images`.
    """
    annotations = Path(annotations)
    records = _parse_folder(annotations, _images_dir(annotations, images))
    if list_file is not None:
        records = _select(records, read_list_file(list_file), str(list_file))
    return build_boxed_images(records, origin=str(list_file or annotations), class_names=class_names,
                              skip_invalid=skip_invalid, tolerance=tolerance, max_image_pixels=max_image_pixels)


def load_voc(
    root: str | Path,
    *,
    class_names: list[str] | None = None,
    skip_invalid: bool = False,
    tolerance: float = CLIP_TOLERANCE,
    max_image_pixels: int | None = None,
) -> dict[str, BoxedImages]:
    """Read a VOC dataset folder into splits keyed ``train``/``val``/``test`` (those listed).

    Without list files everything is ``train``. Class names are shared by all splits: from
    ``class_names``, else ``root/classes.txt``, else the sorted names over every XML file.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: no such folder", hint=_LAYOUT_HINT)
    annotations = next((root / d for d in ANNOTATION_DIRS if (root / d).is_dir()), root)
    records = _parse_folder(annotations, _images_dir(annotations, None))
    if class_names is None and (root / "classes.txt").is_file():
        class_names = [n.strip() for n in (root / "classes.txt").read_text(encoding="utf-8").splitlines() if n.strip()]
    if class_names is None:
        class_names = sorted({name for r in records if r.problem is None for name, _, _ in r.objects})
    common = dict(class_names=class_names, skip_invalid=skip_invalid, tolerance=tolerance,
                  max_image_pixels=max_image_pixels)
    lists = _split_lists(root)
    if not lists:
        return {"train": build_boxed_images(records, origin=str(root), **common)}  # type: ignore[arg-type]
    return {
        split: build_boxed_images(_select(records, read_list_file(path), str(path)),
                                  origin=f"{root} ({split})", **common)  # type: ignore[arg-type]
        for split, path in lists.items()
    }


def _images_dir(annotations: Path, images: str | Path | None) -> Path:
    if images is not None:
        folder = Path(images)
        if not folder.is_dir():
            raise DataError(f"image folder not found: {folder}", hint=_LAYOUT_HINT)
        return folder
    return next((annotations.parent / d for d in IMAGE_DIRS if (annotations.parent / d).is_dir()), annotations)


def _parse_folder(annotations: Path, images_dir: Path) -> list[AnnotatedImage]:
    if not annotations.is_dir():
        raise DataError(f"annotation folder not found: {annotations}", hint=_LAYOUT_HINT)
    files = sorted(annotations.glob("*.xml"), key=_natural_key)
    if not files:
        raise DataError(f"{annotations}: no .xml annotation files", hint=_LAYOUT_HINT)
    return [parse_voc_xml(f, images_dir) for f in files]


def _natural_key(path: Path) -> list:
    """Sort ``img-2`` before ``img-10``, so orders look as people number their files."""
    import re

    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.name)]


def _split_lists(root: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for split, names in SPLIT_FILES.items():
        for folder in (root, root / "ImageSets" / "Main"):
            path = next((folder / n for n in names if (folder / n).is_file()), None)
            if path is not None:
                found[split] = path
                break
    return found


def _select(records: list[AnnotatedImage], stems: list[str], origin: str) -> list[AnnotatedImage]:
    """The records a list file names (by XML or image stem), in its order; unknown names are
    problems."""
    by_stem = {Path(r.image).stem: r for r in records if r.image}
    by_stem.update({Path(r.where).stem: r for r in records})
    chosen = []
    for stem in stems:
        record = by_stem.get(stem)
        if record is None:
            record = AnnotatedImage("", origin, problem=f"lists {stem!r}, which has no annotation file")
        chosen.append(record)
    return chosen


__all__ = ["is_voc_folder", "load_voc", "parse_voc_xml", "read_list_file", "read_voc"]
