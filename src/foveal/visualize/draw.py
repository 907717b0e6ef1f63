"""Draw boxes with labels on images (PIL ``ImageDraw``), paint class maps over them and letterbox
thumbnails, for predictions and reports.

Colours follow one convention everywhere: predicted boxes red, true boxes green.

Example:
    >>> import numpy as np
    >>> image = np.zeros((48, 64, 3), np.uint8)
    >>> out = draw_boxes(image, [[8, 8, 40, 30]], labels=["cat 0.91"], color="red")
    >>> out.shape, out[8, 20].tolist()
    ((48, 64, 3), [255, 0, 0])
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont, ImageOps

PRED_COLOR = "red"
TRUE_COLOR = "lime"
OVERLAY_ALPHA = 0.5  # class maps painted over images


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


def default_palette(num_classes: int) -> np.ndarray:
    """The PASCAL VOC colour map (bit-interleaved class index), (K, 3) uint8."""
    k, i = np.arange(num_classes)[:, None], np.arange(8)[:, None, None]
    # bits 3i, 3i + 1 and 3i + 2 of the class index are bit 7 - i of R, G and B
    colours = ((k >> (3 * i + np.arange(3)) & 1) << (7 - i)).sum(0).astype(np.uint8)
    if num_classes == 2:  # black and dark red are hard to see on gray micrographs
        colours[:] = [(255, 64, 64), (64, 160, 255)]
    return colours


def overlay_classes(image: np.ndarray, labels: np.ndarray, colours: np.ndarray, *, alpha: float = OVERLAY_ALPHA,
                    skip: Iterable[int] = ()) -> np.ndarray:
    """``image`` (HxW[xC] uint8) with each class painted over it; labels outside ``colours`` and
    classes in ``skip`` stay unpainted. Returns HxWx3 uint8."""
    rgb = np.asarray(image)
    if rgb.ndim == 2:
        rgb = rgb[..., None]
    rgb = np.repeat(rgb, 3, axis=-1) if rgb.shape[-1] == 1 else rgb[..., :3]
    out = rgb.astype(np.float32)
    paint = labels < len(colours)
    for k in skip:
        paint &= labels != k
    tint = colours[np.where(paint, labels, 0)].astype(np.float32)
    out[paint] = (1 - alpha) * out[paint] + alpha * tint[paint]
    return np.clip(np.round(out), 0, 255).astype(np.uint8)
