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
``OUTPUT/grabcut.json`` (per-box foreground fraction of the box; boxes GrabCut left empty are
listed and get no mask). Deterministic for a seed (OpenCV's k-means initialisation is seeded).

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


def grabcut_box(rgb: np.ndarray, box: tuple[float, float, float, float], *, iterations: int = 5,
                margin: float = 0.25, work_size: int = 256, seed: int = 0) -> np.ndarray:
    """GrabCut's foreground inside ``box`` (x_min, y_min, x_max, y_max in pixels) as a bool mask of the image.

    The crop around the box is ``margin`` of the box's size larger on each side (the background
    GrabCut learns from), scaled so its long side is at most ``work_size``.
    """
    import cv2

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
    if rect[2] >= sw and rect[3] >= sh:  # the box fills the crop: no background to learn from
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


def grabcut_masks(boxes: str | Path, output: str | Path, *, split: str = "train", iterations: int = 5,
                  margin: float = 0.25, work_size: int = 256, seed: int = 0, overwrite: bool = False,
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

    if iterations < 1 or work_size < 16 or margin < 0:
        raise ConfigError("--iterations must be >= 1, --work-size >= 16 and --margin >= 0")
    out = Path(output)
    refuse_nonempty_output(out, overwrite)
    splits = load_boxes(boxes)
    if split not in splits:
        raise ConfigError(f"--split {split}: {printable_path(boxes)} has the splits {sorted(splits)}")
    data = splits[split]
    fractions: list[float] = []
    empty: list[str] = []
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
                    mask = grabcut_box(rgb, tuple(image_boxes[k]), iterations=iterations, margin=margin,
                                       work_size=work_size, seed=seed + index)
                    x0, y0, x1, y1 = image_boxes[k]
                    area = max(1.0, float((x1 - x0) * (y1 - y0)))
                    if not mask.any():
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
                    "masks": written, "objects": len(fractions), "empty_boxes": empty,
                    "mean_box_fraction": round(float(np.mean(fractions)), 4) if fractions else None,
                    "iterations": iterations, "margin": margin, "work_size": work_size, "seed": seed,
                    "classes": list(data.class_names)}
        (staging / "grabcut.json").write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    return manifest


__all__ = ["grabcut_box", "grabcut_masks"]
