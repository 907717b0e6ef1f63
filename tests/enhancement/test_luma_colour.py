"""A luma-trained (1-channel) super-resolution model on colour images: Y through the network, Cb/Cr
upscaled bicubic, joined back into RGB, in predict, serve and a runner (tiny untrained ESPCN)."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
from PIL import Image

from foveal.cli.main import main

from .conftest import save_enhancer
from .test_cli import _picture


@pytest.fixture(scope="module")
def luma_model(tmp_path_factory):
    """A 1-channel x3 model whose output is a sane image (bilinear upscaling and a perturbed identity
    3x3 convolution), saved with the card of a luma ESPCN: an untrained ESPCN's output is near 0, where
    clipping, not the colour path, would decide the numbers."""
    import keras

    from foveal.models import load_model, save_model

    path = save_enhancer(tmp_path_factory.mktemp("luma") / "y.keras", scale=3, channels=1)
    _, card = load_model(path)
    inputs = keras.Input((None, None, 1))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.UpSampling2D(3, interpolation="bilinear")(x)
    conv = keras.layers.Conv2D(1, 3, padding="same")
    out = conv(x)
    kernel = np.random.default_rng(0).normal(0, 0.02, (3, 3, 1, 1)).astype(np.float32)
    kernel[1, 1] += 1.0
    conv.set_weights([kernel, np.zeros(1, np.float32)])
    save_model(keras.Model(inputs, out), path, card)
    model, card = load_model(path)
    return path, model, card


@pytest.fixture(scope="module")
def low_res():
    """A colour reference (48x60) and its x3 bicubic downscale rounded to 8 bits, as training degrades."""
    from foveal.enhancement.degrade import degrade, parse_corruption

    reference = _picture(48, 60, 3)
    lr = degrade(reference.astype(np.float32) / 255.0, scale=3, corruption=parse_corruption("none"), seed=(0, 0))
    return reference, np.round(lr.numpy() * 255.0).astype(np.uint8)


def test_ycbcr_is_full_range_bt601_as_scikit_image_and_pil():
    from skimage.color import rgb2ypbpr, ypbpr2rgb

    from foveal.enhancement.predict import rgb_to_ycbcr, ycbcr_to_rgb

    rgb = np.random.default_rng(0).integers(0, 256, (9, 11, 3), dtype=np.uint8)
    ours = rgb_to_ycbcr(rgb / 255.0)
    np.testing.assert_allclose(ours - [0, 0.5, 0.5], rgb2ypbpr(rgb / 255.0), atol=1e-6)
    np.testing.assert_allclose(ycbcr_to_rgb(ours), ypbpr2rgb(rgb2ypbpr(rgb / 255.0)), atol=1e-6)
    np.testing.assert_allclose(ycbcr_to_rgb(ours), rgb / 255.0, atol=1e-9)
    pil = np.asarray(Image.fromarray(rgb).convert("YCbCr"), np.float64)  # JPEG's YCbCr, 8-bit
    assert np.abs(ours * 255.0 - pil).max() <= 1.0


def test_rgb_path_keeps_the_luma_paths_psnr_and_the_bicubic_chroma(luma_model, low_res):
    from foveal.enhancement.degrade import upscale
    from foveal.enhancement.metrics import psnr
    from foveal.enhancement.predict import enhance, luma, rgb_to_ycbcr, to_uint8

    _, model, card = luma_model
    reference, lr = low_res
    y_path = to_uint8(enhance(model, card, luma(lr)))  # what the model gives on the luma of the image
    rgb_path = to_uint8(enhance(model, card, lr.astype(np.float32)))
    assert y_path.shape == (48, 60, 1) and rgb_path.shape == (48, 60, 3)
    ref_y = rgb_to_ycbcr(reference / 255.0)[..., :1]
    y_of_rgb = rgb_to_ycbcr(rgb_path / 255.0)[..., :1]
    assert psnr(ref_y[3:-3, 3:-3], y_of_rgb[3:-3, 3:-3]) == pytest.approx(
        psnr(ref_y[3:-3, 3:-3], y_path[3:-3, 3:-3] / 255.0), abs=0.05)
    bicubic = upscale(lr.astype(np.float32) / 255.0, 3).numpy()
    chroma_diff = np.abs(rgb_to_ycbcr(rgb_path / 255.0)[..., 1:] - rgb_to_ycbcr(bicubic)[..., 1:])
    assert np.median(chroma_diff) < 1 / 255 and chroma_diff.mean() < 2 / 255  # clipping aside, the same colour
    assert not np.allclose(rgb_path[..., 0], rgb_path[..., 2], atol=8)  # colour kept
    assert enhance(model, card, lr.astype(np.float32), luma_only=True).shape == (48, 60, 1)


def test_a_runner_takes_the_same_path(luma_model, low_res):
    from foveal.enhancement.export_check import outputs
    from foveal.export.runners import KerasRunner

    path, model, card = luma_model
    _, lr = low_res
    image = lr[None].astype(np.float32)
    got = outputs(KerasRunner(path), card, image)["enhanced"]
    assert got.shape == (1, 48, 60, 3)
    assert np.abs(got - outputs(model, card, image)["enhanced"]).max() < 1e-5


def test_predict_writes_colour_for_colour_and_gray_for_gray(luma_model, low_res, tmp_path, capsys):
    path, _, _ = luma_model
    _, lr = low_res
    Image.fromarray(lr).save(tmp_path / "colour.png")
    Image.fromarray(lr[..., 0]).save(tmp_path / "gray.png")
    assert main(["enhance", "predict", str(path), str(tmp_path / "colour.png"), str(tmp_path / "gray.png"),
                 "--output", str(tmp_path / "out")]) == 0
    with Image.open(tmp_path / "out" / "enhanced" / "colour.png") as colour, \
            Image.open(tmp_path / "out" / "enhanced" / "gray.png") as gray:
        assert (colour.mode, colour.size, gray.mode, gray.size) == ("RGB", (60, 48), "L", (60, 48))
    assert main(["enhance", "predict", str(path), str(tmp_path / "colour.png"), "--output", str(tmp_path / "y"),
                 "--luma-only"]) == 0
    with Image.open(tmp_path / "y" / "enhanced" / "colour.png") as y:
        assert y.mode == "L"
    capsys.readouterr()


def test_serve_answers_a_colour_upload_in_colour(luma_model, low_res):
    import base64

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    from foveal.serve.app import create_app

    path, _, _ = luma_model
    _, lr = low_res
    upload = io.BytesIO()
    Image.fromarray(lr).save(upload, "PNG")
    with TestClient(create_app(path, browser_model=False)) as client:
        response = client.post("/predict", files={"image": ("c.png", upload.getvalue(), "image/png")})
    assert response.status_code == 200, response.text
    enhanced = response.json()["enhanced"]
    with Image.open(io.BytesIO(base64.b64decode(enhanced["data"]))) as image:
        assert image.mode == "RGB" and image.size == (60, 48)
