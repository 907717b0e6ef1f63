"""Export, benchmark and serve hooks of enhancement models (see :mod:`foveal.export.tasks`).

The export holds the fully convolutional model with height and width left free
(``[N, None, None, C]``; a zoo encoder's fixed size otherwise), so an export enhances images of
any size exactly as ``foveal enhance predict`` does, tiles included. Parity: the largest
difference of the enhanced pixels (in [0, 1]) and the share of pixels whose 8-bit values agree.
A 1-channel (luma) model given a colour image answers in colour (Y through the network, Cb/Cr
upscaled bicubic), through Keras and through every export's runner alike.
Accuracy: the headline PSNR by :func:`~foveal.enhancement.score.score_enhancer`, the task's own
evaluation, run on the export. The ``/predict`` answer (``render``) carries the enhanced image
as a PNG (``enhanced``), which ``foveal serve``'s page shows beside the upload.
"""

from __future__ import annotations

import base64
import io
from typing import Any

import numpy as np

from foveal.models.io import ModelCard

#: ``outputs`` enhances each image on its own (tiled at its own size): the server does not pad batches
PER_IMAGE = True


def export_graph(model: Any, card: ModelCard) -> Any:
    """The model itself: its one output is exported as ``enhanced``."""
    return model


def output_scale(card: ModelCard) -> int:
    """The upscaling factor (1 for denoising)."""
    return int(card.training.get("scale", 1))


def input_signature(card: ModelCard) -> tuple[int | None, ...]:
    """Free height and width, unless the model has a fixed input (a zoo encoder)."""
    fixed = card.training.get("fixed_size")
    return (int(fixed), int(fixed), card.input_shape[-1]) if fixed else (None, None, card.input_shape[-1])


def export_card(model: Any, card: ModelCard) -> ModelCard:
    return card


def decode_channels(card: ModelCard) -> int:
    """Uploads are decoded in colour for a 1-channel (luma) model too, so that colour comes back in colour."""
    return 3 if card.input_shape[-1] == 1 else card.input_shape[-1]


def model_input(image: np.ndarray, card: ModelCard) -> np.ndarray:
    """One decoded uint8 image at its own size (the model is fully convolutional; tiling does the rest);
    a gray upload to a 1-channel model as one channel, a colour one kept in colour
    (:func:`~foveal.enhancement.predict.enhance` runs it through the luma path)."""
    from foveal.enhancement.predict import as_model_channels

    return as_model_channels(np.asarray(image), card)


def _as_model(source: Any, card: ModelCard) -> Any:
    from foveal.export.tasks import OutputsModel, is_runner

    if not is_runner(source):
        return source

    def call(x: np.ndarray) -> np.ndarray:
        out = source(x)
        return next(iter(out.values())) if isinstance(out, dict) else out

    return OutputsModel(call, (None, *input_signature(card)))


def outputs(source: Any, card: ModelCard, images: np.ndarray) -> dict[str, np.ndarray]:
    """``{"enhanced": [N, H*s, W*s, C]}`` in [0, 1], each image enhanced as ``enhance predict`` does."""
    from foveal.enhancement.predict import enhance

    model = _as_model(source, card)
    return {"enhanced": np.stack([enhance(model, card, np.asarray(im, np.float32)) for im in images])}


def parity(reference: dict[str, np.ndarray], exported: dict[str, np.ndarray], card: ModelCard,
           tolerance: float) -> dict[str, Any]:
    ref, got = reference["enhanced"], exported["enhanced"]
    diff = float(np.abs(ref - got).max()) if ref.size else 0.0
    same = np.round(ref * 255) == np.round(got * 255)
    mse = float(np.mean((ref - got) ** 2)) if ref.size else 0.0
    return {"passed": diff <= tolerance, "max_abs_diff": diff, "agreement": float(same.mean()) if same.size else 1.0,
            "agreement_name": "8-bit pixel agreement",
            "psnr_between_db": None if mse == 0 else float(10 * np.log10(1.0 / mse))}


def load_parts(spec: str, card: ModelCard) -> dict[str, Any]:
    """The images of ``spec`` (a folder, or a dataset of arrays with its parts)."""
    from foveal.enhancement.data import read_images

    return read_images(spec, channels=card.input_shape[-1])


def sample_images(part: Any, card: ModelCard, count: int) -> np.ndarray:
    """The first ``count`` images, cut (or mirror-padded) to the card's input size."""
    from foveal.enhancement.predict import _pad_to

    h, w, _ = card.input_shape
    return np.stack([_pad_to(part.load(i).astype(np.float32), h, w)[:h, :w] for i in range(min(count, len(part)))])


def accuracy(source: Any, card: ModelCard, part: Any, limit: int | None) -> dict[str, Any]:
    """The headline PSNR (dB) of the enhanced images, by the task's own scoring."""
    from foveal.enhancement.score import score_enhancer

    metrics, _ = score_enhancer(_as_model(source, card), card, part, limit=limit)
    h = metrics["headline"]
    return {"metric": f"{h} (dB)", "value": float(metrics["model"][h]), "baseline": metrics["baseline"][h]}


def render(row: dict[str, np.ndarray], card: ModelCard, image: tuple[int, int], top_k: int) -> dict[str, Any]:
    """``{"enhanced": {"width", "height", "format": "png", "data": BASE64}, "scale": S}`` of the enhanced image."""
    from PIL import Image

    from foveal.enhancement.predict import to_uint8

    pixels = to_uint8(row["enhanced"])
    out = io.BytesIO()
    Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels).save(out, "PNG")
    return {"scale": output_scale(card), "enhanced": {"width": int(pixels.shape[1]), "height": int(pixels.shape[0]), "format": "png",
                      "data": base64.b64encode(out.getvalue()).decode("ascii")}}


__all__ = ["PER_IMAGE", "accuracy", "decode_channels", "export_card", "export_graph", "input_signature", "load_parts", "model_input",
           "output_scale", "outputs", "parity", "render", "sample_images"]
