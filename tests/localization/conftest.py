"""Small box datasets written on the fly: VOC XML, CSV, and synthetic bright rectangles."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import SHARED_DATASETS

RACCOON = SHARED_DATASETS / "raccoon"


def write_image(path: Path, width: int, height: int, color=(40, 40, 40)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (width, height), color).save(path)
    return path


def voc_xml(filename: str, width: int, height: int, objects: list[tuple], extra: str = "") -> str:
    """A Pascal VOC annotation; ``objects`` are ``(name, xmin, ymin, xmax, ymax[, difficult])``."""
    parts = [f"<annotation><folder>images</folder><filename>{filename}</filename>",
             f"<size><width>{width}</width><height>{height}</height><depth>3</depth></size>", extra]
    for name, *coords in objects:
        difficult = coords[4] if len(coords) > 4 else 0
        x0, y0, x1, y1 = coords[:4]
        parts.append(f"<object><name>{name}</name><difficult>{difficult}</difficult><bndbox><xmin>{x0}</xmin>"
                     f"<ymin>{y0}</ymin><xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>")
    return "".join(parts) + "</annotation>"


@pytest.fixture
def voc_root(tmp_path) -> Path:
    """Three images: one cat, one dog + one small cat (difficult), one dog; list files 2 + 1."""
    root = tmp_path / "voc"
    specs = {
        "a": (64, 48, [("cat", 10, 5, 40, 30)]),
        "b": (80, 60, [("dog", 0, 0, 80, 60), ("cat", 5, 5, 15, 15, 1)]),
        "c": (50, 50, [("dog", 20.5, 10, 45, 49.5)]),
    }
    for stem, (w, h, objects) in specs.items():
        write_image(root / "images" / f"{stem}.jpg", w, h)
        (root / "annotations").mkdir(parents=True, exist_ok=True)
        (root / "annotations" / f"{stem}.xml").write_text(voc_xml(f"{stem}.jpg", w, h, objects))
    (root / "train.txt").write_text("a.jpg\nb.jpg\n")
    (root / "test.txt").write_text("c\n")
    return root


def write_rectangles(root: Path, count: int, size: int = 64, seed: int = 0) -> Path:
    """``count`` dark images each with one bright rectangle, as PNG files plus ``boxes.csv``."""
    rng = np.random.default_rng(seed)
    rows = ["filename,width,height,class,xmin,ymin,xmax,ymax"]
    (root / "images").mkdir(parents=True, exist_ok=True)
    for i in range(count):
        w, h = rng.integers(size // 6, size // 2, 2)
        x0, y0 = rng.integers(0, size - w), rng.integers(0, size - h)
        image = rng.integers(0, 40, (size, size, 3)).astype(np.uint8)
        image[y0:y0 + h, x0:x0 + w] = 230
        name = f"r{i:03d}.png"
        Image.fromarray(image).save(root / "images" / name)
        rows.append(f"{name},{size},{size},box,{x0},{y0},{x0 + w},{y0 + h}")
    (root / "boxes.csv").write_text("\n".join(rows) + "\n")
    return root / "boxes.csv"
