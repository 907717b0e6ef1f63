"""benchmarks/scratch_networks.py: its FLOP count, and a tiny end-to-end run (slow)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "scratch_networks.py"


def _load():
    spec = importlib.util.spec_from_file_location("scratch_networks", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_forward_macs_of_the_default_cnn():
    from foveal.scratch import small_cnn

    bench = _load()
    # conv1: 28*28 positions x 8 filters x 5*5*1 taps; conv2: 14*14 x 16 x 5*5*8; dense: 784 x 10
    assert bench.forward_macs(small_cnn()) == 28 * 28 * 8 * 25 + 14 * 14 * 16 * 200 + 784 * 10


@pytest.mark.slow
def test_runs_end_to_end_on_a_tiny_mnist_like_file(tmp_path, capsys):
    rng = np.random.default_rng(0)
    images = lambda n: rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)  # noqa: E731
    data = tmp_path / "tiny.npz"
    np.savez(data, x_train=images(256), y_train=rng.integers(0, 10, 256), x_test=images(64),
             y_test=rng.integers(0, 10, 64))
    bench = _load()
    assert bench.main(["--data", str(data), "--only", "cnn", "--only", "step", "--only", "simple",
                       "--cnn-epochs", "1", "--simple-epochs", "1", "--steps", "2", "--batch-size", "32"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out["results"]) == {"cnn", "step", "simple"}
    assert out["peak_gflops_float32"]["before"] > 0 and len(out["load_average_before"]) == 3
    assert out["results"]["step"]["numpy"]["median_ms"] > 0 and out["results"]["cnn"]["history"]
