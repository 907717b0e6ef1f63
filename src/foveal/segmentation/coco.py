"""COCO instance files (polygons or RLE) as semantic segmentation data: ``--data instances.json``.

Every image gets a mask drawn on the fly from its annotations (pycocotools decodes polygons and
RLE): class 0 is background, the categories sorted by id are 1..K, crowd regions are the ignore
label. A mask "path" is ``<json>#<image id>``, drawn by :func:`read_coco_mask` through the same
:func:`~foveal.segmentation.data.read_mask_pixels` as mask files. Images are looked up as the box
reader does (:mod:`foveal.data.boxes.coco`).

Example:
    >>> data = read_coco_segmentation("coco-mini/annotations/instances_val2017.json")  # doctest: +SKIP
    >>> data.class_names[:3], data.mask_format  # doctest: +SKIP
    (['background', 'person', 'bicycle'], 'coco')
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import numpy as np

from foveal.errors import DataError

MASK_FORMAT = "coco"
_SEPARATOR = "#"
_HINT = ("expected a COCO instances JSON: 'images' (id, file_name, width, height), 'annotations' (image_id, "
         "category_id, segmentation: polygons or RLE) and 'categories' (id, name)")


def is_coco_file(path: str | Path) -> bool:
    """True when ``path`` names a ``.json`` file (a COCO instances file for segmentation)."""
    return Path(path).suffix.lower() == ".json" and Path(path).is_file()


def mask_path(annotation_json: str | Path, image_id: int) -> str:
    """The stand-in mask path of one COCO image: ``<json>#<image id>``."""
    return f"{annotation_json}{_SEPARATOR}{int(image_id)}"


def read_coco_mask(path: str | Path, ignore_label: int = 255) -> np.ndarray:
    """The HxW uint8 semantic mask behind a :func:`mask_path` (class indices, crowd = ignore)."""
    annotation_json, _, image_id = str(path).rpartition(_SEPARATOR)
    if not annotation_json or not image_id.isdigit():
        raise DataError(f"{path}: not a COCO mask reference (<file.json>#<image id>)")
    return coco_semantic_masks(annotation_json, int(image_id), ignore_label)


def coco_semantic_masks(annotation_json: str | Path, image_id: int, ignore_label: int = 255) -> np.ndarray:
    """Rasterise one COCO image's instance annotations into an HxW uint8 semantic mask.

    Larger instances are painted first so small objects on top stay visible; crowd regions
    (``iscrowd=1``) are painted last with ``ignore_label``.

    Example:
        >>> m = coco_semantic_masks("instances_val2017.json", 139)   # doctest: +SKIP
        >>> m.shape, m.dtype
        ((426, 640), dtype('uint8'))
    """
    from pycocotools import mask as mask_utils

    images, index = _by_image(*_version(annotation_json))
    if image_id not in images:
        raise DataError(f"{annotation_json}: no image with id {image_id}")
    info, anns = images[image_id]
    h, w = int(info["height"]), int(info["width"])
    out = np.zeros((h, w), dtype=np.uint8)
    things = sorted((a for a in anns if not a.get("iscrowd", 0)), key=lambda a: -a.get("area", 0))
    for ann in things + [a for a in anns if a.get("iscrowd", 0)]:
        seg = ann["segmentation"]
        if isinstance(seg, list):
            rle = mask_utils.merge(mask_utils.frPyObjects(seg, h, w)) if seg else None
        elif isinstance(seg.get("counts"), list):
            rle = mask_utils.frPyObjects(seg, h, w)
        else:
            rle = seg
        if rle is not None:
            value = ignore_label if ann.get("iscrowd", 0) else index[ann["category_id"]]
            out[mask_utils.decode(rle).astype(bool)] = value
    return out


def check_coco_segmentation(path: str | Path) -> dict[str, Any]:
    """Read and check a COCO instances file (cached per file version); errors name the record."""
    return _checked(*_version(path))


def _version(path: str | Path) -> tuple[str, int, int]:
    """``(path, mtime, size)``: the cache key of a file's version."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"COCO annotation file not found: {path}", hint=_HINT)
    stat = path.stat()
    return str(path), stat.st_mtime_ns, stat.st_size


@functools.lru_cache(maxsize=4)
def _by_image(name: str, mtime_ns: int, size: int) -> tuple[dict[int, tuple[dict, list]], dict[int, int]]:
    """``({image id: (image record, its annotations)}, {category id: class index})``."""
    data = _checked(name, mtime_ns, size)
    images: dict[int, tuple[dict, list]] = {im["id"]: (im, []) for im in data["images"]}
    for ann in data["annotations"]:
        images[ann["image_id"]][1].append(ann)
    return images, {c: i + 1 for i, c in enumerate(sorted(c["id"] for c in data["categories"]))}


@functools.lru_cache(maxsize=4)
def _checked(name: str, mtime_ns: int, size: int) -> dict[str, Any]:
    path = Path(name)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise DataError(f"{path}: not a readable JSON file ({exc})", hint=_HINT) from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: a COCO instances file holds an object, not a {type(data).__name__}", hint=_HINT)
    missing = [k for k in ("images", "annotations", "categories") if not isinstance(data.get(k), list)]
    if missing:
        raise DataError(f"{path}: no {', '.join(repr(k) for k in missing)} list", hint=_HINT)
    if not data["categories"]:
        raise DataError(f"{path}: the 'categories' list is empty", hint=_HINT)
    for what, records, keys in (("image", data["images"], ("id", "file_name", "width", "height")),
                                ("category", data["categories"], ("id", "name")),
                                ("annotation", data["annotations"], ("image_id", "category_id", "segmentation"))):
        for i, record in enumerate(records):
            lacking = [k for k in keys if not isinstance(record, dict) or k not in record]
            if lacking:
                raise DataError(f"{path}: {what} {i} has no {', '.join(repr(k) for k in lacking)}", hint=_HINT)
    images = {im["id"] for im in data["images"]}
    cats = {c["id"] for c in data["categories"]}
    for i, ann in enumerate(data["annotations"]):
        seg = ann["segmentation"]
        where = f"{path}: annotation {i} (id {ann.get('id', '?')})"
        if ann["image_id"] not in images:
            raise DataError(f"{where} names image id {ann['image_id']}, which 'images' lacks", hint=_HINT)
        if ann["category_id"] not in cats:
            raise DataError(f"{where} names category id {ann['category_id']}, which 'categories' lacks", hint=_HINT)
        polygons = isinstance(seg, list) and all(
            isinstance(p, list) and len(p) >= 6 and len(p) % 2 == 0 for p in seg)
        rle = isinstance(seg, dict) and "counts" in seg and "size" in seg
        if not (polygons or rle):
            raise DataError(f"{where}: segmentation is neither polygons ([[x, y, ...], ...]) nor RLE "
                            "({counts, size})", hint=_HINT)
    return data


def coco_names(path: str | Path) -> list[str]:
    """``["background", <category names sorted by id>]`` of a checked COCO file."""
    data = check_coco_segmentation(path)
    return ["background"] + [str(c["name"]) for c in sorted(data["categories"], key=lambda c: c["id"])]


def read_coco_segmentation(path: str | Path, images: str | Path | None = None, *,
                           class_names: list[str] | None = None, ignore_label: int = 255,
                           skip_invalid: bool = False):
    """Every image of a COCO instances file with its semantic mask, as a ``coco``-format
    :class:`~foveal.segmentation.data.SegmentationImages`.

    Args:
        images: the image folder (default: found beside the file, as the box reader does).
        class_names: the classes the caller expects (e.g. the training split's); they must be
            the file's (``background`` then the categories by id), else a DataError lists both.
        skip_invalid: leave out images that are missing (listed in ``info["skipped"]``).
    """
    from foveal.data.boxes.coco import _file_names, _image_folder
    from foveal.segmentation.data import SegmentationImages, validate_pairs

    path = Path(path)
    data, names = check_coco_segmentation(path), coco_names(path)
    if class_names is not None and list(class_names) != names:
        raise DataError(f"{path}: its classes {names[:12]} differ from the expected {list(class_names)[:12]}",
                        hint="give COCO files with the same categories (background is class 0)")
    if len(names) > min(ignore_label, 255):
        raise DataError(f"{path}: {len(names) - 1} categories do not fit in a uint8 mask beside the ignore "
                        f"label {ignore_label}")
    folder = _image_folder(path, images, _file_names(data))
    pairs, skipped = [], []
    for im in sorted(data["images"], key=lambda im: im["id"]):
        image = folder / Path(str(im["file_name"])).name
        if image.is_file():
            pairs.append((str(image), mask_path(path, im["id"])))
            continue
        problem = f"{path}: image {im['file_name']!r} (id {im['id']}) not found in {folder}"
        if not skip_invalid:
            raise DataError(problem, hint="give the image folder with --images, or pass --skip-invalid")
        skipped.append(problem)
    if not pairs:
        raise DataError(f"{path}: none of its {len(data['images'])} images are in {folder}",
                        hint="give the image folder with --images")
    result = SegmentationImages(
        image_paths=np.asarray([p for p, _ in pairs]), mask_paths=np.asarray([m for _, m in pairs]),
        class_names=names, ignore_label=ignore_label, mask_format=MASK_FORMAT, origin=str(path),
        info={"skipped": skipped} if skipped else {})
    return validate_pairs(result, skip_invalid)


def own_class_names(spec: str | Path, mask_format: str = "auto") -> list[str] | None:
    """The class names a segmentation dataset carries itself, or None when its masks are bare
    class indices: a COCO file's (background + categories), a ``palette.txt``'s names."""
    from foveal.segmentation.data import read_palette

    if is_coco_file(spec):
        return coco_names(spec)
    palette = Path(spec) / "palette.txt"
    if mask_format in ("auto", "palette") and palette.is_file():
        return read_palette(palette)[1]
    return None
