"""Convert box datasets between formats (COCO JSON, Pascal VOC XML, YOLO text) and write VOC.

:func:`convert_boxes` reads any layout :func:`~foveal.data.boxes.load_boxes` knows and writes a
self-contained dataset folder, images linked (or copied) next to the annotations:

* ``coco``: ``images/``, ``annotations/instances_{split}.json``;
* ``voc``: ``images/``, ``annotations/*.xml``, ``{split}.txt`` lists, ``classes.txt``;
* ``yolo``: ``images/{split}/``, ``labels/{split}/*.txt``, ``classes.txt``, ``data.yaml``.

Example:
    >>> convert_boxes("../shared/datasets/raccoon", "raccoon-coco", to="coco")  # doctest: +SKIP
"""

from __future__ import annotations

import os
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

from foveal.data.boxes.coco import write_coco
from foveal.data.boxes.source import BoxedImages
from foveal.data.boxes.yolo import write_class_names, write_yolo_labels
from foveal.errors import DataError
from foveal.utils_io import ensure_output_dir

FORMATS = ("coco", "voc", "yolo")


def voc_element(boxed: BoxedImages, index: int) -> ET.Element:
    """The VOC ``<annotation>`` of image ``index`` (``difficult`` kept)."""
    assert boxed.difficult is not None
    path = Path(str(boxed.paths[index]))
    width, height = (int(v) for v in boxed.image_sizes[index])
    root = ET.Element("annotation")
    ET.SubElement(root, "folder").text = "images"
    ET.SubElement(root, "filename").text = path.name
    size = ET.SubElement(root, "size")
    for tag, value in (("width", width), ("height", height), ("depth", 3)):
        ET.SubElement(size, tag).text = str(value)
    for box, label, hard in zip(boxed.boxes[index], boxed.labels[index], boxed.difficult[index]):
        obj = ET.SubElement(root, "object")
        ET.SubElement(obj, "name").text = boxed.class_names[int(label)]
        ET.SubElement(obj, "difficult").text = str(int(hard))
        bnd = ET.SubElement(obj, "bndbox")
        for tag, value in zip(("xmin", "ymin", "xmax", "ymax"), box):
            ET.SubElement(bnd, tag).text = f"{float(value):g}" if float(value).is_integer() else repr(float(value))
    return root


def write_voc(boxed: BoxedImages, annotations_dir: str | Path) -> None:
    """One VOC XML file per image of ``boxed`` in ``annotations_dir``."""
    folder = Path(annotations_dir)
    folder.mkdir(parents=True, exist_ok=True)
    for i, path in enumerate(boxed.paths):
        tree = ET.ElementTree(voc_element(boxed, i))
        ET.indent(tree)
        tree.write(folder / f"{Path(str(path)).stem}.xml", encoding="utf-8")


def _place_images(boxed: BoxedImages, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for src in boxed.paths:
        target = folder / Path(str(src)).name
        if target.exists():
            continue
        try:
            os.link(src, target)
        except OSError:
            shutil.copy2(src, target)


def write_dataset(splits: dict[str, BoxedImages], output: str | Path, to: str) -> Path:
    """Write ``splits`` to ``output`` in format ``to`` (see the module docstring)."""
    if to not in FORMATS:
        raise DataError(f"unknown box format {to!r}", hint=f"choose one of {', '.join(FORMATS)}")
    output = ensure_output_dir(output, "--output")
    for split, boxed in splits.items():
        if to == "coco":
            _place_images(boxed, output / "images")
            write_coco(boxed, output / "annotations" / f"instances_{split}.json")
        elif to == "voc":
            _place_images(boxed, output / "images")
            write_voc(boxed, output / "annotations")
            (output / f"{split}.txt").write_text("".join(f"{Path(str(p)).name}\n" for p in boxed.paths))
        else:
            _place_images(boxed, output / "images" / split)
            write_yolo_labels(boxed, output / "labels" / split)
    names = next(iter(splits.values())).class_names
    if to == "voc":
        (output / "classes.txt").write_text("".join(f"{n}\n" for n in names), encoding="utf-8")
    elif to == "yolo":
        write_class_names(output, names, list(splits))
    return output


def convert_boxes(spec: str | Path, output: str | Path, to: str = "coco", skip_invalid: bool = False) -> Path:
    """Read the box dataset ``spec`` (any layout :func:`load_boxes` knows) and write it as ``to``.

    Args:
        spec: the source dataset.
        output: the folder to write (created; existing files of the same names are replaced).
        to: ``"coco"``, ``"voc"`` or ``"yolo"``.
        skip_invalid: leave out images with problems instead of raising :class:`DataError`.

    Returns:
        The output folder.
    """
    from foveal.data.boxes import load_boxes

    if to not in FORMATS:
        raise DataError(f"unknown box format {to!r}", hint=f"choose one of {', '.join(FORMATS)}")
    return write_dataset(load_boxes(spec, skip_invalid=skip_invalid), output, to)


__all__ = ["FORMATS", "convert_boxes", "voc_element", "write_dataset", "write_voc"]
