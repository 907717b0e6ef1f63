"""``foveal detect predict``: image files -> boxes, scores and classes in each image's pixels.

The model file holds everything (class names, input size, letterboxing; the model's own predict
step decodes and suppresses). An output folder gets each image with its boxes drawn,
``detections.json`` (COCO results with an ``images`` table) and ``detections.csv``.

Example:
    >>> model, card = load_model("runs/raccoon/best.keras")  # doctest: +SKIP
    >>> rows = predict_detections(model, card, ["raccoon.jpg"], output="boxed/")  # doctest: +SKIP
    >>> rows[0]["detections"][0]  # doctest: +SKIP
    {'class': 'raccoon', 'score': 0.91, 'box': [81.2, 90.4, 510.0, 401.3]}
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

import numpy as np

from foveal.detection.scoring import check_card, split_outputs
from foveal.prediction import Drawings, coco_results, predict_files

if TYPE_CHECKING:
    import keras

    from foveal.models import ModelCard


def model_inputs(images: list[np.ndarray], size: tuple[int, int], keep_aspect: bool) -> np.ndarray:
    """Resize uint8 images to ``size`` as training does (stretch or letterbox); float32 batch."""
    import tensorflow as tf

    from foveal.data.pipeline import resize_image
    from foveal.detection.pipeline import letterbox

    if keep_aspect:
        no_boxes = tf.zeros((0, 4), tf.float32)
        return np.stack([np.asarray(letterbox(tf.convert_to_tensor(im), no_boxes, size)[0]) for im in images]
                        ).astype(np.float32)
    return np.stack([np.asarray(resize_image(im, size, keep_aspect=False)) for im in images]).astype(np.float32)


def predict_detections(
    model: keras.Model,
    card: ModelCard,
    images: Iterable[str | Path],
    *,
    batch_size: int = 8,
    output: str | Path | None = None,
    skip_invalid: bool = False,
) -> list[dict[str, Any]]:
    """Detections for each image file (folders are searched recursively); ``output`` gets the
    drawn images, ``detections.json`` and ``detections.csv``; with ``skip_invalid`` an unreadable
    file is a row with ``"error"``.

    Returns:
        One dict per image: ``file``, ``image_size`` ([width, height]), ``detections`` (a list
        of ``{"class", "score", "box"}``, boxes as pixel corners), and ``drawn`` when written.
    """
    from foveal.visualize.draw import PRED_COLOR, draw_boxes

    check_card(card)
    h, w, channels = card.input_shape
    keep_aspect = bool(card.training.get("keep_aspect", False))
    drawings = Drawings(output)

    def rows_for(batch: list[tuple[Path, np.ndarray]]) -> list[dict[str, Any]]:
        outputs = model.predict_on_batch(model_inputs([im for _, im in batch], (h, w), keep_aspect))
        outputs = {k: np.asarray(v) for k, v in outputs.items()}
        sizes = [(int(im.shape[1]), int(im.shape[0])) for _, im in batch]
        rows = []
        for (path, image), det, size in zip(batch, split_outputs(outputs, sizes, (h, w), keep_aspect), sizes):
            found = [{"class": card.class_names[int(c)], "score": round(float(s), 5),
                      "box": [round(float(v), 1) for v in b]} for b, s, c in zip(det.boxes, det.scores, det.classes)]
            labels = [f"{card.class_names[int(c)]} {s:.2f}" for c, s in zip(det.classes, det.scores)]
            rows.append(drawings.row(path, {"image_size": list(size), "detections": found}, lambda image=image, det=det,
                                     labels=labels: draw_boxes(image, det.boxes, labels=labels, color=PRED_COLOR)))
        return rows

    tables = {"detections.json": lambda rows: json.dumps(coco_results(rows, card.class_names, "detections"), indent=1),
              "detections.csv": to_csv}
    return predict_files(images, channels, rows_for, batch_size=batch_size, skip_invalid=skip_invalid, output=output,
                         tables=tables)


def to_csv(rows: list[dict[str, Any]]) -> str:
    """One line per detection (``file,class,score,x_min,y_min,x_max,y_max``); errors get a line too."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["file", "class", "score", "x_min", "y_min", "x_max", "y_max", "error"])
    for r in rows:
        if "error" in r:
            writer.writerow([r["file"], "", "", "", "", "", "", r["error"]])
        for d in r.get("detections", []):
            writer.writerow([r["file"], d["class"], d["score"], *d["box"], ""])
    return out.getvalue()


def format_table(rows: list[dict[str, Any]]) -> str:
    """A terminal listing: each file, then its detections."""
    lines = []
    for r in rows:
        if "error" in r:
            lines.append(f"{r['file']}: ERROR {r['error']}")
            continue
        lines.append(f"{r['file']}: {len(r['detections'])} detection(s)")
        for d in r["detections"]:
            lines.append(f"  {d['class']} {d['score']:.3f} [{', '.join(f'{v:g}' for v in d['box'])}]")
    return "\n".join(lines)
