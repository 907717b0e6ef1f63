"""Fixtures that build tiny datasets in every supported format inside ``tmp_path``."""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from PIL import Image

SIZE = 8


@pytest.fixture(autouse=True)
def _fresh_keras_session():
    """Overrides the suite-wide Keras reset: these tests build no models, and the reset's
    garbage collection costs about 0.25 s per test."""
    yield


def make_image(mode: str, seed: int = 0, size: tuple[int, int] = (SIZE, SIZE)) -> Image.Image:
    """A random image of ``mode`` (L, RGB, RGBA, LA, P, I;16, CMYK, 1)."""
    rng = np.random.default_rng(seed)
    h, w = size[1], size[0]
    if mode == "I;16":
        return Image.fromarray(rng.integers(0, 65535, (h, w), dtype=np.uint16))
    rgb = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    if mode in ("L", "1"):
        return Image.fromarray(rng.integers(0, 256, (h, w), dtype=np.uint8)).convert(mode)
    if mode == "RGBA":
        return Image.fromarray(rng.integers(0, 256, (h, w, 4), dtype=np.uint8))
    return rgb if mode == "RGB" else rgb.convert(mode)


def save_image(path: Path, mode: str = "RGB", seed: int = 0, size=(SIZE, SIZE), fmt=None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    make_image(mode, seed, size).save(path, fmt)
    return path


@pytest.fixture
def write_image() -> Callable[..., Path]:
    """``write_image(path, mode="RGB", seed=0, size=(8, 8), fmt=None)`` -> path."""
    return save_image


# One file per (format, mode) TensorFlow must decode: name -> (mode, PIL format).
MIXED = {
    "gray.png": ("L", "PNG"),
    "rgb.jpg": ("RGB", "JPEG"),
    "rgba.png": ("RGBA", "PNG"),
    "palette.png": ("P", "PNG"),
    "graya.png": ("LA", "PNG"),
    "deep.png": ("I;16", "PNG"),
    "cmyk.JPEG": ("CMYK", "JPEG"),
    "rgb.bmp": ("RGB", "BMP"),
    "gray.bmp": ("L", "BMP"),
    "anim.gif": ("P", "GIF"),
    "bilevel.png": ("1", "PNG"),
}


@pytest.fixture
def mixed_folder(tmp_path) -> Path:
    """``root/{a,b}/`` each holding every entry of :data:`MIXED` (22 images)."""
    root = tmp_path / "mixed"
    for c, cls in enumerate(("a", "b")):
        for i, (name, (mode, fmt)) in enumerate(MIXED.items()):
            save_image(root / cls / name, mode, seed=10 * c + i, fmt=fmt)
    return root


@pytest.fixture
def two_class_folder(tmp_path) -> Callable[..., Path]:
    """``make(root_name="pets", per_class=3)`` -> ``root/{cat,dog}/NN.png`` (gray, RGB)."""

    def make(root_name: str = "pets", per_class: int = 3) -> Path:
        root = tmp_path / root_name
        for c, cls in enumerate(("cat", "dog")):
            for i in range(per_class):
                save_image(root / cls / f"{i:02d}.png", "L" if i % 2 else "RGB", seed=c * 100 + i)
        return root

    return make


def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape
    )
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def write_idx_file(path: Path, array: np.ndarray, gz: bool = False) -> Path:
    data = idx_bytes(array)
    if gz:
        path = path.with_name(path.name + ".gz")
        data = gzip.compress(data)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.fixture
def write_idx() -> Callable[..., Path]:
    """``write_idx(path, uint8_array, gz=False)`` -> the written path (``.gz`` added)."""
    return write_idx_file


@pytest.fixture
def idx_dataset(tmp_path) -> Callable[..., tuple[Path, dict[str, tuple[np.ndarray, np.ndarray]]]]:
    """``make(name="mnist", gz=False)`` -> (folder, {"train": (x, y), "test": (x, y)})."""

    def make(name: str = "mnist", gz: bool = False, test: bool = True):
        rng = np.random.default_rng(1)
        folder = tmp_path / name
        arrays = {"train": (rng.integers(0, 256, (12, 6, 5), dtype=np.uint8),
                            rng.integers(0, 10, 12, dtype=np.uint8))}
        if test:
            arrays["test"] = (rng.integers(0, 256, (4, 6, 5), dtype=np.uint8),
                              np.array([9, 0, 3, 3], np.uint8))
        for split, (x, y) in arrays.items():
            prefix = "train" if split == "train" else "t10k"
            write_idx_file(folder / f"{prefix}-images-idx3-ubyte", x, gz)
            write_idx_file(folder / f"{prefix}-labels-idx1-ubyte", y, gz)
        return folder, arrays

    return make


def _pickle(path: Path, obj: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)


def cifar_rows(images: np.ndarray) -> np.ndarray:
    """(N, 32, 32, 3) -> (N, 3072) rows of R, G and B planes, as CIFAR stores them."""
    return images.transpose(0, 3, 1, 2).reshape(len(images), -1)


@pytest.fixture
def cifar10_dir(tmp_path) -> tuple[Path, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """``tmp/cifar-10-batches-py`` with 5 train batches of 2 images, a test batch, the meta."""
    rng = np.random.default_rng(2)
    folder = tmp_path / "download" / "cifar-10-batches-py"
    x = rng.integers(0, 256, (12, 32, 32, 3), dtype=np.uint8)
    y = rng.integers(0, 10, 12)
    for b in range(5):
        part = slice(2 * b, 2 * b + 2)
        _pickle(folder / f"data_batch_{b + 1}", {
            b"batch_label": f"training batch {b + 1} of 5".encode(),
            b"labels": [int(v) for v in y[part]],
            b"data": cifar_rows(x[part]),
            b"filenames": [f"img{i}.png".encode() for i in range(2)],
        })
    _pickle(folder / "test_batch", {
        b"batch_label": b"testing batch 1 of 1",
        b"labels": [int(v) for v in y[10:]],
        b"data": cifar_rows(x[10:]),
        b"filenames": [b"t0.png", b"t1.png"],
    })
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer",
             b"dog", b"frog", b"horse", b"ship", b"truck"]
    _pickle(folder / "batches.meta", {b"label_names": names, b"num_cases_per_batch": 2})
    return folder.parent, {"train": (x[:10], y[:10]), "test": (x[10:], y[10:])}


@pytest.fixture
def cifar100_dir(tmp_path) -> tuple[Path, dict[str, np.ndarray]]:
    """``cifar-100-python/{train,test,meta}`` with fine and coarse labels."""
    rng = np.random.default_rng(3)
    folder = tmp_path / "cifar-100-python"
    x = rng.integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    fine = np.array([0, 99, 5, 42, 7, 1])
    coarse = fine // 5
    for name, part in (("train", slice(0, 4)), ("test", slice(4, 6))):
        _pickle(folder / name, {
            b"filenames": [b"f"] * len(fine[part]),
            b"fine_labels": fine[part].tolist(),
            b"coarse_labels": coarse[part].tolist(),
            b"data": cifar_rows(x[part]),
        })
    _pickle(folder / "meta", {
        b"fine_label_names": [f"fine{i}".encode() for i in range(100)],
        b"coarse_label_names": [f"coarse{i}".encode() for i in range(20)],
    })
    return folder, {"x": x, "fine": fine, "coarse": coarse}
