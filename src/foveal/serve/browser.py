"""The "run in the browser" side of ``foveal serve``: the model as ONNX, and ONNX Runtime Web.

The page can run the model without sending the image anywhere: it fetches the model's ONNX
export (``GET /model.onnx``, float32 NHWC pixels 0..255 with the preprocessing inside) and its
card (``GET /model.json``), and runs it with ONNX Runtime Web's single-threaded wasm backend,
whose files ``scripts/fetch_ort_web.sh`` copies into ``static/ort/`` (git-ignored, ~11 MB).
For the other tasks the card carries what the page needs to finish the job as the server does:
a detector's anchors and post-processing (the page decodes and runs class-aware NMS), a
segmenter's class colours, an enhancer's scale, input multiple, tile size and baseline
interpolation (the page enhances each image at its own size, tiled as ``foveal enhance predict``
tiles, and answers a colour photo given to a luma model in colour: Y through the network, Cb/Cr
upscaled by the baseline, full-range BT.601 as :func:`foveal.enhancement.predict.join_luma`).
Detectors that letterbox (``keep_aspect``), segmenters trained at native resolution, enhancers
with a fixed input size (a zoo encoder) and generators are not run in the browser
(:func:`browser_supported`): the page's resize is TensorFlow's ``resize_with_pad`` to the card's
input, not the training letterbox.

Unless a file is given, the export is made once at start-up with
:func:`foveal.export.parity.export_model` (which checks parity with the Keras model) into a
cache folder beside the model, keyed by the model file's hash, so a restart reuses it. A failed
export is not fatal: the server logs a warning and the page offers no browser switch.

Example:
    >>> browser = prepare_browser_model("runs/digits/best.keras", card)  # doctest: +SKIP
    >>> browser.path  # doctest: +SKIP
    PosixPath('runs/digits/.foveal-cache/best-3f1c2a9be0d4e6f7.onnx')
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from foveal.errors import FovealError, ModelError
from foveal.models.io import ModelCard

log = logging.getLogger("foveal.serve")

ORT_DIR = Path(__file__).resolve().parent / "static" / "ort"
# The wasm-only bundle of onnxruntime-web and what it loads (see scripts/fetch_ort_web.sh).
ORT_FILES = ("ort.wasm.min.js", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")
CACHE_DIR = ".foveal-cache"


def runtime_available(folder: Path = ORT_DIR) -> bool:
    """Whether ONNX Runtime Web's files are there for the page to load."""
    return all((folder / name).is_file() for name in ORT_FILES)


@dataclass(frozen=True)
class BrowserModel:
    """An ONNX file the page can run, and the card it is served with."""

    path: Path
    card: ModelCard

    def description(self) -> dict[str, Any]:
        """The ``/model.json`` answer: what the page needs to feed the model and read it."""
        card = self.card
        h, w, c = card.input_shape
        return {**_task_details(self.path, card),
            "architecture": card.architecture,
            "task": card.task,
            "class_names": list(card.class_names),
            "input_shape": [h, w, c],
            "channel_order": card.channel_order,
            "keep_aspect": card.keep_aspect,
            "input": {"layout": "NHWC", "dtype": "float32", "range": [0, 255]},
            "onnx": {"url": "/model.onnx", "size_bytes": self.path.stat().st_size},
        }


def _task_details(path: Path, card: ModelCard) -> dict[str, Any]:
    """What a task's page code needs beyond the pixels: a detector's anchors and thresholds
    (from the card written beside its export), a segmenter's colours."""
    if card.task == "detect":
        from foveal.detection.export_check import postprocess_settings
        from foveal.export.runners import card_path_for

        written = card_path_for(path)
        if written.is_file():
            card = ModelCard.from_json(written.read_text())
        return {"detect": {"anchors": card.training["anchors"], "postprocess": postprocess_settings(card)}}
    if card.task == "segment":
        from foveal.segmentation.export_check import MASK_OPACITY
        from foveal.segmentation.predict import class_colours, unpainted

        return {"segment": {"colours": class_colours(card).tolist(), "transparent": unpainted(card),
                            "opacity": MASK_OPACITY}}
    if card.task == "enhance":
        from foveal.enhancement.predict import geometry

        g = geometry(card)
        return {"enhance": {"scale": g["scale"], "multiple": g["multiple"], "tile": g["tile"],
                            "baseline": card.training.get("baseline", "bicubic")}}
    return {}


def browser_supported(card: ModelCard) -> bool:
    """Whether the page's in-browser mode can run this model as the server does: not a
    detector that letterboxes or is a Faster R-CNN, nor a segmenter that works at the image's own resolution (the
    page feeds the card's input size), nor an enhancer with a fixed input size."""
    if card.task == "detect":  # a Faster R-CNN has no ONNX export to run in the page
        return (not bool(card.training.get("keep_aspect", card.keep_aspect))
                and card.training.get("detector", "yolo") == "yolo")
    if card.task == "segment":
        size = card.training.get("image_size")
        return bool(size) and tuple(size) == tuple(card.input_shape[:2])
    if card.task == "enhance":  # the page tiles free-size models at the image's size, as enhance predict
        return not card.training.get("fixed_size") and card.training.get("baseline", "bicubic") in ("bicubic",
                                                                                                  "bilinear")
    # A generator takes latent codes, not images, and an instance model's masks are pasted (or its
    # watershed run) outside the graph: the page asks the server.
    # A video model takes clips sampled from a decoded video file: the page uploads the file.
    return card.task not in ("generate", "instance", "video")


def file_digest(path: Path, length: int = 16) -> str:
    """The first ``length`` hex digits of the file's SHA-256."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:length]


def cache_path(model_path: Path) -> Path:
    """Where the ONNX export of ``model_path`` is cached: beside it, named by its content."""
    return model_path.parent / CACHE_DIR / f"{model_path.stem}-{file_digest(model_path)}.onnx"


def export_cached(model_path: Path) -> Path:
    """The cached ONNX export of ``model_path``, made (and parity-checked) if missing.

    The export is written to a temporary folder first and moved into place, so concurrent
    starts and interrupted ones never leave a half-written file at the cached path.
    """
    from foveal.export.parity import export_model
    from foveal.export.runners import card_path_for

    target = cache_path(model_path)
    if target.is_file() and card_path_for(target).is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".export-") as tmp:
        staged = Path(tmp) / target.name
        export_model(model_path, "onnx", staged)
        os.replace(card_path_for(staged), card_path_for(target))
        os.replace(staged, target)
    return target


def _check_matches(path: Path, card: ModelCard) -> None:
    """Refuse an ONNX file whose card disagrees with the served model's classes or input."""
    from foveal.export.runners import card_path_for

    card_file = card_path_for(path)
    if not card_file.is_file():
        return  # a bare ONNX file: trusted to be this model's export
    other = ModelCard.from_json(card_file.read_text())
    if list(other.class_names) != list(card.class_names) or tuple(other.input_shape) != tuple(card.input_shape):
        raise ModelError(f"{path} is not an export of the served model (its card names other classes or "
                         "another input shape)", hint="export this model with `foveal export MODEL --format onnx`")


def prepare_browser_model(
    model_path: str | os.PathLike, card: ModelCard, browser_model: str | os.PathLike | bool | None = None
) -> BrowserModel | None:
    """The ONNX model the page may run, or None when there is none.

    Args:
        model_path: the served ``.keras`` file.
        card: its model card.
        browser_model: an ONNX file to serve (checked: it must exist, and its card, when there
            is one, must match); ``None`` or ``True``: export the model (cached) and warn, not
            fail, when that is impossible; ``False``: no browser model.

    Raises:
        ModelError: an explicitly given file is missing or belongs to another model.
    """
    if browser_model is False:
        return None
    if browser_model not in (None, True):
        path = Path(browser_model)  # type: ignore[arg-type]
        if not path.is_file():
            raise ModelError(f"browser model not found: {path}",
                             hint="pass an .onnx file written by `foveal export MODEL --format onnx`")
        _check_matches(path, card)
        return BrowserModel(path, card)
    try:
        return BrowserModel(export_cached(Path(model_path)), card)
    except (FovealError, OSError, ImportError, ValueError, RuntimeError) as exc:
        message = exc.message if isinstance(exc, FovealError) else f"{type(exc).__name__}: {exc}"
        log.warning("foveal serve: no in-browser model (the ONNX export failed: %s); the page will "
                    "classify on the server only", str(message)[:300])
        return None
