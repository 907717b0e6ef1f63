"""Instance-index PNG folders <-> COCO instances with RLE masks.

An *instance label map* is a PNG whose pixel value says which object the pixel belongs to,
0 being background. A folder of them reads as::

    ROOT/images/NAME.ext        the images (any format foveal reads)
    ROOT/instances/NAME.png     one label map per image, matched by file stem, same size

How a value names its class (``class_encoding``):

``single``      every non-zero value is one instance of the one class (``class_names``: one
                name, default ``object``; COCO category id 1). Instance ids need not be
                consecutive; an id whose pixels fall apart stays one instance.
``cityscapes``  Cityscapes' ``instanceIds`` rule: a value ``v >= 1000`` is instance
                ``v % 1000`` of class ``v // 1000`` (the COCO category id); values 1..999 are
                class regions without instance ids. Of those, the regions of an instance class
                (one of the given ``class_names``, or without names a class that has instances
                somewhere in the folder: Cityscapes' groups, e.g. a crowd of people) become
                crowd regions (``iscrowd: 1``, one per class and image), which training never
                uses as a target and COCO scoring ignores (detections on them are neither true
                nor false positives, as in pycocotools); the rest ("stuff": road, sky) is
                counted (``non_instance_pixels``), not converted.
``voc``         Pascal VOC's ``SegmentationObject`` PNGs: as ``single``, but value 255 is VOC's
                void (the outline drawn round every object, and unlabelled regions): counted
                (``non_instance_pixels``), not an instance. With ``class_maps`` (VOC's
                ``SegmentationClass`` folder) an object's class is the class index most of its
                pixels have there (``class_names``: names of indices 1, 2, ...).

Only integer PNG modes are label maps: ``L`` (8 bit), ``I;16`` (16 bit), ``I`` (32 bit) and
``P`` (palette indices are the ids; the palette only colours the file in viewers). Colour,
alpha, bilevel and float files are refused in one line naming the file, as is a label map
whose size differs from its image's.

:func:`label_maps_to_coco` turns a folder into a COCO instances dict whose masks are
compressed RLE (encoded by pycocotools' mask API; boxes and areas from the same API), the
form the Mask R-CNN reader and :func:`foveal.evaluation.detection.coco_evaluate` take;
:func:`coco_to_label_maps` writes the inverse (polygons, RLE; crowd regions are left out and
counted, except with ``cityscapes``, which writes them back as their class id; where masks
overlap the later annotation wins and the overlap is counted).

Example:
    >>> coco = label_maps_to_coco("cells/")                                   # doctest: +SKIP
    >>> coco["annotations"][0]["segmentation"]["size"]                         # doctest: +SKIP
    [512, 512]
    >>> coco_to_label_maps(coco, "again/", images="cells/images")             # doctest: +SKIP
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from foveal.errors import DataError, OutputError
from foveal.evaluation.detection import mask_to_rle
from foveal.utils_io import atomic_path, atomic_write_text, ensure_output_dir

CLASS_ENCODINGS = ("single", "cityscapes", "voc")
#: PIL modes whose pixel values are integers a label map can hold
INTEGER_MODES = ("L", "P", "I", "I;16", "I;16B", "I;16L", "I;16N")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff")
CITYSCAPES_FACTOR = 1000
VOC_VOID = 255
_HINT = ("expected ROOT/images/NAME.ext and ROOT/instances/NAME.png (pixel value = instance id, 0 = "
         "background), the same size")


def read_label_map(path: str | Path) -> np.ndarray:
    """A label-map PNG's values as an HxW int64 array; refuses non-integer modes, naming the file.

    Example:
        >>> read_label_map("cells/instances/0.png").max()                    # doctest: +SKIP
        136
    """
    from PIL import Image

    try:
        with Image.open(path) as img:
            if img.mode not in INTEGER_MODES:
                raise DataError(f"{path}: mode {img.mode} is not an instance label map",
                                hint="write label maps as gray (L), 16-bit (I;16), 32-bit (I) or palette (P) "
                                "PNGs whose pixel value is the instance id")
            return np.asarray(img).astype(np.int64)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read the label map ({exc})") from None


def write_label_map(path: str | Path, label_map: np.ndarray) -> Path:
    """Write an HxW integer label map as a gray PNG, atomically: 8-bit when every value fits,
    else 16-bit; values above 65535 or below 0 are refused."""
    from PIL import Image

    values = np.asarray(label_map)
    if values.ndim != 2 or not np.issubdtype(values.dtype, np.integer):
        raise DataError(f"{path}: a label map is an HxW integer array, not {values.dtype} {values.shape}")
    top = int(values.max(initial=0))
    if values.size and (int(values.min()) < 0 or top > 65535):
        raise DataError(f"{path}: label values {int(values.min())}..{top} do not fit in a 16-bit PNG")
    img = Image.fromarray(values.astype(np.uint8 if top < 256 else np.uint16))
    with atomic_path(path) as tmp:
        img.save(tmp, format="PNG")
    return Path(path)


def _rle_annotation(rle: dict, iscrowd: bool = False, **fields: Any) -> dict[str, Any]:
    from pycocotools import mask as mask_utils

    coded = {"size": rle["size"], "counts": rle["counts"].encode("ascii")}
    box = [float(v) for v in mask_utils.toBbox(coded)]
    return {**fields, "segmentation": rle, "area": float(mask_utils.area(coded)), "bbox": box,
            "iscrowd": int(iscrowd)}


def is_crowd_value(value: int, class_encoding: str) -> bool:
    """True for a Cityscapes class-only value (1..999): a region without instance ids."""
    return class_encoding == "cityscapes" and 0 < value < CITYSCAPES_FACTOR


def split_instances(label_map: np.ndarray, class_encoding: str = "single", *, min_area: int = 0,
                    crowd: bool = False) -> tuple[list[tuple[int, int, np.ndarray]], dict[str, int]]:
    """The instances of one label map: ``(value, class id, HxW bool mask)`` in value order.

    Args:
        label_map: HxW integer ids (0 = background).
        class_encoding: ``single`` (class 1), ``cityscapes`` or ``voc`` (see the module docstring).
        min_area: instances with fewer pixels are dropped (counted in ``small``).
        crowd: also return Cityscapes' class-only regions (values 1..999, class id = value;
            :func:`is_crowd_value` tells them apart), whatever their area.

    Returns:
        The instances and counts: ``small`` (dropped by ``min_area``), ``non_instance_pixels``
        (Cityscapes values 1..999 and VOC's void not returned).
    """
    if class_encoding not in CLASS_ENCODINGS:
        raise DataError(f"unknown class encoding {class_encoding!r}", hint=f"use one of {', '.join(CLASS_ENCODINGS)}")
    values, counts = np.unique(label_map, return_counts=True)
    out, small, loose = [], 0, 0
    for value, count in zip(values.tolist(), counts.tolist()):
        if value == 0:
            continue
        if class_encoding == "voc" and value == VOC_VOID:
            loose += count
            continue
        if is_crowd_value(value, class_encoding):
            if crowd:
                out.append((int(value), int(value), label_map == value))
            else:
                loose += count
            continue
        if count < min_area:
            small += 1
            continue
        cls = value // CITYSCAPES_FACTOR if class_encoding == "cityscapes" else 1
        out.append((int(value), int(cls), label_map == value))
    return out, {"small": small, "non_instance_pixels": loose}


def label_map_annotations(label_map: np.ndarray, *, image_id: int, first_id: int = 1,
                          class_encoding: str = "single", min_area: int = 0,
                          crowd: bool = False) -> list[dict[str, Any]]:
    """COCO annotations (compressed RLE, box, area) of one label map's instances, with ids from
    ``first_id`` on; with ``crowd``, Cityscapes' class-only regions too, as ``iscrowd: 1``.

    Example:
        >>> labels = np.zeros((4, 5), np.int64); labels[1:3, 1:4] = 7
        >>> [a["bbox"] for a in label_map_annotations(labels, image_id=1)]
        [[1.0, 1.0, 3.0, 2.0]]
    """
    found, _ = split_instances(label_map, class_encoding, min_area=min_area, crowd=crowd)
    return [_rle_annotation(mask_to_rle(mask), is_crowd_value(value, class_encoding), id=first_id + i,
                            image_id=int(image_id), category_id=cls)
            for i, (value, cls, mask) in enumerate(found)]


def find_label_map_pairs(root: str | Path, *, images: str = "images", instances: str = "instances",
                         skip_invalid: bool = False, maps_choose: bool = False) -> tuple[list[tuple[Path, Path]], list[str]]:
    """``(image, label map)`` paths under ``root`` matched by stem (natural order), and the
    unpaired files (an error unless ``skip_invalid``). ``maps_choose``: the label maps pick the
    images (Pascal VOC segments 2,913 of its 17,125 JPEGImages), so only a map without an image
    is unpaired."""
    from foveal.data.files import natural_key

    root = Path(root)
    image_dir, label_dir = root / images, root / instances
    for folder in (image_dir, label_dir):
        if not folder.is_dir():
            raise DataError(f"{root}: no {folder.name}/ folder", hint=_HINT)
    found = {p.stem: p for p in sorted(image_dir.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES}
    maps = {p.stem: p for p in sorted(label_dir.iterdir()) if p.suffix.lower() == ".png"}
    lonely = sorted(set(maps) - set(found) if maps_choose else set(found) ^ set(maps))
    problems = [f"{found.get(s) or maps[s]} has no {'label map' if s in found else 'image'}" for s in lonely]
    if problems and not skip_invalid:
        raise DataError(f"{len(problems)} unpaired file(s): " + "; ".join(problems[:5]),
                        hint="every image needs instances/<same stem>.png, or pass --skip-invalid")
    stems = sorted(set(found) & set(maps), key=natural_key)
    if not stems:
        raise DataError(f"{root}: no image/label-map pairs", hint=_HINT)
    return [(found[s], maps[s]) for s in stems], problems


def label_maps_to_coco(
    root: str | Path,
    *,
    class_encoding: str = "single",
    class_names: Sequence[str] | dict[int, str] | None = None,
    min_area: int = 0,
    images: str = "images",
    instances: str = "instances",
    skip_invalid: bool = False,
    progress: Callable[[str], None] | None = None,
    class_maps: str | None = None,
) -> dict[str, Any]:
    """Read an image + instance-label-map folder as a COCO instances dict with RLE masks.

    Args:
        root: the folder (``images/`` + ``instances/``, see the module docstring).
        class_encoding: ``single``, ``cityscapes`` or ``voc``.
        class_names: ``single``, ``voc``: one name (default ``["object"]``); ``cityscapes``: a
            ``{class id: name}`` dict, or a list whose position + 1 is the class id (default:
            ``class_<id>`` for every class found).
        min_area: drop instances with fewer pixels (counted in ``info["small"]``).
        images, instances: the two folder names.
        skip_invalid: leave out (and list in ``info["skipped"]``) pairs that cannot be read,
            differ in size or have no partner, instead of raising.
        progress: called with a line every 100 images.
        class_maps: with ``voc``, the folder of class-index PNGs (VOC's ``SegmentationClass``).

    Returns:
        ``{"images", "annotations", "categories", "info"}``; ``file_name`` is the image's name
        inside ``images/``; ``info`` holds the counts (images, instances, crowd, small,
        non_instance_pixels, skipped).

    Raises:
        DataError: naming the file: no partner, a non-integer PNG mode, a size that differs
            from the image's, an unknown class id (with ``cityscapes`` and given names).
    """
    from foveal.data.files import image_size

    pairs, skipped = find_label_map_pairs(root, images=images, instances=instances, skip_invalid=skip_invalid,
                                          maps_choose=class_encoding == "voc")
    if class_maps is not None and class_encoding != "voc":
        raise DataError(f"class maps ({class_maps}/) go with class encoding 'voc', not {class_encoding!r}")
    names = _class_table(class_encoding, class_names, class_maps is not None)
    coco_images, annotations, seen, small, loose = [], [], set(), 0, 0
    pending: list[tuple[dict[str, Any], int]] = []  # Cityscapes class-only regions: (annotation, pixels)
    for index, (image, label_path) in enumerate(pairs):
        try:
            height, width = image_size(image)
            labels = read_label_map(label_path)
            if labels.shape != (height, width):
                raise DataError(f"{label_path}: size {labels.shape[1]}x{labels.shape[0]} differs from its image "
                                f"{image} ({width}x{height})")
            found, counts = split_instances(labels, class_encoding, min_area=min_area, crowd=True)
            if class_maps is not None:
                found = _voc_classes(Path(root) / class_maps / label_path.name, labels.shape, found)
            unknown = sorted({c for v, c, _ in found if not is_crowd_value(v, class_encoding)} - set(names)
                             ) if class_names is not None else []
            if unknown:
                value = f" (value {unknown[0] * CITYSCAPES_FACTOR}+)" if class_encoding == "cityscapes" else ""
                raise DataError(f"{label_path}: class id {unknown[0]}{value} is not among the given classes "
                                f"{sorted(names)}")
        except DataError as exc:
            if not skip_invalid:
                raise
            skipped.append(exc.message)
            continue
        image_id = len(coco_images) + 1
        coco_images.append({"id": image_id, "file_name": image.name, "width": width, "height": height})
        for value, cls, mask in found:
            if is_crowd_value(value, class_encoding):  # kept below if cls is an instance class
                pending.append((_rle_annotation(mask_to_rle(mask), True, id=0, image_id=image_id, category_id=cls),
                                int(mask.sum())))
                continue
            annotations.append(_rle_annotation(mask_to_rle(mask), id=0, image_id=image_id, category_id=cls))
            seen.add(cls)
        small += counts["small"]
        loose += counts["non_instance_pixels"]
        if progress and (index + 1) % 100 == 0:
            progress(f"read {index + 1}/{len(pairs)} label maps")
    if not coco_images:
        raise DataError(f"{root}: none of its {len(pairs)} label maps could be read", hint=_HINT)
    by_name = class_names is not None or class_encoding == "single" or (class_encoding == "voc" and not class_maps)
    ids = sorted(names) if by_name else sorted(seen)
    crowd = [ann for ann, _ in pending if ann["category_id"] in ids]
    loose += sum(pixels for ann, pixels in pending if ann["category_id"] not in ids)
    annotations = sorted(annotations + crowd, key=lambda a: a["image_id"])  # stable: value order per image
    for k, ann in enumerate(annotations, start=1):
        ann["id"] = k
    categories = [{"id": c, "name": names.get(c, f"class_{c}"), "supercategory": ""} for c in ids]
    info = {"origin": str(root), "class_encoding": class_encoding, "images": len(coco_images),
            "instances": len(annotations) - len(crowd), "crowd": len(crowd), "small": small, "min_area": min_area,
            "non_instance_pixels": loose, "skipped": skipped}
    return {"info": info, "images": coco_images, "annotations": annotations, "categories": categories}


#: folder layouts a label-map folder is recognised by: (images, instances, class maps or None, encoding)
LABEL_MAP_LAYOUTS = (("images", "instances", None, "single"),
                     ("JPEGImages", "SegmentationObject", "SegmentationClass", "voc"))


def label_map_layout(root: str | Path) -> dict[str, Any] | None:
    """The :func:`label_maps_to_coco` options a folder's layout implies, or None.

    ``images/`` + ``instances/``: foveal's layout, class encoding ``single`` (one class,
    ``object``). ``JPEGImages/`` + ``SegmentationObject/``: Pascal VOC, class encoding ``voc``
    (255, the void outlines, is no instance), each object's class from ``SegmentationClass/``
    when the folder has it. Cityscapes' values (class id * 1000 + instance) cannot be told from
    the layout: such folders are converted with ``foveal datasets instances to-coco``.

    Example:
        >>> label_map_layout("VOC2012/")                                     # doctest: +SKIP
        {'images': 'JPEGImages', 'instances': 'SegmentationObject', 'class_encoding': 'voc', 'class_maps': ...}
    """
    root = Path(root)
    for images, instances, class_maps, encoding in LABEL_MAP_LAYOUTS:
        if (root / images).is_dir() and (root / instances).is_dir():
            found: dict[str, Any] = {"images": images, "instances": instances, "class_encoding": encoding}
            if class_maps is not None and (root / class_maps).is_dir():
                found["class_maps"] = class_maps
            return found
    return None


def _voc_classes(path: Path, shape: tuple[int, ...], found: list[tuple[int, int, np.ndarray]]
                 ) -> list[tuple[int, int, np.ndarray]]:
    """``found`` with each object's class: the class index most of its pixels have in ``path``."""
    if not path.is_file():
        raise DataError(f"{path}: no class map for {path.name}", hint="every label map needs a class map of that name")
    classes = read_label_map(path)
    if classes.shape != shape:
        raise DataError(f"{path}: size {classes.shape[1]}x{classes.shape[0]} differs from its label map's "
                        f"({shape[1]}x{shape[0]})")
    out = []
    for value, _, mask in found:
        under = classes[mask]
        under = under[(under != 0) & (under != VOC_VOID)]
        if not under.size:
            raise DataError(f"{path}: object {value} has no class pixels (only background or void)")
        out.append((value, int(np.bincount(under).argmax()), mask))
    return out


def _class_table(class_encoding: str, class_names: Sequence[str] | dict[int, str] | None,
                 class_maps: bool = False) -> dict[int, str]:
    if class_encoding not in CLASS_ENCODINGS:
        raise DataError(f"unknown class encoding {class_encoding!r}", hint=f"use one of {', '.join(CLASS_ENCODINGS)}")
    if class_encoding == "single" or class_encoding == "voc" and not class_maps:
        names = list(class_names.values()) if isinstance(class_names, dict) else list(class_names or ["object"])
        if len(names) != 1:
            raise DataError(f"class encoding {class_encoding!r} has one class, not {len(names)} ({names[:5]})",
                            hint="give one class name, or use --class-encoding cityscapes")
        return {1: str(names[0])}
    if isinstance(class_names, dict):
        return {int(k): str(v) for k, v in class_names.items()}
    return {i + 1: str(n) for i, n in enumerate(class_names or [])}


def _annotation_mask(ann: dict, height: int, width: int, where: str) -> np.ndarray:
    from pycocotools import mask as mask_utils

    seg = ann.get("segmentation")
    if isinstance(seg, list):
        if not seg or any(len(p) < 6 for p in seg):
            raise DataError(f"{where}: annotation {ann.get('id')}: a polygon needs at least three points")
        rle = mask_utils.merge(mask_utils.frPyObjects(seg, height, width))
    elif isinstance(seg, dict) and "counts" in seg and "size" in seg:
        if [int(v) for v in seg["size"]] != [height, width]:
            raise DataError(f"{where}: annotation {ann.get('id')}: RLE size {seg['size']} differs from its image's "
                            f"{[height, width]}")
        rle = mask_utils.frPyObjects(seg, height, width) if isinstance(seg["counts"], list) else \
            {"size": seg["size"], "counts": seg["counts"].encode("ascii") if isinstance(seg["counts"], str)
             else seg["counts"]}
    else:
        raise DataError(f"{where}: annotation {ann.get('id')}: no polygon or RLE segmentation")
    return mask_utils.decode(rle).astype(bool)


def coco_to_label_maps(
    coco: dict[str, Any] | str | Path,
    output: str | Path,
    *,
    images: str | Path | None = None,
    class_encoding: str = "single",
    skip_invalid: bool = False,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Write a COCO instances dict (or JSON file) as ``output/instances/<image stem>.png``.

    Args:
        coco: the instances (polygons, uncompressed or compressed RLE).
        output: folder to write (new or empty unless ``overwrite``).
        images: the image folder; when given, its images are copied to ``output/images/`` so
            the result is a complete folder for :func:`label_maps_to_coco`.
        class_encoding: ``single`` (ids 1..N per image; the file must use one category) or
            ``cityscapes`` (``category id * 1000 + k``, k from 0 per class and image; ids up to
            65 fit a 16-bit PNG).
        skip_invalid: skip annotations with empty or unreadable masks (counted) instead of raising.
        overwrite: allow a non-empty ``output``.

    Returns:
        A manifest: images, instances, crowd (left out; with ``cityscapes`` written as their
        category id where no instance is), overlap_pixels (where a later annotation painted
        over an earlier one), skipped.
    """
    import shutil

    where = str(coco) if isinstance(coco, (str, Path)) else "COCO instances"
    if isinstance(coco, (str, Path)):
        try:
            coco = json.loads(Path(coco).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise DataError(f"{where}: cannot read the COCO JSON ({exc})") from None
    if not isinstance(coco, dict) or not isinstance(coco.get("images"), list) or not isinstance(coco.get("annotations"), list):
        raise DataError(f"{where}: not a COCO instances file (no 'images' and 'annotations' lists)")
    if class_encoding not in CLASS_ENCODINGS:
        raise DataError(f"unknown class encoding {class_encoding!r}", hint=f"use one of {', '.join(CLASS_ENCODINGS)}")
    used = sorted({int(a["category_id"]) for a in coco["annotations"] if not a.get("iscrowd", 0)})
    if class_encoding == "single" and len(used) > 1:
        raise DataError(f"{where}: {len(used)} categories cannot be told apart in 'single' label maps",
                        hint="use --class-encoding cityscapes (value = category id * 1000 + instance)")
    if class_encoding == "cityscapes" and used and (used[0] < 1 or used[-1] > 65):
        raise DataError(f"{where}: category ids {used[0]}..{used[-1]}: cityscapes values (id * 1000 + k) need "
                        "ids 1..65 to fit a 16-bit PNG", hint="renumber the categories, or use 'single'")
    out = Path(output)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise OutputError(f"--output {out}: not empty", hint="choose a new folder, or pass --overwrite")
    ensure_output_dir(out / "instances")
    by_image: dict[int, list[dict]] = {}
    for ann in coco["annotations"]:
        by_image.setdefault(int(ann["image_id"]), []).append(ann)
    crowd = overlap = written = 0
    skipped: list[str] = []
    for im in coco["images"]:
        height, width = int(im["height"]), int(im["width"])
        labels = np.zeros((height, width), np.int64)
        per_class: dict[int, int] = {}
        crowd_regions: list[tuple[int, np.ndarray]] = []
        for ann in by_image.get(int(im["id"]), []):
            if ann.get("iscrowd", 0):
                crowd += 1
                if class_encoding == "cityscapes" and 1 <= int(ann["category_id"]) < CITYSCAPES_FACTOR:
                    crowd_regions.append((int(ann["category_id"]), _annotation_mask(ann, height, width, where)))
                continue
            try:
                mask = _annotation_mask(ann, height, width, where)
                if not mask.any():
                    raise DataError(f"{where}: annotation {ann.get('id')} of image {im['file_name']!r} has an "
                                    "empty mask", hint="remove it, or pass --skip-invalid")
            except DataError as exc:
                if not skip_invalid:
                    raise
                skipped.append(exc.message)
                continue
            cls = int(ann["category_id"])
            k = per_class.get(cls, 0)
            if class_encoding == "cityscapes" and k >= CITYSCAPES_FACTOR:
                raise DataError(f"{where}: image {im['file_name']!r} has over 1000 instances of category {cls}")
            per_class[cls] = k + 1
            overlap += int(np.count_nonzero(labels[mask]))
            labels[mask] = cls * CITYSCAPES_FACTOR + k if class_encoding == "cityscapes" else sum(per_class.values())
            written += 1
        for cls, mask in crowd_regions:  # Cityscapes' class-only values, under the instances
            labels[mask & (labels == 0)] = cls
        write_label_map(out / "instances" / (Path(str(im["file_name"])).stem + ".png"), labels)
        if images is not None:
            source = Path(images) / Path(str(im["file_name"])).name
            if not source.is_file():
                raise DataError(f"{where}: image {im['file_name']!r} not found in {images}")
            (out / "images").mkdir(exist_ok=True)
            shutil.copyfile(source, out / "images" / source.name)
    manifest = {"images": len(coco["images"]), "instances": written, "crowd": crowd, "overlap_pixels": overlap,
                "class_encoding": class_encoding, "skipped": skipped}
    atomic_write_text(out / "label-maps.json", json.dumps(manifest, indent=1))
    return manifest


def write_coco(coco: dict[str, Any], path: str | Path) -> Path:
    """Write a COCO dict as JSON, atomically."""
    return atomic_write_text(path, json.dumps(coco))


def select_classes(source: str | Path, classes: Sequence[str], *, images: str | Path | None = None,
                   drop_empty: bool = False) -> dict[str, Any]:
    """A COCO instances file cut down to some of its categories, e.g. ``person`` of COCO's 80.

    The categories keep their ids and names; the annotations of the others (crowd regions
    included) are dropped. Every image stays (an image without the classes is a negative
    example, and COCO scoring counts detections on it as false positives) unless
    ``drop_empty``, which keeps only the images with at least one non-crowd instance of the
    classes. ``file_name`` becomes the image's absolute path (the folder found as the readers
    find it, or ``images``), so the written file reads from anywhere
    (:func:`~foveal.instance.data.read_instances` takes an absolute ``file_name`` as it is).

    Args:
        source: a COCO instances JSON file.
        classes: category names to keep, in any order (the file's id order is kept).
        images: the file's image folder (default: found beside it).
        drop_empty: leave out the images without an instance of the classes.

    Returns:
        The COCO dict; ``info["selected"]`` counts images, instances and crowd regions kept.

    Raises:
        ConfigError: a name that is no category of the file (the categories are listed).

    Example:
        >>> coco = select_classes("coco/annotations/instances_train2017.json", ["person"])  # doctest: +SKIP
        >>> write_coco(coco, "person/instances_train2017.json")                          # doctest: +SKIP
    """
    from foveal.data.boxes.coco import _file_names, _image_folder
    from foveal.errors import ConfigError
    from foveal.instance.data import _load

    path = Path(source)
    coco, _, _ = _load(path)  # missing, unreadable or not a COCO instances file: a DataError naming it
    try:
        categories = {str(c["name"]): int(c["id"]) for c in coco["categories"]}
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(f"{path}: a category without a name or an integer id ({type(exc).__name__}: {exc})") from None
    records, annotations = list(coco["images"]), list(coco["annotations"])
    unknown = [name for name in classes if name not in categories]
    if unknown or not classes:
        listed = ", ".join(sorted(categories)[:100])
        from foveal.registry import did_you_mean

        close = [hint for name in unknown if (hint := did_you_mean(name, categories, n=1, quote=True))]
        raise ConfigError(f"--classes {' '.join(unknown) or '(none)'}: not a category of {path}; "
                          f"its {len(categories)} categories: {listed}", hint="; ".join(close) or None)
    ids = {categories[name] for name in classes}
    kept = [a for a in annotations if int(a.get("category_id", -1)) in ids]
    with_instances = {a["image_id"] for a in kept if not a.get("iscrowd", 0)}
    if drop_empty:
        records = [im for im in records if im.get("id") in with_instances]
        kept = [a for a in kept if a["image_id"] in {im.get("id") for im in records}]
    folder = _image_folder(path, images, _file_names(coco)).resolve()
    records = [{**im, "file_name": str(folder / Path(str(im["file_name"])).name)} for im in records]
    crowd = sum(bool(a.get("iscrowd", 0)) for a in kept)
    info = {**(coco.get("info") or {}), "selected": {
        "source": str(path), "classes": [n for n, i in sorted(categories.items(), key=lambda c: c[1]) if i in ids],
        "images": len(records), "images_with_instances": len(with_instances), "instances": len(kept) - crowd,
        "crowd": crowd}}
    return {**coco, "info": info, "images": records, "annotations": kept,
            "categories": [c for c in coco["categories"] if int(c["id"]) in ids]}


__all__ = ["CLASS_ENCODINGS", "coco_to_label_maps", "find_label_map_pairs", "is_crowd_value", "label_map_annotations",
           "label_map_layout", "label_maps_to_coco", "read_label_map", "select_classes", "split_instances", "write_coco",
           "write_label_map"]
