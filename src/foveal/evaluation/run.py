"""Run a classifier over a dataset and score it: used by ``train`` (test split) and ``evaluate``.

Example:
    >>> metrics = evaluate("runs/digits-demo/best.keras", "digits", tta="flip")  # doctest: +SKIP
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from tqdm import tqdm

from foveal.data.decode import decode_errors_as_data_errors
from foveal.data.pipeline import make_pipeline
from foveal.data.source import LabeledImages
from foveal.errors import DataError
from foveal.evaluation.classes import ClassMap, match_classes, parse_class_map, relabel
from foveal.evaluation.classification import classification_metrics, collapse_warning
from foveal.evaluation.tta import average_views, check_tta
from foveal.models.io import ModelCard, load_model
from foveal.utils_io import ensure_output_dir, write_metrics


@dataclass
class Scored:
    """Predictions of a model on a dataset, with its metrics and a sample of its mistakes."""

    labels: np.ndarray
    probs: np.ndarray
    metrics: dict[str, Any]
    misclassified_images: np.ndarray = field(default_factory=lambda: np.zeros((0, 1, 1, 1), np.uint8))
    misclassified_titles: list[str] = field(default_factory=list)


def score(model: keras.Model, card: ModelCard, data: LabeledImages, *, batch_size: int = 64, top_k: int = 5,
          keep_misclassified: int = 32, skip_invalid: bool = False, tta: str = "none",
          class_map: ClassMap = None) -> Scored:
    """Predict every image of ``data`` (classes matched by :func:`align_classes`; ``tta``:
    :mod:`foveal.evaluation.tta`) and compute the classification metrics. Labels come from the
    pipeline itself, so skipped files cannot misalign them."""
    check_tta(tta)
    data = align_classes(data, card, class_map)
    h, w, c = card.input_shape
    ds = make_pipeline(data, image_size=(h, w), channels=c, batch_size=batch_size, training=False,
                       keep_aspect=card.keep_aspect, skip_invalid=skip_invalid, one_hot=False, cache="none")
    labels, probs, bad_images, bad_titles = [], [], [], []
    forward = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    batches = math.ceil(len(data) / batch_size)
    progress = tqdm(ds, total=batches, desc="evaluating", unit="batch", leave=False,
                    disable=not sys.stderr.isatty() or batches < 20)
    with decode_errors_as_data_errors(data.origin):
        for images, y in progress:
            p = average_views(forward, images, tta)
            y = y.numpy()
            labels.append(y)
            probs.append(p)
            if len(bad_titles) < keep_misclassified:
                pred = p.argmax(axis=1)
                for i in np.flatnonzero(pred != y)[: keep_misclassified - len(bad_titles)]:
                    bad_images.append(np.clip(images[i].numpy(), 0, 255).astype(np.uint8))
                    bad_titles.append(f"true {card.class_names[y[i]]}\npred {card.class_names[pred[i]]} ({p[i, pred[i]]:.2f})")
    if not labels:
        raise DataError(f"{data.origin}: no images to evaluate")
    labels_arr, probs_arr = np.concatenate(labels), np.concatenate(probs)
    metrics = classification_metrics(labels_arr, probs_arr, card.class_names, top_k=top_k)
    images_arr = np.stack(bad_images) if bad_images else np.zeros((0, h, w, c), np.uint8)
    return Scored(labels_arr, probs_arr, metrics, images_arr, bad_titles)


def align_classes(data: LabeledImages, card: ModelCard, class_map: ClassMap = None) -> LabeledImages:
    """Relabel ``data`` to the model's class order, by name or ``class_map``
    (:mod:`foveal.evaluation.classes`); an unknown class is an error listing both sets."""
    if data.class_names == card.class_names and not class_map:
        return data
    mapping = match_classes(card.class_names, data.class_names, parse_class_map(class_map), origin=data.origin)
    return replace(data, labels=relabel(data.labels, mapping), class_names=list(card.class_names))


def evaluate(model_path: str | Path, data: str, *, split: str = "test", batch_size: int = 64, top_k: int = 5,
             output: str | Path | None = None, skip_invalid: bool = False, tta: str = "none",
             class_map: ClassMap = None) -> dict[str, Any]:
    """The metrics of a saved model on a dataset split (a dataset of one part: that part); with
    ``output``, also written there with plots."""
    from foveal.data.readers import load_dataset
    from foveal.prediction import check_counts

    check_counts(batch_size=batch_size, top_k=top_k)
    if output is not None:
        ensure_output_dir(output, "--output")  # before the work, not after it
    model, card = load_model(model_path)
    parts = load_dataset(data, skip_invalid=skip_invalid)
    if split in parts:
        part = parts[split]
    elif len(parts) == 1:
        part = next(iter(parts.values()))
    else:
        raise DataError(f"{data}: has no {split!r} part (it has {', '.join(parts)})",
                        hint="choose one with --split")
    class_map = parse_class_map(class_map)
    scored = score(model, card, part, batch_size=batch_size, top_k=top_k, skip_invalid=skip_invalid, tta=tta,
                   class_map=class_map)
    metrics = scored.metrics | {"model": str(model_path), "data": data, "split": split, "tta": tta}
    if class_map:
        metrics["class_map"] = class_map
    warning = collapse_warning(metrics)
    if warning:
        metrics["warnings"] = [warning]
        print(f"warning: {warning}", file=sys.stderr)
    if output is not None:
        write_evaluation(Path(output), metrics, card, scored)
    return metrics


def write_evaluation(output: Path, metrics: dict[str, Any], card: ModelCard, scored: Scored) -> None:
    """metrics.json, confusion_matrix.png and report.html in ``output``."""

    from foveal.visualize.plots import plot_confusion_matrix
    from foveal.visualize.report import write_classification_report

    write_metrics(output, metrics)
    (output / "confusion_matrix.png").write_bytes(plot_confusion_matrix(metrics["confusion_matrix"], card.class_names))
    misclassified = (scored.misclassified_images, scored.misclassified_titles) if scored.misclassified_titles else None
    write_classification_report(
        output / "report.html", title=f"Evaluation of {metrics.get('model', card.architecture)}",
        summary={"model": str(metrics.get("model")), "data": str(metrics.get("data")),
                 "split": str(metrics.get("split")), "images": metrics["num_examples"],
                 "accuracy": round(metrics["accuracy"], 4),
                 **({"warning": " / ".join(metrics["warnings"])} if metrics.get("warnings") else {})},
        config={}, history=None, metrics=metrics, misclassified=misclassified,
    )
