"""The HTTP service behind ``foveal serve``: one model, a JSON API and a web page.

Endpoints:

* ``GET /health``: status, the model (architecture, task, classes, input shape), the limits,
  counters and the foveal version.
* ``GET /``: the web page (``static/index.html``; no external resources).
* ``GET /model.onnx`` and ``GET /model.json``: the model's ONNX export and its card, for the
  page's "in the browser" mode (ONNX Runtime Web); 404 when there is none. ``/health`` says
  ``"browser_runtime": true`` when the page can use them (see :mod:`foveal.serve.browser`).
* ``POST /predict[?top_k=K]``: one image, sent either as a ``multipart/form-data`` field named
  ``image`` or as the raw request body with an ``image/*`` content type. The answer is::

      {"task": "classify", "file": "cat.jpg", "model": "resnet18",
       "image": {"width": 640, "height": 480, "format": "JPEG"},
       "predictions": [{"label": "cat", "probability": 0.93}, ...],
       "elapsed_ms": 12.5}

  ``image`` gives the size of the upload (as shown, EXIF orientation applied); the other tasks
  answer in those pixels, in place of or next to ``predictions`` (clients switch on ``task``;
  each task's ``render`` in :mod:`foveal.export.tasks` writes its part):

  * ``detect``: ``"boxes": [{"label", "score", "box": [x0, y0, x1, y1]}, ...]``, best first;
  * ``localize``: one such box, and ``predictions`` (the class probabilities);
  * ``segment``: ``"mask": {"width", "height", "format": "png", "data": BASE64}`` (a palette
    PNG whose pixel values are the class indices, in the classes' colours, background
    transparent) and ``"classes": [{"label", "index", "pixels", "fraction", "colour"}, ...]``.
  * ``instance`` (Mask R-CNN, U-Net + watershed; ``.keras`` or its export):
    ``"instances": [{"label", "score", "box": [x0, y0, x1, y1], "area", "mask": {"size": [h, w],
    "counts": RLE}}, ...]``, best first, each mask as COCO's compressed RLE (column-major,
    pycocotools' ``decode`` reads it) at the upload's size, and the same ``boxes`` as a detector's.

  * ``enhance``: ``"enhanced": {"width", "height", "format": "png", "data": BASE64}``, the whole
    upload enhanced (super-resolved ``scale`` times larger, or denoised) through the model's tiled
    prediction, as ``foveal enhance predict`` does; ``?format=png`` answers the PNG itself
    (``image/png``) instead of JSON.

* ``video`` (clip classifiers, ``.keras`` or their exports): ``POST /predict[?window=S&stride=S]``
  takes a video file (``multipart/form-data`` field ``video``, or the raw body with a ``video/*``
  content type) and answers the clip's ``label``, ``probability``, ``predictions`` (top k),
  ``probabilities`` and the sliding-window ``timeline`` that ``foveal video predict`` writes
  (:mod:`foveal.video.serving`); not a video or audio only: 415, no decodable frame: 422,
  longer than ``max_video_seconds``: 413. The page (``static/video.html``) has an upload form that
  works without JavaScript too: ``window`` and ``stride`` may come as form fields beside the file
  (the query parameters win when both are given; a bad value: 422 naming the field).

* ``GET /generate?count=N&seed=S[&class=C][&format=png]`` (generative models: VAE decoder, GAN
  or conditional GAN generator, ``.keras`` or its export): ``count`` samples drawn from the
  noise of ``seed`` (the same seed gives the same images as ``foveal generate predict --seed``),
  all of class ``C`` (name or index; a conditional model without ``class`` draws every class in
  turn, one grid row each). The answer: ``{"task": "generate", "count", "seed", "class",
  "grid": {"width", "height", "format": "png", "data"}, "samples": [{"class", "data"}, ...]}``,
  or the grid PNG itself with ``format=png``. Such a server answers ``POST /predict`` with 400.

  Errors are ``{"error": "..."}`` with status 413 (upload too large, too many pixels), 415
  (not an image, unsupported format, wrong content type) or 422 (truncated or corrupt image,
  no ``image`` field, bad ``top_k``).

Images are checked and decoded exactly as ``foveal predict`` does (PIL header and full check,
then TensorFlow's decoder and the training pipeline's resize). Decoding runs on a small thread
pool; inference runs on one thread that batches whatever requests are waiting, so a burst is
served a batch at a time and each request gets back its own row.

Example:
    >>> import uvicorn
    >>> app = create_app("runs/digits-demo/best.keras", top_k=3)  # doctest: +SKIP
    >>> uvicorn.run(app, host="127.0.0.1", port=8000)  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import socket
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from foveal import __version__
from foveal.data.imagecheck import ImageProbe, probe_bytes
from foveal.errors import DataError, FovealError, ModelError
from foveal.models.io import ModelCard
from foveal.serve.browser import BrowserModel, browser_supported, prepare_browser_model, runtime_available
from foveal.serve.guard import (
    BODY_IDLE_TIMEOUT,
    BODY_TIMEOUT,
    HEADER_TIMEOUT,
    MAX_CONNECTIONS,
    BodyTimeout,
    server_config,
)

STATIC_DIR = Path(__file__).resolve().parent / "static"
MAX_BATCH = 16  # requests answered by one model call at most
_ENVELOPE_BYTES = 64 * 1024  # room for the multipart boundaries and headers around the file
_ENV_PREFIX = "FOVEAL_SERVE_"

# The page may load only its own files and talk only to this server. 'wasm-unsafe-eval' lets it
# compile ONNX Runtime Web's WebAssembly (it allows no JavaScript eval).
_PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' blob: data:; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}

_PREDICT_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"image": {"type": "string", "format": "binary"}},
                    "required": ["image"],
                }
            },
            "image/*": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


class RejectedImage(DataError):
    """An upload that cannot be classified; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def problem_status(problem: str) -> int:
    """HTTP status for a problem string of :mod:`foveal.data.imagecheck`."""
    if "decompression bomb" in problem:
        return 413
    if problem.startswith(("not an image", "unsupported")):
        return 415
    return 422


def load_image_bytes(
    data: bytes, card: ModelCard, *, name: str = "upload", max_pixels: int = 40_000_000
) -> tuple[np.ndarray, ImageProbe]:
    """Check, decode and resize encoded image bytes exactly as ``foveal predict`` reads a file.

    Returns:
        The uint8 HxWxC image the model takes, and the header facts of the upload.

    Raises:
        RejectedImage: not an image, unsupported, truncated, or over ``max_pixels``.
    """
    import tensorflow as tf

    from foveal.data.decode import decode_image_bytes
    from foveal.export import tasks

    probe = probe_bytes(data, name, full=True, max_pixels=max_pixels)
    if probe.problem:
        raise RejectedImage(f"{name}: {probe.problem}", problem_status(probe.problem))
    scale = tasks.output_scale(card)
    width, height = probe.shown_size or (0, 0)
    if scale > 1 and width * height * scale * scale > max_pixels:
        raise RejectedImage(f"{name}: enhanced x{scale} it would have {width * scale}x{height * scale} = "
                            f"{width * height * scale * scale} pixels, over the limit of {max_pixels}", 413)
    c = tasks.decode_channels(card)
    try:
        image = decode_image_bytes(tf.constant(data), c)  # turned upright by its EXIF orientation
        return tasks.model_input(image, card), probe
    except tf.errors.InvalidArgumentError as exc:
        detail = str(exc).splitlines()[0][:200]
        raise RejectedImage(f"{name}: cannot be decoded ({detail})", 422) from None


def _tiny_png() -> bytes:
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (3, 2)).save(out, "PNG")
    return out.getvalue()


def _bucket(n: int) -> int:
    """The power of two >= n: batches are padded to a few fixed sizes so the model's traced
    (or XLA-compiled) function is reused instead of rebuilt for every batch size."""
    return 1 << max(0, n - 1).bit_length()


@dataclass
class Stats:
    """Counters shown by ``/health`` (and read by the burst benchmark)."""

    requests: int = 0
    rejected: int = 0
    batches: int = 0
    batched_images: int = 0
    max_batch: int = 0

    def as_dict(self) -> dict[str, Any]:
        mean = self.batched_images / self.batches if self.batches else 0.0
        return {"requests": self.requests, "refused_images": self.rejected, "batches": self.batches,
                "mean_batch": round(mean, 3), "max_batch": self.max_batch}


@dataclass
class Batcher:
    """Runs the model on one thread, over batches of whatever requests are waiting.

    ``submit`` returns a future for one image's output row. The worker takes the first waiting
    image, then every other one already queued (up to ``max_batch``), pads the stack to a power
    of two, runs the model once and hands row ``i`` to request ``i``.
    """

    model: Any
    max_batch: int = MAX_BATCH
    stats: Stats = field(default_factory=Stats)
    pad: bool = True  # pad batches to a power of two (False: a task that runs each image on its own)
    _queue: "queue.SimpleQueue[tuple[np.ndarray, Future] | None]" = field(default_factory=queue.SimpleQueue)
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def warm_up(self, shape: tuple[int, ...]) -> None:
        """Trace the model for every batch size it will see, before the first request."""
        size = 1
        while size <= (_bucket(self.max_batch) if self.pad else 1):
            self.model.predict_on_batch(np.zeros((size, *shape), np.float32))
            size *= 2

    def submit(self, image: np.ndarray) -> Future:
        future: Future = Future()
        self._start()
        self._queue.put((image, future))
        return future

    def close(self) -> None:
        with self._lock:
            if self._thread is not None:
                self._queue.put(None)
                self._thread.join(timeout=30)
                self._thread = None

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="foveal-serve-model", daemon=True)
                self._thread.start()

    def _take(self) -> tuple[list[tuple[np.ndarray, Future]], bool]:
        """The next batch, and whether the stop signal came."""
        first = self._queue.get()
        if first is None:
            return [], True
        items = [first]
        while len(items) < self.max_batch:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                return items, True
            items.append(item)
        return items, False

    def _run(self) -> None:
        stop = False
        while not stop:
            items, stop = self._take()
            if items:
                self._predict(items)

    def _predict(self, items: list[tuple[np.ndarray, Future]]) -> None:
        items = [(image, future) for image, future in items if future.set_running_or_notify_cancel()]
        # Images of one size go together (a segmenter at native resolution sees each upload's own).
        shapes: dict[tuple[int, ...], list[tuple[np.ndarray, Future]]] = {}
        for item in items:
            shapes.setdefault(item[0].shape, []).append(item)
        for group in shapes.values():
            self._predict_batch(group)

    def _predict_batch(self, items: list[tuple[np.ndarray, Future]]) -> None:
        n = len(items)
        batch = np.zeros((_bucket(n) if self.pad else n, *items[0][0].shape), np.float32)
        for i, (image, _) in enumerate(items):
            batch[i] = image
        try:
            out = self.model.predict_on_batch(batch)
        except Exception as exc:  # the requests get the error; the worker lives on
            for _, future in items:
                future.set_exception(exc)
            return
        self.stats.batches += 1
        self.stats.batched_images += n
        self.stats.max_batch = max(self.stats.max_batch, n)
        for i, (_, future) in enumerate(items):
            # A task model answers a dict of arrays (boxes, scores, ...): each request its rows.
            row = {k: np.asarray(v)[i].copy() for k, v in out.items()} if isinstance(out, dict) \
                else np.asarray(out)[i].copy()
            future.set_result(row)


@dataclass
class Service:
    """Everything one app needs: the model, its card, the limits, the worker threads."""

    model_path: Path
    model: Any
    card: ModelCard
    batcher: Batcher
    decoders: ThreadPoolExecutor
    max_upload_bytes: int
    max_pixels: int
    top_k: int
    browser: BrowserModel | None = None
    sampler: "Sampler | None" = None
    video: Any = None  # a foveal.video.serving.VideoAnswerer for a video model

    def health(self) -> dict[str, Any]:
        card = self.card
        extra: dict[str, Any] = {}
        if self.sampler is not None:
            extra["generate"] = self.sampler.describe()
        if self.video is not None:
            extra["video"] = self.video.describe()
        if card.task == "enhance":
            extra["enhance"] = {"scale": int(card.training.get("scale", 1)), "output": "png",
                                "corruption": card.training.get("corruption")}
        return {**extra,
            "status": "ok",
            "foveal_version": __version__,
            "model": {
                "file": self.model_path.name,
                "architecture": card.architecture,
                "task": card.task,
                "classes": list(card.class_names),
                "num_classes": len(card.class_names),
                "input_shape": list(card.input_shape),
                "channel_order": card.channel_order,
                "keep_aspect": card.keep_aspect,
                "preprocessing": card.preprocessing,
                "trained_with": card.foveal_version or None,
            },
            "limits": {"max_upload_bytes": self.max_upload_bytes, "max_pixels": self.max_pixels,
                       "top_k": self.top_k, "max_batch": self.batcher.max_batch},
            "stats": self.batcher.stats.as_dict(),
            "browser_runtime": self.browser is not None and runtime_available(),
            "browser_model": "/model.json" if self.browser is not None else None,
            "browser_model_note": None if browser_supported(card) or card.task in ("enhance", "generate", "video") else
            "Runs on the server: the page cannot prepare this model's input as its training did.",
        }

    async def classify(self, data: bytes, name: str, top_k: int | None) -> dict[str, Any]:
        """Decode on the decoder pool, wait for this image's row of a model batch, then turn
        it into the task's answer on the pool again (a segmenter's mask is resized and encoded)."""
        image, probe = await asyncio.wrap_future(self.decoders.submit(
            load_image_bytes, data, self.card, name=name, max_pixels=self.max_pixels))
        row = await asyncio.wrap_future(self.batcher.submit(image.astype(np.float32)))
        return await asyncio.wrap_future(self.decoders.submit(self._answer, name, probe, row, top_k))

    def _answer(self, name: str, probe: ImageProbe, row: dict[str, np.ndarray], top_k: int | None) -> dict[str, Any]:
        from foveal.export import tasks

        width, height = shown_size(probe)
        return {
            "task": self.card.task,
            "file": name,
            "model": self.card.architecture,
            "image": {"width": width, "height": height, "format": probe.format},
            **tasks.render(row, self.card, (width, height), top_k or self.top_k),
        }


MAX_SAMPLES = 256  # images one GET /generate may ask for


class Sampler:
    """Draws samples of a generative model (``.keras`` or its export) on one thread, and encodes them.

    Args:
        source: the Keras model or an export's runner.
        card: its card (the export's, with the codes' layout, for a runner).
        max_samples: most images one request may ask for.
    """

    def __init__(self, source: Any, card: ModelCard, max_samples: int = MAX_SAMPLES) -> None:
        self.source, self.card, self.max_samples = source, card, max_samples
        self.thread = ThreadPoolExecutor(1, thread_name_prefix="foveal-serve-model")

    def describe(self) -> dict[str, Any]:
        from foveal.generative.export_check import code_layout

        latent, classes = code_layout(self.card)
        return {"latent_dim": latent, "conditional": bool(classes), "max_samples": self.max_samples,
                "image_shape": list(self.card.input_shape)}

    def answer(self, count: int, seed: int, requested: str | None, cols: int) -> dict[str, Any]:
        """The ``/generate`` JSON (module docstring) of ``count`` samples."""
        import base64

        from foveal.generative.export_check import sample
        from foveal.generative.sampling import grid_of, png_bytes, to_uint8

        images, labels = sample(self.source, self.card, count, requested, seed)
        classes = len(self.card.class_names) if labels is not None else 0
        grid = grid_of(images, labels, classes, by_class=requested is None, cols=cols)

        def encoded(pixels: np.ndarray) -> str:
            pixels = np.asarray(pixels)
            return base64.b64encode(png_bytes(pixels[..., 0] if pixels.ndim == 3 and pixels.shape[-1] == 1
                                              else pixels)).decode("ascii")

        names = [None if labels is None else self.card.class_names[int(i)] for i in
                 (labels if labels is not None else range(count))]
        return {"task": "generate", "model": self.card.architecture, "count": count, "seed": seed,
                "class": None if labels is None or requested is None else names[0],
                "grid": {"width": int(grid.shape[1]), "height": int(grid.shape[0]), "format": "png",
                         "data": encoded(grid)},
                "samples": [{"class": name, "data": encoded(to_uint8(image))} for name, image in zip(names, images)]}

    def close(self) -> None:
        self.thread.shutdown(wait=False, cancel_futures=True)


def shown_size(probe: ImageProbe) -> tuple[int, int]:
    """``(width, height)`` of the image as decoded: EXIF orientations 5-8 turn it a quarter."""
    return probe.shown_size  # type: ignore[return-value]


class TaskModel:
    """The served model as the batcher calls it: ``predict_on_batch`` gives the task's outputs
    (:func:`foveal.export.tasks.outputs`), from a Keras model or an export's runner."""

    def __init__(self, source: Any, card: ModelCard) -> None:
        self.source, self.card = source, card

    def predict_on_batch(self, images: np.ndarray) -> dict[str, np.ndarray]:
        from foveal.export import tasks

        return tasks.outputs(self.source, self.card, images)


class _BodyLimit:
    """ASGI middleware: refuse request bodies over ``limit`` bytes with 413.

    A declared ``Content-Length`` is refused before anything is read; a chunked body is
    counted as it arrives and stopped as soon as it passes the limit.
    """

    def __init__(self, app: Any, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            response = JSONResponse({"error": self._message()}, status_code=413)
            await response(scope, receive, send)
            return
        seen = 0

        async def counted() -> dict:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    # Raised inside the endpoint's read, so the app's handlers answer it.
                    raise HTTPException(413, self._message())
            return message

        await self.app(scope, counted, send)

    def _message(self) -> str:
        return f"upload too large: the limit is {_megabytes(self.limit - _ENVELOPE_BYTES)}"


def _megabytes(n: int) -> str:
    return f"{n / 2**20:.3g} MiB" if n >= 2**20 else f"{n} bytes"


async def _read_upload(request: Request, limit: int, media: str = "image",
                       fields: dict[str, str] | None = None) -> tuple[bytes, str]:
    """The upload's bytes and a file name, from a multipart field named ``media`` (``image``,
    ``video``) or a raw body of a ``media/*`` content type. ``fields``: filled with the form's
    text fields (a page's ``window`` and ``stride`` posted without JavaScript)."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "multipart/form-data":
        form = await request.form(max_files=4, max_fields=16)
        try:
            if fields is not None:
                fields.update({k: v for k, v in form.multi_items() if isinstance(v, str)})
            upload = form.get(media)
            if upload is None or isinstance(upload, str):
                raise HTTPException(422, f"no file in the form field '{media}' "
                                         f"(send multipart/form-data with an '{media}' file field)")
            data = await upload.read()
            name = Path(upload.filename or "upload").name
        finally:
            await form.close()
    elif ctype.startswith(f"{media}/") or ctype == "application/octet-stream":
        data = await request.body()
        name = Path(request.headers.get("x-filename", "") or "upload").name
    else:
        shown = ctype or "none"
        raise HTTPException(415, f"unsupported content type {shown}: send multipart/form-data with "
                                 f"an '{media}' file field, or the {media} bytes with an {media}/* type")
    if len(data) > limit:
        raise HTTPException(413, f"upload too large: {len(data)} bytes, the limit is {_megabytes(limit)}")
    return data, name[:200]


def _seconds_field(fields: dict[str, str], name: str) -> float | None:
    """A form field of seconds (``window``, ``stride``): None when absent or blank, else a number
    in (0, 3600] (the query parameters' range), or ValueError naming the field."""
    text = fields.get(name, "").strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"form field {name}: {text[:40]!r} is not a number of seconds") from None
    if not 0 < value <= 3600:
        raise ValueError(f"form field {name}: {value:g} s is outside (0, 3600]")
    return value


class _RunnerModel:
    """An exported model (TFLite, ONNX, SavedModel) behind the Keras call the batcher makes."""

    def __init__(self, runner: Any) -> None:
        self._runner = runner

    def predict_on_batch(self, images: np.ndarray) -> np.ndarray:
        return self._runner(np.asarray(images, np.float32))


def load_servable(path: Path, trust_model: bool = False) -> tuple[Any, ModelCard]:
    """A ``.keras`` model, or an export (``.tflite``, ``.onnx``, SavedModel folder) with the
    card ``foveal export`` wrote beside it, as ``(object with predict_on_batch, card)``.

    An export's graph is checked against foveal's allow-list of inference ops unless
    ``trust_model`` (see :mod:`foveal.export.trust`)."""
    if path.suffix == ".keras":
        from foveal.export.tasks import load

        return load(path)  # a video model comes with its frame backbone
    from foveal.export.runners import open_runner

    runner = open_runner(path, trust_model=trust_model)
    return _RunnerModel(runner), runner.card


def create_app(
    model_path: str | os.PathLike,
    *,
    max_upload_bytes: int = 10 * 2**20,
    max_pixels: int = 40_000_000,
    top_k: int = 5,
    max_batch: int = MAX_BATCH,
    decode_threads: int | None = None,
    browser_model: str | os.PathLike | bool | None = None,
    trust_model: bool = False,
    body_idle_timeout: float = BODY_IDLE_TIMEOUT,
    body_timeout: float = BODY_TIMEOUT,
    max_video_seconds: float = 600.0,
) -> FastAPI:
    """A FastAPI app serving the model in ``model_path`` (loaded once, here): a classifier,
    localizer, detector, segmenter, instance segmenter, enhancer or generator (see the module
    docstring for each answer).

    Args:
        model_path: a ``.keras`` file written by foveal, or an export of one (``.tflite``,
            ``.onnx`` or a SavedModel folder, with the card ``foveal export`` wrote).
        max_upload_bytes: larger uploads are refused with 413.
        max_pixels: images with more pixels are refused with 413 (decompression bombs).
        top_k: labels per answer unless the request asks with ``?top_k=``.
        max_batch: most requests answered by one model call.
        decode_threads: threads checking and decoding uploads (default: the CPU count, at
            most 4; each may hold one decoded image of up to ``max_pixels``).
        browser_model: the ONNX file served at ``/model.onnx`` for the page's in-browser mode;
            ``None`` exports the model once into ``.foveal-cache/`` beside it (a failure only
            logs a warning), ``False`` serves none. Not for letterboxing detectors (see
            :mod:`foveal.serve.browser`): those are answered by the server.
        trust_model: run an export's graph without checking its ops against the allow-list.
        body_idle_timeout: a request body pausing longer than this many seconds is answered 408.
        body_timeout: a request body not complete this many seconds after its headers is answered 408
            (header timeouts and the connection cap are the server's: :func:`foveal.serve.guard.server_config`).
        max_video_seconds: a video model refuses longer uploads with 413.

    Raises:
        ModelError: the file cannot be loaded, or its task is unknown, or an
            explicitly given ``browser_model`` is missing or belongs to another model.
    """
    if min(top_k, max_upload_bytes, max_pixels, max_batch) < 1 or min(body_idle_timeout, body_timeout,
                                                                       max_video_seconds) <= 0:
        raise ModelError("top_k, max_upload_bytes, max_pixels, max_batch, max_video_seconds and the timeouts "
                         "must be positive")
    path = Path(model_path)
    model, card = load_servable(path, trust_model)
    from foveal.export import tasks

    tasks.hooks(card.task)  # a task foveal cannot serve is refused here, with the known ones
    generative = not tasks.takes_images(card) and card.task != "video"  # a video model takes clips
    if path.suffix == ".onnx" and browser_model is None and browser_supported(card):
        browser_model = path  # the served ONNX file is what the page runs, too
    elif path.suffix != ".keras" and browser_model is None:
        browser_model = False  # only a .keras model can be exported to ONNX here
    if not browser_supported(card):
        if browser_model not in (None, False):
            raise ModelError(f"{path}: the page's in-browser mode cannot prepare this model's input as the "
                             "server does (a letterboxing detector, a Faster R-CNN, an instance model, or a segmenter "
                             "at native resolution)",
                             hint="leave out --browser-model: the page asks the server")
        browser_model = False
    source = model._runner if isinstance(model, _RunnerModel) else model
    # A task that enhances each upload on its own (tiled at its own size) gains nothing from padding.
    batcher = Batcher(TaskModel(source, card), max_batch=max_batch,
                      pad=not getattr(tasks.hooks(card.task), "PER_IMAGE", False))
    sampler = video = None
    if card.task == "video":
        from foveal.video.predict import ExportedVideoModel
        from foveal.video.serving import VideoAnswerer

        video = VideoAnswerer(ExportedVideoModel(source) if tasks.is_runner(source) else source,
                              max_seconds=max_video_seconds, max_pixels=max_pixels)
        video.warm_up()
    elif generative:
        sampler = Sampler(source, card)
        sampler.answer(1, 0, None, 0)  # the first call traces the graph
    else:
        batcher.warm_up(tuple(card.input_shape))
        load_image_bytes(_tiny_png(), card)  # the first decode and resize set up TensorFlow's kernels
    threads = decode_threads or min(4, os.cpu_count() or 1)
    service = Service(path, model, card, batcher, ThreadPoolExecutor(threads, thread_name_prefix="foveal-decode"),
                      max_upload_bytes, max_pixels, top_k, prepare_browser_model(path, card, browser_model), sampler,
                      video)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI):
        yield
        batcher.close()
        if sampler is not None:
            sampler.close()
        if video is not None:
            video.close()
        service.decoders.shutdown(wait=False, cancel_futures=True)

    # The interactive /docs pages load their scripts from a CDN; the schema stays at /openapi.json.
    app = FastAPI(title="foveal serve", version=__version__, docs_url=None, redoc_url=None, lifespan=lifespan)
    app.state.service = service
    app.add_middleware(_BodyLimit, limit=max_upload_bytes + _ENVELOPE_BYTES)
    app.add_middleware(BodyTimeout, idle=body_idle_timeout, total=body_timeout)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.exception_handler(HTTPException)
    async def _http_error(_: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        parts = [f"{'.'.join(str(p) for p in e.get('loc', ())[1:])}: {e.get('msg', '')}" for e in exc.errors()]
        return JSONResponse({"error": "; ".join(parts) or "invalid request"}, status_code=422)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return service.health()

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        name = "video.html" if video is not None else "index.html"
        return FileResponse(STATIC_DIR / name, media_type="text/html", headers=_PAGE_HEADERS)

    @app.get("/model.onnx", response_model=None)
    async def browser_model_file() -> FileResponse | JSONResponse:
        if service.browser is None:
            return JSONResponse({"error": "this server has no in-browser model"}, status_code=404)
        return FileResponse(service.browser.path, media_type="application/octet-stream",
                            headers={"Cache-Control": "no-cache"})

    @app.get("/model.json")
    async def browser_model_card() -> JSONResponse:
        if service.browser is None:
            return JSONResponse({"error": "this server has no in-browser model"}, status_code=404)
        return JSONResponse(service.browser.description(), headers={"Cache-Control": "no-cache"})

    @app.post("/predict", openapi_extra=_PREDICT_BODY, response_model=None)
    async def predict(
        request: Request,
        top_k: int | None = Query(None, ge=1, le=10_000, description="labels to return (default: the server's)"),
        format: str = Query("json", pattern="^(json|png)$",
                            description="png: the enhanced image itself (enhancement models)"),
        window: float | None = Query(None, gt=0, le=3600, description="video models: timeline window, seconds"),
        stride: float | None = Query(None, gt=0, le=3600, description="video models: seconds between windows"),
    ) -> JSONResponse | Response:
        start = time.perf_counter()
        if video is not None:
            return await _predict_video(request, top_k, window, stride, format, start)
        if generative:
            return JSONResponse({"error": f"this server's model generates images ({card.architecture}): "
                                          "GET /generate?count=N&seed=S (&class=C for a conditional model)"},
                                status_code=400)
        if format == "png" and card.task != "enhance":
            return JSONResponse({"error": f"format=png is for models that answer with an image (enhance); this "
                                          f"is a {card.task} model: use the JSON answer"}, status_code=422)
        service.batcher.stats.requests += 1
        data, name = await _read_upload(request, max_upload_bytes)
        try:
            answer = await service.classify(data, name, top_k)
        except RejectedImage as exc:
            service.batcher.stats.rejected += 1
            return JSONResponse({"error": exc.message}, status_code=exc.status)
        elapsed = round((time.perf_counter() - start) * 1000, 2)
        if format == "png":
            import base64

            return Response(base64.b64decode(answer["enhanced"]["data"]), media_type="image/png",
                            headers={"X-Elapsed-Ms": str(elapsed), "Cache-Control": "no-store"})
        answer["elapsed_ms"] = elapsed
        return JSONResponse(answer)

    async def _predict_video(request: Request, top_k: int | None, window: float | None, stride: float | None,
                             format: str, start: float) -> JSONResponse:
        from foveal.video.serving import RejectedVideo

        if format == "png":
            return JSONResponse({"error": "format=png is for models that answer with an image (enhance); this is a "
                                          "video model: use the JSON answer"}, status_code=422)
        service.batcher.stats.requests += 1
        fields: dict[str, str] = {}
        data, name = await _read_upload(request, max_upload_bytes, media="video", fields=fields)
        try:  # the page's form posts window and stride as fields when JavaScript is off; the query wins
            window = window if window is not None else _seconds_field(fields, "window")
            stride = stride if stride is not None else _seconds_field(fields, "stride")
        except ValueError as exc:
            service.batcher.stats.rejected += 1
            return JSONResponse({"error": str(exc)}, status_code=422)
        try:
            answer = await asyncio.wrap_future(video.thread.submit(
                video.answer, data, name, window=window, stride=stride, top_k=top_k or service.top_k))
        except RejectedVideo as exc:
            service.batcher.stats.rejected += 1
            return JSONResponse({"error": exc.message}, status_code=exc.status)
        answer["elapsed_ms"] = round((time.perf_counter() - start) * 1000, 2)
        return JSONResponse(answer)

    @app.get("/generate", response_model=None)
    async def generate(
        count: int = Query(16, ge=1, le=MAX_SAMPLES, description="images to draw"),
        seed: int = Query(0, ge=0, le=2**63 - 1, description="noise seed: the same seed gives the same images"),
        class_: str | None = Query(None, alias="class", max_length=200,
                                   description="conditional models: the class (name or index)"),
        cols: int = Query(0, ge=0, le=MAX_SAMPLES, description="grid columns (0: square, or one row per class)"),
        format: str = Query("json", pattern="^(json|png)$", description="png: the grid image itself"),
    ) -> JSONResponse | Response:
        if sampler is None:
            return JSONResponse({"error": f"this server's model is a {card.task} model, which does not generate "
                                          "images: POST an image to /predict"}, status_code=404)
        start = time.perf_counter()
        service.batcher.stats.requests += 1
        try:
            answer = await asyncio.wrap_future(sampler.thread.submit(sampler.answer, count, seed, class_, cols))
        except FovealError as exc:
            service.batcher.stats.rejected += 1
            return JSONResponse({"error": exc.message}, status_code=422)
        elapsed = round((time.perf_counter() - start) * 1000, 2)
        if format == "png":
            import base64

            return Response(base64.b64decode(answer["grid"]["data"]), media_type="image/png",
                            headers={"X-Elapsed-Ms": str(elapsed), "Cache-Control": "no-store"})
        answer["elapsed_ms"] = elapsed
        return JSONResponse(answer)

    return app


def create_app_from_env() -> FastAPI:
    """The app described by ``FOVEAL_SERVE_*`` variables (for ``uvicorn --factory`` and workers).

    ``FOVEAL_SERVE_MODEL`` (required), ``FOVEAL_SERVE_MAX_UPLOAD_BYTES``,
    ``FOVEAL_SERVE_MAX_PIXELS``, ``FOVEAL_SERVE_TOP_K``, ``FOVEAL_SERVE_BROWSER_MODEL`` (an
    ``.onnx`` path, or ``off``; unset: export as :func:`create_app` does).
    """
    env = os.environ
    if not env.get(f"{_ENV_PREFIX}MODEL"):
        raise ModelError(f"set {_ENV_PREFIX}MODEL to the .keras file to serve")
    numbers: dict[str, Any] = {key: int(env[f"{_ENV_PREFIX}{key.upper()}"])
                               for key in ("max_upload_bytes", "max_pixels", "top_k")
                               if env.get(f"{_ENV_PREFIX}{key.upper()}")}
    numbers.update({key: float(env[f"{_ENV_PREFIX}{key.upper()}"])
                    for key in ("body_idle_timeout", "body_timeout", "max_video_seconds")
                    if env.get(f"{_ENV_PREFIX}{key.upper()}")})
    browser = env.get(f"{_ENV_PREFIX}BROWSER_MODEL") or None
    return create_app(env[f"{_ENV_PREFIX}MODEL"], **numbers, browser_model=False if browser == "off" else browser,
                      trust_model=env.get(f"{_ENV_PREFIX}TRUST_MODEL") == "1")


def app_environment(model_path: str | os.PathLike, *, max_upload_bytes: int, max_pixels: int,
                    top_k: int, browser_model: str | os.PathLike | None = None,
                    trust_model: bool = False, body_idle_timeout: float = BODY_IDLE_TIMEOUT,
                    body_timeout: float = BODY_TIMEOUT, max_video_seconds: float = 600.0) -> dict[str, str]:
    """The ``FOVEAL_SERVE_*`` variables that make :func:`create_app_from_env` build this app
    (``browser_model``: an ONNX path, or ``None`` for none)."""
    return {f"{_ENV_PREFIX}MODEL": str(Path(model_path).resolve()),
            f"{_ENV_PREFIX}MAX_UPLOAD_BYTES": str(max_upload_bytes),
            f"{_ENV_PREFIX}MAX_PIXELS": str(max_pixels), f"{_ENV_PREFIX}TOP_K": str(top_k),
            f"{_ENV_PREFIX}BROWSER_MODEL": str(Path(browser_model).resolve()) if browser_model else "off",
            f"{_ENV_PREFIX}TRUST_MODEL": "1" if trust_model else "0",
            f"{_ENV_PREFIX}BODY_IDLE_TIMEOUT": str(body_idle_timeout), f"{_ENV_PREFIX}BODY_TIMEOUT": str(body_timeout),
            f"{_ENV_PREFIX}MAX_VIDEO_SECONDS": str(max_video_seconds)}


def bind_socket(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A listening-ready TCP socket bound to ``host:port`` (port 0: a free one)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        from foveal.serve.limits import listen_error

        raise listen_error(host, port, exc) from None
    sock.set_inheritable(True)
    return sock


@contextlib.contextmanager
def background_server(app: FastAPI, host: str = "127.0.0.1", *, header_timeout: float = HEADER_TIMEOUT,
                      max_connections: int = MAX_CONNECTIONS) -> Iterator[str]:
    """Run ``app`` with uvicorn on a free port of ``host`` in a thread; yield its base URL.

    For tests and benchmarks. The server stops when the block ends.

    Example:
        >>> with background_server(create_app("best.keras")) as url:  # doctest: +SKIP
        ...     httpx.get(url + "/health").json()["status"]
        'ok'
    """
    import uvicorn

    sock = bind_socket(host)
    port = sock.getsockname()[1]
    server = uvicorn.Server(server_config(app, header_timeout=header_timeout, max_connections=max_connections,
                                          log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True, name="foveal-serve")
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test server did not start")
            time.sleep(0.01)
        shown = f"[{host}]" if ":" in host else host
        yield f"http://{shown}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()
