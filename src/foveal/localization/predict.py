"""``foveal localize predict``: image files -> class, score and box in the image's own pixels.

The card gives the class names and input size; each image is stretched to it as in training
and the predicted box is scaled back to the original width and height.

Example:
    >>> model, card = load_model("runs/raccoon/best.keras")  # doctest: +SKIP
    >>> rows = predict_boxes(model, card, ["raccoon.jpg"], output="boxed/")  # doctest: +SKIP
    >>> rows[0]  # doctest: +SKIP
    {'file': 'raccoon.jpg', 'class': 'raccoon', 'score': 0.99, 'box': [81.2, 90.4, 510.0, 401.3], ...}
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any, Iterable

import keras
import numpy as np

from foveal.errors import require_task
from foveal.localization.metrics import decode_boxes
from foveal.models.io import ModelCard
from foveal.predict import to_json
from foveal.prediction import Drawings, predict_files, rows_csv
from foveal.visualize.draw import PRED_COLOR, draw_boxes

CSV_COLUMNS = ("file", "class", "score", "x_min", "y_min", "x_max", "y_max", "image_width", "image_height")


check_card = partial(require_task, task="localize", hint="use `foveal predict` for classifiers, or a model written by `foveal localize train`")


def class_and_score(class_output: np.ndarray, class_names: list[str]) -> tuple[str, float]:
    """The predicted class and its probability (the presence score for one class)."""
    if len(class_names) == 1:
        return class_names[0], float(class_output[0])
    k = int(np.argmax(class_output))
    return class_names[k], float(class_output[k])


def predict_boxes(
    model: keras.Model,
    card: ModelCard,
    images: Iterable[str | Path],
    *,
    batch_size: int = 16,
    output: str | Path | None = None,
    skip_invalid: bool = False,
) -> list[dict[str, Any]]:
    """Class, score and box for each image file (folders are searched recursively).

    Args:
        output: folder for each image with its box drawn (PNG) and ``predictions.csv``/``.json``;
            None writes nothing.
        skip_invalid: report unreadable files as rows with ``"error"`` instead of raising.

    Returns:
        One dict per image: ``file``, ``class``, ``score``, ``box`` (corners in the image's
        pixels), ``image_size`` (``[width, height]``) and, when drawn, ``drawn``.
    """
    from foveal.detection.predict import model_inputs

    check_card(card)
    h, w, channels = card.input_shape
    drawings = Drawings(output)

    def rows_for(batch: list[tuple[Path, np.ndarray]]) -> list[dict[str, Any]]:
        out = model.predict_on_batch(model_inputs([im for _, im in batch], (h, w), keep_aspect=False))  # stretched
        boxes = keras.ops.convert_to_numpy(decode_boxes(out["box"]))  # normalised corners
        rows = []
        for (path, image), cls_out, box in zip(batch, np.asarray(out["class"]), boxes):
            height, width = image.shape[:2]
            name, score = class_and_score(cls_out, card.class_names)
            pixels = box * np.array([width, height, width, height], np.float32)
            fields = {"class": name, "score": round(score, 6), "box": [round(float(v), 1) for v in pixels],
                      "image_size": [int(width), int(height)]}
            rows.append(drawings.row(path, fields, lambda image=image, pixels=pixels, label=f"{name} {score:.2f}":
                                     draw_boxes(image, [pixels], labels=[label], color=PRED_COLOR)))
        return rows

    return predict_files(images, channels, rows_for, batch_size=batch_size, skip_invalid=skip_invalid, output=output,
                         tables={"predictions.csv": to_csv, "predictions.json": to_json})


def to_csv(rows: list[dict[str, Any]]) -> str:
    """One line per image: file, class, score, box corners, image size (errors leave them empty)."""
    return rows_csv(rows, CSV_COLUMNS, lambda r: [[r["file"], r["class"], r["score"], *r["box"], *r["image_size"]]])


def format_table(rows: list[dict[str, Any]]) -> str:
    """A terminal table: file, class (score), box."""
    from foveal.prediction import file_table

    return file_table(rows, lambda r: f"{r['class']} ({r['score']:.3f})  [{', '.join(f'{v:g}' for v in r['box'])}]",
                      width=50)
