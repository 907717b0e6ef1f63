"""Helpers for the detection tests: tiny images and VOC XML written on the fly."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from conftest import SHARED_DATASETS

RACCOON = SHARED_DATASETS / "raccoon"


def write_image(path: Path, width: int, height: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (width, height), (40, 40, 40)).save(path)
    return path


def voc_xml(filename: str, width: int, height: int, objects: list[tuple]) -> str:
    """A Pascal VOC annotation; ``objects`` are ``(name, xmin, ymin, xmax, ymax)``."""
    parts = [f"<annotation><filename>{filename}</filename>",
             f"<size><width>{width}</width><height>{height}</height><depth>3</depth></size>"]
    for name, x0, y0, x1, y1 in objects:
        parts.append(f"<object><name>{name}</name><bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin>"
                     f"<xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>")
    return "".join(parts) + "</annotation>"
