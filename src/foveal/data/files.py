"""Image files in and out, as every task's prediction, report and export check reads and writes
them: folders expanded into image files, files decoded as the training pipeline decodes them (EXIF
orientation applied), and PNGs written atomically.

Example:
    >>> pixels = decode_file("photo.jpg", channels=3)  # doctest: +SKIP
    >>> write_png(Path("out/photo.png"), pixels)  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Iterable

import numpy as np

from foveal.errors import DataError
from foveal.utils_io import atomic_path, printable_path

if TYPE_CHECKING:
    from foveal.models.io import ModelCard

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif"}


def collect_images(inputs: Iterable[str | Path]) -> list[Path]:
    """Expand folders (recursively) into image files; keep files as given, in order."""
    files: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise DataError(f"{path}: no images found (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise DataError(f"{path}: no such file or folder")
    return files


def decode_file(path: str | Path, channels: int, max_pixels: int = 89_478_485) -> np.ndarray:
    """Decode one image file as the training pipeline does (uint8 HxWxC, original size), turned
    upright by its EXIF orientation. Every task's prediction reads its files through it.

    Raises:
        DataError: naming the file when it is missing, not an image, or cannot be read or decoded.
    """
    import tensorflow as tf

    from foveal.data.decode import decode_image_bytes
    from foveal.data.imagecheck import probe_image

    shown = printable_path(path)
    if not Path(path).is_file():
        raise DataError(f"{shown}: no such file")
    probe = probe_image(path, full=True, max_pixels=max_pixels)
    if probe.problem:
        raise DataError(f"{shown}: {probe.problem}")
    try:
        # Read by Python, not tf.io.read_file: TensorFlow refuses file names that are not UTF-8.
        return decode_image_bytes(tf.constant(Path(path).read_bytes()), channels).numpy()
    except OSError as exc:
        raise DataError(f"{shown}: cannot read ({exc.strerror or exc})") from None
    except tf.errors.InvalidArgumentError as exc:
        raise DataError(f"{shown}: cannot be decoded ({str(exc).splitlines()[0][:200]})") from None


def load_image(path: Path, card: ModelCard, max_pixels: int = 89_478_485) -> np.ndarray:
    """Decode and resize one image exactly as the training pipeline does (uint8 HxWxC)."""
    from foveal.data.pipeline import resize_image

    h, w, c = card.input_shape
    return np.asarray(resize_image(decode_file(path, c, max_pixels), (h, w), card.keep_aspect))


def unique_name(source: str | Path, used: set[str]) -> str:
    """``<stem>.png`` of ``source``, or ``<stem>_2.png``, ``_3``... when taken in ``used`` (updated)."""
    stem, k = Path(source).stem, 1
    name = f"{stem}.png"
    while name in used:
        k += 1
        name = f"{stem}_{k}.png"
    used.add(name)
    return name


def write_png(path: Path, pixels: np.ndarray, palette: np.ndarray | None = None) -> Path:
    """Write a uint8 HxW, HxWx1 or HxWx3 array as PNG, atomically (the folder is made).

    An HxW label map is an index PNG: gray (mode L), or with ``palette`` ((K, 3) colours of
    the classes) palette-mode (mode P), whose pixel values are still the class indices.
    """
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.asarray(pixels, np.uint8)
    if pixels.ndim == 3 and pixels.shape[-1] == 1:
        pixels = pixels[..., 0]
    if palette is not None and pixels.ndim == 2:
        img = Image.fromarray(pixels, mode="P")  # the values become palette indices, unchanged
        entries = np.zeros((256, 3), np.uint8)
        entries[: len(palette)] = np.asarray(palette, np.uint8)[:256]
        img.putpalette(entries.ravel().tolist())
    else:
        img = Image.fromarray(pixels)
    with atomic_path(path) as tmp:
        img.save(tmp, format="PNG")
    return path


def image_size(path: str | Path) -> tuple[int, int]:
    """(height, width) of an image file as shown (EXIF orientation applied), from its header only."""
    from PIL import Image

    from foveal.data.imagecheck import exif_orientation_of

    try:
        with Image.open(path) as img:
            return (img.width, img.height) if exif_orientation_of(img) in (5, 6, 7, 8) else (img.height, img.width)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read the image ({exc})") from None


def natural_key(stem: str) -> tuple:
    """Sort key of file stems: numbers by value (``2`` before ``10``) before other names."""
    return (0, int(stem), "") if stem.isdigit() else (1, 0, stem)
