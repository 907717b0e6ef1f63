"""Box and mask datasets with file names that are not UTF-8: named, or skipped with the rest."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from foveal.errors import DataError


def _bad(folder, suffix: str) -> bytes:
    return os.path.join(os.fsencode(folder), b"caf\xe9" + suffix.encode())


def test_yolo_folder_with_a_non_utf8_image(tmp_path):
    from foveal.data.boxes import load_boxes

    root = tmp_path / "yolo"
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    (root / "classes.txt").write_text("thing\n")
    for stem in ("a", "b"):
        Image.new("RGB", (20, 10)).save(root / "images" / f"{stem}.png")
        (root / "labels" / f"{stem}.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    Image.new("RGB", (20, 10)).save(_bad(root / "images", ".png"), "PNG")
    with open(_bad(root / "labels", ".txt"), "w") as f:
        f.write("0 0.5 0.5 0.2 0.2\n")
    with pytest.raises(DataError) as err:
        load_boxes(str(root))
    str(err.value).encode("utf-8")
    assert "UTF-8" in str(err.value)
    data = load_boxes(str(root), skip_invalid=True)["train"]
    assert len(data) == 2


def test_mask_folder_with_a_non_utf8_pair(tmp_path):
    from foveal.segmentation.data import read_mask_folder

    root = tmp_path / "seg"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for stem in ("a", "b"):
        Image.new("RGB", (8, 8)).save(root / "images" / f"{stem}.png")
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(root / "masks" / f"{stem}.png")
    Image.new("RGB", (8, 8)).save(_bad(root / "images", ".png"), "PNG")
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(_bad(root / "masks", ".png"), "PNG")
    with pytest.raises(DataError) as err:
        read_mask_folder(root)
    str(err.value).encode("utf-8")
    assert "UTF-8" in str(err.value)
    data = read_mask_folder(root, skip_invalid=True)
    assert len(data) == 2 and len(data.info["skipped"]) == 2
    for line in data.info["skipped"]:
        line.encode("utf-8")
