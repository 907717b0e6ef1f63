"""Instance segmentation data: COCO instances (polygons or RLE) with one mask per object.

:func:`read_instances` reads a COCO instances file (or the same dict in memory, as
:mod:`foveal.instance.label_maps` makes from instance-index PNG folders and the ISBI membranes)
into :class:`InstanceImages`: the box collection every detection tool reads
(:class:`~foveal.data.boxes.BoxedImages`: image files, boxes, classes, crowd flags) plus each
object's mask as COCO's compressed RLE. Masks are decoded with pycocotools' mask API (polygons,
uncompressed and compressed RLE); images are found as the COCO box reader finds them
(:mod:`foveal.data.boxes.coco`), and the image files and boxes are checked by the box readers'
:func:`~foveal.data.boxes.source.build_boxed_images`.

Per annotation:

* a box is derived from the mask (its tight box) when the annotation has none, or an empty one
  (counted in ``info["derived_boxes"]``);
* crowd regions (``iscrowd: 1``) are kept as ignore regions: never a training target, and
  detections on them are neither true nor false positives in the evaluation (COCO's rule);
  counted in ``info["crowd"]``;
* bad input, each a :class:`~foveal.errors.DataError` naming the file and the annotation id: no
  segmentation, a polygon with fewer than three points, an RLE whose size disagrees with its
  image, a mask with no pixel, an image file whose size differs from its record. With
  ``skip_invalid`` the image holding such an annotation is left out instead (a half-annotated
  image would teach its unlabelled objects as background); ``info["skipped"]`` lists them and
  ``info["invalid_annotations"]`` counts the bad annotations.

Example:
    >>> data = read_instances("shapes/annotations/instances_train.json")  # doctest: +SKIP
    >>> len(data), data.class_names, data.masks(0).shape  # doctest: +SKIP
    (200, ['circle', 'square', 'triangle'], (128, 128, 4))
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from foveal.data.boxes.source import AnnotatedImage, BoxedImages, build_boxed_images
from foveal.data.boxes.splits import complete_splits
from foveal.errors import DataError

log = logging.getLogger("foveal")

_HINT = "fix or remove the annotation, or pass --skip-invalid to leave its image out"
_FORMAT_HINT = ("expected a COCO instances JSON: 'images' (id, file_name, width, height), 'annotations' (id, "
                "image_id, category_id, segmentation: polygons or RLE, iscrowd) and 'categories' (id, name)")


@dataclass(frozen=True)
class InstanceImages(BoxedImages):
    """:class:`~foveal.data.boxes.BoxedImages` with a mask per box.

    Attributes:
        segmentations: per image, one compressed COCO RLE (``{"size": [h, w], "counts": str}``)
            per box, in the boxes' order (crowd regions included, flagged in ``difficult``).
        annotation_ids: per image, the COCO annotation id of each box (for messages).
    """

    segmentations: list[list[dict[str, Any]]] = field(default_factory=list)
    annotation_ids: list[list[int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__post_init__()
        if len(self.segmentations) != len(self.paths) or any(
                len(s) != len(b) for s, b in zip(self.segmentations, self.boxes)):
            raise ValueError(f"{self.origin}: one mask per box is needed")

    def subset(self, indices: np.ndarray, origin: str | None = None) -> "InstanceImages":
        idx = [int(i) for i in np.asarray(indices, dtype=np.int64)]
        assert self.difficult is not None
        ids = self.annotation_ids or [list(range(len(b))) for b in self.boxes]
        return replace(self, paths=self.paths[idx], boxes=[self.boxes[i] for i in idx],
                       labels=[self.labels[i] for i in idx], image_sizes=self.image_sizes[idx],
                       difficult=[self.difficult[i] for i in idx], origin=origin or self.origin,
                       segmentations=[self.segmentations[i] for i in idx], annotation_ids=[ids[i] for i in idx])

    @property
    def num_instances(self) -> int:
        assert self.difficult is not None
        return int(sum((~d).sum() for d in self.difficult))

    def masks(self, index: int, *, crowd: bool = False) -> np.ndarray:
        """uint8 ``[H, W, K]`` masks of image ``index`` (0/1), crowd regions left out unless ``crowd``."""
        from foveal.instance.masks import decode_rle

        w, h = (int(v) for v in self.image_sizes[index])
        assert self.difficult is not None
        keep = [k for k in range(len(self.boxes[index])) if crowd or not self.difficult[index][k]]
        out = np.zeros((h, w, len(keep)), np.uint8)
        for j, k in enumerate(keep):
            out[..., j] = decode_rle(self.segmentations[index][k])
        return out

    def coco_dict(self) -> dict[str, Any]:
        """The ground truth as a COCO instances dict (image ids 1..N in order; RLE masks; crowd
        regions with ``iscrowd: 1``), what box and mask AP are scored against."""
        from pycocotools import mask as mask_utils

        cat_ids = self.info.get("category_ids") or list(range(1, self.num_classes + 1))
        images, anns = [], []
        assert self.difficult is not None
        for i, (path, boxes, labels, crowd, segs, (w, h)) in enumerate(zip(
                self.paths, self.boxes, self.labels, self.difficult, self.segmentations, self.image_sizes), start=1):
            images.append({"id": i, "file_name": Path(str(path)).name, "width": int(w), "height": int(h)})
            for box, label, is_crowd, seg in zip(boxes.astype(np.float64), labels, crowd, segs):
                area = float(mask_utils.area({"size": seg["size"], "counts": seg["counts"].encode("ascii")}))
                anns.append({"id": len(anns) + 1, "image_id": i, "category_id": int(cat_ids[int(label)]),
                             "bbox": [float(box[0]), float(box[1]), float(box[2] - box[0]), float(box[3] - box[1])],
                             "area": area, "iscrowd": int(is_crowd), "segmentation": dict(seg)})
        return {"images": images, "annotations": anns,
                "categories": [{"id": int(c), "name": n} for c, n in zip(cat_ids, self.class_names)]}


class _Invalid(ValueError):
    """One annotation that cannot be used (the message names the file and annotation id)."""


def _load(source: str | Path | dict[str, Any]) -> tuple[dict[str, Any], str, Path | None]:
    """(COCO dict, its name for messages, its file or None)."""
    if isinstance(source, dict):
        data, name, path = source, str(source.get("info", {}).get("source", "instances (in memory)")), None
    else:
        path = Path(source)
        name = str(path)
        if not path.is_file():
            raise DataError(f"instance annotations not found: {path}", hint=_FORMAT_HINT)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise DataError(f"{path}: not a readable JSON file ({exc})", hint=_FORMAT_HINT) from None
    if not isinstance(data, dict) or not all(isinstance(data.get(k), list) for k in ("images", "annotations",
                                                                                      "categories")):
        raise DataError(f"{name}: no 'images', 'annotations' and 'categories' lists", hint=_FORMAT_HINT)
    if not data["categories"]:
        raise DataError(f"{name}: the 'categories' list is empty", hint=_FORMAT_HINT)
    return data, name, path


def checked_rle(ann: dict[str, Any], height: int, width: int, where: str) -> dict[str, Any]:
    """The compressed RLE of one annotation's segmentation on an ``height`` x ``width`` image.

    Raises:
        _Invalid: no segmentation, a polygon with fewer than three points, an RLE of another size,
            or a malformed segmentation.
    """
    from pycocotools import mask as mask_utils

    from foveal.evaluation.detection import annotation_rle

    seg = ann.get("segmentation")
    if seg is None or (isinstance(seg, list) and not seg):
        raise _Invalid(f"{where}: no segmentation (a mask is needed for every instance)")
    if isinstance(seg, list):
        for polygon in seg:
            if not isinstance(polygon, list) or len(polygon) % 2 or not all(
                    isinstance(v, (int, float)) for v in polygon):
                raise _Invalid(f"{where}: a polygon is not a flat list of x, y numbers")
            if len(polygon) < 6:
                raise _Invalid(f"{where}: a polygon with fewer than three points ({len(polygon) // 2})")
        rle = annotation_rle(seg, height, width)
    elif isinstance(seg, dict) and "counts" in seg and "size" in seg:
        size = [int(v) for v in seg["size"]] if isinstance(seg["size"], (list, tuple)) else seg["size"]
        if size != [height, width]:
            raise _Invalid(f"{where}: RLE size {seg['size']} disagrees with the image's height and width "
                           f"[{height}, {width}]")
        try:
            if isinstance(seg["counts"], list):
                rle = annotation_rle(seg, height, width)
            else:
                counts = seg["counts"].encode("ascii") if isinstance(seg["counts"], str) else seg["counts"]
                rle = {"size": size, "counts": counts}
                mask_utils.area(rle)  # parses the counts
        except (TypeError, ValueError, UnicodeEncodeError) as exc:
            raise _Invalid(f"{where}: unreadable RLE counts ({exc})") from None
    else:
        raise _Invalid(f"{where}: segmentation is neither polygons ([[x, y, ...], ...]) nor RLE ({{counts, size}})")
    counts = rle["counts"]
    return {"size": [int(v) for v in rle["size"]], "counts": counts.decode("ascii") if isinstance(counts, bytes)
            else counts}


def read_instances(source: str | Path | dict[str, Any], images: str | Path | None = None, *,
                   class_names: list[str] | None = None, skip_invalid: bool = False,
                   tolerance: float = 3.0) -> InstanceImages:
    """Read COCO instances (a file or dict) into :class:`InstanceImages` (see the module docstring).

    Args:
        source: a COCO instances JSON file (an absolute ``file_name`` is taken as it is), or its
            dict (``file_name`` then taken as given: absolute, or relative to ``images`` when that
            is given).
        images: the image folder (default for a file: found beside it as the COCO box reader does).
        class_names: the classes expected (e.g. the training split's); default: the categories by id.
        skip_invalid: leave out images with invalid annotations (counted) instead of raising.
        tolerance: pixels a box may stick out of its image and be clipped.
    """
    from pycocotools import mask as mask_utils

    from foveal.data.boxes.coco import _file_names, _image_folder
    from foveal.instance.masks import mask_box

    data, name, path = _load(source)
    if path is not None:
        folder: Path | None = _image_folder(path, images, _file_names(data))
    else:
        folder = Path(images) if images is not None else None
    try:
        cats = sorted((int(c["id"]), str(c["name"])) for c in data["categories"])
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(f"{name}: malformed category ({type(exc).__name__}: {exc})", hint=_FORMAT_HINT) from None
    names = dict(cats)
    by_image: dict[Any, list[dict[str, Any]]] = {}
    for k, ann in enumerate(data["annotations"]):
        if not isinstance(ann, dict) or "image_id" not in ann or "category_id" not in ann:
            raise DataError(f"{name}: annotation {k} (id {ann.get('id', '?') if isinstance(ann, dict) else '?'}) "
                            "has no image_id or category_id", hint=_FORMAT_HINT)
        by_image.setdefault(ann["image_id"], []).append(ann)
    known_images = {im.get("id") for im in data["images"] if isinstance(im, dict)}
    orphans = sorted({a for a in by_image if a not in known_images}, key=str)
    if orphans:
        raise DataError(f"{name}: annotation(s) of image id {orphans[0]}, which 'images' lacks", hint=_FORMAT_HINT)
    records: list[AnnotatedImage] = []
    extras: list[tuple[list[dict[str, Any]], list[int], tuple[int, int]]] = []
    skipped: list[tuple[str, str]] = []
    invalid = derived = crowd = 0
    for im in data["images"]:
        try:
            image_id, file_name = im["id"], str(im["file_name"])
            width, height = int(im["width"]), int(im["height"])
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"{name}: an image record lacks id, file_name, width or height ({exc})",
                            hint=_FORMAT_HINT) from None
        file = Path(file_name)
        image = file if file.is_absolute() else (folder / file.name) if path is not None and folder is not None else (
            folder / file if folder is not None else file)
        where_image = f"{name} (image id {image_id}, {file_name})"
        record = AnnotatedImage(str(image) if image.is_file() else "", where_image, declared_size=(width, height))
        if not record.image:
            record.problem = f"image {file_name!r} not found" + (f" in {folder}" if folder is not None else "")
        segs, ids, problems = [], [], []
        for ann in by_image.get(image_id, []):
            where = f"{name}: annotation id {ann.get('id', '?')} (image {file_name})"
            try:
                category = int(ann["category_id"])
                if category not in names:
                    raise _Invalid(f"{where}: category id {category} is not in 'categories'")
                rle = checked_rle(ann, height, width, where)
                area = int(mask_utils.area({"size": rle["size"], "counts": rle["counts"].encode("ascii")}))
                if area == 0:
                    raise _Invalid(f"{where}: an empty mask (no pixel inside the image)")
                bbox = ann.get("bbox")
                if not (isinstance(bbox, (list, tuple)) and len(bbox) == 4 and float(bbox[2]) > 0 and float(bbox[3]) > 0):
                    from foveal.instance.masks import decode_rle

                    box = mask_box(decode_rle(rle))
                    derived += 1
                else:
                    x, y, w, h = (float(v) for v in bbox)
                    box = np.array([x, y, x + w, y + h], np.float32)
            except _Invalid as exc:
                problems.append(str(exc))
                continue
            is_crowd = bool(ann.get("iscrowd", 0))
            crowd += is_crowd
            record.objects.append((names[category], tuple(float(v) for v in box), is_crowd))  # type: ignore[arg-type]
            segs.append(rle)
            ids.append(int(ann.get("id", len(ids) + 1)))
        if problems:
            invalid += len(problems)
            if not skip_invalid:
                raise DataError(problems[0], hint=_HINT)
            for problem in problems:
                log.warning("skipping %s", problem)
            skipped.append((where_image, "; ".join(problems)))
            continue
        records.append(record)
        extras.append((segs, ids, (width, height)))
    if class_names is None:
        class_names = [n for _, n in cats]
    boxed = build_boxed_images(records, origin=name, class_names=class_names, skip_invalid=skip_invalid,
                               tolerance=tolerance)
    # build_boxed_images keeps records in order, leaving out the ones it skipped
    by_path = {r.image: extra for r, extra in zip(records, extras) if r.image}
    kept_segs, kept_ids, keep = [], [], []
    for i, (p, size) in enumerate(zip(boxed.paths, boxed.image_sizes)):
        segs, ids, declared = by_path[str(p)]
        if segs and tuple(int(v) for v in size) != declared:
            problem = (f"{name}: image {p} is {size[0]}x{size[1]} but its record says {declared[0]}x{declared[1]}, "
                       "the size its masks are drawn at")
            if not skip_invalid:
                raise DataError(problem, hint="fix the image record's width and height, or pass --skip-invalid")
            skipped.append((str(p), problem))
            continue
        keep.append(i)
        kept_segs.append(segs)
        kept_ids.append(ids)
    if not keep:
        raise DataError(f"{name}: no usable annotated images ({len(skipped)} skipped)")
    boxed = boxed.subset(np.asarray(keep)) if len(keep) != len(boxed) else boxed
    info = dict(boxed.info)
    info["skipped"] = list(info.get("skipped", [])) + skipped
    if not info["skipped"]:
        del info["skipped"]
    info.update(invalid_annotations=invalid, derived_boxes=derived, crowd=crowd,
                category_ids=[cid for cid, _ in cats] if [n for _, n in cats] == list(class_names)
                else list(range(1, len(class_names) + 1)))
    if derived:
        log.info("%s: %d box(es) derived from their masks (the annotations had none)", name, derived)
    return InstanceImages(paths=boxed.paths, boxes=boxed.boxes, labels=boxed.labels, class_names=boxed.class_names,
                          image_sizes=boxed.image_sizes, difficult=boxed.difficult, origin=name, info=info,
                          segmentations=kept_segs, annotation_ids=kept_ids)


def load_instance_splits(data: str | Path | dict[str, Any], *, test_data: str | Path | None = None,
                         images: str | Path | None = None, val_split: float = 0.1, test_split: float = 0.2,
                         seed: int = 42, skip_invalid: bool = False,
                         label_map_classes: list[str] | None = None) -> dict[str, InstanceImages]:
    """Train / val / test parts: a COCO file (all train), a folder of ``*train*``/``*val*``/``*test*``
    JSON files, an image + instance-label-map folder (``images/`` + ``instances/``, or VOC's
    ``JPEGImages/`` + ``SegmentationObject/``: converted in memory as ``foveal datasets instances
    to-coco`` does, see :func:`~foveal.instance.label_maps.label_map_layout`), or a dict; a separate
    ``test_data`` (a file or such a folder); else seeded fractions of train. ``label_map_classes``:
    the classes a label-map ``data`` folder is read with (a model's, to evaluate on a folder holding
    some of them), else the classes it holds."""
    from foveal.data.boxes.coco import coco_files

    common = dict(images=images, skip_invalid=skip_invalid)
    if isinstance(data, dict) or Path(data).is_file():
        parts = {"train": read_instances(data, **common)}  # type: ignore[arg-type]
    elif Path(data).is_dir():
        files = coco_files(data)
        layout = _label_map_folder(data) if "train" not in files else None
        if layout is not None:
            parts = {"train": _read_label_maps(data, layout, images=images, class_names=label_map_classes,
                                               skip_invalid=skip_invalid)}
        elif "train" not in files:
            maps = next((m for m in ("instances", "SegmentationObject") if (Path(data) / m).is_dir()), None)
            raise DataError(f"{data}: no COCO instances file with 'train' in its name", hint=_FORMAT_HINT if not maps
                            else f"a folder of label maps ({maps}/) converts with: foveal datasets instances to-coco "
                            f"{data} --output {Path(data) / 'annotations' / 'instances_train.json'} --instances-folder "
                            f"{maps} (--class-encoding cityscapes or voc, --images-folder, see its --help)")
        else:
            parts = {"train": read_instances(files["train"], **common)}  # type: ignore[arg-type]
        for split in ("val", "test"):
            if split in files and "label_maps" not in parts["train"].info:
                parts[split] = read_instances(files[split], class_names=parts["train"].class_names,
                                              **common)  # type: ignore[arg-type]
    else:
        raise DataError(f"instance data not found: {data}", hint=_FORMAT_HINT)
    names = parts["train"].class_names
    if test_data:
        layout = _label_map_folder(test_data) if Path(test_data).is_dir() else None
        parts["test"] = (_read_label_maps(test_data, layout, class_names=names, skip_invalid=skip_invalid)
                         if layout is not None
                         else read_instances(test_data, class_names=names, **common))  # type: ignore[arg-type]
    complete_splits(parts, val_split=val_split, test_split=test_split, seed=seed)
    if parts["train"].num_instances == 0:
        raise DataError(f"{parts['train'].origin}: the training images have no instances")
    return parts  # type: ignore[return-value]


def _label_map_folder(folder: str | Path) -> dict[str, Any] | None:
    from foveal.instance.label_maps import label_map_layout

    return label_map_layout(folder)


def _read_label_maps(folder: str | Path, layout: dict[str, Any], *, images: str | Path | None = None,
                     class_names: list[str] | None = None, skip_invalid: bool = False) -> InstanceImages:
    """An image + instance-label-map folder (of the ``layout`` :func:`~foveal.instance.label_maps.label_map_layout`
    found) read through :func:`~foveal.instance.label_maps.label_maps_to_coco`, as
    ``foveal datasets instances to-coco`` would convert it; ``info["label_maps"]`` records the
    folders, the class encoding and the conversion's counts."""
    from foveal.instance.label_maps import label_maps_to_coco

    if images is not None:
        raise DataError(f"--images {images}: a label-map folder ({folder}) holds its images in "
                        f"{layout['images']}/", hint="leave --images out")
    coco = label_maps_to_coco(folder, skip_invalid=skip_invalid, **layout)
    read = {"root": str(folder), "images_folder": layout["images"], "instances_folder": layout["instances"],
            "class_maps": layout.get("class_maps"),
            **{k: v for k, v in coco["info"].items() if k not in ("origin", "min_area")}}
    coco["info"] = {"source": f"{folder} (label maps in {layout['instances']}/)"}
    data = read_instances(coco, Path(folder) / layout["images"], class_names=class_names, skip_invalid=skip_invalid)
    info = {**data.info, "label_maps": read}
    if read.get("skipped"):  # pairs the conversion left out (unpaired, unreadable, another size)
        info["skipped"] = [(line.split(": ")[0], line) for line in read["skipped"]] + list(info.get("skipped", []))
    return replace(data, info=info)


def skipped_summary(data: InstanceImages) -> str | None:
    """One line counting what ``skip_invalid`` left out, or None."""
    skipped = data.info.get("skipped") or []
    if not skipped:
        return None
    return (f"{data.origin}: skipped {len(skipped)} image(s), {data.info.get('invalid_annotations', 0)} invalid "
            f"annotation(s)")


__all__ = ["InstanceImages", "checked_rle", "load_instance_splits", "read_instances", "skipped_summary"]
