"""MNIST-M-style datasets: digits blended with random patches of colour photos.

Ganin et al., "Domain-Adversarial Training of Neural Networks", JMLR 17 (2016), section 5.2.2,
built MNIST-M by blending each MNIST digit with a patch cut at random from the BSDS500 photos:
``out[i, j, k] = |patch[i, j, k] - digit[i, j]|`` for every colour channel ``k``. Where the
digit's stroke is white the photo is inverted, elsewhere it shows through unchanged, so the
digit keeps its shape while colour and texture change: the same labels in a new domain.

:func:`make_mnist_m` does the same with any digit dataset foveal reads (the MNIST IDX files,
``mnist`` through keras.datasets, an ``.npz`` or a class folder) and any folder of photos (we
use the 80 + 79 COCO photos of ``../shared/datasets/coco-mini``, not BSDS500: numbers measured
on it are not the paper's MNIST-M). The result is a class-subfolder image folder
(``OUTPUT/{train,test}/<class>/NNNNNN.png``) that ``foveal train --data`` and every other reader
read, plus ``mnist-m.json`` saying how it was made. Everything random comes from one seed: the
same inputs and seed give the same bytes.

Example:
    >>> info = make_mnist_m("../shared/datasets/mnist", "../shared/datasets/coco-mini",
    ...                     "mnist-m", seed=0, limit=1000)  # doctest: +SKIP
    >>> info["counts"]  # doctest: +SKIP
    {'train': 1000, 'test': 1000}
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from foveal.errors import ConfigError, DataError
from foveal.utils_io import printable_path, refuse_nonempty_output, staged_folder

#: photo file types read as backgrounds
PHOTO_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"})
MANIFEST = "mnist-m.json"


def blend(digit: np.ndarray, patch: np.ndarray, *, binarize: bool = False) -> np.ndarray:
    """The MNIST-M blend of one gray digit (H, W) with an RGB patch (H, W, 3): ``|patch - digit|``.

    Args:
        digit: uint8 gray digit, white strokes on black.
        patch: uint8 RGB photo patch of the same height and width.
        binarize: make the digit 0/255 first (strokes fully invert the photo), as several
            public MNIST-M builders do; the paper's formula uses the gray digit as it is.

    Returns:
        uint8 (H, W, 3).

    Example:
        >>> blend(np.array([[0, 255]], np.uint8), np.full((1, 2, 3), 200, np.uint8))[0, :, 0]
        array([200,  55], dtype=uint8)
    """
    d = digit.astype(np.int16)
    if binarize:
        d = np.where(d > 0, 255, 0).astype(np.int16)
    return np.abs(patch.astype(np.int16) - d[..., None]).astype(np.uint8)


@dataclass(frozen=True)
class Backgrounds:
    """The background photos, decoded once (RGB uint8), with their files for messages."""

    images: list[np.ndarray]
    files: list[str]

    def patch(self, rng: np.random.Generator, height: int, width: int) -> np.ndarray:
        """A ``height`` x ``width`` patch at a random place of a random photo."""
        k = int(rng.integers(len(self.images)))
        image = self.images[k]
        top = int(rng.integers(image.shape[0] - height + 1))
        left = int(rng.integers(image.shape[1] - width + 1))
        return image[top:top + height, left:left + width]


def photo_files(folder: str | Path) -> list[Path]:
    """The photo files under ``folder`` (recursively, sorted: the order is part of the seed's result).

    Raises:
        DataError: the folder does not exist or holds no photo.
    """
    root = Path(folder)
    if not root.is_dir():
        raise DataError(f"{printable_path(root)}: no such folder of background photos",
                        hint="--backgrounds takes a folder of photos (JPEG, PNG, ...), e.g. ../shared/datasets/coco-mini")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in PHOTO_EXTENSIONS and p.is_file()
                   and not any(part.startswith(".") for part in p.relative_to(root).parts))
    if not files:
        raise DataError(f"{printable_path(root)}: no photos found (looked for "
                        f"{', '.join(sorted(PHOTO_EXTENSIONS))}, in subfolders too)",
                        hint="--backgrounds takes a folder of photos")
    return files


def load_backgrounds(folder: str | Path, height: int, width: int) -> Backgrounds:
    """Decode every photo under ``folder`` as RGB.

    Raises:
        DataError: no photos, an unreadable photo, or a photo smaller than the patch (named).
    """
    from PIL import Image, UnidentifiedImageError

    images, names = [], []
    for path in photo_files(folder):
        try:
            with Image.open(path) as im:
                rgb = np.asarray(im.convert("RGB"))
        except (OSError, UnidentifiedImageError, ValueError) as exc:
            raise DataError(f"{printable_path(path)}: cannot read this background photo ({exc})",
                            hint="remove it from the --backgrounds folder") from None
        if rgb.shape[0] < height or rgb.shape[1] < width:
            raise DataError(f"{printable_path(path)}: background {rgb.shape[1]}x{rgb.shape[0]} is smaller than the "
                            f"{width}x{height} patch a digit needs",
                            hint="remove it from the --backgrounds folder, or use larger photos")
        images.append(rgb)
        names.append(printable_path(path))
    return Backgrounds(images, names)


def _gray_digits(part: Any) -> tuple[Callable[[int], np.ndarray], tuple[int, int]]:
    """(index -> uint8 gray digit, (height, width)) of a LabeledImages."""
    if part.images is not None:
        images = part.images
        if images.ndim == 4:
            images = images[..., 0] if images.shape[-1] == 1 else images[..., :3].mean(axis=-1).round().astype(np.uint8)
        return (lambda i: images[i]), tuple(images.shape[1:3])
    if part.paths is None:
        raise DataError(f"{part.origin}: TFRecord digits are not supported here",
                        hint="use the IDX files, an .npz or an image folder of the digits")
    from PIL import Image

    def read(i: int) -> np.ndarray:
        with Image.open(part.paths[i]) as im:
            return np.asarray(im.convert("L"))

    return read, read(0).shape if len(part) else (0, 0)


def make_mnist_m(digits: str, backgrounds: str | Path, output: str | Path, *, seed: int = 0,
                 limit: int | None = None, binarize: bool = False, overwrite: bool = False,
                 progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Write an MNIST-M-style dataset: every digit of ``digits`` blended with a photo patch.

    Args:
        digits: a dataset spec foveal reads (MNIST IDX folder, ``mnist``, ``.npz``, class folder);
            every split it has (train, val, test) is written.
        backgrounds: a folder of photos; patches are cut from them at their own resolution.
        output: the folder to write; it must not exist, or be empty, unless ``overwrite``.
        seed: everything random (photo, place) comes from it; each split draws from its own stream.
        limit: at most this many digits per split (the first ones), for quick sets.
        binarize: see :func:`blend`.
        overwrite: replace an existing ``output``.
        progress: called with a line per split written.

    Returns:
        The manifest written to ``OUTPUT/mnist-m.json`` (counts, seed, photos, formula).

    Raises:
        DataError: unreadable digits or photos, or a photo smaller than a digit.
        OutputError: ``output`` exists and is not empty (without ``overwrite``), or cannot be written.
    """
    from PIL import Image

    from foveal.data.readers import load_dataset

    if limit is not None and limit < 1:
        raise ConfigError(f"--limit must be at least 1, got {limit}")
    out = Path(output)
    refuse_nonempty_output(out, overwrite)
    splits = load_dataset(digits)
    readers = {name: _gray_digits(part) for name, part in splits.items()}
    sizes = {shape for _, shape in readers.values()}
    height, width = max(h for h, _ in sizes), max(w for _, w in sizes)
    photos = load_backgrounds(backgrounds, height, width)
    counts: dict[str, int] = {}
    with staged_folder(out) as staging:
        for split_no, (split, part) in enumerate(splits.items()):
            read, _ = readers[split]
            rng = np.random.default_rng([seed, split_no])
            n = len(part) if limit is None else min(limit, len(part))
            for name in sorted({part.class_names[int(c)] for c in part.labels[:n]}):  # classes with images only
                (staging / split / name).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                digit = read(i)
                image = blend(digit, photos.patch(rng, *digit.shape[:2]), binarize=binarize)
                label = part.class_names[int(part.labels[i])]
                Image.fromarray(image).save(staging / split / label / f"{i:06d}.png", optimize=False, compress_level=1)
            counts[split] = n
            if progress:
                progress(f"{split}: {n} images")
        manifest = {"kind": "mnist-m", "paper": "Ganin et al., JMLR 2016, sec. 5.2.2",
                    "formula": "|patch - digit| per channel" + (" (digit binarised to 0/255)" if binarize else ""),
                    "digits": str(digits), "backgrounds": printable_path(backgrounds), "photos": len(photos.files),
                    "seed": seed, "limit": limit, "binarize": binarize, "counts": counts,
                    "classes": list(next(iter(splits.values())).class_names)}
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    return manifest


__all__ = ["Backgrounds", "blend", "load_backgrounds", "make_mnist_m", "photo_files"]
