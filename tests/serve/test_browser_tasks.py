"""The page in headless Chromium for a detector and a segmenter: boxes and the mask drawn over
the uploaded image, in the upload's pixels (see test_browser.py for the DevTools client)."""

from __future__ import annotations

import base64
import io

import httpx
import numpy as np
import pytest
from export.conftest import save_detector, save_segmenter
from PIL import Image

from . import test_browser as chromium
from .conftest import encode
from .test_browser import BARS, CHROMIUM, STATE, DevTools, choose_file

browser = chromium.browser  # the Chromium fixture of test_browser.py, used here too

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)")

# RGBA of one overlay pixel, in the canvas's own (the upload's) pixels.
PIXEL = "Array.from(document.getElementById('overlay').getContext('2d').getImageData({x}, {y}, 1, 1).data)"
OVERLAY = ("(() => { const c = document.getElementById('overlay'); "
           "return {width: c.width, height: c.height, hidden: c.hidden}; })()")


def _photo(tmp_path, width: int = 120, height: int = 90):
    rng = np.random.default_rng(11)
    pixels = rng.integers(0, 80, (height, width, 3), dtype=np.uint8)
    pixels[20:60, 30:80] = (230, 60, 60)
    path = tmp_path / "photo.png"
    path.write_bytes(encode(pixels))
    return path


def _serve(path):
    from foveal.serve.app import background_server, create_app

    return background_server(create_app(path, browser_model=False))


def _open(browser: DevTools, url: str, task: str) -> None:
    browser.events.clear()
    browser.call("Page.navigate", url=url + "/")
    assert browser.wait_for("document.getElementById('model')?.dataset.task") == task
    assert browser.evaluate("document.getElementById('where').hidden")  # served with browser_model=False


def test_page_draws_the_detectors_boxes(browser, tmp_path):
    model = save_detector(tmp_path / "det.keras", ["cat", "dog"], score_threshold=0.3)
    photo = _photo(tmp_path)
    with _serve(model) as url:
        _open(browser, url, "detect")
        assert browser.evaluate("document.getElementById('answer-title').textContent") == "Detections"
        choose_file(browser, photo)
        assert browser.wait_for(STATE) == "done", browser.evaluate("document.body.innerText")
        expected = httpx.post(url + "/predict", files={"image": ("photo.png", photo.read_bytes())}).json()["boxes"]
        assert expected, "the fixture detector should find boxes"
        shown = browser.evaluate(BARS)
        assert [(s["label"], s["probability"]) for s in shown] == [(b["label"], b["score"]) for b in expected]
        assert browser.evaluate(OVERLAY) == {"width": 120, "height": 90, "hidden": False}
        # Each box's outline is painted where the answer puts it; the canvas is clear far from every box
        # and its label (drawn above the box, or inside it, below its top edge, when the box touches the top).
        for box in expected:
            x0, y0, x1, y1 = box["box"]
            x, y = int(round((x0 + x1) / 2)), int(min(round(y1), 89))
            if all(abs(y - b["box"][3]) > 4 for b in expected if b is not box):
                assert browser.evaluate(PIXEL.format(x=min(x, 119), y=y))[3] > 0, box
        inside = [(x, y) for x in range(0, 120, 3) for y in range(0, 90, 3)
                  if all(not (b["box"][0] - 4 <= x <= max(b["box"][2], b["box"][0] + 80) + 4
                              and b["box"][1] - 30 <= y <= max(b["box"][3], b["box"][1] + 20) + 4)
                         for b in expected)]
        for x, y in inside[:20]:
            assert browser.evaluate(PIXEL.format(x=x, y=y))[3] == 0, (x, y)
        assert not [e for e in browser.events if e["method"] == "Runtime.exceptionThrown"]


def test_page_paints_the_segmenters_mask(browser, tmp_path):
    from foveal.models.io import read_card
    from foveal.segmentation.predict import class_colours

    model = save_segmenter(tmp_path / "seg.keras", ["background", "red", "blue"])
    colours = class_colours(read_card(model))
    photo = _photo(tmp_path)
    with _serve(model) as url:
        _open(browser, url, "segment")
        choose_file(browser, photo)
        assert browser.wait_for(STATE) == "done", browser.evaluate("document.body.innerText")
        answer = httpx.post(url + "/predict", files={"image": ("photo.png", photo.read_bytes())}).json()
        labels = np.asarray(Image.open(io.BytesIO(base64.b64decode(answer["mask"]["data"]))))
        shown = browser.evaluate(BARS)
        assert [s["label"] for s in shown] == [c["label"] for c in answer["classes"]]
        assert browser.evaluate(OVERLAY) == {"width": 120, "height": 90, "hidden": False}
        # Every class's pixels carry its colour (half opaque); background pixels stay clear.
        present = [k for k in range(3) if (labels == k).any()]
        assert any(k > 0 for k in present), "the fixture segmenter should predict some foreground"
        rng = np.random.default_rng(0)
        for k in present:
            where = np.argwhere(labels == k)
            for y, x in where[rng.choice(len(where), size=min(12, len(where)), replace=False)]:
                r, g, b, a = browser.evaluate(PIXEL.format(x=int(x), y=int(y)))
                if k == 0:
                    assert a == 0, (x, y)
                else:
                    assert a == pytest.approx(128, abs=2), (x, y, k)
                    assert np.abs(np.array([r, g, b]) - colours[k]).max() <= 3, (x, y, k)
        assert not [e for e in browser.events if e["method"] == "Runtime.exceptionThrown"]


# ---- the in-browser mode (ONNX Runtime Web) for the other tasks ------------------------------
ANSWER = ("(() => { const a = window.foveal.answer; "
          "return {where: a.where, boxes: a.boxes, classes: a.classes, predictions: a.predictions}; })()")


@pytest.mark.slow
@pytest.mark.parametrize("task", ["localize", "detect", "segment"])
def test_page_runs_the_task_in_the_browser_as_the_server_does(browser, tmp_path, task):
    from foveal.serve.app import background_server, create_app
    from foveal.serve.browser import runtime_available

    if not runtime_available():
        pytest.skip("ONNX Runtime Web is not fetched (scripts/fetch_ort_web.sh)")
    from export.conftest import save_localizer

    save = {"localize": lambda p: save_localizer(p, ["cat", "dog", "bird"]),
            "detect": lambda p: save_detector(p, ["cat", "dog"], score_threshold=0.3),
            "segment": lambda p: save_segmenter(p, ["background", "red", "blue"])}[task]
    model = save(tmp_path / "m.keras")
    photo = _photo(tmp_path)
    with background_server(create_app(model)) as url:
        browser.events.clear()
        browser.call("Page.navigate", url=url + "/")
        assert browser.wait_for("!document.getElementById('where').hidden")
        browser.evaluate("document.querySelector('#where input[value=browser]').click()")
        choose_file(browser, photo)
        assert browser.wait_for(STATE, timeout=90) == "done", browser.evaluate("document.body.innerText")
        got = browser.evaluate(ANSWER)
        want = httpx.post(url + "/predict", files={"image": ("photo.png", photo.read_bytes())}).json()
        assert got["where"] == "browser"
        if task == "localize":
            assert got["predictions"][0]["label"] == want["predictions"][0]["label"]
            assert got["boxes"][0]["box"] == pytest.approx(want["boxes"][0]["box"], abs=0.25)
        elif task == "detect":
            assert want["boxes"] and len(got["boxes"]) == len(want["boxes"])
            for g, w in zip(got["boxes"], want["boxes"]):
                assert g["label"] == w["label"] and g["score"] == pytest.approx(w["score"], abs=1e-4)
                assert g["box"] == pytest.approx(w["box"], abs=0.25)
        else:
            labels = np.asarray(Image.open(io.BytesIO(base64.b64decode(want["mask"]["data"]))))
            assert [c["label"] for c in got["classes"]] == [c["label"] for c in want["classes"]]
            for g, w in zip(got["classes"], want["classes"]):
                assert g["fraction"] == pytest.approx(w["fraction"], abs=2e-3)
            drawn = np.array(browser.evaluate(
                "Array.from(document.getElementById('overlay').getContext('2d').getImageData(0, 0, 120, 90).data)"))
            alpha = drawn.reshape(90, 120, 4)[..., 3]
            assert ((alpha == 0) == (labels == 0)).mean() > 0.995
        assert not [e for e in browser.events if e["method"] == "Runtime.exceptionThrown"]
        assert not [e for e in browser.events if e["method"] == "Network.requestWillBeSent"
                    and "/predict" in e["params"]["request"]["url"]]
