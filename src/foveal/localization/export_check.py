"""Export, benchmark and serve hooks of localizers (see :mod:`foveal.export.tasks`).

The export holds the model as it is (outputs ``class`` and encoded ``box``); :func:`outputs`
decodes the box to normalised corners. Parity: the largest difference of class probabilities
and box corners, class agreement and box IoU; accuracy: mean IoU by
:func:`~foveal.localization.train.score_localizer`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# A localizer exports as it is (its outputs are already named ``class`` and ``box``) and is fed like a
# classifier: the card's size, resized as training did (localizer cards never letterbox).
from foveal.export.classify import export_card, export_graph, input_signature, model_input
from foveal.models.io import ModelCard


def _raw(source: Any, images: np.ndarray) -> dict[str, np.ndarray]:
    from foveal.export.tasks import is_runner

    out = source.raw(images) if is_runner(source) else source.predict_on_batch(images)
    return {"class": np.asarray(out["class"], np.float32), "box": np.asarray(out["box"], np.float32)}


def outputs(source: Any, card: ModelCard, images: np.ndarray) -> dict[str, np.ndarray]:
    """``class`` ``[N, K]`` (``[N, 1]`` presence for one class) and ``box`` ``[N, 4]``
    normalised corners ``(x0, y0, x1, y1)``."""
    import keras

    from foveal.localization.metrics import decode_boxes

    raw = _raw(source, images)
    return {"class": raw["class"], "box": keras.ops.convert_to_numpy(decode_boxes(raw["box"])).astype(np.float32)}


def _labels(classes: np.ndarray) -> np.ndarray:
    return (classes[:, 0] >= 0.5).astype(int) if classes.shape[1] == 1 else classes.argmax(1)


def parity(reference: dict[str, np.ndarray], exported: dict[str, np.ndarray], card: ModelCard,
           tolerance: float) -> dict[str, Any]:
    from foveal.localization.metrics import iou

    class_diff = float(np.abs(reference["class"] - exported["class"]).max()) if len(reference["class"]) else 0.0
    box_diff = float(np.abs(reference["box"] - exported["box"]).max()) if len(reference["box"]) else 0.0
    ious = np.asarray(iou(reference["box"], exported["box"]), np.float64).reshape(-1)
    diff = max(class_diff, box_diff)
    return {"passed": diff <= tolerance, "max_abs_diff": diff,
            "agreement": float((_labels(reference["class"]) == _labels(exported["class"])).mean()),
            "agreement_name": "class agreement", "max_class_diff": class_diff, "max_box_diff": box_diff,
            "mean_box_iou": float(ious.mean()) if ious.size else float("nan"),
            "min_box_iou": float(ious.min()) if ious.size else float("nan")}


def load_parts(spec: str, card: ModelCard) -> dict[str, Any]:
    from foveal.data.boxes import load_boxes
    from foveal.localization.train import drop_unboxed

    parts = load_boxes(spec, class_names=list(card.class_names))
    return {k: drop_unboxed(v, len(card.class_names)) for k, v in parts.items()}  # as evaluate does


def sample_images(part: Any, card: ModelCard, count: int) -> np.ndarray:
    from foveal.localization.pipeline import make_localization_pipeline

    h, w, c = card.input_shape
    part = part.subset(np.arange(min(count, len(part))))
    ds = make_localization_pipeline(part, image_size=(h, w), channels=c, batch_size=32, training=False, cache="none")
    return np.concatenate([x.numpy() for x, _ in ds])


def accuracy(source: Any, card: ModelCard, part: Any, limit: int | None) -> dict[str, Any]:
    """Mean IoU with the largest true box, by the localizer's own scoring."""
    from foveal.export.tasks import OutputsModel, is_runner
    from foveal.localization.train import score_localizer

    if limit is not None:
        part = part.subset(np.arange(min(limit, len(part))))
    model = OutputsModel(lambda x: _raw(source, x), (None, *card.input_shape)) if is_runner(source) else source
    metrics, _ = score_localizer(model, card, part)
    return {"metric": "mean_iou", "value": float(metrics["mean_iou"]), "class_accuracy": float(metrics["accuracy"])}


def render(row: dict[str, np.ndarray], card: ModelCard, image: tuple[int, int], top_k: int) -> dict[str, Any]:
    """``{"boxes": [{"label", "score", "box"}], "predictions": [{"label", "probability"}]}``: the
    box in the upload's pixels and the class probabilities (one class: the presence score)."""
    from foveal.localization.predict import class_and_score

    width, height = image
    names = list(card.class_names)
    label, score = class_and_score(row["class"], names)
    box = row["box"] * np.array([width, height, width, height], np.float32)
    if len(names) == 1:
        predictions = [{"label": label, "probability": round(score, 6)}]
    else:
        order = np.argsort(-row["class"], kind="stable")[:max(1, min(top_k, len(names)))]
        predictions = [{"label": names[i], "probability": round(float(row["class"][i]), 6)} for i in order]
    return {"boxes": [{"label": label, "score": round(score, 6), "box": [round(float(v), 1) for v in box]}],
            "predictions": predictions}


__all__ = ["accuracy", "export_card", "export_graph", "input_signature", "load_parts", "model_input", "outputs", "parity",
           "render", "sample_images"]
