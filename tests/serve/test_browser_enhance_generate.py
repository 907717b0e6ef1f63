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
