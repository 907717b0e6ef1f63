"""COCO "instances" JSON box annotations: read into and write from :class:`BoxedImages`.

Lin et al., "Microsoft COCO: Common Objects in Context", ECCV 2014, define the format::

    {"images": [{"id", "file_name", "width", "height"}, ...],
     "annotations": [{"id", "image_id", "category_id", "bbox": [x, y, w, h], "area", "iscrowd"}, ...],
     "categories": [{"id", "name"}, ...]}

``bbox`` is the top-left corner and size in pixels. Class indices follow the categories sorted
by id (``info["category_ids"]`` maps index -> COCO id); images without annotations are kept (as
negatives); crowd boxes (``iscrowd: 1``) are kept with the ``difficult`` flag set, which the
writers turn back into ``iscrowd`` (COCO) or ``<difficult>`` (VOC): both mean "ignored by
evaluation". Images are looked up in ``images`` if given, else next to the ``annotations``
folder in a folder named after the file (``instances_val2017.json`` -> ``val2017/``), or
``images/``, or beside the JSON file.

Example:
    >>> data = read_coco("../shared/datasets/coco-mini/annotations/instances_val2017.json")  # doctest: +SKIP
    >>> len(data), data.num_classes  # doctest: +SKIP
    (79, 80)
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from foveal.data.boxes.source import CLIP_TOLERANCE, AnnotatedImage, BoxedImages, build_boxed_images
from foveal.errors import DataError

_HINT = "expected a COCO instances JSON with images, annotations (bbox [x, y, w, h]) and categories"


def is_coco_json(path: str | Path) -> bool:
    """True for a ``.json`` file (the reader reports what is wrong inside it)."""
    return Path(path).is_file() and Path(path).suffix.lower() == ".json"


def coco_files(folder: str | Path) -> dict[str, Path]:
    """Split name -> COCO JSON found in ``folder`` or ``folder/annotations`` (``*train*.json`` ...)."""
    folder = Path(folder)
    found: dict[str, Path] = {}
    for where in (folder / "annotations", folder):
        for split, keys in (("train", ("train",)), ("val", ("val",)), ("test", ("test",))):
            match = next((f for f in sorted(where.glob("*.json")) if any(k in f.stem.lower() for k in keys)), None)
            if match is not None and split not in found:
                found[split] = match
    return found


def _image_folder(json_path: Path, images: str | Path | None, file_names: list[str] | None = None) -> Path:
    """The image folder of the COCO file ``json_path``: ``images`` when given, else found beside it.

    Candidates, looked for next to the ``annotations`` folder and next to the file: first the
    split folder of a ``PREFIX_SPLIT.json`` name (``instances_val2017.json`` -> ``val2017/``) and
    ``images/``; then, only if none of those holds the images, a folder named after the whole stem
    (``train.json`` -> ``train/``) and the file's own folder. So ``instances.json`` beside
    ``images/`` and ``instances/`` (the label-map layout of :mod:`foveal.instance.label_maps`,
    whose PNGs may share the images' names) reads ``images/``. With ``file_names`` (the records'
    ``file_name`` values; the first few decide) a candidate counts only if it holds them; two
    first-rank candidates that both hold them all (``val2017/`` and ``images/``) are ambiguous: a
    one-line :class:`~foveal.errors.DataError` names both and asks for ``--images``. When no
    candidate holds them, the first existing one is returned (the reader then names the missing
    image).
    """
    if images is not None:
        folder = Path(images)
        if not folder.is_dir():
            raise DataError(f"image folder not found: {folder}")
        return folder
    roots = [json_path.parent.parent, json_path.parent]
    prefix, _, split = json_path.stem.partition("_")  # instances_val2017 -> val2017
    first = ([r / split for r in roots] if split else []) + [r / "images" for r in roots]
    second = ([] if split else [r / prefix for r in roots]) + [json_path.parent]
    names = [Path(str(n)).name for n in (file_names or [])][:_LAYOUT_SAMPLE]
    seen: list[Path] = []
    partial: list[tuple[int, Path]] = []  # (images held, folder) of the candidates holding only some
    for tier in (first, second):
        candidates = []
        for folder in tier:
            if folder.is_dir() and all(folder.resolve() != c.resolve() for c in seen):
                seen.append(folder)
                candidates.append(folder)
        if candidates and not names:
            return candidates[0]
        found = [sum((c / n).is_file() for n in names) for c in candidates]
        holding = [c for c, k in zip(candidates, found) if k == len(names)]
        if len(holding) > 1:
            raise DataError(f"{json_path}: its image files are in both {holding[0]} and {holding[1]}, which is "
                            "ambiguous; name the image folder with --images DIR (Python: images=...)")
        if holding:
            return holding[0]
        partial += [(k, c) for c, k in zip(candidates, found) if k]
    if partial:
        return max(partial, key=lambda kc: kc[0])[1]  # the first of those holding the most
    return seen[0] if seen else json_path.parent


_LAYOUT_SAMPLE = 32  # records whose files decide the image folder (all of a small file)


def _file_names(data: dict) -> list[str]:
    """The ``file_name`` of each image record (the ones that have one), to find their folder."""
    return [str(im["file_name"]) for im in data.get("images", []) if isinstance(im, dict) and "file_name" in im]


def _load(path: Path) -> dict:
    if not path.is_file():
        raise DataError(f"annotation file not found: {path}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a readable JSON file ({exc})", hint=_HINT) from None
    if not isinstance(data, dict) or not isinstance(data.get("images"), list) or not isinstance(
            data.get("categories"), list):
        raise DataError(f"{path}: no 'images' and 'categories' lists", hint=_HINT)
    if not isinstance(data.get("annotations"), list):
        # COCO's image-info files (test-dev) look like this: read as boxes, every image would
        # silently become a negative.
        raise DataError(f"{path}: no 'annotations' list, so no boxes (an image-info file such as COCO's "
                        "test-dev has none)", hint=_HINT + "; write \"annotations\": [] if the images really have no objects")
    return data


def read_coco(
    path: str | Path,
    images: str | Path | None = None,
    *,
    class_names: list[str] | None = None,
    skip_invalid: bool = False,
    tolerance: float = CLIP_TOLERANCE,
    max_image_pixels: int | None = None,
) -> BoxedImages:
    """Read a COCO instances JSON file into a :class:`BoxedImages` (see the module docstring).

    Args:
        path: the JSON file.
        images: the image folder (default: searched as the module docstring says).
        class_names: fixed class list; default: the category names in id order.
        skip_invalid: leave out problem images (and orphan annotations) instead of raising.
        tolerance, max_image_pixels: passed to :func:`~foveal.data.boxes.source.build_boxed_images`.
    """
    path = Path(path)
    data = _load(path)
    folder = _image_folder(path, images, _file_names(data))
    try:
        cats = sorted(((int(c["id"]), str(c["name"])) for c in data["categories"]))
        names = {cid: name for cid, name in cats}
        records: dict[int, AnnotatedImage] = {}
        for im in data["images"]:
            image = folder / Path(str(im["file_name"])).name
            where = f"{path} (image id {im['id']}, {im['file_name']})"
            record = AnnotatedImage(str(image) if image.is_file() else "", where,
                                    declared_size=(int(im.get("width", 0)), int(im.get("height", 0))))
            if not record.image:
                record.problem = f"image {im['file_name']!r} not found in {folder}"
            records[int(im["id"])] = record
        orphans: list[AnnotatedImage] = []
        for k, ann in enumerate(data["annotations"]):
            record = records.get(int(ann["image_id"]))
            if record is None:
                orphans.append(AnnotatedImage("", f"{path} (annotation {ann.get('id', k)})",
                                              problem=f"annotation without image: image id {ann['image_id']} "
                                                      "is not in 'images'"))
                continue
            x, y, w, h = (float(v) for v in ann["bbox"])
            name = names.get(int(ann["category_id"]), f"category id {ann['category_id']}")
            record.objects.append((name, (x, y, x + w, y + h), bool(ann.get("iscrowd", 0))))
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(f"{path}: malformed COCO record ({type(exc).__name__}: {exc})", hint=_HINT) from None
    if class_names is None:
        class_names = [name for _, name in cats]
    boxed = build_boxed_images(list(records.values()) + orphans, origin=str(path), class_names=class_names,
                               skip_invalid=skip_invalid, tolerance=tolerance, max_image_pixels=max_image_pixels)
    boxed.info["category_ids"] = [cid for cid, _ in cats] if [n for _, n in cats] == list(class_names) \
        else list(range(1, len(class_names) + 1))
    return boxed


def load_coco(spec: str | Path, **options) -> dict[str, BoxedImages]:
    """A COCO JSON file (split ``train``) or a folder of ``*train*/*val*/*test*.json`` files."""
    spec = Path(spec)
    if spec.is_file():
        return {"train": read_coco(spec, **options)}
    files = coco_files(spec)
    if not files:
        raise DataError(f"{spec}: no COCO JSON files", hint=_HINT)
    return {split: read_coco(f, **options) for split, f in files.items()}


def to_coco_dict(boxed: BoxedImages, category_ids: list[int] | None = None) -> dict:
    """The COCO instances dict of ``boxed`` (image ids from 1, ``file_name`` the base name)."""
    cat_ids = category_ids or boxed.info.get("category_ids") or list(range(1, boxed.num_classes + 1))
    images, anns = [], []
    assert boxed.difficult is not None
    for i, (path, boxes, labels, hard, (w, h)) in enumerate(
            zip(boxed.paths, boxed.boxes, boxed.labels, boxed.difficult, boxed.image_sizes), start=1):
        images.append({"id": i, "file_name": Path(str(path)).name, "width": int(w), "height": int(h)})
        for box, label, crowd in zip(boxes.astype(np.float64), labels, hard):
            bw, bh = float(box[2] - box[0]), float(box[3] - box[1])
            anns.append({"id": len(anns) + 1, "image_id": i, "category_id": int(cat_ids[int(label)]),
                         "bbox": [float(box[0]), float(box[1]), bw, bh], "area": bw * bh, "iscrowd": int(crowd)})
    return {"images": images, "annotations": anns,
            "categories": [{"id": int(c), "name": n, "supercategory": ""} for c, n in zip(cat_ids, boxed.class_names)]}


def write_coco(boxed: BoxedImages, path: str | Path) -> Path:
    """Write ``boxed`` as a COCO instances JSON file; returns its path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(to_coco_dict(boxed)), encoding="utf-8")
    return path


__all__ = ["coco_files", "is_coco_json", "load_coco", "read_coco", "to_coco_dict", "write_coco"]
