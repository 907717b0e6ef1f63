"""``foveal enhance predict``: images of any size in, enhanced images out.

Everything comes from the model file's card: the channel count, the scale factor, what the
input sides must be multiples of, and the tile size. An image whose sides fit in ``tile``
(input pixels; 512 by default) is enhanced in one pass after mirror-padding its bottom and
right edges to the multiple, and cropped back. A larger image is cut into overlapping tiles
on a mirror-padded canvas: each tile keeps only its centre (a ``tile // 8`` margin on each
side is context), so a fully convolutional model whose receptive field fits in the margin
gives the same pixels as one pass over the whole image (tested). A model with a fixed input
size (a zoo encoder) is always tiled at that size.

Outputs, with an output folder: ``enhanced/NAME.png`` (8-bit PNGs, written atomically) and
``predictions.csv`` (file, written file, input and output sizes).

Example:
    >>> model, card = load_model("runs/sr/best.keras")  # doctest: +SKIP
    >>> rows = enhance_files(model, card, ["photo.jpg"], output="out/")  # doctest: +SKIP
    >>> rows[0]["output_size"]  # doctest: +SKIP
    [1920, 1440]
"""

from __future__ import annotations

import math
from functools import partial
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from foveal.errors import ModelError, require_task
from foveal.utils_io import printable_path

DEFAULT_TILE = 512


check_card = partial(require_task, task="enhance", message="this is a {found} model, not an enhancement model")


def geometry(card) -> dict[str, Any]:
    """``scale``, ``multiple``, ``tile`` and ``fixed`` (input side, or None) from the card."""
    t = card.training
    fixed = t.get("fixed_size")
    tile = int(fixed or t.get("tile", DEFAULT_TILE))
    return {"scale": int(t.get("scale", 1)), "multiple": int(t.get("multiple", 1)), "tile": tile,
            "fixed": int(fixed) if fixed else None}


def _call(model, batch: np.ndarray) -> np.ndarray:
    return np.asarray(model(batch, training=False), dtype=np.float32)


def _pad_to(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Mirror-pad bottom and right to (height, width), repeating the mirror if the image is tiny."""
    while image.shape[0] < height or image.shape[1] < width:
        ph, pw = min(height - image.shape[0], image.shape[0]), min(width - image.shape[1], image.shape[1])
        image = np.pad(image, ((0, max(ph, 0)), (0, max(pw, 0)), (0, 0)), mode="symmetric")
    return image


def enhance_array(model, image: np.ndarray, *, scale: int, multiple: int = 1, tile: int = DEFAULT_TILE,
                  fixed: int | None = None, margin: int | None = None, batch_size: int = 4) -> np.ndarray:
    """The enhanced image (float32 in [0, 1], ``scale`` times larger) of one HxWxC image of raw
    pixels (see the module docstring); ``margin`` overrides the tiles' context (``tile // 8``)."""
    image = np.asarray(image, np.float32)
    height, width = image.shape[:2]
    tile = max(multiple, tile // multiple * multiple)
    if fixed is None and height <= tile and width <= tile:
        padded = _pad_to(image, -(-height // multiple) * multiple, -(-width // multiple) * multiple)
        return np.clip(_call(model, padded[None])[0, :height * scale, :width * scale], 0.0, 1.0)
    margin = tile // 8 if margin is None else margin
    margin = margin // multiple * multiple
    inner = tile - 2 * margin
    if inner <= 0:
        raise ModelError(f"tile {tile} leaves no centre after its margin {margin} on each side")
    ny, nx = math.ceil(height / inner), math.ceil(width / inner)
    canvas = np.pad(image, ((margin, 0), (margin, 0), (0, 0)), mode="symmetric") if margin else image
    canvas = _pad_to(canvas, ny * inner + 2 * margin, nx * inner + 2 * margin)
    corners = [(i * inner, j * inner) for i in range(ny) for j in range(nx)]
    out = None
    s = scale
    for start in range(0, len(corners), batch_size):
        chunk = corners[start:start + batch_size]
        pred = _call(model, np.stack([canvas[y:y + tile, x:x + tile] for y, x in chunk]))
        if out is None:
            out = np.zeros((ny * inner * s, nx * inner * s, pred.shape[-1]), np.float32)
        for (y, x), p in zip(chunk, pred):
            out[y * s:(y + inner) * s, x * s:(x + inner) * s] = p[margin * s:(margin + inner) * s,
                                                                  margin * s:(margin + inner) * s]
    return np.clip(out[:height * s, :width * s], 0.0, 1.0)


#: JPEG/JFIF YCbCr (ITU-R BT.601 weights, full range): rows give Y, Cb, Cr of RGB in 0..255 (+ 0, 128, 128)
_RGB_TO_YCBCR = np.array([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])
_YCBCR_TO_RGB = np.linalg.inv(_RGB_TO_YCBCR)
_CHROMA_OFFSET = np.array([0.0, 0.5, 0.5])


def rgb_to_ycbcr(rgb: np.ndarray) -> np.ndarray:
    """Full-range BT.601 YCbCr (as JPEG and PIL's ``YCbCr`` mode) of RGB in [0, 1]; Y, Cb, Cr in [0, 1].

    Full range because it is the luma foveal trains 1-channel models on (``--channels 1`` decodes
    colour images to ``0.299 R + 0.587 G + 0.114 B``); scikit-image's ``rgb2ypbpr`` is the same
    transform with Pb, Pr centred on 0 (tested).
    """
    return np.asarray(rgb, np.float64) @ _RGB_TO_YCBCR.T + _CHROMA_OFFSET


def ycbcr_to_rgb(ycbcr: np.ndarray) -> np.ndarray:
    """The inverse of :func:`rgb_to_ycbcr` (not clipped)."""
    return (np.asarray(ycbcr, np.float64) - _CHROMA_OFFSET) @ _YCBCR_TO_RGB.T


def luma(rgb: np.ndarray) -> np.ndarray:
    """HxWx1 luma (0..255 floats, rounded) of HxWx3 raw pixels, exactly as images are decoded for a
    1-channel model (:func:`foveal.data.decode.decode_image_bytes` with ``channels=1``)."""
    import tensorflow as tf

    return np.round(tf.image.rgb_to_grayscale(tf.constant(np.asarray(rgb, np.float32))).numpy())


def enhance_colour(model, card, image: np.ndarray, **kwargs: Any) -> np.ndarray:
    """An RGB image (float32 in [0, 1], ``scale`` times larger) from a 1-channel (luma-trained) model:
    the luma goes through the network, the chroma (Cb, Cr) is upscaled by the model's baseline
    interpolation (bicubic), and the two are joined back into RGB (the SR literature's way of
    applying a Y-channel network such as ESPCN to colour photos: Shi et al. 2016, Dong et al. 2014).

    The result's luma is the network's output (up to clipping to [0, 1]), so its PSNR on Y equals
    that of the luma path; its chroma is the bicubic baseline's.

    Example:
        >>> rgb = enhance_colour(espcn_y, card, photo_uint8.astype("float32"))  # doctest: +SKIP
    """
    image = np.asarray(image, np.float32)
    g = {**geometry(card), **kwargs}
    y = enhance_array(model, luma(image), **g)
    return join_luma(y, image, g["scale"], card.training.get("baseline", "bicubic"))


def join_luma(y: np.ndarray, image: np.ndarray, scale: int, baseline: str = "bicubic") -> np.ndarray:
    """RGB (float32 in [0, 1]) of an enhanced luma ``y`` (HxWx1 in [0, 1], ``scale`` times the
    image) and the chroma of ``image`` (HxWx3 raw pixels) upscaled by ``baseline``: the second half
    of :func:`enhance_colour`, which ``foveal serve``'s page repeats in the browser (tested).

    Example:
        >>> rgb = join_luma(np.full((6, 6, 1), 0.5, np.float32), np.zeros((2, 2, 3)), 3)
        >>> rgb.shape, float(rgb.max())
        ((6, 6, 3), 0.5)
    """
    from foveal.enhancement.degrade import upscale

    chroma = rgb_to_ycbcr(np.asarray(image, np.float32) / 255.0)[..., 1:].astype(np.float32)
    if scale > 1:
        chroma = upscale(chroma, scale, baseline).numpy()
    chroma = chroma[:y.shape[0], :y.shape[1]]
    return np.clip(ycbcr_to_rgb(np.concatenate([y, chroma], axis=-1)), 0.0, 1.0).astype(np.float32)


def enhance(model, card, image: np.ndarray, *, luma_only: bool = False, **kwargs: Any) -> np.ndarray:
    """:func:`enhance_array` with the card's geometry.

    A colour image given to a 1-channel model comes back in colour (:func:`enhance_colour`), or,
    with ``luma_only``, as the enhanced luma alone.
    """
    image = np.asarray(image)
    if card.input_shape[-1] == 1 and image.ndim == 3 and image.shape[-1] == 3:
        if not luma_only:
            return enhance_colour(model, card, image, **kwargs)
        image = luma(image)
    return enhance_array(model, image, **{**geometry(card), **kwargs})


def as_model_channels(image: np.ndarray, card) -> np.ndarray:
    """A decoded HxWx3 image for ``card``'s model: a gray picture (R = G = B) as one channel for a
    1-channel model, a colour one kept in colour (:func:`enhance` takes it through the luma path)."""
    image = np.asarray(image)
    if card.input_shape[-1] == 1 and image.shape[-1] == 3 and np.array_equal(image[..., 0], image[..., 1]) \
            and np.array_equal(image[..., 0], image[..., 2]):
        return image[..., :1]
    return image


def enhance_batch(model, card, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """Enhanced images (float32 [0, 1]) of same-size images (N, H, W, C) that fit in one pass
    (batched), else one by one."""
    g = geometry(card)
    n, h, w = images.shape[:3]
    if g["fixed"] is not None or max(h, w) > g["tile"]:
        return np.stack([enhance(model, card, im) for im in images])
    m, s = g["multiple"], g["scale"]
    padded = np.stack([_pad_to(np.asarray(im, np.float32), -(-h // m) * m, -(-w // m) * m) for im in images])
    out = [_call(model, padded[i:i + batch_size]) for i in range(0, n, batch_size)]
    return np.clip(np.concatenate(out)[:, :h * s, :w * s], 0.0, 1.0)


def to_uint8(image: np.ndarray) -> np.ndarray:
    """[0, 1] floats -> uint8 pixels (rounded)."""
    return np.clip(np.round(np.asarray(image) * 255.0), 0, 255).astype(np.uint8)


def enhance_files(model, card, images: Iterable[str | Path], *, output: str | Path | None = None,
                  skip_invalid: bool = False, luma_only: bool = False) -> list[dict[str, Any]]:
    """Enhance every image file (folders searched recursively) and optionally write them.

    Args:
        model, card: from :func:`foveal.models.load_model` of an enhancement model.
        images: files and/or folders.
        output: folder for ``enhanced/NAME.png`` and ``predictions.csv``; None writes nothing.
        skip_invalid: report unreadable files as rows with ``error`` instead of raising.
        luma_only: a 1-channel (luma) model writes colour photos as enhanced luma (gray); by
            default they come back in colour (:func:`enhance_colour`).

    Returns:
        One dict per image: ``file``, ``input_size`` and ``output_size`` (``[width, height]``),
        ``enhanced`` (the written file, with ``output``), and ``image`` (the uint8 result,
        only without ``output``).
    """
    from foveal.data.files import unique_name, write_png
    from foveal.prediction import predict_files

    check_card(card)
    channels = 3 if card.input_shape[-1] == 1 else card.input_shape[-1]  # colour photos keep their colour
    out_dir = Path(output) if output is not None else None
    used: set[str] = set()

    def rows_for(batch: list[tuple[Path, np.ndarray]]) -> list[dict[str, Any]]:
        (path, image), = batch
        result = to_uint8(enhance(model, card, as_model_channels(image, card), luma_only=luma_only))
        row: dict[str, Any] = {"file": printable_path(path), "input_size": [image.shape[1], image.shape[0]],
                               "output_size": [result.shape[1], result.shape[0]]}
        if out_dir is not None:
            row["enhanced"] = str(write_png(out_dir / "enhanced" / unique_name(path, used), result))
        else:
            row["image"] = result
        return [row]

    # One image at a time: each keeps its own size.
    return predict_files(images, channels, rows_for, batch_size=1, skip_invalid=skip_invalid, output=output,
                         tables={"predictions.csv": to_csv})


def to_csv(rows: list[dict[str, Any]]) -> str:
    """One line per image: file, written file, input and output sizes, error."""
    from foveal.prediction import rows_csv

    return rows_csv(rows, ["file", "enhanced", "input_width", "input_height", "output_width", "output_height"],
                    lambda r: [[r["file"], r.get("enhanced", ""), *r["input_size"], *r["output_size"]]])


def format_table(rows: list[dict[str, Any]]) -> str:
    """A terminal table: file, input size -> output size."""
    from foveal.prediction import file_table

    return file_table(rows, lambda r: f"{r['input_size'][0]}x{r['input_size'][1]} -> "
                      f"{r['output_size'][0]}x{r['output_size'][1]}" + (f"  {r['enhanced']}" if "enhanced" in r else ""),
                      width=50)


__all__ = ["DEFAULT_TILE", "as_model_channels", "check_card", "enhance", "enhance_array", "enhance_batch",
           "enhance_colour", "enhance_files", "format_table", "geometry", "join_luma", "luma", "rgb_to_ycbcr", "to_csv", "to_uint8",
           "ycbcr_to_rgb"]
