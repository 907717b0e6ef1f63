"""inspect, benchmark and prune of an enhancement model (a tiny ESPCN; see conftest): the model-file
commands of the one grammar, each with the task's own measure."""

from __future__ import annotations

import json

import numpy as np
import pytest

from foveal.cli.main import main

from .conftest import save_enhancer
from .test_cli import _picture


@pytest.fixture(scope="module")
def sr(tmp_path_factory):
    """A tiny x2 ESPCN and six 32x32 colour pictures as arrays (.npz: no decoding pipeline to build)."""
    root = tmp_path_factory.mktemp("sr_every")
    photos = root / "photos.npz"
    np.savez(photos, x=np.stack([_picture(32, 32, i) for i in range(6)]), y=np.zeros(6, np.int64))
    return save_enhancer(root / "espcn.keras", scale=2), photos


def test_inspect_counts_the_subpixel_network(sr, capsys):
    path, _ = sr
    assert main(["enhance", "inspect", str(path), "--input-shape", "20", "20", "3", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    layers = {row["name"]: row for row in report["layers"]}
    # 5x5 conv of 3 -> 8 channels at 20x20: 2 * 400 * 25 * 3 * 8 multiply-adds + 400 * 8 biases
    assert layers["conv1"]["flops"] == 2 * 400 * 25 * 3 * 8 + 400 * 8
    assert layers["conv1"]["receptive_field"] == [5, 5] and layers["conv2"]["receptive_field"] == [7, 7]


def test_benchmark_an_enhancer_at_two_batch_sizes(sr):
    from foveal.export.benchmark import benchmark

    path, _ = sr
    table = benchmark(path, runtimes=("keras-call",), warmup=1, runs=2, batch_size=(1, 2))
    r = table["results"][0]
    assert r["task"] == "enhance" and set(r["throughput_by_batch_size"]) == {"1", "2"}


def test_prune_reports_psnr_next_to_bicubic(sr, tmp_path, capsys):
    from foveal.models import load_model
    from foveal.shrink.prune import prunable_variables

    path, photos = sr
    target = tmp_path / "pruned.keras"
    assert main(["enhance", "prune", str(path), "--data", str(photos), "--sparsity", "0.5", "--epochs", "1",
                 "--steps-per-epoch", "2", "--batch-size", "3", "--output", str(target), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["task"] == "enhance" and report["metric"] == "psnr_y (dB)"
    assert report["baseline_name"] == "bicubic upscaling" and report["baseline"] > 0
    assert report["quality_before"] > 0 and report["quality_after"] > 0
    model, card = load_model(target)
    assert card.training["pruned_from"] == str(path)
    kernels = prunable_variables(model)
    assert kernels and all(np.mean(np.asarray(v) == 0) == pytest.approx(0.5, abs=0.01) for _, v in kernels)
