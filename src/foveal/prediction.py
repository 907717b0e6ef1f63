"""Prediction rows every task shares: files predicted a batch at a time (a bad file skipped or
named), drawings saved beside the rows, terminal tables and CSV files, COCO result records and report thumbnails.

Example:
    >>> rows = predict_files(["photos/"], 3, rows_for, batch_size=8, skip_invalid=True)  # doctest: +SKIP
    >>> print(file_table(rows, lambda r: f"{len(r['boxes'])} boxes"))  # doctest: +SKIP
"""

from __future__ import annotations

import csv
import io
import logging
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from foveal.data.files import collect_images, decode_file, unique_name, write_png
from foveal.errors import ConfigError, DataError
from foveal.utils_io import atomic_write_text, printable_path

log = logging.getLogger("foveal")


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


def check_counts(**counts: int) -> None:
    """Refuse a count option below 1 (``top_k=0`` would print no prediction at all).

    Raises:
        ConfigError: naming the option and the value.
    """
    for name, value in counts.items():
        if value < 1:
            option = "--" + name.replace("_", "-")
            raise ConfigError(f"{option} must be at least 1 (got {value})", hint=f"pass {option} 1 or more")


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


def file_table(rows: list[dict[str, Any]], describe, width: int = 60) -> str:
    """A terminal table of prediction rows: the file (shortened from the left), then
    ``describe(row)``, or the row's error. Every task's ``format_table`` uses it."""
    lines = []
    width = min(width, max((len(r["file"]) for r in rows), default=4))
    for r in rows:
        name = r["file"] if len(r["file"]) <= width else "..." + r["file"][-(width - 3):]
        lines.append(f"{name:<{width}}  " + (f"ERROR {r['error']}" if "error" in r else describe(r)))
    return "\n".join(lines)


def rows_csv(rows: list[dict[str, Any]], columns: Sequence[str], lines: Callable[[dict[str, Any]], list[list]]) -> str:
    """CSV of prediction rows: a header of ``columns`` and ``error``, then the value lists
    ``lines(row)`` of each row, or for a row with an error its file, blanks and the error."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([*columns, "error"])
    for r in rows:
        if "error" in r:
            writer.writerow([r["file"], *([""] * (len(columns) - 1)), r["error"]])
        else:
            writer.writerows([*values, ""] for values in lines(r))
    return out.getvalue()
