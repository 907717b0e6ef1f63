"""`foveal serve` for detectors, localizers and segmenters: the JSON answers, checked against
the task's own outputs, and the same answers from an export."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from export.conftest import save_detector, save_localizer, save_segmenter
from PIL import Image

from .conftest import TestClient, encode


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("served_tasks")
    return {"detect": save_detector(root / "det.keras", ["cat", "dog"]),
            "localize": save_localizer(root / "loc.keras", ["cat", "dog", "bird"]),
            "segment": save_segmenter(root / "seg.keras", ["background", "red", "blue"])}


def _upload(seed: int = 3, size: tuple[int, int] = (96, 80)) -> bytes:
    """A noisy RGB image (width x height) with a bright square."""
    rng = np.random.default_rng(seed)
    w, h = size
    pixels = rng.integers(0, 80, (h, w, 3), dtype=np.uint8)
    pixels[10:50, 20:60] = (230, 60, 60)
    return encode(pixels)


def _post(client, data: bytes, **params):
    answer = client.post("/predict", params=params, files={"image": ("photo.png", data, "image/png")})
    assert answer.status_code == 200, answer.text
    return answer.json()


def _expected(path, data: bytes, top_k: int = 5):
    from foveal.export import tasks
    from foveal.models import load_model
    from foveal.serve.app import load_image_bytes

    model, card = load_model(path)
    image, _ = load_image_bytes(data, card)
    out = tasks.outputs(model, card, image[None].astype(np.float32))
    return tasks.render({k: v[0] for k, v in out.items()}, card, (96, 80), top_k)


def test_detector_answers_boxes_in_the_uploads_pixels(models):
    from foveal.serve.app import create_app

    with TestClient(create_app(models["detect"], browser_model=False)) as client:
        health = client.get("/health").json()
        assert health["model"]["task"] == "detect" and health["browser_runtime"] is False
        answer = _post(client, _upload())
    assert answer["task"] == "detect" and answer["image"]["width"] == 96 and answer["image"]["height"] == 80
    boxes = answer["boxes"]
    assert boxes and boxes == _expected(models["detect"], _upload())["boxes"]
    for b in boxes:
        assert b["label"] in ("cat", "dog") and 0.05 < b["score"] <= 1
        x0, y0, x1, y1 = b["box"]
        assert 0 <= x0 <= x1 <= 96 and 0 <= y0 <= y1 <= 80
    assert [b["score"] for b in boxes] == sorted((b["score"] for b in boxes), reverse=True)


@pytest.mark.slow
def test_letterboxing_detector_answers_what_detect_predict_finds(tmp_path):
    """A keep-aspect detector sees the upload letterboxed as in training, and its boxes come
    back in the upload's pixels: the same as `foveal detect predict` on the file."""
    from foveal.detection.predict import predict_detections
    from foveal.models import load_model
    from foveal.serve.app import create_app

    path = save_detector(tmp_path / "wide.keras", ["cat", "dog"], keep_aspect=True)
    photo = tmp_path / "wide.png"
    photo.write_bytes(_upload(size=(128, 48)))
    with TestClient(create_app(path, browser_model=False)) as client:
        answer = _post(client, photo.read_bytes())
    model, card = load_model(path)
    (row,) = predict_detections(model, card, [photo])
    assert answer["boxes"]
    assert [(b["label"], b["box"]) for b in answer["boxes"]] == [(d["class"], d["box"]) for d in row["detections"]]
    assert [b["score"] for b in answer["boxes"]] == pytest.approx([d["score"] for d in row["detections"]], abs=1e-5)


def test_localizer_answers_one_box_and_the_class_probabilities(models):
    from foveal.serve.app import create_app

    with TestClient(create_app(models["localize"], browser_model=False)) as client:
        answer = _post(client, _upload(), top_k=2)
    assert answer["task"] == "localize"
    assert len(answer["boxes"]) == 1 and len(answer["predictions"]) == 2
    assert answer["boxes"][0]["label"] == answer["predictions"][0]["label"]
    expected = _expected(models["localize"], _upload(), top_k=2)
    assert answer["boxes"][0]["box"] == pytest.approx(expected["boxes"][0]["box"], abs=0.11)
    x0, y0, x1, y1 = answer["boxes"][0]["box"]
    assert 0 <= x0 < x1 <= 96 and 0 <= y0 < y1 <= 80


def test_segmenter_answers_a_mask_png_of_class_indices(models):
    from foveal.serve.app import create_app

    with TestClient(create_app(models["segment"], browser_model=False)) as client:
        answer = _post(client, _upload())
    assert answer["task"] == "segment"
    mask = answer["mask"]
    assert (mask["width"], mask["height"], mask["format"]) == (96, 80, "png")
    png = Image.open(io.BytesIO(base64.b64decode(mask["data"])))
    assert png.mode == "P" and png.size == (96, 80)
    labels = np.asarray(png)
    assert labels.max() < 3
    # The PNG's values are the classes; the listed areas are counted from them.
    counts = {c["label"]: c["pixels"] for c in answer["classes"]}
    names = ["background", "red", "blue"]
    assert counts == {names[k]: int((labels == k).sum()) for k in np.unique(labels)}
    assert sum(c["fraction"] for c in answer["classes"]) == pytest.approx(1.0, abs=1e-5)
    assert png.info.get("transparency") is not None  # background painted transparent
    expected = np.asarray(Image.open(io.BytesIO(base64.b64decode(_expected(models["segment"], _upload())["mask"]["data"]))))
    assert (labels == expected).mean() > 0.999


@pytest.mark.slow
@pytest.mark.parametrize("task", ["detect", "segment"])
def test_an_export_answers_like_the_keras_model(models, tmp_path, task):
    from foveal.export import export_model
    from foveal.serve.app import create_app

    report = export_model(models[task], "onnx", tmp_path / "m.onnx", samples=2)
    with TestClient(create_app(models[task], browser_model=False)) as keras_client, \
            TestClient(create_app(report.path)) as onnx_client:
        want, got = _post(keras_client, _upload(5)), _post(onnx_client, _upload(5))
    if task == "detect":
        from foveal.ops.boxes import match_boxes

        ref = np.array([b["box"] for b in want["boxes"]])
        pairs = match_boxes(ref, np.array([b["box"] for b in got["boxes"]]), min_iou=0.99)
        assert len(pairs) >= 0.8 * len(ref) > 0
    else:
        assert want["classes"] == got["classes"] or all(
            abs(a["fraction"] - b["fraction"]) < 1e-3 for a, b in zip(want["classes"], got["classes"]))


@pytest.mark.slow
def test_browser_model_is_refused_for_a_letterboxing_detector(tmp_path):
    from foveal.errors import ModelError
    from foveal.serve.app import create_app

    path = save_detector(tmp_path / "wide.keras", ["cat"], keep_aspect=True)
    with pytest.raises(ModelError, match="cannot prepare this model.s input"):
        create_app(path, browser_model=tmp_path / "x.onnx")
    with TestClient(create_app(path)) as client:  # the default: no browser model, and the page says why
        health = client.get("/health").json()
    assert health["browser_runtime"] is False and "Runs on the server" in health["browser_model_note"]


@pytest.mark.slow
def test_native_resolution_segmenter_answers_what_segment_predict_finds(tmp_path):
    """A segmenter trained on crops at native resolution sees each upload at its own size (tiled
    as `foveal segment predict` tiles it), not squeezed into the crop size; mixed sizes batch."""
    from foveal.models import load_model
    from foveal.segmentation.predict import predict_labels
    from foveal.serve.app import create_app, load_image_bytes

    path = save_segmenter(tmp_path / "native.keras", ["background", "red", "blue"], image_size=None)
    model, card = load_model(path)
    uploads = [_upload(7, (96, 80)), _upload(8, (50, 70))]
    with TestClient(create_app(path)) as client:
        health = client.get("/health").json()
        answers = [_post(client, data) for data in uploads]
    assert health["browser_runtime"] is False and health["browser_model_note"]
    for data, answer in zip(uploads, answers):
        image, _ = load_image_bytes(data, card)
        expected = predict_labels(model, card, image)
        labels = np.asarray(Image.open(io.BytesIO(base64.b64decode(answer["mask"]["data"]))))
        assert labels.shape == expected.shape == (answer["image"]["height"], answer["image"]["width"])
        assert (labels == expected).mean() > 0.999
