"""The in-browser model's endpoints: ``/model.onnx``, ``/model.json``, the ``/health`` flags, the
export cache beside the model, the CSP that lets the page compile wasm, and the failure paths
(no ONNX Runtime Web files, a failed export, a wrong ``--browser-model``)."""

from __future__ import annotations

import json
import logging
import shutil

import numpy as np
import pytest

from foveal.errors import FovealError, ModelError
from foveal.models.io import read_card
from foveal.serve import browser as browser_mod
from foveal.serve.browser import cache_path, prepare_browser_model, runtime_available

from .conftest import CLASSES, TestClient


def test_model_onnx_is_the_cached_export(client, model_file):
    answer = client.get("/model.onnx")
    assert answer.status_code == 200
    assert answer.content == cache_path(model_file).read_bytes()
    assert cache_path(model_file).parent == model_file.parent / ".foveal-cache"
    card = client.get("/model.json").json()
    assert card["class_names"] == CLASSES and card["input_shape"] == [32, 32, 1]
    assert card["keep_aspect"] is False and card["channel_order"] == "gray" and card["task"] == "classify"
    assert card["onnx"] == {"url": "/model.onnx", "size_bytes": len(answer.content)}


def test_onnx_export_computes_what_the_server_does(client, model_file, images):
    import onnxruntime as ort

    from foveal.serve.app import load_image_bytes

    image, _ = load_image_bytes(images["rgb.png"], read_card(model_file))
    session = ort.InferenceSession(client.get("/model.onnx").content, providers=["CPUExecutionProvider"])
    probs = session.run(None, {session.get_inputs()[0].name: image[None].astype(np.float32)})[0][0]
    served = client.post("/predict", params={"top_k": 3}, files={"image": ("rgb.png", images["rgb.png"])}).json()
    for p in served["predictions"]:
        assert probs[CLASSES.index(p["label"])] == pytest.approx(p["probability"], abs=2e-6)


def test_health_flags_and_page_headers(client, monkeypatch):
    health = client.get("/health").json()
    assert health["browser_model"] == "/model.json"
    assert health["browser_runtime"] is runtime_available()
    monkeypatch.setattr("foveal.serve.app.runtime_available", lambda: False)
    assert client.get("/health").json()["browser_runtime"] is False
    csp = client.get("/").headers["content-security-policy"]
    assert "script-src 'self' 'wasm-unsafe-eval';" in csp
    assert "'unsafe-eval'" not in csp.replace("'wasm-unsafe-eval'", "") and "default-src 'self'" in csp


def test_runtime_files(tmp_path, client):
    assert not runtime_available(tmp_path)
    for name in browser_mod.ORT_FILES:
        (tmp_path / name).write_bytes(b"")
    assert runtime_available(tmp_path)
    if not runtime_available():
        pytest.skip("ONNX Runtime Web is not fetched (scripts/fetch_ort_web.sh)")
    wasm = client.get("/static/ort/ort-wasm-simd-threaded.wasm")
    assert wasm.status_code == 200 and wasm.headers["content-type"] == "application/wasm"
    assert "javascript" in client.get("/static/ort/ort-wasm-simd-threaded.mjs").headers["content-type"]


def test_no_browser_model(model_file):
    from foveal.serve.app import create_app

    with TestClient(create_app(model_file, browser_model=False, max_batch=1)) as client:
        assert client.get("/model.onnx").status_code == 404
        assert client.get("/model.json").json() == {"error": "this server has no in-browser model"}
        health = client.get("/health").json()
        assert health["browser_runtime"] is False and health["browser_model"] is None


def test_cache_is_reused_and_failed_exports_only_warn(client, model_file, tmp_path, monkeypatch, caplog):
    card = read_card(model_file)

    def fail(*_, **__):
        raise FovealError("parity check failed")

    monkeypatch.setattr("foveal.export.parity.export_model", fail)
    # Cached: no export needed, so the failing exporter is never called.
    assert prepare_browser_model(model_file, card).path == cache_path(model_file)
    fresh = tmp_path / "fresh.keras"
    shutil.copy(model_file, fresh)
    with caplog.at_level(logging.WARNING, logger="foveal.serve"):
        assert prepare_browser_model(fresh, card) is None
    assert "parity check failed" in caplog.text and "server only" in caplog.text
    assert prepare_browser_model(fresh, card, False) is None


def test_explicit_browser_model(model_file, tmp_path):
    card = read_card(model_file)
    exported = cache_path(model_file)
    assert prepare_browser_model(model_file, card, exported).path == exported
    with pytest.raises(ModelError, match="not found"):
        prepare_browser_model(model_file, card, tmp_path / "none.onnx")
    other = tmp_path / "other.onnx"
    shutil.copy(exported, other)
    data = json.loads((exported.parent / (exported.name + ".foveal.json")).read_text())
    (tmp_path / "other.onnx.foveal.json").write_text(json.dumps({**data, "class_names": ["x", "y", "z"]}))
    with pytest.raises(ModelError, match="not an export of the served model"):
        prepare_browser_model(model_file, card, other)


def test_cli_options():
    import argparse

    from foveal.serve.cli import add_serve_command

    p = argparse.ArgumentParser(allow_abbrev=False)
    add_serve_command(p.add_subparsers(dest="command", required=True))
    args = p.parse_args(["serve", "m.keras", "--browser-model", "m.onnx"])
    assert (args.browser_model, args.no_browser_model) == ("m.onnx", False)
    assert p.parse_args(["serve", "m.keras", "--no-browser-model"]).no_browser_model
    with pytest.raises(SystemExit):
        p.parse_args(["serve", "m.keras", "--no-browser-model", "--browser-model", "m.onnx"])
