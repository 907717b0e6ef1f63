"""Instance predictions for datasets and image files; images with drawn masks and boxes.

:func:`predict_dataset` runs an instance model over every image of an
:class:`~foveal.instance.data.InstanceImages` (for scoring), :func:`predict_files` over image
files and folders (``foveal instance predict``): with an output folder, each image is written
with its masks (a translucent colour per instance) and labelled boxes, plus ``instances.json``
(COCO: ``images``, ``categories`` and ``annotations`` as result records with ``bbox``,
``score`` and an RLE ``segmentation``).

Example:
    >>> model, card = load_model("runs/RUN/best.keras")  # doctest: +SKIP
    >>> rows = predict_files(model, card, ["shapes/test"], output="drawn/")  # doctest: +SKIP
    >>> rows[0]["instances"][0]["class"]  # doctest: +SKIP
    'circle'
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Sequence

import numpy as np

from foveal.instance.scoring import ImageInstances, check_card

if TYPE_CHECKING:
    import keras

#: instance colours (RGB), reused in turn
PALETTE = ((230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
           (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128), (170, 110, 40))


def predict_dataset(model: keras.Model, card: Any, data: Any, *, batch_size: int = 8,
                    score_threshold: float | None = 0.001, max_detections: int | None = 100) -> list[ImageInstances]:
    """Instances of every image of ``data`` (in order), in original-image pixels; by default
    down to score 0.001, at most 100 per image (COCO's practice for AP)."""
    from foveal.detection.pipeline import detection_data_errors, make_detection_pipeline
    from foveal.instance.family import family_of

    check_card(card)
    family = family_of(card)
    h, w, c = card.input_shape
    if len(data) == 0:
        return []
    # Every instance of the data is scored (from the data itself): the pipeline cuts no boxes, warns of none.
    ds = make_detection_pipeline(data, image_size=(h, w), channels=c, batch_size=batch_size, training=False,
                                 augment="none", cache="none", max_boxes=None)
    sizes = [(int(a), int(b)) for a, b in data.image_sizes]
    result: list[ImageInstances] = []
    with detection_data_errors(data.origin or "instance data"):
        for images, _ in ds:
            batch_sizes = sizes[len(result):len(result) + int(images.shape[0])]
            result.extend(family.predict_batch(model, card, images.numpy(), batch_sizes,
                                               score_threshold=score_threshold, max_detections=max_detections))
    return result


def draw_instances(image: np.ndarray, instances: ImageInstances, class_names: Sequence[str], *,
                   alpha: float = 0.45, true_boxes: np.ndarray | None = None) -> np.ndarray:
    """``image`` (uint8 HxW or HxWx3) with each instance's mask tinted and its box labelled."""
    from foveal.visualize.draw import PRED_COLOR, TRUE_COLOR, draw_boxes

    canvas = np.asarray(image)
    if canvas.ndim == 2 or canvas.shape[-1] == 1:
        canvas = np.repeat(canvas.reshape(canvas.shape[0], canvas.shape[1], 1), 3, axis=-1)
    canvas = canvas.astype(np.float32)
    for k, mask in enumerate(instances.masks()):
        colour = np.asarray(PALETTE[k % len(PALETTE)], np.float32)
        canvas[mask] = (1 - alpha) * canvas[mask] + alpha * colour
    out = np.clip(np.round(canvas), 0, 255).astype(np.uint8)
    if true_boxes is not None and len(true_boxes):
        out = draw_boxes(out, true_boxes, color=TRUE_COLOR)
    labels = [f"{class_names[int(c)]} {s:.2f}" for c, s in zip(instances.classes, instances.scores)]
    return draw_boxes(out, instances.boxes, labels=labels, color=PRED_COLOR) if len(instances) else out


def predict_files(model: keras.Model, card: Any, images: Iterable[str | Path], *, batch_size: int = 8,
                  output: str | Path | None = None, skip_invalid: bool = False, score_threshold: float | None = None,
                  mask_threshold: float | None = None) -> list[dict[str, Any]]:
    """Instances for each image file (folders searched recursively).

    Args:
        model, card: from :func:`foveal.models.load_model` of an instance model.
        images: files and/or folders.
        output: folder for the drawn images and ``instances.json``.
        skip_invalid: report unreadable files as rows with ``"error"`` instead of raising.
        score_threshold: keep instances scoring at least this (default: the model's).
        mask_threshold: mask probability cut (default: the model's, 0.5).

    Returns:
        One dict per image: ``file``, ``image_size`` ([width, height]), ``instances`` (``class``,
        ``score``, ``box`` pixel corners, ``area`` mask pixels, ``segmentation`` RLE), and
        ``drawn`` when written.
    """
    from foveal import prediction as shared
    from foveal.detection.predict import model_inputs
    from foveal.instance.family import family_of

    check_card(card)
    family = family_of(card)
    h, w, channels = card.input_shape
    drawings = shared.Drawings(output)

    def rows_for(batch: list[tuple[Path, np.ndarray]]) -> list[dict[str, Any]]:
        sizes = [(int(im.shape[1]), int(im.shape[0])) for _, im in batch]
        found = family.predict_batch(model, card, model_inputs([im for _, im in batch], (h, w), False), sizes,
                                     score_threshold=score_threshold, mask_threshold=mask_threshold)
        rows = []
        for (path, image), inst, size in zip(batch, found, sizes):
            items = [{"class": card.class_names[int(c)], "score": round(float(s), 5),
                      "box": [round(float(v), 1) for v in b], "area": int(_area(r)), "segmentation": r}
                     for b, s, c, r in zip(inst.boxes, inst.scores, inst.classes, inst.rles)]
            rows.append(drawings.row(path, {"image_size": list(size), "instances": items},
                                     lambda image=image, inst=inst: draw_instances(image, inst, card.class_names)))
        return rows

    tables = {"instances.json": lambda rows: json.dumps(to_coco(rows, card.class_names))}
    return shared.predict_files(images, channels, rows_for, batch_size=batch_size, skip_invalid=skip_invalid,
                                output=output, tables=tables)


def _area(rle: dict[str, Any]) -> int:
    from pycocotools import mask as mask_utils

    return int(mask_utils.area({"size": rle["size"], "counts": rle["counts"].encode("ascii")}))


def to_coco(rows: list[dict[str, Any]], class_names: list[str]) -> dict[str, Any]:
    """COCO-style output of :func:`predict_files`: ``images``, ``categories`` and ``annotations``
    as result records (``bbox`` [x, y, w, h], ``score``, ``segmentation`` RLE, ``area``, ``id``)."""
    from foveal.prediction import coco_results

    coco = coco_results(rows, class_names, "instances",
                        lambda d: {"area": d["area"], "segmentation": d["segmentation"], "iscrowd": 0})
    for k, record in enumerate(coco["annotations"], start=1):
        record["id"] = k
    return coco


def format_table(rows: list[dict[str, Any]]) -> str:
    """One line per image: file, then ``class score`` of each instance."""
    lines = []
    for row in rows:
        if "error" in row:
            lines.append(f"{row['file']}: {row['error']}")
            continue
        items = ", ".join(f"{d['class']} {d['score']:.2f}" for d in row["instances"]) or "no instances"
        lines.append(f"{row['file']}: {items}")
    return "\n".join(lines)


__all__ = ["PALETTE", "draw_instances", "format_table", "predict_dataset", "predict_files", "to_coco"]
