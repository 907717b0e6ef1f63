"""Small image/mask folders written on the fly: coloured squares on dark noise."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

CLASSES = ["background", "red", "blue"]


def voc_palette() -> list[int]:
    """Pascal VOC's 256-colour palette as the flat list PIL's ``putpalette`` takes."""
    from foveal.visualize.draw import default_palette

    return default_palette(256).ravel().tolist()


def write_indexed_png(path: Path, index: np.ndarray) -> None:
    """``index`` (HxW uint8) as a palette-mode PNG with VOC's palette, as VOC's class masks are."""
    img = Image.fromarray(np.asarray(index, np.uint8), mode="P")
    img.putpalette(voc_palette())
    img.save(path)


def write_squares(root: Path, count: int, height: int = 48, width: int = 64, seed: int = 0,
                  indexed: bool = False) -> Path:
    """``root/images/sN.png`` + ``root/masks/sN.png`` (index masks 0..2): one red square (class 1)
    and one blue square (class 2) per image; the colour says the class. ``indexed`` writes the
    masks VOC style: palette-mode PNGs with a 1-pixel border of 255 ("ignore") around each square."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    for i in range(count):
        mask = np.zeros((height, width), np.uint8)
        for k in (1, 2):
            y, x = rng.integers(0, height - 14), rng.integers(0, width - 14)
            mask[y:y + 14, x:x + 14] = k
        image = rng.integers(0, 60, (height, width, 3)).astype(np.uint8)
        image[mask == 1] = (220, 40, 40)
        image[mask == 2] = (40, 40, 220)
        Image.fromarray(image).save(root / "images" / f"s{i:02d}.png")
        if indexed:
            edge = (mask > 0) & ~(np.pad(mask > 0, 1)[2:, 1:-1] & np.pad(mask > 0, 1)[:-2, 1:-1]
                                  & np.pad(mask > 0, 1)[1:-1, 2:] & np.pad(mask > 0, 1)[1:-1, :-2])
            write_indexed_png(root / "masks" / f"s{i:02d}.png", np.where(edge, 255, mask))
        else:
            Image.fromarray(mask).save(root / "masks" / f"s{i:02d}.png")
    return root
