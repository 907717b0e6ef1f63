"""``foveal serve`` for an enhancement model (the enhanced upload, whole and tiled, as JSON or PNG)
and for a generative model (GET /generate: seeded samples per class, as `generate predict` draws)."""

from __future__ import annotations

import base64
import io
import warnings

import numpy as np
import pytest
from enhancement.conftest import save_enhancer
from generative.conftest import save_generator
from PIL import Image

from .conftest import encode

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient


def _png(data: str | bytes) -> np.ndarray:
    raw = base64.b64decode(data) if isinstance(data, str) else data
    return np.asarray(Image.open(io.BytesIO(raw)))


@pytest.fixture(scope="module")
def enhancer(tmp_path_factory):
    from foveal.serve.app import create_app

    path = save_enhancer(tmp_path_factory.mktemp("sr") / "sr.keras", scale=2, tile=32)
    with TestClient(create_app(path, browser_model=False, max_pixels=40_000)) as client:
        yield path, client


@pytest.fixture(scope="module")
def generators(tmp_path_factory):
    from foveal.serve.app import create_app

    folder = tmp_path_factory.mktemp("gen")
    clients = {}
    with TestClient(create_app(save_generator(folder / "cgan.keras", "cgan"), browser_model=False)) as cgan, \
            TestClient(create_app(save_generator(folder / "vae.keras", "vae"), browser_model=False)) as vae:
        clients = {"cgan": (folder / "cgan.keras", cgan), "vae": (folder / "vae.keras", vae)}
        yield clients


def test_enhancer_answers_the_whole_upload_enhanced_as_enhance_predict_does(enhancer):
    from foveal.enhancement.predict import enhance, to_uint8
    from foveal.models import load_model

    path, client = enhancer
    rng = np.random.default_rng(3)
    photo = rng.integers(0, 256, (45, 70, 3), dtype=np.uint8)  # larger than the 32-pixel tile: tiled
    health = client.get("/health").json()
    assert health["model"]["task"] == "enhance" and health["enhance"]["scale"] == 2
    response = client.post("/predict", files={"image": ("photo.png", encode(photo), "image/png")})
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["task"] == "enhance" and answer["scale"] == 2
    assert answer["image"] == {"width": 70, "height": 45, "format": "PNG"}  # the upload
    assert (answer["enhanced"]["width"], answer["enhanced"]["height"]) == (140, 90)
    model, card = load_model(path)
    expected = to_uint8(enhance(model, card, photo.astype(np.float32)))
    assert np.abs(_png(answer["enhanced"]["data"]).astype(int) - expected).max() <= 1
    raw = client.post("/predict?format=png", content=encode(photo), headers={"content-type": "image/png"})
    assert raw.status_code == 200 and raw.headers["content-type"] == "image/png"
    assert np.array_equal(_png(raw.content), _png(answer["enhanced"]["data"]))


def test_enhancer_refuses_an_upload_whose_enhanced_image_is_too_large(enhancer):
    _, client = enhancer
    big = encode(np.zeros((100, 120, 3), np.uint8))  # 12,000 pixels, 48,000 once enhanced x2 > 40,000
    response = client.post("/predict", files={"image": ("big.png", big, "image/png")})
    assert response.status_code == 413
    assert response.json()["error"] == ("big.png: enhanced x2 it would have 240x200 = 48000 pixels, over the "
                                        "limit of 40000")
    assert client.get("/generate").status_code == 404
    assert client.post("/predict?format=gif", content=big, headers={"content-type": "image/png"}).status_code == 422


def test_generator_draws_seeded_samples_per_class_as_generate_predict_does(generators, tmp_path):
    from foveal.generative.sampling import write_samples
    from foveal.models import load_model

    path, client = generators["cgan"]
    health = client.get("/health").json()
    assert health["generate"] == {"latent_dim": 4, "conditional": True, "max_samples": 256,
                                  "image_shape": [16, 16, 1]}
    answer = client.get("/generate", params={"count": 6, "seed": 3}).json()
    assert [s["class"] for s in answer["samples"]] == ["zero", "one", "two"] * 2 and answer["class"] is None
    assert (answer["grid"]["width"], answer["grid"]["height"]) == (35, 52)  # one row per class, 2 each
    model, card = load_model(path)
    written = write_samples(model, card, tmp_path, count=6, seed=3)
    for sample, row in zip(answer["samples"], written["samples"]):
        assert np.array_equal(_png(sample["data"]), np.asarray(Image.open(row["file"])))
    assert np.array_equal(_png(answer["grid"]["data"]), np.asarray(Image.open(written["grid"])))
    one = client.get("/generate", params={"count": 4, "seed": 3, "class": "one"}).json()
    assert [s["class"] for s in one["samples"]] == ["one"] * 4 and one["class"] == "one"
    grid = client.get("/generate", params={"count": 4, "seed": 3, "class": "1", "format": "png"})
    assert grid.headers["content-type"] == "image/png" and np.array_equal(_png(grid.content),
                                                                          _png(one["grid"]["data"]))


def test_generator_refusals_are_one_line(generators):
    _, cgan = generators["cgan"]
    _, vae = generators["vae"]
    unknown = cgan.get("/generate", params={"class": "seven"})
    assert unknown.status_code == 422 and unknown.json()["error"].startswith("class 'seven': the model knows no such")
    assert cgan.get("/generate", params={"count": 257}).status_code == 422
    upload = cgan.post("/predict", content=encode(np.zeros((8, 8), np.uint8)), headers={"content-type": "image/png"})
    assert upload.status_code == 400 and "GET /generate" in upload.json()["error"]
    refused = vae.get("/generate", params={"class": "one"})
    assert refused.status_code == 422 and "not class-conditional" in refused.json()["error"]
    assert len(vae.get("/generate", params={"count": 3}).json()["samples"]) == 3
