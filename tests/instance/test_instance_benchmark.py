"""``foveal benchmark`` on instance models: "the model alone" is the whole inference of an image
(the network, then the masks pasted or the marker watershed), and the network's own share is
reported beside it. Tiny untrained models; the timing runs and exports are the slow tier."""

from __future__ import annotations

import json

import numpy as np
import pytest

from foveal.cli.main import main

from .conftest import save_mask_rcnn, save_unet_watershed


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench")
    return {"mask-rcnn": save_mask_rcnn(root / "mrcnn.keras", ["disc", "square"]),
            "unet-watershed": save_unet_watershed(root / "unet.keras")}


@pytest.mark.parametrize("family", ["mask-rcnn", "unet-watershed"])
def test_inference_is_the_instances_instance_predict_finds(models, family):
    from foveal.export import tasks
    from foveal.instance.family import family_of
    from foveal.models import load_model

    model, card = load_model(models[family])
    images = np.random.default_rng(0).uniform(0, 255, (2, *card.input_shape)).astype(np.float32)
    timed = tasks.inference(model, card, images)
    h, w = card.input_shape[:2]
    found = family_of(card).predict_batch(model, card, images, [(w, h)] * 2)
    assert len(timed) == 2
    for a, b in zip(timed, found):
        np.testing.assert_allclose(a.boxes, b.boxes, atol=1e-4)
        assert a.rles == b.rles


@pytest.mark.slow  # timing loops: ~40 s wall at load 8-15 (the default tier keeps the inference test above)
def test_benchmark_times_both_families_with_their_post_processing(models, capsys):
    from foveal.export.benchmark import benchmark, format_benchmark

    table = benchmark(models["unet-watershed"], runtimes=("keras-predict",), warmup=1, runs=2, batch_size=2)
    result = table["results"][0]
    assert result["task"] == "instance" and result["batch1"]["p50_ms"] > 0
    assert 0 < result["batch1_network"]["p50_ms"] and result["throughput_images_per_s"] > 0
    assert "the network alone, p50: keras-predict" in format_benchmark(table)
    assert main(["benchmark", str(models["mask-rcnn"]), "--runtimes", "keras-call", "--warmup", "1", "--runs", "2",
                 "--batch-size", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["results"][0]["batch1_network"]["p50_ms"] > 0 and out["results"][0]["batch1_end_to_end"]["p50_ms"] > 0


@pytest.mark.slow
@pytest.mark.parametrize("family, runtime", [("mask-rcnn", "onnx"), ("unet-watershed", "onnx"),
                                             ("unet-watershed", "tflite")])
def test_benchmark_of_instance_exports(models, tmp_path, family, runtime, capsys):
    assert main(["export", str(models[family]), "--format", runtime, "--output", str(tmp_path / "e")]) == 0
    export = next(p for p in (tmp_path / "e").iterdir() if p.suffix in (".onnx", ".tflite"))
    capsys.readouterr()
    assert main(["benchmark", str(export), "--warmup", "1", "--runs", "3", "--batch-size", "2", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)["results"][0]
    assert result["runtime"] == runtime and result["batch1"]["p50_ms"] > 0 and result["batch1_network"]["p50_ms"] > 0
