"""Drawing images from a trained generative model, and laying them out as grids and PNG files.

Noise comes from NumPy's seeded generator, so ``foveal generate predict --seed S`` gives the
same images every time; a conditional model's classes are named by name or index, and a model
without classes refuses ``--class`` (each in one line naming the option).

Example:
    >>> labels = requested_classes(model, card, "7", count=16)  # doctest: +SKIP
    >>> images = sample(model, 16, labels, seed=0)  # (16, 28, 28, 1) in [0, 1]  # doctest: +SKIP
    >>> write_png(Path("grid.png"), tile(images, cols=4))  # doctest: +SKIP
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from foveal.data.files import write_png
from foveal.errors import ConfigError

if TYPE_CHECKING:
    import keras

    from foveal.models import ModelCard


def is_conditional(model: Any) -> bool:
    return bool(getattr(model, "conditional", False))


def class_index(requested: str | int, class_names: Sequence[str], option: str = "--class") -> int:
    """The index of a class given by name (first) or by index."""
    text = str(requested)
    if text in class_names:
        return list(class_names).index(text)
    if text.lstrip("-").isdigit() and 0 <= int(text) < len(class_names):
        return int(text)
    shown = ", ".join(class_names[:20]) + (" ..." if len(class_names) > 20 else "")
    raise ConfigError(f"{option} {text!r}: the model knows no such class",
                      hint=f"its classes (by name, or index 0..{len(class_names) - 1}): {shown}")


def requested_classes(model: Any, card: ModelCard, requested: str | int | None, count: int) -> np.ndarray | None:
    """Class ids for ``count`` samples: ``requested`` for all, or every class in turn; None for a
    model without classes.

    Raises:
        ConfigError: ``requested`` given to a model without classes, or a class the model does not know.
    """
    if not is_conditional(model):
        if requested is not None:
            raise ConfigError(f"--class {requested}: this {card.architecture} model is not class-conditional",
                              hint="leave out --class, or train a conditional model (foveal generate train --model cgan)")
        return None
    if requested is not None:
        return np.full(count, class_index(requested, card.class_names), np.int32)
    return (np.arange(count) % len(card.class_names)).astype(np.int32)


def noise(count: int, latent_dim: int, seed: int) -> np.ndarray:
    """``count`` standard normal latent codes from NumPy's generator seeded with ``seed``."""
    return np.random.default_rng(seed).standard_normal((count, latent_dim)).astype(np.float32)


def sample(model: keras.Model, count: int, labels: np.ndarray | None = None, *, seed: int = 0,
           z: np.ndarray | None = None, batch_size: int = 256) -> np.ndarray:
    """``count`` generated images (N, H, W, C) in [0, 1] (float32)."""
    z = noise(count, model.latent_dim, seed) if z is None else np.asarray(z, np.float32)
    out = []
    for start in range(0, len(z), batch_size):
        part = z[start:start + batch_size]
        lab = None if labels is None else np.asarray(labels[start:start + batch_size], np.int32)
        out.append(np.asarray(model.generate(part, lab)))
    return np.clip(np.concatenate(out), 0.0, 1.0).astype(np.float32) if out else np.zeros((0, *model.image_shape))


def to_uint8(images01: np.ndarray) -> np.ndarray:
    return np.round(np.clip(images01, 0.0, 1.0) * 255.0).astype(np.uint8)


def tile(images01: np.ndarray, cols: int, pad: int = 1) -> np.ndarray:
    """A mosaic (uint8 HxW or HxWx3) of images in [0, 1], ``cols`` per row, ``pad`` pixels apart."""
    images = to_uint8(images01)
    n, h, w, c = images.shape
    rows = max(1, -(-n // cols))
    grid = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, c), 255, np.uint8)
    for i, image in enumerate(images):
        r, k = divmod(i, cols)
        grid[pad + r * (h + pad):pad + r * (h + pad) + h, pad + k * (w + pad):pad + k * (w + pad) + w] = image
    return grid[..., 0] if c == 1 else grid


def grid_of(images01: np.ndarray, labels: np.ndarray | None, classes: int, *, by_class: bool = True,
            cols: int = 0) -> np.ndarray:
    """The mosaic of samples: one row per class for a conditional model's classes in turn
    (``by_class`` and ``cols`` 0), else ``cols`` per row (0: a square)."""
    count = len(images01)
    if labels is not None and by_class and not cols:
        per = -(-count // classes)
        order = np.argsort(labels, kind="stable")  # one row per class
        grid_images = np.ones((classes * per, *images01.shape[1:]), np.float32)
        for c in range(classes):
            members = order[labels[order] == c]
            grid_images[c * per:c * per + len(members)] = images01[members]
        return tile(grid_images, cols=per)
    return tile(images01, cols=cols or int(np.ceil(np.sqrt(count))))


def png_bytes(pixels: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.asarray(pixels, np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def manifold(model: keras.Model, n: int = 15, low: float = 0.05, high: float = 0.95) -> np.ndarray:
    """The texts' figure: decoded images of an n x n grid evenly covering a 2-D latent space.

    The grid's coordinates are the standard normal quantiles of ``linspace(low, high, n)`` (the
    inverse CDF), so each cell holds equal prior probability mass (Kingma & Welling 2014, fig. 4).
    Rows run from high to low z_2, columns from low to high z_1."""
    from scipy.stats import norm

    if model.latent_dim != 2:
        raise ConfigError(f"the latent manifold figure needs a 2-D latent space; this model's has "
                          f"{model.latent_dim} dimensions", hint="train with --latent-dim 2")
    q = norm.ppf(np.linspace(low, high, n))
    z = np.array([[z1, z2] for z2 in q[::-1] for z1 in q], np.float32)
    return tile(sample(model, len(z), z=z), cols=n, pad=0)


def write_samples(model: keras.Model, card: ModelCard, output: str | Path, *, count: int = 64,
                  requested: str | int | None = None, seed: int = 0, cols: int = 0) -> dict[str, Any]:
    """``foveal generate predict``: ``count`` images as ``output/sample_NNNN.png`` and ``output/grid.png``.

    A conditional model without ``requested`` draws every class in turn (one class per grid row
    when ``cols`` is 0). Returns what was written (paths, classes, seed)."""
    from foveal.utils_io import atomic_write_text, ensure_output_dir

    if count < 1:
        raise ConfigError(f"--count {count}: ask for at least one image")
    labels = requested_classes(model, card, requested, count)
    out = ensure_output_dir(output)
    images = sample(model, count, labels, seed=seed)
    grid = grid_of(images, labels, len(card.class_names), by_class=requested is None, cols=cols)
    rows = []
    for i, image in enumerate(images):
        path = write_png(out / f"sample_{i:04d}.png", to_uint8(image))
        rows.append({"file": str(path), "class": None if labels is None else card.class_names[int(labels[i])]})
    write_png(out / "grid.png", grid)
    summary = {"model": card.architecture, "count": count, "seed": seed, "grid": str(out / "grid.png"),
               "samples": rows}
    import json

    atomic_write_text(out / "samples.json", json.dumps(summary, indent=1))
    return summary


__all__ = ["class_index", "grid_of", "is_conditional", "manifold", "noise", "png_bytes", "requested_classes", "sample", "tile",
           "to_uint8", "write_png", "write_samples"]
