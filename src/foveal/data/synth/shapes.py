"""Generated instance-segmentation data: circles, squares and triangles on noisy backgrounds.

Each image holds a few filled shapes of three classes (``circle``, ``square``, ``triangle``) in
random colours, sizes, rotations and places, on a background of a random colour, a gentle
gradient and Gaussian noise. Shapes may touch and overlap (a later shape hides part of an
earlier one); a placement that would leave any shape with less than ``min_visible`` of its
area in view is redrawn, so every instance stays recognisable. Every instance's visible mask is
known exactly and written as COCO's compressed RLE (pycocotools) with its box and area, in the
layout foveal's COCO readers take::

    OUTPUT/train/000000.png ...  OUTPUT/annotations/instances_train.json
    OUTPUT/val/...               OUTPUT/annotations/instances_val.json
    OUTPUT/test/...              OUTPUT/annotations/instances_test.json
    OUTPUT/shapes.json           the manifest (options, counts, seed)

The same seed writes the same files. It is the data of the instance task's fast tests and of
its demo (``benchmarks/mask_rcnn_shapes.py``); the classic "shapes" toy problem of Mask R-CNN
tutorials, drawn here with PIL.

Example:
    >>> manifest = make_shapes("shapes/", counts=(200, 40, 40), size=(128, 128), seed=0)  # doctest: +SKIP
    >>> manifest["instances"]["train"]  # doctest: +SKIP
    511
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Callable

import numpy as np

from foveal.errors import require_all
from foveal.utils_io import refuse_nonempty_output, staged_folder

CLASSES = ("circle", "square", "triangle")
SPLITS = ("train", "val", "test")
_TRIES = 30


def shape_mask(kind: str, centre: tuple[float, float], radius: float, angle: float,
               size: tuple[int, int]) -> np.ndarray:
    """bool ``[H, W]`` of one filled shape: a circle of ``radius``, or a square / equilateral
    triangle inscribed in that circle, turned by ``angle`` radians, at ``centre`` (x, y)."""
    from PIL import Image, ImageDraw

    h, w = size
    canvas = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(canvas)
    cx, cy = centre
    if kind == "circle":
        draw.ellipse([cx - radius, cy - radius, cx + radius, cy + radius], fill=1)
    else:
        corners = 4 if kind == "square" else 3
        points = [(cx + radius * math.cos(angle + 2 * math.pi * k / corners),
                   cy + radius * math.sin(angle + 2 * math.pi * k / corners)) for k in range(corners)]
        draw.polygon(points, fill=1)
    return np.asarray(canvas, bool)


def _background(rng: np.random.Generator, size: tuple[int, int], noise: float) -> np.ndarray:
    h, w = size
    base = rng.uniform(40, 215, 3)
    slope = rng.uniform(-40, 40, (2, 3))
    ys, xs = np.mgrid[0:h, 0:w]
    image = base + (xs / w - 0.5)[..., None] * slope[0] + (ys / h - 0.5)[..., None] * slope[1]
    return image + rng.normal(0.0, noise, (h, w, 3))


def draw_image(rng: np.random.Generator, size: tuple[int, int], *, objects: tuple[int, int] = (1, 4),
               radius: tuple[float, float] = (0.08, 0.2), min_visible: float = 0.6,
               noise: float = 12.0) -> tuple[np.ndarray, list[tuple[int, np.ndarray]]]:
    """One image and its instances ``(class index, visible mask)``, later shapes on top."""
    h, w = size
    image = _background(rng, size, 0.0)
    owner = np.zeros(size, np.int32)
    areas: list[int] = []
    kinds: list[int] = []
    for _ in range(int(rng.integers(objects[0], objects[1] + 1))):
        for _ in range(_TRIES):
            kind = int(rng.integers(len(CLASSES)))
            r = float(rng.uniform(*radius)) * min(h, w)
            centre = (float(rng.uniform(r * 0.7, w - r * 0.7)), float(rng.uniform(r * 0.7, h - r * 0.7)))
            mask = shape_mask(CLASSES[kind], centre, r, float(rng.uniform(0, 2 * math.pi)), size)
            area = int(mask.sum())
            if area < 16:
                continue
            trial = np.where(mask, len(areas) + 1, owner)
            visible = np.bincount(trial.ravel(), minlength=len(areas) + 2)[1:]
            if all(v >= min_visible * a for v, a in zip(visible, [*areas, area])):
                break
        else:
            continue  # no room left for another shape
        colour = rng.uniform(0, 255, 3)
        while np.abs(colour - image[mask].mean(axis=0)).sum() < 90:  # stand out from what lies beneath
            colour = rng.uniform(0, 255, 3)
        image[mask] = colour
        owner = trial
        areas.append(area)
        kinds.append(kind)
    image = image + rng.normal(0.0, noise, image.shape)
    instances = [(kinds[k], owner == k + 1) for k in range(len(kinds))]
    return np.clip(np.round(image), 0, 255).astype(np.uint8), instances


def make_shapes(output: str | Path, *, counts: tuple[int, int, int] = (300, 50, 100),
                size: tuple[int, int] = (128, 128), objects: tuple[int, int] = (1, 4),
                radius: tuple[float, float] = (0.08, 0.2), min_visible: float = 0.6, noise: float = 12.0,
                seed: int = 0, overwrite: bool = False, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Write the shapes dataset (see the module docstring).

    Args:
        output: the dataset folder (new or empty, unless ``overwrite``).
        counts: images of the train, val and test splits (0 leaves a split out).
        size: (height, width) of every image.
        objects: (min, max) shapes per image (fewer when no placement fits).
        radius: (min, max) circumradius as a fraction of the image's short side.
        min_visible: every shape keeps at least this fraction of its area in view.
        noise: Gaussian noise sigma in grey levels.
        seed: random seed; the same seed writes the same files.

    Returns:
        The manifest, also written to ``OUTPUT/shapes.json``.
    """
    from PIL import Image

    from foveal.instance.masks import encode_rle, mask_box

    checks = [(len(counts) == 3 and all(c >= 0 for c in counts) and counts[0] >= 1,
               "--counts must be TRAIN VAL TEST image counts, TRAIN at least 1"),
              (1 <= objects[0] <= objects[1], "--objects must be MIN MAX with 1 <= MIN <= MAX"),
              (0 < radius[0] <= radius[1] <= 0.5, "--radius must be MIN MAX in (0, 0.5]"),
              (0 <= min_visible <= 1 and noise >= 0, "--min-visible must be in [0, 1] and --noise not negative"),
              (min(size) >= 16, "--size must be at least 16")]
    require_all(checks)
    out = Path(output)
    refuse_nonempty_output(out, overwrite)
    rng = np.random.default_rng(seed)
    h, w = size
    cats = [{"id": k + 1, "name": name, "supercategory": "shape"} for k, name in enumerate(CLASSES)]
    totals: dict[str, int] = {}
    with staged_folder(out) as staging:
        (staging / "annotations").mkdir(parents=True)
        for split, count in zip(SPLITS, counts):
            if not count:
                continue
            (staging / split).mkdir()
            records, annotations = [], []
            for index in range(count):
                image, instances = draw_image(rng, size, objects=objects, radius=radius, min_visible=min_visible,
                                              noise=noise)
                name = f"{index:06d}.png"
                Image.fromarray(image).save(staging / split / name)
                records.append({"id": index + 1, "file_name": name, "width": w, "height": h})
                for kind, mask in instances:
                    box = mask_box(mask)
                    assert box is not None
                    annotations.append({"id": len(annotations) + 1, "image_id": index + 1, "category_id": kind + 1,
                                        "bbox": [float(box[0]), float(box[1]), float(box[2] - box[0]),
                                                 float(box[3] - box[1])],
                                        "area": int(mask.sum()), "iscrowd": 0, "segmentation": encode_rle(mask)})
                if progress and (index + 1) % 200 == 0:
                    progress(f"{split}: {index + 1}/{count} images")
            coco = {"info": {"description": "foveal datasets synth shapes", "seed": seed, "split": split},
                    "images": records, "annotations": annotations, "categories": cats}
            (staging / "annotations" / f"instances_{split}.json").write_text(json.dumps(coco), encoding="utf-8")
            totals[split] = len(annotations)
        manifest = {"kind": "shapes", "classes": list(CLASSES), "counts": dict(zip(SPLITS, counts)),
                    "instances": totals, "size": [h, w], "objects": list(objects), "radius": list(radius),
                    "min_visible": min_visible, "noise": noise, "seed": seed,
                    "annotations": {s: f"annotations/instances_{s}.json" for s in totals}}
        (staging / "shapes.json").write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    return manifest


__all__ = ["CLASSES", "draw_image", "make_shapes", "shape_mask"]
