"""Composited detection/segmentation datasets: object cut-outs pasted onto background photos.

Planche & Andres, *Hands-On Computer Vision with TensorFlow 2*, chapter 7 (and Dwibedi et al.,
"Cut, Paste and Learn", ICCV 2017): when labelled photos are scarce, cut objects out of the
few images that have instance masks, paste them onto other photos at random scale, rotation
and position, and post-process the result (noise, blur, colour jitter) to narrow the gap to
real images. Every pasted object's box and mask are known exactly.

:func:`make_composites` takes the cut-outs from a COCO instances file (polygons or RLE; the
objects' pixels are read from its images) and writes a COCO dataset: ``OUTPUT/SPLIT/*.jpg`` and
``OUTPUT/annotations/instances_SPLIT.json`` with boxes, visible-area RLE masks and the source's
categories, which foveal's box readers (``foveal detect train --data``) and COCO mask readers
(``foveal segment train --data``) read. Later objects occlude earlier ones; an object left with
less than ``min_visible`` of its pasted area is dropped. Deterministic for a seed.

Example:
    >>> make_composites("coco/annotations/instances_train2017.json", "photos/", "synth",  # doctest: +SKIP
    ...                 count=200, size=(320, 320), seed=0)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from foveal.errors import DataError, require_all
from foveal.utils_io import printable_path, refuse_nonempty_output, staged_folder


@dataclass(frozen=True)
class CutOut:
    """One object: RGBA pixels (alpha = its mask) and its category id."""

    rgba: np.ndarray
    category_id: int
    origin: str


def load_cutouts(annotations: str | Path, images: str | Path | None = None, *, min_area: float = 400.0,
                 categories: Sequence[str] | None = None) -> tuple[list[CutOut], list[dict[str, Any]]]:
    """The non-crowd objects of a COCO instances file with at least ``min_area`` mask pixels.

    Returns:
        (cut-outs, the categories kept, as COCO ``{"id", "name"}`` dicts).

    Raises:
        DataError: the file cannot be read, an image is missing, or no object qualifies.
    """
    from PIL import Image
    from pycocotools.coco import COCO

    from foveal.data.boxes.coco import _file_names, _image_folder

    path = Path(annotations)
    if not path.is_file():
        raise DataError(f"{printable_path(path)}: no such COCO instances file",
                        hint="--objects takes a COCO instances .json with polygon or RLE masks")
    try:
        import contextlib
        import io

        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
            coco = COCO(str(path))
    except (ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{printable_path(path)}: not a COCO instances file ({exc})") from None
    folder = _image_folder(path, images, _file_names(coco.dataset))
    wanted = {c["id"]: c for c in coco.loadCats(coco.getCatIds())
              if categories is None or c["name"] in set(categories)}
    if categories is not None:
        unknown = sorted(set(categories) - {c["name"] for c in wanted.values()})
        if unknown:
            raise DataError(f"{printable_path(path)}: no categories named {unknown}",
                            hint=f"its categories: {', '.join(c['name'] for c in coco.loadCats(coco.getCatIds())[:20])}")
    cutouts: list[CutOut] = []
    for image_id in sorted(coco.getImgIds()):
        anns = [a for a in coco.loadAnns(coco.getAnnIds(imgIds=image_id, iscrowd=False))
                if a["category_id"] in wanted and a.get("segmentation")]
        if not anns:
            continue
        info = coco.loadImgs(image_id)[0]
        file = folder / info["file_name"]
        try:
            with Image.open(file) as im:
                rgb = np.asarray(im.convert("RGB"))
        except OSError as exc:
            raise DataError(f"{printable_path(file)}: cannot read this image of {path.name} ({exc})") from None
        for ann in sorted(anns, key=lambda a: a["id"]):
            mask = coco.annToMask(ann).astype(bool)
            if mask.shape != rgb.shape[:2]:
                raise DataError(f"{printable_path(file)}: image is {rgb.shape[1]}x{rgb.shape[0]} but its annotations "
                                f"say {mask.shape[1]}x{mask.shape[0]}")
            if mask.sum() < min_area:
                continue
            ys, xs = np.nonzero(mask)
            y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
            rgba = np.dstack([rgb[y0:y1, x0:x1], mask[y0:y1, x0:x1].astype(np.uint8) * 255])
            cutouts.append(CutOut(rgba, int(ann["category_id"]), f"{info['file_name']}#{ann['id']}"))
    if not cutouts:
        raise DataError(f"{printable_path(path)}: no object with a mask of at least {min_area:g} pixels"
                        + (f" in categories {list(categories)}" if categories else ""),
                        hint="lower --min-area, or choose other --categories")
    used = sorted({c.category_id for c in cutouts})
    return cutouts, [{"id": i, "name": wanted[i]["name"], "supercategory": wanted[i].get("supercategory", "")}
                     for i in used]


MASK_SUFFIXES = (".png", ".bmp", ".tif", ".tiff")


def _read_shown_rgb(path: Path) -> np.ndarray:
    """An image's RGB pixels as shown (EXIF orientation applied, as foveal's decoder does)."""
    from PIL import Image, ImageOps

    with Image.open(path) as im:
        return np.asarray(ImageOps.exif_transpose(im).convert("RGB"))


def load_mask_cutouts(images: str | Path, masks: str | Path, *, category: str = "object", min_area: float = 400.0,
                      categories: Sequence[str] | None = None) -> tuple[list[CutOut], list[dict[str, Any]]]:
    """Cut-outs from an image folder and a folder of masks with the images' names (any suffix).

    A mask is a PNG/BMP/TIFF of the image's size: 0 is background and every other value is one
    object (an instance mask: values 1, 2, 3... for several objects; a binary 0/255 mask is one
    object). ``masks`` is either flat (every object is ``category``) or holds one subfolder per
    category (``masks/raccoon/img1.png``), the layout ``foveal datasets synth grabcut`` writes.
    Images without a mask are not used.

    Returns:
        (cut-outs, their categories as COCO ``{"id", "name"}`` dicts, ids from 1 in name order).

    Raises:
        DataError: a folder is missing or has no masks, a mask has no image of its name or a
            different size, or no object has ``min_area`` pixels (each named).
    """
    from PIL import Image

    image_root, mask_root = Path(images), Path(masks)
    for folder, option in ((image_root, "--objects"), (mask_root, "--masks")):
        if not folder.is_dir():
            raise DataError(f"{printable_path(folder)}: no such folder", hint=f"{option} takes a folder with --masks")
    subfolders = sorted(p for p in mask_root.iterdir() if p.is_dir())
    groups = [(p.name, p) for p in subfolders] if subfolders else [(category, mask_root)]
    if categories is not None:
        groups = [(name, folder) for name, folder in groups if name in set(categories)]
    by_stem: dict[str, Path] = {}
    from foveal.data.synth.mnist_m import photo_files

    for path in photo_files(image_root):
        by_stem.setdefault(path.stem, path)
    cutouts: list[CutOut] = []
    names = [name for name, _ in groups]
    for cat_index, (name, folder) in enumerate(groups, start=1):
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in MASK_SUFFIXES and p.is_file())
        if not files:
            raise DataError(f"{printable_path(folder)}: no mask files ({', '.join(MASK_SUFFIXES)})",
                            hint="write one mask per image, named like the image")
        for file in files:
            image = by_stem.get(file.stem)
            if image is None:
                raise DataError(f"{printable_path(file)}: no image named {file.stem}.* in {printable_path(image_root)}")
            try:
                with Image.open(file) as im:
                    labels = np.asarray(im if im.mode in ("L", "P", "I", "I;16", "1") else im.convert("L"))
                rgb = _read_shown_rgb(image)
            except OSError as exc:
                raise DataError(f"{printable_path(file)}: cannot read this mask or its image ({exc})") from None
            if labels.ndim != 2 or labels.shape != rgb.shape[:2]:
                raise DataError(f"{printable_path(file)}: mask is {labels.shape[1]}x{labels.shape[0]} but its image "
                                f"{printable_path(image)} is {rgb.shape[1]}x{rgb.shape[0]}")
            for value in sorted(int(v) for v in np.unique(labels) if v):
                mask = labels == value
                if mask.sum() < min_area:
                    continue
                ys, xs = np.nonzero(mask)
                y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
                rgba = np.dstack([rgb[y0:y1, x0:x1], mask[y0:y1, x0:x1].astype(np.uint8) * 255])
                cutouts.append(CutOut(rgba, cat_index, f"{printable_path(file)}#{value}"))
    if not cutouts:
        raise DataError(f"{printable_path(mask_root)}: no object mask of at least {min_area:g} pixels",
                        hint="lower --min-area, or check that the masks are not all 0")
    used = sorted({c.category_id for c in cutouts})
    return cutouts, [{"id": i, "name": names[i - 1], "supercategory": ""} for i in used]


def _background(rng: np.random.Generator, photos: list[np.ndarray], size: tuple[int, int]) -> np.ndarray:
    """A random crop of a random photo, scaled so its short side covers ``size``."""
    from PIL import Image

    photo = photos[int(rng.integers(len(photos)))]
    h, w = size
    scale = max(h / photo.shape[0], w / photo.shape[1]) * float(rng.uniform(1.0, 1.5))
    resized = np.asarray(Image.fromarray(photo).resize((max(w, round(photo.shape[1] * scale)),
                                                         max(h, round(photo.shape[0] * scale))), Image.BILINEAR))
    top = int(rng.integers(resized.shape[0] - h + 1))
    left = int(rng.integers(resized.shape[1] - w + 1))
    return resized[top:top + h, left:left + w].copy()


def _transformed(rng: np.random.Generator, cut: CutOut, size: tuple[int, int], scale: tuple[float, float],
                 rotation: float) -> np.ndarray:
    """The cut-out flipped, scaled (its long side a ``scale`` fraction of the image's short side)
    and rotated, as RGBA whose alpha is 0 or 255."""
    from PIL import Image

    im = Image.fromarray(cut.rgba, "RGBA")
    if rng.uniform() < 0.5:
        im = im.transpose(Image.FLIP_LEFT_RIGHT)
    target = float(rng.uniform(*scale)) * min(size)
    factor = target / max(im.size)
    im = im.resize((max(1, round(im.size[0] * factor)), max(1, round(im.size[1] * factor))), Image.BILINEAR)
    angle = float(rng.uniform(-rotation, rotation)) if rotation else 0.0
    if angle:
        im = im.rotate(angle, resample=Image.BILINEAR, expand=True)
    out = np.asarray(im).copy()
    out[..., 3] = np.where(out[..., 3] >= 128, 255, 0)
    return out


def _post_process(rng: np.random.Generator, image: np.ndarray, noise: float, blur: float, jitter: float) -> np.ndarray:
    """Colour jitter (brightness, contrast, saturation by up to ``jitter``), Gaussian blur (radius
    up to ``blur``) and Gaussian noise (sigma ``noise`` grey levels), as the texts suggest."""
    from PIL import Image, ImageEnhance, ImageFilter

    im = Image.fromarray(image)
    if jitter:
        for enhancer in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
            im = enhancer(im).enhance(float(rng.uniform(1 - jitter, 1 + jitter)))
    if blur:
        im = im.filter(ImageFilter.GaussianBlur(float(rng.uniform(0, blur))))
    out = np.asarray(im).astype(np.float32)
    if noise:
        out = out + rng.normal(0.0, noise, out.shape)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def make_composites(objects: str | Path, backgrounds: str | Path, output: str | Path, *, count: int = 100,
                    size: tuple[int, int] = (320, 320), objects_per_image: tuple[int, int] = (1, 4),
                    scale: tuple[float, float] = (0.2, 0.6), rotation: float = 20.0, min_visible: float = 0.3,
                    noise: float = 4.0, blur: float = 1.0, jitter: float = 0.2, min_area: float = 400.0,
                    categories: Sequence[str] | None = None, images: str | Path | None = None, split: str = "train",
                    seed: int = 0, overwrite: bool = False, masks: str | Path | None = None, category: str = "object",
                    progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Write ``count`` composited images with COCO boxes and masks (see the module docstring).

    Args:
        objects: COCO instances JSON whose masks give the cut-outs (``images``: its image folder,
            found beside it by default); with ``masks``, a folder of images whose masks are there
            (:func:`load_mask_cutouts`; ``category`` names a flat mask folder's objects).
        backgrounds: a folder of photos; each must be at least ``size``.
        output: the dataset folder (new or empty, unless ``overwrite``).
        size: (height, width) of every image.
        objects_per_image: (min, max) objects pasted per image.
        scale: (min, max) of an object's long side as a fraction of the image's short side.
        rotation: objects turn by up to this many degrees either way.
        min_visible: drop an object whose visible mask is less than this fraction of its pasted mask.
        noise, blur, jitter: post-processing (grey levels, pixels, relative), 0 to switch off.
        min_area: smallest source mask (pixels) used as a cut-out.
        categories: only these category names (default: all).
        split: the name of the image folder and of ``instances_SPLIT.json``.

    Returns:
        The manifest written to ``OUTPUT/composite.json``.

    Raises:
        DataError: unreadable objects or backgrounds, a background smaller than ``size`` (named).
        OutputError: ``output`` exists and is not empty (without ``overwrite``).
    """
    from PIL import Image
    from pycocotools import mask as mask_utils

    from foveal.data.synth.mnist_m import load_backgrounds

    checks = [(count >= 1, "--count must be at least 1"),
              (1 <= objects_per_image[0] <= objects_per_image[1], "--objects-per-image must be MIN MAX with 1 <= MIN <= MAX"),
              (0 < scale[0] <= scale[1] <= 1, "--scale must be MIN MAX in (0, 1]"),
              (0 <= min_visible < 1 and min(noise, blur, jitter, rotation) >= 0, "min_visible must be in [0, 1) and "
               "noise, blur, jitter, rotation not negative"),
              (min(size) >= 16, "--size must be at least 16")]
    require_all(checks)
    out = Path(output)
    refuse_nonempty_output(out, overwrite)
    if masks is not None:
        cutouts, cats = load_mask_cutouts(objects, masks, category=category, min_area=min_area, categories=categories)
    else:
        cutouts, cats = load_cutouts(objects, images, min_area=min_area, categories=categories)
    try:
        photos = load_backgrounds(backgrounds, *size).images
    except DataError as exc:
        raise DataError(exc.message.replace("patch a digit needs", "images to write (--size)"), hint=exc.hint) from None
    rng = np.random.default_rng(seed)
    h, w = size
    records, annotations = [], []
    with staged_folder(out) as staging:
        (staging / split).mkdir(parents=True)
        (staging / "annotations").mkdir()
        for index in range(count):
            canvas = _background(rng, photos, size)
            owner = np.zeros(size, np.int32)  # which pasted object each pixel shows (0: background)
            pasted: list[tuple[int, int]] = []  # (category id, pasted mask pixels)
            for _ in range(int(rng.integers(objects_per_image[0], objects_per_image[1] + 1))):
                cut = cutouts[int(rng.integers(len(cutouts)))]
                obj = _transformed(rng, cut, size, scale, rotation)
                oh, ow = min(obj.shape[0], h), min(obj.shape[1], w)
                obj = obj[:oh, :ow]
                top, left = int(rng.integers(h - oh + 1)), int(rng.integers(w - ow + 1))
                alpha = obj[..., 3] > 0
                region = canvas[top:top + oh, left:left + ow]
                region[alpha] = obj[..., :3][alpha]
                owner[top:top + oh, left:left + ow][alpha] = len(pasted) + 1
                pasted.append((cut.category_id, int(alpha.sum())))
            canvas = _post_process(rng, canvas, noise, blur, jitter)
            name = f"{index:06d}.jpg"
            Image.fromarray(canvas).save(staging / split / name, quality=95)
            image_id = index + 1
            records.append({"id": image_id, "file_name": name, "width": w, "height": h})
            for k, (category, area) in enumerate(pasted, start=1):
                visible = owner == k
                if not area or visible.sum() < max(1, min_visible * area):
                    continue
                ys, xs = np.nonzero(visible)
                rle = mask_utils.encode(np.asfortranarray(visible.astype(np.uint8)))
                rle["counts"] = rle["counts"].decode("ascii")
                annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": category,
                                    "bbox": [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1),
                                             int(ys.max() - ys.min() + 1)],
                                    "area": int(visible.sum()), "iscrowd": 0, "segmentation": rle})
            if progress and (index + 1) % 100 == 0:
                progress(f"{index + 1}/{count} images")
        coco = {"info": {"description": "foveal datasets synth composite", "seed": seed},
                "images": records, "annotations": annotations, "categories": cats}
        (staging / "annotations" / f"instances_{split}.json").write_text(json.dumps(coco), encoding="utf-8")
        manifest = {"kind": "composite", "objects": printable_path(objects), "cutouts": len(cutouts),
                    "masks": printable_path(masks) if masks is not None else None,
                    "backgrounds": printable_path(backgrounds), "photos": len(photos), "count": count,
                    "instances": len(annotations), "size": [h, w], "objects_per_image": list(objects_per_image),
                    "scale": list(scale), "rotation": rotation, "min_visible": min_visible, "noise": noise,
                    "blur": blur, "jitter": jitter, "seed": seed, "split": split,
                    "annotations": f"annotations/instances_{split}.json"}
        (staging / "composite.json").write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    return manifest


__all__ = ["CutOut", "load_cutouts", "load_mask_cutouts", "make_composites"]
