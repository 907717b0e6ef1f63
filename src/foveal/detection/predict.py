"""``foveal detect predict``: image files -> boxes, scores and classes in each image's pixels.

The model file holds everything: the card gives class names, input size and whether inputs
were letterboxed; the detector's own predict step decodes the grid and runs non-max
suppression. With an output folder, every image is written with its labelled boxes, plus
``detections.json`` (COCO results, with an ``images`` table that maps ids to files) and
``detections.csv`` (one row per box).

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
from foveal.predict import collect_images, predict_in_batches
from foveal.utils_io import atomic_path, atomic_write_text, printable_path

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
    """Detections for each image file (folders are searched recursively).

    Args:
        model, card: from :func:`foveal.models.load_model` of a detector.
        images: files and/or folders.
        batch_size: images per forward pass.
        output: folder for the drawn images, ``detections.json`` and ``detections.csv``.
        skip_invalid: report unreadable files as rows with ``"error"`` instead of raising.

    Returns:
        One dict per image: ``file``, ``image_size`` ([width, height]), ``detections`` (a list
        of ``{"class", "score", "box"}``, boxes as pixel corners), and ``drawn`` when written.
    """
    from foveal.localization.predict import decode_file

    check_card(card)
    files = collect_images(images)
    h, w, channels = card.input_shape
    keep_aspect = bool(card.training.get("keep_aspect", False))
    out_dir = Path(output) if output is not None else None
    used: set[str] = set()

    def rows_for(batch: list[tuple[Path, np.ndarray]]) -> list[dict[str, Any]]:
        outputs = model.predict_on_batch(model_inputs([im for _, im in batch], (h, w), keep_aspect))
        outputs = {k: np.asarray(v) for k, v in outputs.items()}
        sizes = [(int(im.shape[1]), int(im.shape[0])) for _, im in batch]
        rows = []
        for (path, image), det, (width, height) in zip(batch, split_outputs(outputs, sizes, (h, w), keep_aspect), sizes):
            found = [{"class": card.class_names[int(c)], "score": round(float(s), 5),
                      "box": [round(float(v), 1) for v in b]} for b, s, c in zip(det.boxes, det.scores, det.classes)]
            row: dict[str, Any] = {"file": printable_path(path), "image_size": [width, height], "detections": found}
            if out_dir is not None:
                row["drawn"] = str(_write_drawn(out_dir, path, image, det, card.class_names, used))
            rows.append(row)
        return rows

    rows = predict_in_batches(files, lambda path: decode_file(path, channels), rows_for,
                              batch_size=batch_size, skip_invalid=skip_invalid)
    if out_dir is not None:
        atomic_write_text(out_dir / "detections.json", json.dumps(to_coco(rows, card.class_names), indent=1))
        atomic_write_text(out_dir / "detections.csv", to_csv(rows))
    return rows


def _write_drawn(folder: Path, source: Path, image: np.ndarray, det, class_names, used: set[str]) -> Path:
    """Save ``image`` with its detections drawn as ``folder/<stem>.png`` (``_2`` on a name clash)."""
    from PIL import Image

    from foveal.localization.draw import PRED_COLOR, draw_boxes

    stem, k = source.stem, 1
    name = f"{stem}.png"
    while name in used:
        k += 1
        name = f"{stem}_{k}.png"
    used.add(name)
    labels = [f"{class_names[int(c)]} {s:.2f}" for c, s in zip(det.classes, det.scores)]
    target = folder / name
    with atomic_path(target) as tmp:
        Image.fromarray(draw_boxes(image, det.boxes, labels=labels, color=PRED_COLOR)).save(tmp, format="PNG")
    return target


def to_coco(rows: list[dict[str, Any]], class_names: list[str]) -> dict[str, Any]:
    """COCO-style output: ``images`` (id, file_name, width, height), ``categories`` and
    ``annotations`` as COCO results records (``bbox`` [x, y, w, h], ``score``)."""
    images, results = [], []
    for image_id, row in enumerate((r for r in rows if "error" not in r), start=1):
        width, height = row["image_size"]
        images.append({"id": image_id, "file_name": row["file"], "width": width, "height": height})
        for d in row["detections"]:
            x0, y0, x1, y1 = d["box"]
            results.append({"image_id": image_id, "category_id": class_names.index(d["class"]) + 1,
                            "bbox": [x0, y0, round(x1 - x0, 1), round(y1 - y0, 1)], "score": d["score"]})
    categories = [{"id": i, "name": n} for i, n in enumerate(class_names, start=1)]
    return {"images": images, "categories": categories, "annotations": results}


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


__all__ = ["format_table", "model_inputs", "predict_detections", "to_coco", "to_csv"]
