"""Export, benchmark and serve hooks of classifiers (see :mod:`foveal.export.tasks`).

Classifiers have no task package of their own; their export knowledge lives here. Parity is
the largest absolute difference of the probabilities (and top-1 agreement); accuracy is top-1
on the dataset's images through the training pipeline's decode and resize.
"""

from __future__ import annotations

from typing import Any, Iterator

import numpy as np

from foveal.models.io import ModelCard


def export_graph(model: Any, card: ModelCard) -> Any:
    """The classifier itself: its one output is exported as ``probabilities``."""
    return model


def input_signature(card: ModelCard) -> tuple[int | None, ...]:
    return tuple(card.input_shape)


def export_card(model: Any, card: ModelCard) -> ModelCard:
    return card


def model_input(image: np.ndarray, card: ModelCard) -> np.ndarray:
    """One decoded uint8 image (its own size) resized to the model's input as training does."""
    from foveal.data.pipeline import resize_image

    h, w = card.input_shape[:2]
    return np.asarray(resize_image(image, (h, w), card.keep_aspect))


def outputs(source: Any, card: ModelCard, images: np.ndarray) -> dict[str, np.ndarray]:
    """``{"probabilities": [N, K]}`` from a runner or from ``model.predict_on_batch``."""
    from foveal.export.tasks import is_runner

    probs = source(images) if is_runner(source) else source.predict_on_batch(images)
    return {"probabilities": np.asarray(probs, np.float32)}


def parity(reference: dict[str, np.ndarray], exported: dict[str, np.ndarray], card: ModelCard,
           tolerance: float) -> dict[str, Any]:
    ref, got = reference["probabilities"], exported["probabilities"]
    diff = float(np.abs(ref - got).max()) if ref.size else 0.0
    agreement = float((ref.argmax(1) == got.argmax(1)).mean()) if len(ref) else 1.0
    return {"passed": diff <= tolerance, "max_abs_diff": diff, "agreement": agreement,
            "agreement_name": "top-1 agreement"}


def _batches(part, card: ModelCard, batch_size: int, limit: int | None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    from foveal.data.pipeline import make_pipeline

    h, w, c = card.input_shape
    ds = make_pipeline(part, image_size=(h, w), channels=c, batch_size=batch_size, training=False,
                       keep_aspect=card.keep_aspect, one_hot=False, cache="none")
    seen = 0
    for x, y in ds:
        x, y = x.numpy(), y.numpy()
        if limit is not None and seen + len(x) > limit:
            x, y = x[: limit - seen], y[: limit - seen]
        yield x, y
        seen += len(x)
        if limit is not None and seen >= limit:
            return


def load_parts(spec: str, card: ModelCard) -> dict[str, Any]:
    from foveal.data.readers import load_dataset

    return load_dataset(spec)


def sample_images(part: Any, card: ModelCard, count: int) -> np.ndarray:
    return np.concatenate([x for x, _ in _batches(part, card, 64, count)])


def accuracy(source: Any, card: ModelCard, part: Any, limit: int | None) -> dict[str, Any]:
    """Top-1 accuracy of a Keras model or a runner on (up to ``limit`` images of) ``part``."""
    from foveal.evaluation.run import align_classes

    correct = total = 0
    for x, y in _batches(align_classes(part, card), card, 64, limit):
        correct += int((outputs(source, card, x)["probabilities"].argmax(axis=1) == y).sum())
        total += len(y)
    return {"metric": "accuracy", "value": correct / max(total, 1)}


def render(row: dict[str, np.ndarray], card: ModelCard, image: tuple[int, int], top_k: int) -> dict[str, Any]:
    """``{"predictions": [{"label", "probability"}, ...]}``, the ``top_k`` most probable first."""
    probs = row["probabilities"]
    names = card.class_names
    k = max(1, min(top_k, len(names)))
    order = np.argsort(-probs, kind="stable")[:k]
    return {"predictions": [{"label": names[i], "probability": round(float(probs[i]), 6)} for i in order]}


__all__ = ["accuracy", "export_card", "export_graph", "input_signature", "load_parts", "outputs", "parity",
           "render", "sample_images"]
