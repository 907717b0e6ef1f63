"""Export, benchmark and serve hooks of segmenters (see :mod:`foveal.export.tasks`).

The export leaves height and width free, so it predicts any image size exactly as ``foveal
segment predict`` does, tiles included. Parity: the largest probability difference and the
pixel agreement of the two masks; accuracy: mean IoU by
:func:`~foveal.segmentation.train.score_segmenter`. The served answer carries the mask as a
palette PNG (pixel value = class index; background transparent) and each class's share.
"""

from __future__ import annotations

import base64
import io
from typing import Any

import numpy as np

# The segmenter is exported as it is (its one output is ``probabilities``), with its own card.
from foveal.export.classify import export_card, export_graph
from foveal.models.io import ModelCard

MASK_OPACITY = 0.5  # how opaque the page paints classes over the photo


def input_signature(card: ModelCard) -> tuple[int | None, ...]:
    """Free height and width: the model is fully convolutional."""
    return (None, None, card.input_shape[-1])


def _as_model(source: Any, card: ModelCard) -> Any:
    """A Keras model as it is; a runner wrapped to be called like one."""
    from foveal.export.tasks import OutputsModel, is_runner

    return OutputsModel(lambda x: source(x), (None, *input_signature(card))) if is_runner(source) else source


def model_input(image: np.ndarray, card: ModelCard) -> np.ndarray:
    """One decoded uint8 image as ``segment predict`` feeds it: stretched to the training
    ``image_size``, or at its own size for a model trained at native resolution (on crops)."""
    from foveal.data.pipeline import resize_image

    size = card.training.get("image_size")
    if not size:
        return np.asarray(image)
    return np.asarray(resize_image(image, tuple(size), keep_aspect=False))


def outputs(source: Any, card: ModelCard, images: np.ndarray) -> dict[str, np.ndarray]:
    """``{"probabilities": [N, H, W, K]}`` at the images' own size, each image predicted as
    ``segment predict`` does (padded to the stride, tiled when larger than the card's tile)."""
    from foveal.segmentation.predict import DEFAULT_TILE, sliding_window

    model = _as_model(source, card)
    tile, stride = int(card.training.get("tile", DEFAULT_TILE)), int(card.training.get("stride", 32))
    probs = [sliding_window(model, np.asarray(image, np.float32), tile=tile, stride=stride) for image in images]
    return {"probabilities": np.stack(probs).astype(np.float32)}


def parity(reference: dict[str, np.ndarray], exported: dict[str, np.ndarray], card: ModelCard,
           tolerance: float) -> dict[str, Any]:
    ref, got = reference["probabilities"], exported["probabilities"]
    diff = float(np.abs(ref - got).max()) if ref.size else 0.0
    same = ref.argmax(-1) == got.argmax(-1)
    per_image = same.reshape(len(same), -1).mean(axis=1) if len(same) else np.ones(1)
    return {"passed": diff <= tolerance, "max_abs_diff": diff, "agreement": float(same.mean()) if same.size else 1.0,
            "agreement_name": "mask pixel agreement", "min_image_pixel_agreement": float(per_image.min())}


def load_parts(spec: str, card: ModelCard) -> dict[str, Any]:
    """Every image/mask pair of the folder ``spec`` (as ``foveal segment evaluate --split all``)."""
    from foveal.segmentation.train import card_config, read_folder

    return {"all": read_folder(spec, card_config(card, spec), list(card.class_names))}


def sample_images(part: Any, card: ModelCard, count: int) -> np.ndarray:
    """The first ``count`` images, decoded as ``segment predict`` does and resized to the card's input."""
    from foveal.data.files import decode_file
    from foveal.data.pipeline import resize_image

    h, w, c = card.input_shape
    return np.stack([np.asarray(resize_image(decode_file(path, c), (h, w), keep_aspect=False), np.float32)
                     for path in part.image_paths[:count]])


def accuracy(source: Any, card: ModelCard, part: Any, limit: int | None) -> dict[str, Any]:
    """Mean IoU over classes (and pixel accuracy), by the segmenter's own scoring."""
    from foveal.segmentation.train import score_segmenter

    if limit is not None:
        part = part.subset(np.arange(min(limit, len(part))))
    metrics, _ = score_segmenter(_as_model(source, card), card, part)
    return {"metric": "mean_iou", "value": float(metrics["mean_iou"]),
            "pixel_accuracy": float(metrics["pixel_accuracy"])}


def mask_png(labels: np.ndarray, card: ModelCard) -> bytes:
    """``labels`` (HxW class indices) as a palette PNG in the classes' colours; the classes an
    overlay leaves alone (``background``) are transparent."""
    from PIL import Image

    from foveal.segmentation.predict import class_colours, unpainted

    colours = class_colours(card)
    palette = np.zeros((256, 3), np.uint8)
    palette[:len(colours)] = colours
    alpha = bytearray([round(255 * MASK_OPACITY)] * len(colours))
    for k in unpainted(card):
        alpha[k] = 0
    image = Image.fromarray(labels.astype(np.uint8), mode="P")
    image.putpalette(palette.ravel().tolist())
    out = io.BytesIO()
    image.save(out, "PNG", transparency=bytes(alpha), optimize=True)
    return out.getvalue()


def render(row: dict[str, np.ndarray], card: ModelCard, image: tuple[int, int], top_k: int) -> dict[str, Any]:
    """``{"mask": {"width", "height", "format": "png", "data": BASE64}, "classes": [{"label",
    "index", "pixels", "fraction", "colour"}]}`` at the upload's size, largest class first."""
    import tensorflow as tf

    from foveal.segmentation.predict import class_colours

    width, height = image
    probs = row["probabilities"]
    if probs.shape[:2] != (height, width):  # as predict_probabilities maps back to the image's size
        probs = tf.image.resize(probs, (height, width), method="bilinear").numpy()
    labels = probs.argmax(-1).astype(np.uint8)
    counts = np.bincount(labels.ravel(), minlength=len(card.class_names))
    colours = class_colours(card)
    classes = [{"label": card.class_names[k], "index": int(k), "pixels": int(counts[k]),
                "fraction": round(float(counts[k]) / labels.size, 6), "colour": [int(v) for v in colours[k]]}
               for k in np.argsort(-counts, kind="stable") if counts[k]]
    return {"mask": {"width": width, "height": height, "format": "png",
                     "data": base64.b64encode(mask_png(labels, card)).decode("ascii")},
            "classes": classes}


__all__ = ["accuracy", "export_card", "export_graph", "input_signature", "load_parts", "mask_png", "outputs",
           "parity", "render", "sample_images"]
