"""RGB colour masks without palette.txt: the palette is derived from the colours, and reported."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from PIL import Image

from foveal.errors import DataError
from foveal.segmentation.data import read_mask_folder

GREEN, RED = (0, 255, 0), (255, 0, 0)


def _colour_pairs(root, n=4):
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(n):
        Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)).save(root / "images" / f"{i}.png")
        mask = np.zeros((8, 8, 3), np.uint8)
        mask[2:6, 2:6] = GREEN
        if i % 2:
            mask[0, :] = RED
        Image.fromarray(mask).save(root / "masks" / f"{i}.png")
    return root


def test_colour_masks_get_a_palette_from_their_colours(tmp_path, caplog):
    root = _colour_pairs(tmp_path / "d")
    with caplog.at_level(logging.WARNING, logger="foveal"):
        data = read_mask_folder(root)
    assert data.mask_format == "palette" and data.num_classes == 3
    assert data.class_names[0] == "background"
    mask = data.load_mask(1)
    green, red = mask[3, 3], mask[0, 0]
    assert mask[7, 7] == 0 and green not in (0, data.ignore_label) and red not in (0, green, data.ignore_label)
    assert "palette.txt" in caplog.text and "0 255 0" in caplog.text


@pytest.mark.parametrize("fmt", ["binary", "index"])
def test_colour_masks_are_refused_as_gray_formats(tmp_path, fmt):
    root = _colour_pairs(tmp_path / "d")
    with pytest.raises(DataError, match="colour"):
        read_mask_folder(root, mask_format=fmt)


def test_gray_rgb_masks_stay_binary(tmp_path):
    root = _colour_pairs(tmp_path / "d", n=2)
    for path in (root / "masks").iterdir():
        gray = np.asarray(Image.open(path).convert("L")) > 0
        Image.fromarray(np.repeat((gray * 255).astype(np.uint8)[..., None], 3, -1)).save(path)
    data = read_mask_folder(root)
    assert data.mask_format == "binary" and data.load_mask(0)[3, 3] == 1
