"""Export of a generative model's sampler (VAE decoder, GAN / cGAN generator) with its parity check,
and the export served at GET /generate (tiny untrained models; see conftest.save_generator)."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from .conftest import save_generator

pytest.importorskip("tf2onnx")
pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def cgan(tmp_path_factory):
    return save_generator(tmp_path_factory.mktemp("cgan") / "cgan.keras", "cgan")


@pytest.fixture(scope="module")
def cgan_onnx(cgan, tmp_path_factory):
    """``foveal generate export MODEL --format onnx`` (the grammar routes it to ``foveal export``)."""
    import contextlib
    import io

    from foveal.cli.main import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["generate", "export", str(cgan), "--format", "onnx", "--samples", "12", "--json",
                     "--output", str(tmp_path_factory.mktemp("onnx")) + "/"])
    assert code == 0
    return json.loads(out.getvalue())


def test_cgan_onnx_export_passes_parity_and_keeps_the_classes(cgan, cgan_onnx):
    from foveal.export import open_runner
    from foveal.generative.export_check import sample
    from foveal.generative.sampling import requested_classes
    from foveal.generative.sampling import sample as keras_sample
    from foveal.models import load_model

    report = cgan_onnx
    assert report["passed"] and report["task"] == "generate" and report["samples"] == 12
    assert report["max_abs_diff"] < 1e-5 and report["top1_agreement"] == 1.0
    runner = open_runner(report["path"])
    assert runner.card.training["codes"] == {"latent_dim": 4, "classes": 3, "layout": "latent_dim standard normal "
                                             "values, then a one-hot class vector"}
    model, card = load_model(cgan)
    for requested in ("one", "2"):  # by name and by index
        got, labels = sample(runner, runner.card, 6, requested, seed=5)
        # the reference: the Keras model's own generate() with integer labels, as `generate predict` samples
        ref = keras_sample(model, 6, requested_classes(model, card, requested, 6), seed=5)
        assert got.shape == (6, 16, 16, 1) and np.abs(got - ref).max() < 1e-5
        assert set(labels) == {card.class_names.index(requested) if requested in card.class_names else 2}
    one, _ = sample(runner, runner.card, 6, "one", seed=5)
    two, _ = sample(runner, runner.card, 6, "two", seed=5)
    assert np.abs(one - two).max() > 1e-3  # the class reaches the exported generator


def test_served_export_draws_what_the_keras_model_draws(cgan, cgan_onnx):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    from foveal.serve.app import create_app

    answers = []
    for path in (cgan, cgan_onnx["path"]):
        with TestClient(create_app(path)) as client:  # the default: no in-browser model for a generator
            response = client.get("/generate", params={"count": 5, "seed": 9, "class": "two"})
            assert response.status_code == 200, response.text
            answers.append(response.json())
    keras_answer, onnx_answer = answers
    assert [s["class"] for s in onnx_answer["samples"]] == ["two"] * 5
    assert _pixels(keras_answer["grid"]["data"]).shape == _pixels(onnx_answer["grid"]["data"]).shape
    assert np.abs(_pixels(keras_answer["grid"]["data"]).astype(int) - _pixels(onnx_answer["grid"]["data"])).max() <= 1


@pytest.mark.slow
def test_vae_decoder_savedmodel_takes_codes_not_image_bytes(tmp_path):
    import tensorflow as tf

    from foveal.export import export_model

    vae = save_generator(tmp_path / "vae.keras", "vae")
    report = export_model(vae, "savedmodel", output=tmp_path / "sm/", samples=8)
    assert report.passed and report.max_abs_diff < 1e-5
    loaded = tf.saved_model.load(report.path)
    assert list(loaded.signatures) == ["serving_default"]  # no predict_images: there are no images to decode
    spec = loaded.signatures["serving_default"].structured_input_signature[1]
    assert [(name, tuple(s.shape)) for name, s in spec.items()] == [("codes", (None, 4))]


def test_what_a_generator_export_cannot_take_is_refused_in_one_line(cgan, tmp_path):
    from foveal.errors import ConfigError
    from foveal.export import export_model

    with pytest.raises(ConfigError, match="--data: a generative model's export is scored by the Frechet distance "
                       "with its run's judge classifier, and there is none at"):
        export_model(cgan, "onnx", output=tmp_path / "a/", data=str(tmp_path))
    with pytest.raises(ConfigError, match="coreml export takes images"):
        export_model(cgan, "coreml", output=tmp_path / "b/")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["dcgan", "cgan"])
def test_gan_tflite_exports_pass_parity(kind, tmp_path):
    from foveal.export import export_model

    model = save_generator(tmp_path / f"{kind}.keras", kind)
    assert export_model(model, "tflite", output=tmp_path / "f/", samples=8).max_abs_diff < 1e-5
    quantized = export_model(model, "tflite", output=tmp_path / "q/", quantize="int8", samples=8)
    assert quantized.passed and quantized.top1_agreement > 0.5


def _pixels(data: str) -> np.ndarray:
    import base64
    import io

    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data))))
