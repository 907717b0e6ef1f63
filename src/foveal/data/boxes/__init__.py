"""Images annotated with boxes: the :class:`BoxedImages` collection and its readers.

:func:`load_boxes` reads a dataset spec into splits keyed ``train``/``val``/``test`` (those the
source defines):

* a Pascal VOC folder (``annotations/*.xml`` + ``images/``, optional ``train.txt``/``test.txt``
  list files): :func:`~foveal.data.boxes.voc.load_voc`;
* a CSV file, one row per box (``filename,width,height,class,xmin,ymin,xmax,ymax``): all ``train``;
* a folder of such CSV files named ``train*.csv``, ``val*.csv``, ``test*.csv``;
* a COCO instances JSON file (``train``), or a folder holding ``*train*/*val*/*test*.json``
  files, or an ``annotations/`` folder of them: :func:`~foveal.data.boxes.coco.load_coco`;
* a YOLO folder (``images/``, ``labels/``, ``classes.txt`` or ``data.yaml``):
  :func:`~foveal.data.boxes.yolo.load_yolo`.

Localization (one box per image) and detection (every box) both build on these.

Example:
    >>> splits = load_boxes("../shared/datasets/raccoon")  # doctest: +SKIP
    >>> splits["train"].num_boxes  # doctest: +SKIP
    173
"""

from __future__ import annotations

from pathlib import Path

from foveal.data.boxes.coco import coco_files, load_coco, read_coco, to_coco_dict, write_coco
from foveal.data.boxes.convert import convert_boxes, write_voc
from foveal.data.boxes.csv_boxes import read_box_csv
from foveal.data.boxes.source import (
    CLIP_TOLERANCE,
    BoxedImages,
    box_areas,
    check_box,
    split_boxed,
)
from foveal.data.boxes.validate import BoxReport, validate_boxes
from foveal.data.boxes.voc import is_voc_folder, load_voc, read_voc
from foveal.data.boxes.yolo import is_yolo_folder, load_yolo, read_yolo, write_yolo_labels
from foveal.errors import DataError

FORMATS_HELP = ("a Pascal VOC folder (annotations/*.xml, images/, optional train.txt/test.txt), "
                "a CSV file filename,width,height,class,xmin,ymin,xmax,ymax (one row per box), "
                "a folder of train*.csv/val*.csv/test*.csv, a COCO instances JSON (or a folder of them), "
                "or a YOLO folder (images/, labels/, classes.txt or data.yaml)")
_CSV_SPLITS = {"train": "train", "val": "val", "test": "test"}


def load_boxes(
    spec: str | Path,
    *,
    class_names: list[str] | None = None,
    skip_invalid: bool = False,
    tolerance: float = CLIP_TOLERANCE,
    max_image_pixels: int | None = None,
) -> dict[str, BoxedImages]:
    """Read box annotations from a VOC folder, a CSV file or a folder of split CSV files.

    Args:
        spec: the path (see the module docstring).
        class_names: fixed class list shared by the splits; default: sorted names found.
        skip_invalid: leave out images with problems (listed in ``info["skipped"]``).
        tolerance, max_image_pixels: passed to :func:`~foveal.data.boxes.source.build_boxed_images`.

    Raises:
        DataError: the path does not exist or holds no annotations in a known layout.
    """
    path = Path(spec)
    common = dict(skip_invalid=skip_invalid, tolerance=tolerance, max_image_pixels=max_image_pixels)
    if path.is_file() and path.suffix.lower() == ".json":
        return load_coco(path, class_names=class_names, **common)
    if path.is_file():
        if path.suffix.lower() != ".csv":
            raise DataError(f"{path}: box annotations must be a .csv file or a folder", hint=FORMATS_HELP)
        return {"train": read_box_csv(path, class_names=class_names, **common)}  # type: ignore[arg-type]
    if not path.is_dir():
        raise DataError(f"{path}: no such file or folder", hint=FORMATS_HELP)
    if is_voc_folder(path):
        return load_voc(path, class_names=class_names, **common)  # type: ignore[arg-type]
    if is_yolo_folder(path):
        return load_yolo(path, class_names=class_names, **common)
    if coco_files(path) and not any(path.glob("*.csv")):
        return load_coco(path, class_names=class_names, **common)
    csvs = {split: next(iter(sorted(path.glob(f"{prefix}*.csv"))), None) for split, prefix in _CSV_SPLITS.items()}
    if csvs["train"] is None:
        raise DataError(f"{path}: no box annotations found", hint=FORMATS_HELP)
    if class_names is None:
        # Read train first so every split shares its classes (and their order).
        train = read_box_csv(csvs["train"], class_names=None, **common)  # type: ignore[arg-type]
        class_names = train.class_names
    return {split: read_box_csv(f, class_names=class_names, **common)  # type: ignore[arg-type]
            for split, f in csvs.items() if f is not None}


__all__ = ["BoxReport", "BoxedImages", "CLIP_TOLERANCE", "FORMATS_HELP", "box_areas", "check_box", "convert_boxes",
           "is_yolo_folder", "load_boxes", "load_coco", "load_yolo", "read_box_csv", "read_coco", "read_voc",
           "read_yolo", "split_boxed", "to_coco_dict", "validate_boxes", "write_coco", "write_voc",
           "write_yolo_labels"]
