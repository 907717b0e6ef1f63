"""Object masks from boxes with GrabCut: cut-outs for :mod:`foveal.data.synth.composite`.

Rother, Kolmogorov & Blake, "GrabCut: interactive foreground extraction using iterated graph
cuts", SIGGRAPH 2004: initialised with a rectangle (everything outside is background, inside is
probably foreground), GrabCut fits colour mixture models to both and cuts the graph, a few
rounds. OpenCV's ``cv2.grabCut`` does it; here it runs on each box of a box dataset (any reader
of :func:`foveal.data.boxes.load_boxes`: VOC, COCO, YOLO, CSV), on a crop around the box scaled
to at most ``work_size`` pixels on its long side (speed), and the mask is scaled back.

Written: ``OUTPUT/<class>/<image stem>.png``, an instance mask per image and class (0 background,
k the k-th box of that class; a pixel two boxes claim goes to the smaller box), the layout
``foveal datasets synth composite --objects IMAGES --masks OUTPUT`` reads, and
``OUTPUT/grabcut.json``. A box where plain GrabCut finds less than ``min_fraction`` of the box
(empty, typically: the object's colours are those of its surroundings) goes through the
fallbacks of :func:`grabcut_with_fallback` (an ellipse prior, then a certain-foreground core,
with twice the iterations; last, the inscribed ellipse, the box, or no mask); the manifest
counts the boxes each step gave (``methods``) and lists those that needed a fallback.
Deterministic for a seed (OpenCV's k-means initialisation is seeded).

Example:
    >>> grabcut_masks("../shared/datasets/raccoon", "raccoon-masks", split="train")  # doctest: +SKIP
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import numpy as np

from foveal.errors import ConfigError, DataError
from foveal.utils_io import printable_path, refuse_nonempty_output, staged_folder

INITS = ("rect", "ellipse", "core")
LAST_RESORTS = ("ellipse", "box", "skip")


def grabcut_box(rgb: np.ndarray, box: tuple[float, float, float, float], *, iterations: int = 5,
                margin: float = 0.25, work_size: int = 256, seed: int = 0, init: str = "rect") -> np.ndarray:
    """GrabCut's foreground inside ``box`` (x_min, y_min, x_max, y_max in pixels) as a bool mask of the image.

    The crop around the box is ``margin`` of the box's size larger on each side (the background
    GrabCut learns from), scaled so its long side is at most ``work_size``. ``init``:

    * ``rect``: the paper's rectangle (outside: background; inside: probably foreground);
    * ``ellipse``: outside the box background, the box probably background, the ellipse
      inscribed in 90% of the box probably foreground (an object fills the middle of its box,
      its corners are mostly background: a prior the rectangle lacks);
    * ``core``: as ``ellipse``, with a central ellipse of 25% of the box's sides marked as
      certain foreground, which GrabCut never relabels, so the result is never empty.
    """
    import cv2

    if init not in INITS:
        raise ConfigError(f"init must be one of {', '.join(INITS)}, not {init!r}")
    h, w = rgb.shape[:2]
    x0, y0, x1, y1 = (float(v) for v in box)
    bw, bh = x1 - x0, y1 - y0
    cx0, cy0 = max(0, int(np.floor(x0 - margin * bw))), max(0, int(np.floor(y0 - margin * bh)))
    cx1, cy1 = min(w, int(np.ceil(x1 + margin * bw))), min(h, int(np.ceil(y1 + margin * bh)))
    crop = np.ascontiguousarray(rgb[cy0:cy1, cx0:cx1, ::-1])  # OpenCV wants BGR
    factor = min(1.0, work_size / max(crop.shape[:2]))
    small = cv2.resize(crop, (max(1, round(crop.shape[1] * factor)), max(1, round(crop.shape[0] * factor))),
                       interpolation=cv2.INTER_AREA) if factor < 1 else crop
    sh, sw = small.shape[:2]
    rx0, ry0 = int(round((x0 - cx0) * factor)), int(round((y0 - cy0) * factor))
    rx1, ry1 = min(sw, int(round((x1 - cx0) * factor))), min(sh, int(round((y1 - cy0) * factor)))
    full = np.zeros((h, w), bool)
    if rx1 - rx0 < 2 or ry1 - ry0 < 2:
        return full
    labels = np.zeros((sh, sw), np.uint8)
    background, foreground = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.setRNGSeed(seed)
    rect = (rx0, ry0, rx1 - rx0, ry1 - ry0)
    if init != "rect":
        labels[:] = cv2.GC_BGD
        labels[ry0:ry1, rx0:rx1] = cv2.GC_PR_BGD
        labels[_ellipse((sh, sw), (rx0, ry0, rx1, ry1), 0.9)] = cv2.GC_PR_FGD
        if init == "core":
            labels[_ellipse((sh, sw), (rx0, ry0, rx1, ry1), 0.25)] = cv2.GC_FGD
        if not np.isin(labels, (cv2.GC_BGD, cv2.GC_PR_BGD)).any():  # a tiny box: no background sample
            labels[[0, -1], :] = labels[:, [0, -1]] = cv2.GC_PR_BGD
        cv2.grabCut(small, labels, None, background, foreground, iterations, cv2.GC_INIT_WITH_MASK)
    elif rect[2] >= sw and rect[3] >= sh:  # the box fills the crop: no background to learn from
        labels[:] = cv2.GC_PR_FGD
        labels[[0, -1], :] = cv2.GC_PR_BGD
        labels[:, [0, -1]] = cv2.GC_PR_BGD
        cv2.grabCut(small, labels, None, background, foreground, iterations, cv2.GC_INIT_WITH_MASK)
    else:
        cv2.grabCut(small, labels, rect, background, foreground, iterations, cv2.GC_INIT_WITH_RECT)
    mask = (labels == cv2.GC_FGD) | (labels == cv2.GC_PR_FGD)
    if factor < 1:
        mask = cv2.resize(mask.astype(np.uint8), (crop.shape[1], crop.shape[0]), interpolation=cv2.INTER_NEAREST) > 0
    inside = np.zeros_like(mask)
    inside[max(0, int(y0) - cy0):int(np.ceil(y1)) - cy0, max(0, int(x0) - cx0):int(np.ceil(x1)) - cx0] = True
    full[cy0:cy1, cx0:cx1] = mask & inside
    return full


def _ellipse(shape: tuple[int, int], box: tuple[float, float, float, float], fraction: float) -> np.ndarray:
    """The pixels whose centres lie in the ellipse inscribed in ``fraction`` of ``box``'s sides
    (x_min, y_min, x_max, y_max; pixel i covers [i, i + 1)), centred on the box."""
    x0, y0, x1, y1 = box
    ys, xs = np.mgrid[0:shape[0], 0:shape[1]] + 0.5
    a, b = max(fraction * (x1 - x0) / 2, 0.5), max(fraction * (y1 - y0) / 2, 0.5)
    return ((xs - (x0 + x1) / 2) / a) ** 2 + ((ys - (y0 + y1) / 2) / b) ** 2 <= 1.0


def grabcut_with_fallback(rgb: np.ndarray, box: tuple[float, float, float, float], *, iterations: int = 5,
                          margin: float = 0.25, work_size: int = 256, seed: int = 0, min_fraction: float = 0.1,
                          last_resort: str = "ellipse") -> tuple[np.ndarray | None, str]:
    """GrabCut inside ``box`` with fallbacks for the boxes where it finds (almost) nothing.

    A result counts when it covers at least ``min_fraction`` of the box. Tried in order: the
    plain rectangle (``rect``); the ellipse prior with twice the iterations (``ellipse``); the
    ellipse prior with a certain-foreground core (``core``, twice the iterations: the core counts
    towards ``min_fraction`` only when GrabCut grows it past it); then ``last_resort``: the
    ellipse inscribed in the box (``ellipse``), the whole box (``box``) or no mask (``skip``).
    GrabCut leaves a box empty when the colours inside it are all explained by the background
    model learnt around it (an animal the colour of its surroundings).

    Returns:
        (the bool mask, or None when skipped; the step that gave it: ``rect``, ``ellipse``,
        ``core``, ``last-resort-ellipse``, ``last-resort-box`` or ``skipped``).

    Example:
        >>> mask, method = grabcut_with_fallback(rgb, (34, 24, 106, 96))  # doctest: +SKIP
    """
    if last_resort not in LAST_RESORTS:
        raise ConfigError(f"--last-resort must be one of {', '.join(LAST_RESORTS)}, not {last_resort!r}")
    x0, y0, x1, y1 = (float(v) for v in box)
    need = max(1.0, min_fraction * (x1 - x0) * (y1 - y0))
    for init, rounds in (("rect", iterations), ("ellipse", 2 * iterations), ("core", 2 * iterations)):
        mask = grabcut_box(rgb, box, iterations=rounds, margin=margin, work_size=work_size, seed=seed, init=init)
        if mask.sum() >= need:
            return mask, init
    if last_resort == "skip":
        return None, "skipped"
    h, w = rgb.shape[:2]
    if last_resort == "box":
        mask = np.zeros((h, w), bool)
        mask[max(0, int(y0)):int(np.ceil(y1)), max(0, int(x0)):int(np.ceil(x1))] = True
    else:
        mask = _ellipse((h, w), (x0, y0, x1, y1), 1.0)
    return (mask, f"last-resort-{last_resort}") if mask.any() else (None, "skipped")


def grabcut_masks(boxes: str | Path, output: str | Path, *, split: str = "train", iterations: int = 5,
                  margin: float = 0.25, work_size: int = 256, seed: int = 0, min_fraction: float = 0.1,
                  last_resort: str = "ellipse", overwrite: bool = False,
                  progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Write GrabCut instance masks for every box of one split of a box dataset (module docstring).

    Raises:
        ConfigError: bad options or a split the dataset does not have.
        DataError: an unreadable dataset or image (named).
        OutputError: ``output`` exists and is not empty (without ``overwrite``).
    """
    from PIL import Image

    from foveal.data.boxes import load_boxes
    from foveal.data.synth.composite import _read_shown_rgb

    if iterations < 1 or work_size < 16 or margin < 0 or not 0 <= min_fraction < 1:
        raise ConfigError("--iterations must be >= 1, --work-size >= 16, --margin >= 0 and --min-fraction in [0, 1)")
    if last_resort not in LAST_RESORTS:
        raise ConfigError(f"--last-resort must be one of {', '.join(LAST_RESORTS)}, not {last_resort!r}")
    out = Path(output)
    refuse_nonempty_output(out, overwrite)
    splits = load_boxes(boxes)
    if split not in splits:
        raise ConfigError(f"--split {split}: {printable_path(boxes)} has the splits {sorted(splits)}")
    data = splits[split]
    fractions: list[float] = []
    empty: list[str] = []
    fallbacks: list[dict[str, str]] = []
    methods = dict.fromkeys(("rect", "ellipse", "core", f"last-resort-{last_resort}", "skipped"), 0)
    written = 0
    with staged_folder(out, "the masks") as staging:
        for index, (path, image_boxes, labels) in enumerate(zip(data.paths, data.boxes, data.labels)):
            try:
                rgb = _read_shown_rgb(Path(path))
            except OSError as exc:
                raise DataError(f"{printable_path(path)}: cannot read this image ({exc})") from None
            for cls in sorted(set(int(v) for v in labels)):
                chosen = [k for k in range(len(labels)) if labels[k] == cls]
                order = sorted(chosen, key=lambda k: -float(np.prod(image_boxes[k][2:] - image_boxes[k][:2])))
                instance = np.zeros(rgb.shape[:2], np.uint8)
                for number, k in enumerate(order[:255], start=1):  # larger boxes first: smaller ones win overlaps
                    mask, method = grabcut_with_fallback(
                        rgb, tuple(image_boxes[k]), iterations=iterations, margin=margin, work_size=work_size,
                        seed=seed + index, min_fraction=min_fraction, last_resort=last_resort)
                    methods[method] += 1
                    if method != "rect":
                        fallbacks.append({"box": f"{printable_path(path)} box {k}", "method": method})
                    x0, y0, x1, y1 = image_boxes[k]
                    area = max(1.0, float((x1 - x0) * (y1 - y0)))
                    if mask is None:
                        empty.append(f"{printable_path(path)} box {k}")
                        continue
                    fractions.append(float(mask.sum()) / area)
                    instance[mask] = number
                if instance.any():
                    folder = staging / data.class_names[cls]
                    folder.mkdir(exist_ok=True)
                    Image.fromarray(instance).save(folder / f"{Path(path).stem}.png")
                    written += 1
            if progress and (index + 1) % 25 == 0:
                progress(f"{index + 1}/{len(data)} images")
        manifest = {"kind": "grabcut", "boxes": printable_path(boxes), "split": split, "images": len(data),
                    "masks": written, "objects": len(fractions), "methods": methods, "fallbacks": fallbacks,
                    "empty_boxes": empty,
                    "mean_box_fraction": round(float(np.mean(fractions)), 4) if fractions else None,
                    "iterations": iterations, "margin": margin, "work_size": work_size, "seed": seed,
                    "min_fraction": min_fraction, "last_resort": last_resort,
                    "classes": list(data.class_names)}
        (staging / "grabcut.json").write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    return manifest


__all__ = ["INITS", "LAST_RESORTS", "grabcut_box", "grabcut_masks", "grabcut_with_fallback"]
