"""``foveal predict``: image files or folders -> a classifier's top-k labels with probabilities.

Example:
    >>> model, card = load_model("runs/digits-demo/best.keras")  # doctest: +SKIP
    >>> rows = predict(model, card, ["my_digit.png"], top_k=3)  # doctest: +SKIP
    >>> rows[0]["predictions"][0]  # doctest: +SKIP
    {'label': '7', 'probability': 0.98}
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any, Iterable

import keras
import numpy as np

from foveal.data.files import collect_images, load_image
from foveal.models.io import ModelCard
from foveal.prediction import check_counts, file_table, predict_in_batches
from foveal.utils_io import printable_path


def predict(model: keras.Model, card: ModelCard, images: Iterable[str | Path], *, top_k: int = 5,
            batch_size: int = 32, skip_invalid: bool = False) -> list[dict[str, Any]]:
    """Top-k predictions for each image file (folders are expanded): one ``{"file", "predictions"}``
    row per image (``"error"`` instead for a file ``skip_invalid`` skipped)."""
    check_counts(top_k=top_k, batch_size=batch_size)
    files = collect_images(images)
    k = min(top_k, len(card.class_names))

    def rows_for(batch: list[tuple[Path, np.ndarray]]) -> list[dict[str, Any]]:
        probs = np.asarray(model.predict_on_batch(np.stack([im for _, im in batch]).astype(np.float32)))
        rows = []
        for (path, _), p in zip(batch, probs):
            order = np.argsort(-p, kind="stable")[:k]
            rows.append({"file": printable_path(path), "predictions": [
                {"label": card.class_names[i], "probability": round(float(p[i]), 6)} for i in order]})
        return rows

    return predict_in_batches(files, lambda path: load_image(path, card), rows_for,
                              batch_size=batch_size, skip_invalid=skip_invalid)


def format_table(rows: list[dict[str, Any]]) -> str:
    """A terminal table: file, then 'label (probability)' for each of the top k."""
    return file_table(rows, lambda r: "  ".join(f"{p['label']} ({p['probability']:.3f})" for p in r["predictions"]))


def to_csv(rows: list[dict[str, Any]]) -> str:
    """CSV with columns file, rank, label, probability (one row per prediction)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["file", "rank", "label", "probability", "error"])
    for r in rows:
        if "error" in r:
            writer.writerow([r["file"], "", "", "", r["error"]])
        for rank, p in enumerate(r.get("predictions", []), start=1):
            writer.writerow([r["file"], rank, p["label"], p["probability"], ""])
    return out.getvalue()


def to_json(rows: list[dict[str, Any]]) -> str:
    return json.dumps(rows, indent=1)
