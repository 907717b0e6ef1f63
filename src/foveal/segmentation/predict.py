"""``foveal segment predict``: image files -> per-pixel class maps at each image's own size.

The card gives the class names, channels, resize policy, stride and tile size; the same code
scores ``evaluate`` and the end of a run. A model trained on resized images (``--image-size``)
sees the image stretched, and its probabilities are stretched back (bilinearly) before the
arg-max. An image whose sides fit in ``tile`` is predicted in one pass, mirror-padded to a
multiple of the stride; a larger one in overlapping ``tile`` windows whose centres are kept
(the outer eighth is context), in the spirit of U-Net's overlap-tile strategy. Test-time
augmentation (``tta``: ``flips``, 4 views; ``d4``, the 8 symmetries of the square) averages the
probabilities of transformed views mapped back; an optional dense CRF (:mod:`.crf`) then refines.

Outputs: ``masks/NAME.png`` (pixel value = class index; gray, or palette-mode like the training
masks, see ``mask_png``), ``overlays/NAME.png`` (classes painted half-transparent, ``background``
left unpainted) and ``predictions.csv`` (share of pixels per class).

Example:
    >>> model, card = load_model("runs/isbi/best.keras")  # doctest: +SKIP
    >>> rows = predict_masks(model, card, ["slice.png"], output="pred/")  # doctest: +SKIP
    >>> rows[0]["mask"]  # doctest: +SKIP
    'pred/masks/slice.png'
"""

from __future__ import annotations

import math
from functools import partial
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from foveal.errors import ConfigError, require_task
from foveal.utils_io import printable_path

DEFAULT_TILE = 1024
#: TTA set -> its views as (quarter turns counter-clockwise, mirrored left-right first)
TTA_VIEWS: dict[str, tuple[tuple[int, bool], ...]] = {
    "none": ((0, False),),
    "flips": ((0, False), (0, True), (2, True), (2, False)),  # identity, hflip, vflip, both
    "d4": tuple((k, mirror) for mirror in (False, True) for k in range(4)),
}
MASK_PNGS = ("auto", "gray", "indexed")


check_card = partial(require_task, task="segment")


def class_colours(card) -> np.ndarray:
    """(K, 3) uint8: the dataset's palette when it had one, else the default palette."""
    from foveal.visualize.draw import default_palette  # foveal.visualize loads TensorFlow

    palette = card.training.get("palette")
    if palette is not None and len(palette) == len(card.class_names):
        return np.asarray(palette, np.uint8)
    return default_palette(len(card.class_names))


def unpainted(card) -> list[int]:
    """Classes an overlay leaves alone: those named ``background``."""
    return [i for i, name in enumerate(card.class_names) if name.lower() == "background"]


def _call(model, batch: np.ndarray) -> np.ndarray:
    return np.asarray(model(batch, training=False), dtype=np.float32)


def sliding_window(model, image: np.ndarray, *, tile: int, stride: int, batch_size: int = 4) -> np.ndarray:
    """Per-pixel probabilities (HxWxK) of a fully convolutional ``model`` on a float32 image: one
    mirror-padded pass when it fits in ``tile``, else overlapping windows whose centres are kept."""
    height, width = image.shape[:2]
    tile = max(stride, tile // stride * stride)
    if height <= tile and width <= tile:
        ph, pw = -height % stride, -width % stride
        padded = np.pad(image, ((0, ph), (0, pw), (0, 0)), mode="symmetric")
        return _call(model, padded[None])[0, :height, :width]
    margin = tile // 8
    inner = tile - 2 * margin
    ny, nx = math.ceil(height / inner), math.ceil(width / inner)
    padded = np.pad(image, ((margin, ny * inner - height + margin), (margin, nx * inner - width + margin), (0, 0)),
                    mode="symmetric")
    corners = [(i * inner, j * inner) for i in range(ny) for j in range(nx)]
    out = None
    for start in range(0, len(corners), batch_size):
        chunk = corners[start:start + batch_size]
        probs = _call(model, np.stack([padded[y:y + tile, x:x + tile] for y, x in chunk]))
        if out is None:
            out = np.zeros((ny * inner, nx * inner, probs.shape[-1]), np.float32)
        for (y, x), p in zip(chunk, probs):
            out[y:y + inner, x:x + inner] = p[margin:margin + inner, margin:margin + inner]
    return out[:height, :width]


def tta_name(tta: str | bool | None) -> str:
    """The name of a TTA set in :data:`TTA_VIEWS` (True means ``flips``); ConfigError if unknown."""
    name = "flips" if tta is True else "none" if tta in (None, False) else str(tta).strip().lower()
    if name not in TTA_VIEWS:
        raise ConfigError(f"unknown test-time augmentation {tta!r}", hint=f"use one of {', '.join(TTA_VIEWS)}")
    return name


def view(array: np.ndarray, turns: int, mirror: bool) -> np.ndarray:
    """``array`` (HxWx...) mirrored left-right (if ``mirror``), then turned ``turns`` quarter turns."""
    out = array[:, ::-1] if mirror else array
    return np.rot90(out, turns, axes=(0, 1))


def unview(array: np.ndarray, turns: int, mirror: bool) -> np.ndarray:
    """The inverse of :func:`view`: maps a prediction of the view back onto the image."""
    out = np.rot90(array, -turns, axes=(0, 1))
    return out[:, ::-1] if mirror else out


def predict_probabilities(model, card, image: np.ndarray, *, batch_size: int = 4,
                          tta: str | bool | None = "none") -> np.ndarray:
    """HxWxK float32 class probabilities for one decoded uint8 image, at its own size; ``tta``
    averages the views of :data:`TTA_VIEWS`, each mapped back first."""
    import tensorflow as tf

    from foveal.data.pipeline import resize_image

    views = TTA_VIEWS[tta_name(tta)]
    height, width = image.shape[:2]
    size = card.training.get("image_size")
    fixed = tuple(model.input_shape[1:3])
    if all(fixed):  # a model with a fixed input size can only see that size
        size = fixed
        if fixed[0] != fixed[1] and any(turns % 2 for turns, _ in views):
            raise ConfigError(f"quarter turns do not fit the model's fixed {fixed[0]}x{fixed[1]} input",
                              hint="use --tta flips")
    x = image if not size else np.asarray(resize_image(tf.constant(image), tuple(size), keep_aspect=False))
    x = x.astype(np.float32)

    def predict(pixels: np.ndarray) -> np.ndarray:
        if all(fixed):
            return _call(model, pixels[None])[0]
        return sliding_window(model, pixels, tile=int(card.training.get("tile", DEFAULT_TILE)),
                              stride=int(card.training.get("stride", 32)), batch_size=batch_size)

    probs = None
    for turns, mirror in views:
        p = unview(predict(np.ascontiguousarray(view(x, turns, mirror))), turns, mirror)
        probs = p if probs is None else probs + p
    probs = np.ascontiguousarray(probs / len(views), dtype=np.float32)
    if probs.shape[:2] != (height, width):
        probs = tf.image.resize(probs, (height, width), method="bilinear").numpy()
    return probs


def predict_labels(model, card, image: np.ndarray, *, crf: bool | dict[str, Any] = False,
                   tta: str | bool | None = "none") -> np.ndarray:
    """HxW uint8 class indices for one decoded image; ``tta`` averages views (see
    :func:`predict_probabilities`), ``crf`` (True or CRF options) then refines."""
    probs = predict_probabilities(model, card, image, tta=tta)
    if crf:
        from foveal.segmentation.crf import crf_refine

        probs = crf_refine(image, probs, **(crf if isinstance(crf, dict) else {}))
    return probs.argmax(-1).astype(np.uint8)


def predict_masks(
    model,
    card,
    images: Iterable[str | Path],
    *,
    output: str | Path | None = None,
    overlay: bool = True,
    crf: bool | dict[str, Any] = False,
    skip_invalid: bool = False,
    tta: str | bool | None = "none",
    mask_png: str = "auto",
) -> list[dict[str, Any]]:
    """Predict every image file (folders searched recursively); ``output`` receives ``masks/``,
    ``overlays/`` and ``predictions.csv`` (options as in the module docstring). One dict per image:
    ``file``, ``size`` (``[width, height]``), ``fractions`` per class and, when written, ``mask``, ``overlay``.
    """
    from foveal.data.files import unique_name, write_png
    from foveal.prediction import predict_files
    from foveal.visualize.draw import overlay_classes

    tta, mask_palette = checked_options(card, tta, crf, mask_png)
    out_dir = Path(output) if output is not None else None
    colours, skip = class_colours(card), unpainted(card)
    used: set[str] = set()

    def rows_for(batch: list[tuple[Path, np.ndarray]]) -> list[dict[str, Any]]:
        (path, image), = batch
        labels = predict_labels(model, card, image, crf=crf, tta=tta)
        counts = np.bincount(labels.ravel(), minlength=len(card.class_names))
        row: dict[str, Any] = {
            "file": printable_path(path), "size": [int(labels.shape[1]), int(labels.shape[0])],
            "fractions": {n: round(float(c) / labels.size, 6) for n, c in zip(card.class_names, counts)},
        }
        if out_dir is not None:
            name = unique_name(path, used)
            row["mask"] = str(write_png(out_dir / "masks" / name, labels, palette=mask_palette))
            if overlay:
                painted = overlay_classes(image, labels, colours, skip=skip)
                row["overlay"] = str(write_png(out_dir / "overlays" / name, painted))
        return [row]

    # One image at a time: each keeps its own size (tiled when large).
    return predict_files(images, card.input_shape[-1], rows_for, batch_size=1, skip_invalid=skip_invalid,
                         output=output, tables={"predictions.csv": lambda rows: to_csv(rows, card.class_names)})


def checked_options(card, tta: str | bool | None, crf: bool | dict[str, Any] = False,
                    mask_png: str = "auto") -> tuple[str, np.ndarray | None]:
    """``(TTA name, mask PNG palette)`` once the card is a segmenter's, ``tta`` and ``mask_png`` are
    known and, with ``crf``, ``pydensecrf2`` is installed."""
    check_card(card)
    if crf:
        from foveal.segmentation.crf import require_crf

        require_crf()
    return tta_name(tta), mask_png_palette(card, mask_png)


def mask_png_palette(card, mask_png: str = "auto") -> np.ndarray | None:
    """The palette predicted index masks are written with (None: gray PNGs); ``auto`` follows
    the training masks."""
    if mask_png not in MASK_PNGS:
        raise ConfigError(f"unknown mask PNG kind {mask_png!r}", hint=f"use one of {', '.join(MASK_PNGS)}")
    indexed = mask_png == "indexed" or (mask_png == "auto" and bool(card.training.get("indexed_masks")))
    return class_colours(card) if indexed else None


def to_csv(rows: list[dict[str, Any]], class_names: list[str]) -> str:
    """One line per image: file, mask, overlay, width, height, share of each class, error."""
    from foveal.prediction import rows_csv

    return rows_csv(rows, ["file", "mask", "overlay", "width", "height", *(f"fraction_{n}" for n in class_names)],
                    lambda r: [[r["file"], r.get("mask", ""), r.get("overlay", ""), *r["size"],
                                *(r["fractions"][n] for n in class_names)]])


def format_table(rows: list[dict[str, Any]]) -> str:
    """A terminal table: file, then the share of each class."""
    from foveal.prediction import file_table

    return file_table(rows, lambda r: "  ".join(f"{k} {v:.1%}" for k, v in r["fractions"].items()), width=50)
