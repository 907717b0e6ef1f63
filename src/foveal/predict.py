"""``foveal predict``: image files or folders -> top-k labels with probabilities; and the file
reading, batching, PNG writing and tables every task's prediction shares.

Everything needed comes from the model file: its card gives the class names, input size,
channels and resize policy; its own first layer does the preprocessing.

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
import logging
from pathlib import Path
from typing import Any, Callable, Iterable

import keras
import numpy as np

from foveal.errors import ConfigError, DataError
from foveal.models.io import ModelCard
from foveal.utils_io import atomic_path, atomic_write_text, printable_path

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif"}
log = logging.getLogger("foveal")


def collect_images(inputs: Iterable[str | Path]) -> list[Path]:
    """Expand folders (recursively) into image files; keep files as given, in order."""
    files: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise DataError(f"{path}: no images found (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise DataError(f"{path}: no such file or folder")
    return files


def decode_file(path: str | Path, channels: int, max_pixels: int = 89_478_485) -> np.ndarray:
    """Decode one image file as the training pipeline does (uint8 HxWxC, original size), turned
    upright by its EXIF orientation. Every task's prediction reads its files through it.

    Raises:
        DataError: naming the file when it is missing, not an image, or cannot be read or decoded.
    """
    import tensorflow as tf

    from foveal.data.decode import decode_image_bytes
    from foveal.data.imagecheck import probe_image

    shown = printable_path(path)
    if not Path(path).is_file():
        raise DataError(f"{shown}: no such file")
    probe = probe_image(path, full=True, max_pixels=max_pixels)
    if probe.problem:
        raise DataError(f"{shown}: {probe.problem}")
    try:
        # Read by Python, not tf.io.read_file: TensorFlow refuses file names that are not UTF-8.
        return decode_image_bytes(tf.constant(Path(path).read_bytes()), channels).numpy()
    except OSError as exc:
        raise DataError(f"{shown}: cannot read ({exc.strerror or exc})") from None
    except tf.errors.InvalidArgumentError as exc:
        raise DataError(f"{shown}: cannot be decoded ({str(exc).splitlines()[0][:200]})") from None


def load_image(path: Path, card: ModelCard, max_pixels: int = 89_478_485) -> np.ndarray:
    """Decode and resize one image exactly as the training pipeline does (uint8 HxWxC)."""
    from foveal.data.pipeline import resize_image

    h, w, c = card.input_shape
    return np.asarray(resize_image(decode_file(path, c, max_pixels), (h, w), card.keep_aspect))


def unique_name(source: str | Path, used: set[str]) -> str:
    """``<stem>.png`` of ``source``, or ``<stem>_2.png``, ``_3``... when taken in ``used`` (updated)."""
    stem, k = Path(source).stem, 1
    name = f"{stem}.png"
    while name in used:
        k += 1
        name = f"{stem}_{k}.png"
    used.add(name)
    return name


def write_png(path: Path, pixels: np.ndarray, palette: np.ndarray | None = None) -> Path:
    """Write a uint8 HxW, HxWx1 or HxWx3 array as PNG, atomically (the folder is made).

    An HxW label map is an index PNG: gray (mode L), or with ``palette`` ((K, 3) colours of
    the classes) palette-mode (mode P), whose pixel values are still the class indices.
    """
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.asarray(pixels, np.uint8)
    if pixels.ndim == 3 and pixels.shape[-1] == 1:
        pixels = pixels[..., 0]
    if palette is not None and pixels.ndim == 2:
        img = Image.fromarray(pixels, mode="P")  # the values become palette indices, unchanged
        entries = np.zeros((256, 3), np.uint8)
        entries[: len(palette)] = np.asarray(palette, np.uint8)[:256]
        img.putpalette(entries.ravel().tolist())
    else:
        img = Image.fromarray(pixels)
    with atomic_path(path) as tmp:
        img.save(tmp, format="PNG")
    return path


class Drawings:
    """Prediction rows of image files, each with its drawing saved as ``OUTPUT/<stem>.png``
    (``<stem>_2.png`` on a name clash) when there is an output folder."""

    def __init__(self, output: str | Path | None):
        self.folder = Path(output) if output is not None else None
        self.used: set[str] = set()

    def row(self, path: Path, fields: dict[str, Any], draw: Callable[[], np.ndarray]) -> dict[str, Any]:
        """``{"file", **fields}``, plus ``"drawn"`` (the PNG of ``draw()``) with an output folder."""
        row: dict[str, Any] = {"file": printable_path(path), **fields}
        if self.folder is not None:
            row["drawn"] = str(write_png(self.folder / unique_name(path, self.used), draw()))
        return row


def predict_files(images: Iterable[str | Path], channels: int,
                  rows_for: Callable[[list[tuple[Path, np.ndarray]]], list[dict[str, Any]]], *, batch_size: int,
                  skip_invalid: bool, output: str | Path | None = None,
                  tables: dict[str, Callable[[list[dict[str, Any]]], str]] | None = None) -> list[dict[str, Any]]:
    """Predict image files and folders (searched recursively) a batch at a time.

    Each file is decoded at its own size (:func:`decode_file`); ``rows_for`` turns a batch of
    ``(path, pixels)`` into rows. With ``output``, each of ``tables`` (file name -> text of the
    rows) is written there at the end.
    """
    rows = predict_in_batches(collect_images(images), lambda path: decode_file(path, channels), rows_for,
                              batch_size=batch_size, skip_invalid=skip_invalid)
    if output is not None:
        for name, text in (tables or {}).items():
            atomic_write_text(Path(output) / name, text(rows))
    return rows


def example_thumbnails(data: Any, count: int, channels: int,
                       draw: Callable[[int, np.ndarray], tuple[np.ndarray, str]]) -> tuple[np.ndarray, list[str]] | None:
    """The report grid of a box, mask or instance dataset: its first ``count`` images decoded as
    :func:`decode_file` does, each turned into ``(thumbnail, caption)`` by ``draw(index, image)``;
    captions start with the file name. None when there is nothing to show."""
    if count <= 0 or data is None or not len(data):
        return None
    thumbs, titles = [], []
    for i in range(min(count, len(data))):
        thumb, caption = draw(i, decode_file(data.paths[i], channels))
        thumbs.append(thumb)
        titles.append(f"{Path(str(data.paths[i])).name}\n{caption}")
    return np.stack(thumbs), titles


def coco_results(rows: list[dict[str, Any]], class_names: list[str], key: str,
                 extra: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> dict[str, Any]:
    """COCO-style output of prediction rows (``image_size`` and a list ``row[key]`` of
    ``{"class", "score", "box"}`` pixel corners): ``images`` (id, file_name, width, height),
    ``categories`` and ``annotations`` as COCO result records (``bbox`` [x, y, w, h], ``score``,
    then ``extra(item)``)."""
    images, results = [], []
    for image_id, row in enumerate((r for r in rows if "error" not in r), start=1):
        width, height = row["image_size"]
        images.append({"id": image_id, "file_name": row["file"], "width": width, "height": height})
        for d in row[key]:
            x0, y0, x1, y1 = d["box"]
            results.append({"image_id": image_id, "category_id": class_names.index(d["class"]) + 1,
                            "bbox": [x0, y0, round(x1 - x0, 1), round(y1 - y0, 1)], "score": d["score"],
                            **(extra(d) if extra else {})})
    return {"images": images, "categories": [{"id": i, "name": n} for i, n in enumerate(class_names, start=1)],
            "annotations": results}


def predict(model: keras.Model, card: ModelCard, images: Iterable[str | Path], *, top_k: int = 5,
            batch_size: int = 32, skip_invalid: bool = False) -> list[dict[str, Any]]:
    """Top-k predictions for each image file (folders are expanded).

    Returns:
        One dict per image: ``{"file": str, "predictions": [{"label", "probability"}, ...]}``.
        Skipped files (with ``skip_invalid``) get ``"error"`` instead of predictions.
    """
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


def check_counts(**counts: int) -> None:
    """Refuse a count option below 1 (``top_k=0`` would print no prediction at all).

    Raises:
        ConfigError: naming the option and the value.
    """
    for name, value in counts.items():
        if value < 1:
            option = "--" + name.replace("_", "-")
            raise ConfigError(f"{option} must be at least 1 (got {value})", hint=f"pass {option} 1 or more")


def predict_in_batches(files: list[Path], load: Callable[[Path], Any],
                       rows_for: Callable[[list[tuple[Path, Any]]], list[dict[str, Any]]], *, batch_size: int,
                       skip_invalid: bool) -> list[dict[str, Any]]:
    """Load files one by one and predict them a batch at a time, keeping the input order.

    A file ``load`` refuses with a :class:`DataError` stops the run, or with ``skip_invalid``
    becomes a row ``{"file", "error"}`` in its place (with a warning).
    """
    rows: list[dict[str, Any]] = []
    batch: list[tuple[Path, Any]] = []

    def flush() -> None:
        if batch:
            rows.extend(rows_for(batch))
            batch.clear()

    for path in files:
        try:
            batch.append((path, load(path)))
        except DataError as exc:
            if not skip_invalid:
                raise DataError(exc.message, hint="remove the file or pass --skip-invalid") from None
            log.warning("skipping %s", exc.message)
            flush()
            rows.append({"file": printable_path(path), "error": exc.message})
        if len(batch) >= batch_size:
            flush()
    flush()
    return rows


def file_table(rows: list[dict[str, Any]], describe, width: int = 60) -> str:
    """A terminal table of prediction rows: the file (shortened from the left), then
    ``describe(row)``, or the row's error. Every task's ``format_table`` uses it."""
    lines = []
    width = min(width, max((len(r["file"]) for r in rows), default=4))
    for r in rows:
        name = r["file"] if len(r["file"]) <= width else "..." + r["file"][-(width - 3):]
        lines.append(f"{name:<{width}}  " + (f"ERROR {r['error']}" if "error" in r else describe(r)))
    return "\n".join(lines)


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
