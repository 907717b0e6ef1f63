"""Draw boxes with labels on images (PIL ``ImageDraw``) and letterbox thumbnails, for predictions and reports.

Colours follow one convention everywhere: predicted boxes red, true boxes green.

Example:
    >>> import numpy as np
    >>> image = np.zeros((48, 64, 3), np.uint8)
    >>> out = draw_boxes(image, [[8, 8, 40, 30]], labels=["cat 0.91"], color="red")
    >>> out.shape, out[8, 20].tolist()
    ((48, 64, 3), [255, 0, 0])
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont, ImageOps

PRED_COLOR = "red"
TRUE_COLOR = "lime"


def _to_rgb(image: np.ndarray | Image.Image) -> Image.Image:
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    array = np.asarray(image)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    return Image.fromarray(array.astype(np.uint8)).convert("RGB")


def draw_boxes(
    image: np.ndarray | Image.Image,
    boxes: Sequence[Sequence[float]] | np.ndarray,
    *,
    labels: Sequence[str] | None = None,
    color: str = PRED_COLOR,
    width: int | None = None,
) -> np.ndarray:
    """A copy of ``image`` (HxW[x1|3] uint8 or PIL) as RGB with corner-format pixel ``boxes``
    outlined in ``color``, each ``labels`` entry on a tag at its box's top-left corner; ``width``
    defaults to about 1/150 of the larger side."""
    canvas = _to_rgb(image).copy()
    draw = ImageDraw.Draw(canvas)
    width = width or max(1, round(max(canvas.size) / 150))
    font = ImageFont.load_default()
    for k, box in enumerate(np.asarray(boxes, dtype=np.float64).reshape(-1, 4)):
        x0, y0, x1, y1 = (float(v) for v in box)
        draw.rectangle([x0, y0, max(x0, x1 - 1), max(y0, y1 - 1)], outline=color, width=width)
        if labels is not None and k < len(labels) and labels[k]:
            left, top, right, bottom = draw.textbbox((0, 0), labels[k], font=font)
            tag_h = bottom - top + 4
            ty = y0 - tag_h if y0 - tag_h >= 0 else y0
            draw.rectangle([x0, ty, x0 + right - left + 4, ty + tag_h], fill=color)
            draw.text((x0 + 2, ty + 2 - top), labels[k], fill="black" if color == TRUE_COLOR else "white", font=font)
    return np.asarray(canvas)



def thumbnail(rgb: np.ndarray, size: int) -> np.ndarray:
    """``rgb`` letterboxed into a size x size square (small images enlarged by nearest neighbour)."""
    img = Image.fromarray(rgb)
    method = Image.Resampling.NEAREST if max(img.size) < size else Image.Resampling.BILINEAR
    return np.asarray(ImageOps.pad(img.convert("RGB"), (size, size), method=method, color="black"))
