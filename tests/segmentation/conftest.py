"""Small image/mask folders written on the fly: coloured squares on dark noise."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

CLASSES = ["background", "red", "blue"]


def write_squares(root: Path, count: int, height: int = 48, width: int = 64, seed: int = 0) -> Path:
    """``root/images/sN.png`` + ``root/masks/sN.png`` (index masks 0..2): one red square (class 1)
    and one blue square (class 2) per image; the colour says the class."""
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
        Image.fromarray(mask).save(root / "masks" / f"s{i:02d}.png")
    return root
