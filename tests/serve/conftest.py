"""Fixtures for the ``foveal serve`` tests: one tiny saved classifier, its app, sample images."""

from __future__ import annotations

import io
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

with warnings.catch_warnings():  # Starlette nags about its httpx-based client on import
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

CLASSES = ["a", "b", "c"]


@pytest.fixture(autouse=True)
def _fresh_keras_session():
    """Overrides the suite-wide Keras reset: the served model lives for the whole module."""
    yield


def encode(array: np.ndarray, fmt: str = "PNG", **options) -> bytes:
    """``array`` (HxW or HxWx3 uint8) as encoded image bytes."""
    out = io.BytesIO()
    Image.fromarray(array).save(out, fmt, **options)
    return out.getvalue()


def sample_images() -> dict[str, bytes]:
    """Eight different images: gray and colour, several sizes and all four decodable formats."""
    rng = np.random.default_rng(7)

    def noise(h: int, w: int, c: int | None = None) -> np.ndarray:
        return rng.integers(0, 256, (h, w) if c is None else (h, w, c), dtype=np.uint8)

    ramp = np.tile(np.linspace(0, 255, 48, dtype=np.uint8), (40, 1))
    return {
        "gray.png": encode(noise(32, 32)),
        "rgb.png": encode(noise(45, 60, 3)),
        "photo.jpg": encode(noise(64, 48, 3), "JPEG", quality=90),
        "small.png": encode(noise(9, 13)),
        "ramp.png": encode(ramp),
        "wide.bmp": encode(noise(20, 80, 3), "BMP"),
        "anim.gif": encode(noise(30, 30), "GIF"),
        "dark.jpg": encode((noise(50, 50) // 8), "JPEG", quality=95),
    }


def png_header(width: int, height: int) -> bytes:
    """A PNG signature and IHDR claiming ``width x height`` (no pixel data): a bomb's header."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")

    ihdr = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 0, 0, 0, 0])
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))


@pytest.fixture(scope="session")
def model_file(tmp_path_factory) -> Path:
    from foveal.models import ModelCard, build_model, save_model

    path = tmp_path_factory.mktemp("serve_model") / "tiny.keras"
    model = build_model("lenet5", num_classes=len(CLASSES))
    save_model(model, path, ModelCard(architecture="lenet5", class_names=CLASSES, input_shape=(32, 32, 1)))
    return path


@pytest.fixture(scope="session")
def images() -> dict[str, bytes]:
    return sample_images()


@pytest.fixture(scope="session")
def image_files(tmp_path_factory, images) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("serve_images")
    for name, data in images.items():
        (folder / name).write_bytes(data)
    return {name: folder / name for name in images}


@pytest.fixture(scope="session")
def app(model_file):
    from foveal.serve.app import create_app

    return create_app(model_file, top_k=2)


@pytest.fixture(scope="session")
def client(app):
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture(scope="session")
def server_url(app):
    """The same app behind a real uvicorn server on a free loopback port."""
    from foveal.serve.app import background_server

    with background_server(app) as url:
        yield url
