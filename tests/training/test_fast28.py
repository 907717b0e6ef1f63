"""The fast-mnist and fast-fashion recipes: their resolved values, and fast-fashion end to end on
tiny generated 28x28 data (the recipe's values reach config.yaml, the run learns a separable
problem, the test scoring uses the mirror-image views)."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
import yaml

from foveal.config import TrainConfig
from foveal.training import trainer
from foveal.training.recipes import RECIPES, resolve_recipe

TINY = {"stem": 0, "widths": [8, 8, 16]}


@pytest.fixture(scope="module")
def stripes(tmp_path_factory):
    """Four classes of 28x28 gray images: a bright bar in one of four places, plus noise."""
    rng = np.random.default_rng(0)
    n = 256
    y = np.arange(n) % 4
    x = rng.integers(0, 60, (n, 28, 28), dtype=np.uint8)
    for i, label in enumerate(y):
        rows = slice(4 + 6 * label, 8 + 6 * label)
        x[i, rows, 4:24] = 220
    path = tmp_path_factory.mktemp("fast28") / "stripes.npz"
    np.savez(path, x=x, y=y)
    return path


def test_fast_mnist_resolves_to_one_epoch_without_flips():
    cfg = resolve_recipe(TrainConfig(data="digits", recipe="fast-mnist", batch_size=64))
    assert (cfg.model, cfg.epochs, cfg.augment, cfg.tta, cfg.mixed_precision) == ("airbench28", 1, "none", "none",
                                                                                   "bfloat16")
    assert cfg.model_options == {"stem": 0, "widths": [32, 64, 128], "fused_bn": True} and cfg.batch_size == 64  # explicit wins


@pytest.mark.slow  # 40 s at load 22 on the shared 2 cores (tracing + bfloat16 + mirror-view scoring)
def test_fast_fashion_trains_airbench28_end_to_end(stripes, tmp_path):
    recipe, views = "fast-fashion", "flip"
    result = trainer.train(TrainConfig(data=str(stripes), recipe=recipe, model_options=TINY, epochs=2,
                                       batch_size=32, test_split=0.25, val_split=0.0, monitor="loss",
                                       progress=False, report_misclassified=0, output=str(tmp_path)))
    resolved = yaml.safe_load((result.run_dir / "config.yaml").read_text())
    expected = RECIPES[recipe].options
    for key in ("model", "optimizer", "schedule", "augment", "mixed_precision", "tta", "label_smoothing"):
        assert resolved[key] == expected[key], key
    assert resolved["model_options"] == TINY and resolved["epochs"] == 2  # explicit options win
    metrics = json.loads((result.run_dir / "metrics.json").read_text())
    assert metrics["tta"] == views and metrics["num_examples"] == 64
    assert metrics["accuracy"] > 0.5  # chance is 0.25
    assert keras.mixed_precision.dtype_policy().name == "float32"  # the bfloat16 policy did not leak
