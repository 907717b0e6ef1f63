"""The page in headless Chromium for an enhancer (the enhanced upload shown beside it) and a
generator (a form asks GET /generate and the grid is shown); see test_browser.py for the client."""

from __future__ import annotations

import httpx
import numpy as np
import pytest
from enhancement.conftest import save_enhancer
from generative.conftest import save_generator

from . import test_browser as chromium
from .conftest import encode
from .test_browser import CHROMIUM, STATE, choose_file

browser = chromium.browser  # the Chromium fixture of test_browser.py, used here too

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)")

OUTPUT = ("(() => { const i = document.getElementById('output-image'); return {hidden: "
          "document.getElementById('output').hidden, width: i.naturalWidth, height: i.naturalHeight, "
          "download: document.getElementById('output-link').download}; })()")


def _serve(path):
    from foveal.serve.app import background_server, create_app

    return background_server(create_app(path, browser_model=False))


def _open(browser, url: str, task: str) -> None:
    browser.events.clear()
    browser.call("Page.navigate", url=url + "/")
    assert browser.wait_for("document.getElementById('model')?.dataset.task") == task


def test_page_shows_the_enhanced_upload(browser, tmp_path):
    model = save_enhancer(tmp_path / "sr.keras", scale=2)
    photo = tmp_path / "photo.png"
    photo.write_bytes(encode(np.random.default_rng(2).integers(0, 256, (30, 44, 3), dtype=np.uint8)))
    with _serve(model) as url:
        _open(browser, url, "enhance")
        assert browser.evaluate("document.getElementById('answer-title').textContent") == "Enhanced image"
        assert browser.evaluate("document.getElementById('topk').parentElement.hidden")
        choose_file(browser, photo)
        assert browser.wait_for(STATE) == "done", browser.evaluate("document.body.innerText")
        browser.wait_for("document.getElementById('output-image').complete && "
                         "document.getElementById('output-image').naturalWidth > 0 || null")
        assert browser.evaluate(OUTPUT) == {"hidden": False, "width": 88, "height": 60,
                                            "download": "photo_enhanced.png"}
        shown = browser.evaluate("document.getElementById('output-image').src")
        served = httpx.post(url + "/predict", files={"image": ("photo.png", photo.read_bytes())}).json()
        assert shown == "data:image/png;base64," + served["enhanced"]["data"]
        assert not [e for e in browser.events if e["method"] == "Runtime.exceptionThrown"]


def test_page_draws_a_generators_samples_of_a_chosen_class(browser, tmp_path):
    model = save_generator(tmp_path / "cgan.keras", "cgan")
    with _serve(model) as url:
        _open(browser, url, "generate")
        assert browser.evaluate("document.getElementById('upload-panel').hidden")
        assert not browser.evaluate("document.getElementById('generate-panel').hidden")
        options = browser.evaluate("[...document.getElementById('gen-class').options].map(o => o.value)")
        assert options == ["", "zero", "one", "two"]
        browser.evaluate("document.getElementById('gen-count').value = '4'; "
                         "document.getElementById('gen-seed').value = '7'; "
                         "document.getElementById('gen-class').value = 'two'; "
                         "document.getElementById('results').dataset.state = 'idle'; "
                         "document.getElementById('gen-go').click()")
        assert browser.wait_for(STATE) == "done", browser.evaluate("document.body.innerText")
        answer = browser.evaluate("window.foveal.answer")
        assert answer["seed"] == 7 and [s["class"] for s in answer["samples"]] == ["two"] * 4
        browser.wait_for("document.getElementById('output-image').naturalWidth > 0 || null")
        assert browser.evaluate(OUTPUT) == {"hidden": False, "width": 35, "height": 35,
                                            "download": "samples_seed7.png"}
        served = httpx.get(url + "/generate", params={"count": 4, "seed": 7, "class": "two"}).json()
        assert served["grid"]["data"] == answer["grid"]["data"]
        assert not [e for e in browser.events if e["method"] == "Runtime.exceptionThrown"]


def test_page_joins_luma_and_chroma_as_python(browser, tmp_path):
    """The page's colour answer of a luma model (window.foveal.joinLuma: full-range BT.601 chroma
    upscaled by TensorFlow's bicubic or bilinear resize, joined to the enhanced luma) and its
    mirror padding (numpy's symmetric, then _pad_to) equal the Python path's."""
    from foveal.enhancement.predict import _pad_to, join_luma

    rng = np.random.default_rng(5)
    rgb = rng.integers(0, 256, (7, 9, 3), dtype=np.uint8)
    rgb[2:5, 3:7] = (250, 10, 40)  # saturated colour: clipping after the join
    with _serve(save_enhancer(tmp_path / "y.keras", scale=3, channels=1)) as url:
        _open(browser, url, "enhance")
        for scale, baseline in ((3, "bicubic"), (2, "bilinear"), (1, "bicubic")):
            y = rng.random((7 * scale, 9 * scale, 1), dtype=np.float32)
            got = np.array(browser.evaluate(f"window.foveal.joinLuma({y.ravel().tolist()}, {rgb.ravel().tolist()}, "
                                            f"7, 9, {scale}, '{baseline}')")).reshape(7 * scale, 9 * scale, 3)
            want = join_luma(y, rgb.astype(np.float32), scale, baseline)
            assert np.abs(got - want).max() < 2e-6, (scale, baseline)
            assert np.array_equal(np.round(got * 255), np.round(want * 255)), (scale, baseline)
        column = np.arange(5)[:, None, None]
        for before, total in ((0, 12), (3, 20), (7, 30), (12, 13)):  # pads longer than the axis, too
            padded = np.pad(column, ((before, 0), (0, 0), (0, 0)), mode="symmetric") if before else column
            want = _pad_to(padded, total, 1)[:, 0, 0].tolist()
            assert browser.evaluate(f"window.foveal.mirrorAxis(5, {before}, {total})") == want, (before, total)
        assert not [e for e in browser.events if e["method"] == "Runtime.exceptionThrown"]


def test_page_enhances_in_the_browser_as_the_server(browser, tmp_path):
    """The in-browser mode runs a luma (1-channel) super-resolution model's ONNX export on the
    upload at its own size, tiled when larger than the card's tile, and answers a colour photo in
    colour and a gray one in gray, with the server's pixels (up to one 8-bit level)."""
    import base64
    import io

    from PIL import Image

    from foveal.serve.app import background_server, create_app
    from foveal.serve.browser import runtime_available

    from .test_browser import _switch_to_browser

    if not runtime_available():
        pytest.skip("ONNX Runtime Web is not fetched (scripts/fetch_ort_web.sh)")
    rng = np.random.default_rng(3)
    photos = {"small.png": rng.integers(0, 256, (20, 27, 3), dtype=np.uint8),  # one pass
              "tiled.png": rng.integers(0, 256, (45, 38, 3), dtype=np.uint8)}  # over the 32-pixel tile
    photos["gray.png"] = np.repeat(rng.integers(0, 256, (21, 26, 1), dtype=np.uint8), 3, axis=-1)
    model = save_enhancer(tmp_path / "y.keras", scale=3, channels=1, tile=32)

    def pixels(data: str) -> np.ndarray:
        with Image.open(io.BytesIO(base64.b64decode(data))) as image:
            return np.asarray(image.convert("RGB"), np.int16)

    with background_server(create_app(model, max_batch=1)) as url:
        _open(browser, url, "enhance")
        _switch_to_browser(browser)
        for name, photo in photos.items():
            path = tmp_path / name
            path.write_bytes(encode(photo))
            browser.evaluate("document.getElementById('results').dataset.state = 'idle'")
            choose_file(browser, path)
            assert browser.wait_for(STATE, timeout=90) == "done", browser.evaluate("document.body.innerText")
            answer = browser.evaluate("window.foveal.answer")
            assert answer["where"] == "browser" and answer["scale"] == 3
            served = httpx.post(url + "/predict", files={"image": (name, path.read_bytes())},
                                timeout=60).json()["enhanced"]
            got, want = pixels(answer["enhanced"]["data"]), pixels(served["data"])
            assert got.shape == want.shape == (photo.shape[0] * 3, photo.shape[1] * 3, 3), name
            assert np.abs(got - want).max() <= 1 and (got == want).mean() > 0.99, name
            colour = np.ptp(got.astype(int), axis=-1).max() > 0
            assert colour == (name != "gray.png"), name
        urls = [e["params"]["request"]["url"] for e in browser.events if e["method"] == "Network.requestWillBeSent"]
        assert len([u for u in urls if "/predict" in u]) == 0  # the test's own posts go through httpx
        assert not [e for e in browser.events if e["method"] == "Runtime.exceptionThrown"]
