"""``foveal serve``'s JSON API: health, predictions equal to ``foveal predict``'s, ``top_k``,
every refused upload with its status and JSON error, and the limits."""

from __future__ import annotations

import numpy as np
import pytest

from foveal.models import load_model
from foveal.predict import predict

from .conftest import CLASSES, TestClient, encode, png_header


def post_file(client, name: str, data: bytes, ctype: str = "application/octet-stream", **params):
    return client.post("/predict", params=params, files={"image": (name, data, ctype)})


def post_raw(client, data, ctype: str = "image/png", **params):
    return client.post("/predict", params=params, content=data, headers={"content-type": ctype})


def test_health_describes_the_model(client):
    body = client.get("/health").json()
    assert body["status"] == "ok"
    assert body["model"]["architecture"] == "lenet5"
    assert body["model"]["classes"] == CLASSES and body["model"]["num_classes"] == 3
    assert body["model"]["input_shape"] == [32, 32, 1] and body["model"]["task"] == "classify"
    from foveal import __version__

    assert body["foveal_version"] == __version__
    assert body["limits"]["top_k"] == 2 and body["limits"]["max_upload_bytes"] == 10 * 2**20


@pytest.mark.parametrize("name", ["gray.png", "photo.jpg", "wide.bmp", "anim.gif"])
def test_prediction_equals_foveal_predict(client, model_file, image_files, images, name):
    answer = post_file(client, name, images[name], top_k=3)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["file"] == name and body["task"] == "classify" and body["model"] == "lenet5"
    assert body["elapsed_ms"] >= 0
    probs = [p["probability"] for p in body["predictions"]]
    assert sorted(probs, reverse=True) == probs
    assert sum(probs) == pytest.approx(1.0, abs=1e-4)
    assert sorted(p["label"] for p in body["predictions"]) == CLASSES

    model, card = load_model(model_file)
    expected = predict(model, card, [image_files[name]], top_k=3)[0]["predictions"]
    assert [p["label"] for p in body["predictions"]] == [p["label"] for p in expected]
    np.testing.assert_allclose(probs, [p["probability"] for p in expected], atol=2e-5)


def test_raw_body_and_multipart_agree(client, images):
    multipart = post_file(client, "rgb.png", images["rgb.png"], "image/png").json()
    raw = client.post("/predict", content=images["rgb.png"],
                      headers={"content-type": "image/png", "x-filename": "dir/rgb.png"}).json()
    assert raw["file"] == "rgb.png"  # only the name, never a client's path
    assert raw["predictions"] == multipart["predictions"]
    assert raw["image"] == {"width": 60, "height": 45, "format": "PNG"}


def test_top_k(client, images):
    assert len(post_raw(client, images["gray.png"]).json()["predictions"]) == 2  # the app's default
    assert len(post_raw(client, images["gray.png"], top_k=1).json()["predictions"]) == 1
    assert len(post_raw(client, images["gray.png"], top_k=50).json()["predictions"]) == 3  # capped
    for bad in ("0", "-1", "two"):
        answer = post_raw(client, images["gray.png"], top_k=bad)
        assert answer.status_code == 422 and "top_k" in answer.json()["error"]


def tiff_bytes() -> bytes:
    return encode(np.zeros((8, 8), np.uint8), "TIFF")


BAD_UPLOADS = [
    ("text", b"this is not an image", 415, "not an image"),
    ("tiff", "tiff", 415, "unsupported format TIFF"),
    ("truncated", "truncated", 422, "truncated"),
    ("empty", b"", 422, "empty"),
    ("bomb", png_header(100_000, 100_000), 413, "decompression bomb"),
    ("many pixels", png_header(8_000, 8_000), 413, "over the limit of 40000000"),
]


@pytest.mark.parametrize("case, data, status, message", BAD_UPLOADS, ids=[c[0] for c in BAD_UPLOADS])
@pytest.mark.parametrize("how", ["multipart", "raw"])
def test_bad_uploads_are_refused_with_json(client, images, case, data, status, message, how):
    if data == "tiff":
        data = tiff_bytes()
    elif data == "truncated":
        data = images["rgb.png"][: len(images["rgb.png"]) // 2]
    answer = post_file(client, "x.png", data) if how == "multipart" else post_raw(client, data)
    assert answer.status_code == status, answer.text
    assert message in answer.json()["error"]


def test_wrong_requests(client, images):
    no_field = client.post("/predict", files={"file": ("x.png", images["gray.png"], "image/png")})
    assert no_field.status_code == 422 and "'image'" in no_field.json()["error"]
    text_field = client.post("/predict", data={"image": "not a file"}, files={"other": ("x", b"1")})
    assert text_field.status_code == 422
    wrong_type = post_raw(client, b'{"image": 1}', "application/json")
    assert wrong_type.status_code == 415 and "content type" in wrong_type.json()["error"]
    assert client.get("/predict").status_code == 405
    assert client.get("/nowhere").json() == {"error": "Not Found"}


@pytest.fixture(scope="module")
def strict_client(model_file):
    from foveal.serve.app import create_app

    with TestClient(create_app(model_file, max_upload_bytes=2000, max_pixels=1000)) as c:
        yield c


def test_upload_size_limit(strict_client, images):
    big = encode(np.random.default_rng(1).integers(0, 256, (64, 64), dtype=np.uint8))
    assert len(big) > 2000
    for answer in (post_raw(strict_client, big), post_file(strict_client, "big.png", big)):
        assert answer.status_code == 413 and "upload too large" in answer.json()["error"]

    def chunks():  # no Content-Length: the body is counted as it streams in
        for _ in range(100):
            yield b"\0" * 4096

    streamed = post_raw(strict_client, chunks())
    assert streamed.status_code == 413 and "upload too large" in streamed.json()["error"]


def test_pixel_limit(strict_client):
    small = encode(np.zeros((31, 32), np.uint8))  # 992 pixels: fine
    assert post_raw(strict_client, small).status_code == 200
    answer = post_raw(strict_client, encode(np.zeros((40, 40), np.uint8)))
    assert answer.status_code == 413 and "1600 pixels" in answer.json()["error"]


def test_page_and_static_files(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert 'id="file"' in page.text and "/static/app.js" in page.text
    for name, kind in (("app.js", "javascript"), ("style.css", "text/css")):
        answer = client.get(f"/static/{name}")
        assert answer.status_code == 200 and kind in answer.headers["content-type"]
    assert client.get("/static/../app.py").status_code == 404


def test_page_loads_nothing_from_elsewhere():
    from foveal.serve.app import STATIC_DIR

    for path in STATIC_DIR.iterdir():
        if path.is_dir():  # static/ort/: ONNX Runtime Web as published (the browser test checks its requests)
            continue
        text = path.read_text(encoding="utf-8")
        assert "http://" not in text and "https://" not in text and "//cdn" not in text, path.name


def test_docs_pages_that_need_a_cdn_are_off(client):
    assert client.get("/docs").status_code == 404
    schema = client.get("/openapi.json").json()
    assert "multipart/form-data" in schema["paths"]["/predict"]["post"]["requestBody"]["content"]


def test_non_classifier_and_missing_files_are_refused(tmp_path, model_file):
    import zipfile

    from foveal.errors import ModelError
    from foveal.models.io import CARD_MEMBER, read_card
    from foveal.serve.app import create_app

    with pytest.raises(ModelError, match="not found"):
        create_app(tmp_path / "missing.keras")
    card = read_card(model_file)
    card.task = "caption"  # a task foveal does not have (detectors and the rest are served: test_tasks.py)
    detector = tmp_path / "captioner.keras"
    with zipfile.ZipFile(model_file) as src, zipfile.ZipFile(detector, "w") as dst:
        for item in src.infolist():
            if item.filename != CARD_MEMBER:
                dst.writestr(item, src.read(item.filename))
        dst.writestr(CARD_MEMBER, card.to_json())
    with pytest.raises(ModelError, match="task 'caption'"):
        create_app(detector)


@pytest.mark.parametrize("fmt", ["tflite", "onnx", "savedmodel"])
def test_serves_an_export_with_the_same_answers(tmp_path, fmt):
    """Pick the fastest format from `foveal benchmark` and serve it: same predictions."""
    import io

    from fastapi.testclient import TestClient
    from PIL import Image

    from foveal.export import export_model
    from foveal.models import ModelCard, build_model, save_model
    from foveal.serve.app import create_app

    model = build_model("lenet5", num_classes=3)
    keras_path = save_model(model, tmp_path / "m.keras", ModelCard("lenet5", ["a", "b", "c"], (32, 32, 1)))
    target = tmp_path / ("sm" if fmt == "savedmodel" else f"m.{fmt}")
    export_model(keras_path, fmt, target)
    buf = io.BytesIO()
    Image.fromarray(np.arange(0, 256, 4, dtype=np.uint8).reshape(8, 8)).save(buf, format="PNG")
    answers = []
    for path in (keras_path, target):
        with TestClient(create_app(path, browser_model=False)) as client:
            response = client.post("/predict", files={"image": ("x.png", buf.getvalue(), "image/png")})
            assert response.status_code == 200
            answers.append(response.json()["predictions"])
    assert [p["label"] for p in answers[0]] == [p["label"] for p in answers[1]]
    np.testing.assert_allclose([p["probability"] for p in answers[0]], [p["probability"] for p in answers[1]],
                               atol=1e-4)
