"""Shared fixtures: quiet TensorFlow, a fresh Keras session per test, small real datasets."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest

SHARED_DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"


@pytest.fixture(autouse=True)
def _fresh_keras_session():
    yield
    import keras

    keras.backend.clear_session()


def write_digits_folder(root: Path, per_class: int = 30, classes: int = 10, size: int = 16) -> Path:
    """Write scikit-learn's real digits as PNG files in ``root/<digit>/NNN.png`` and return root."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.round(digits.images * 255 / 16).astype(np.uint8)
    for cls in range(classes):
        folder = root / str(cls)
        folder.mkdir(parents=True, exist_ok=True)
        for i, idx in enumerate(np.flatnonzero(digits.target == cls)[:per_class]):
            Image.fromarray(images[idx]).resize((size, size), Image.NEAREST).save(folder / f"{i:03d}.png")
    return root


@pytest.fixture(scope="session")
def digits_folder(tmp_path_factory) -> Path:
    """A 300-image, 10-class folder dataset of real handwritten digits."""
    return write_digits_folder(tmp_path_factory.mktemp("digits_folder"))
