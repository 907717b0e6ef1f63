"""``foveal serve`` on a video classifier: upload a clip, get its label, probabilities and the
timeline ``foveal video predict`` writes; the page's upload form; bad uploads in one line with
the right status. The model is an untrained tiny one (its answers are compared, not judged)."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from tests.serve.conftest import TestClient
from tests.video.conftest import moving_square, write_clip, write_video_model


@pytest.fixture(scope="module")
def video_model(tmp_path_factory) -> Path:
    return write_video_model(tmp_path_factory.mktemp("serve-video") / "run", "lstm")


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return write_clip(tmp_path_factory.mktemp("serve-clip") / "walk.mp4", moving_square(23, -1))


@pytest.fixture(scope="module")
def video_client(video_model):
    from foveal.serve.app import create_app

    with TestClient(create_app(video_model, top_k=1, max_video_seconds=10)) as client:
        yield client


def test_health_and_page_describe_the_video_model(video_client):
    health = video_client.get("/health").json()
    assert health["model"]["task"] == "video" and health["browser_runtime"] is False
    assert health["video"]["steps"] == 4 and health["video"]["sampling"] == "even:4"
    assert health["video"]["max_seconds"] == 10
    page = video_client.get("/")
    assert page.status_code == 200 and 'name="video"' in page.text and 'type="file"' in page.text
    assert video_client.get("/static/video.js").status_code == 200


def test_an_uploaded_clip_gets_the_label_and_timeline_of_video_predict(video_client, video_model, clip):
    from foveal.video.predict import load_video_model, predict_video

    want = predict_video(load_video_model(video_model), clip, window=0.8, stride=0.4)
    answer = video_client.post("/predict?window=0.8&stride=0.4",
                               files={"video": ("walk.mp4", clip.read_bytes(), "video/mp4")}).json()
    assert answer["task"] == "video" and answer["file"] == "walk.mp4"
    assert answer["label"] == want["label"] and answer["probabilities"] == want["probabilities"]
    assert answer["timeline"] == want["timeline"] and len(answer["timeline"]) == 5
    assert len(answer["predictions"]) == 1 and answer["predictions"][0]["label"] == want["label"]
    assert answer["video"]["frames"] == 23 and (answer["video"]["width"], answer["video"]["height"]) == (32, 24)
    # raw bytes with a video/* type; the default window and stride are foveal video predict's (2 s, 1 s)
    raw = video_client.post("/predict", content=clip.read_bytes(), headers={"content-type": "video/mp4"}).json()
    assert raw["window"] == 2.0 and raw["stride"] == 1.0 and raw["label"] in ("down", "up")


def test_the_page_form_works_without_javascript(video_client, clip):
    """The page's form, posted as a browser posts it with JavaScript off: the file with the window and
    stride as plain form fields (no query string); the answer is the one the query would give."""
    import re

    page = video_client.get("/").text
    form = re.search(r"<form[^>]*>", page).group(0)
    assert 'action="/predict"' in form and 'method="post"' in form and 'enctype="multipart/form-data"' in form
    assert 'name="window"' in page and 'name="stride"' in page
    upload = {"video": ("walk.mp4", clip.read_bytes(), "video/mp4")}
    posted = video_client.post("/predict", files=upload, data={"window": "0.8", "stride": "0.4"}).json()
    queried = video_client.post("/predict?window=0.8&stride=0.4", files=upload).json()
    assert (posted["window"], posted["stride"]) == (0.8, 0.4) and len(posted["timeline"]) == 5
    assert posted["timeline"] == queried["timeline"] and posted["label"] == queried["label"]
    blank = video_client.post("/predict", files=upload, data={"window": "", "stride": " "}).json()
    assert (blank["window"], blank["stride"]) == (2.0, 1.0)  # empty fields: the server's defaults
    query_wins = video_client.post("/predict?window=0.8", files=upload, data={"window": "5", "stride": "0.4"}).json()
    assert query_wins["window"] == 0.8
    for bad, said in (("abc", "not a number"), ("-1", "outside"), ("nan", "outside")):
        response = video_client.post("/predict", files=upload, data={"window": bad})
        assert response.status_code == 422 and "form field window: " in response.json()["error"]
        assert said in response.json()["error"] and "\n" not in response.json()["error"]


def _audio_only(path: Path) -> bytes:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(8000)
        w.writeframes(np.zeros(8000, np.int16).tobytes())
    return path.read_bytes()


def test_bad_uploads_are_refused_in_one_line_with_the_right_status(video_client, video_model, tmp_path):
    def post(name: str, data: bytes, ctype: str = "video/mp4"):
        return video_client.post("/predict", files={"video": (name, data, ctype)})

    cases = {
        "notes.mp4": (b"\x00not a video" * 50, 415, "cannot be opened"),
        "sound.mp4": (_audio_only(tmp_path / "s.wav"), 415, "audio only"),
        "empty.mp4": (b"", 422, "empty file"),
    }
    for name, (data, status, said) in cases.items():
        response = post(name, data)
        error = response.json()["error"]
        assert response.status_code == status and said in error and name in error, (name, error)
        assert "\n" not in error and "foveal-serve-" not in error  # the upload's name, not the temporary file
    assert video_client.post("/predict", files={"image": ("a.mp4", b"x")}).status_code == 422  # wrong field
    wrong = video_client.post("/predict", content=b"x", headers={"content-type": "text/plain"})
    assert wrong.status_code == 415 and "video/*" in wrong.json()["error"]
    assert video_client.post("/predict?window=0", files={"video": ("a.mp4", b"x")}).status_code == 422
    stats = video_client.get("/health").json()["stats"]
    assert stats["refused_images"] >= 3


def test_a_video_over_the_length_limit_is_refused_with_413(video_model, tmp_path):
    from foveal.video.predict import load_video_model
    from foveal.video.serving import RejectedVideo, VideoAnswerer

    long = write_clip(tmp_path / "long.mp4", moving_square(30, 1), fps=10.0)  # 3 s
    answerer = VideoAnswerer(load_video_model(video_model), max_seconds=2.0)
    with pytest.raises(RejectedVideo) as refused:
        answerer.answer(long.read_bytes(), "long.mp4")
    assert refused.value.status == 413 and "long.mp4" in refused.value.message and "2 s" in refused.value.message
    # a header that understates the length is caught while decoding
    answerer.max_seconds = 2.0
    from foveal.video import predict

    with pytest.raises(predict.VideoTooLong):
        predict.predict_video(answerer.vm, long, max_seconds=1.0)


@pytest.mark.slow
def test_an_export_is_served_like_the_keras_model(video_model, clip, video_client):
    from foveal.export import export_model
    from foveal.serve.app import create_app

    report = export_model(video_model, "onnx", samples=4)
    with TestClient(create_app(report.path, top_k=2)) as client:
        assert client.get("/health").json()["video"]["steps"] == 4
        got = client.post("/predict?window=0.8&stride=0.4", files={"video": ("walk.mp4", clip.read_bytes())}).json()
    want = video_client.post("/predict?window=0.8&stride=0.4", files={"video": ("walk.mp4", clip.read_bytes())}).json()
    assert got["label"] == want["label"] and len(got["timeline"]) == len(want["timeline"])
    for a, b in zip(got["timeline"], want["timeline"]):
        assert a["label"] == b["label"] and abs(a["probability"] - b["probability"]) <= 2e-4
