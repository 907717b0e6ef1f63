"""airbench28: parameter count from the per-layer arithmetic, layer shapes, multiply-adds, and the
widths the fast-mnist / fast-fashion recipes use."""

from __future__ import annotations

import numpy as np
import pytest

from foveal.errors import ConfigError
from foveal.inspection.summary import summarize, totals
from foveal.models import build_model
from foveal.training.recipes import RECIPES


def expected_counts(stem: int, widths: list[int], classes: int = 10) -> tuple[int, int]:
    """(trainable, total) written out: bias-free 3x3 convs, batch norm with a shift only (plus
    its two running statistics), a bias-free linear head."""
    trainable = total = 0
    channels = 1
    convs = ([(1, stem)] if stem else []) + [pair for w in widths for pair in ((None, w), (w, w))]
    for cin, cout in convs:
        cin = channels if cin is None else cin
        trainable += 9 * cin * cout + cout  # kernel + BN beta
        total += 9 * cin * cout + 3 * cout  # + moving mean and variance
        channels = cout
    return trainable + channels * classes, total + channels * classes


def trainable(model) -> int:
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


@pytest.mark.parametrize("options", [{}, RECIPES["fast-mnist"].options["model_options"]])
def test_parameter_counts_match_the_arithmetic(options):
    model = build_model("airbench28", num_classes=10, **options)
    stem, widths = options.get("stem", 24), list(options.get("widths", (32, 64, 128)))
    assert (trainable(model), model.count_params()) == expected_counts(stem, widths)


def test_default_and_recipe_architectures():
    model = build_model("airbench28", num_classes=10)
    assert model.count_params() == 295_520 and trainable(model) == 294_576
    shapes = {layer.name: tuple(layer.output.shape[1:]) for layer in model.layers}
    assert shapes["stem_act"] == (28, 28, 24)
    assert shapes["group1_pool"] == (14, 14, 32) and shapes["group2_pool"] == (7, 7, 64)
    assert shapes["group3_2_act"] == (3, 3, 128) and model.output_shape == (None, 10)
    assert not any(layer.name.startswith("stem") for layer in
                   build_model("airbench28", num_classes=10, stem=0).layers)
    # the recipes' model: no stem, 32/64/128 -> 288,608 parameters, 12.4 M multiply-adds per image
    recipe = build_model("airbench28", num_classes=10, **RECIPES["fast-mnist"].options["model_options"])
    assert recipe.count_params() == 288_608
    # multiply-adds by hand: 3x3 convs at 28, 14, 14, 7, 7, 3 pixels (pooling after each group's first conv)
    macs = 9 * (28 * 28 * 1 * 32 + 14 * 14 * 32 * 32 + 14 * 14 * 32 * 64 + 7 * 7 * 64 * 64
                + 7 * 7 * 64 * 128 + 3 * 3 * 128 * 128) + 128 * 10
    assert macs == 12_392_192
    counted = totals(summarize(recipe))["multiplications"]
    assert macs <= counted < macs * 1.01  # the rest: batch norm, rescaling


def test_bad_widths_are_a_config_error():
    with pytest.raises(ConfigError, match="widths"):
        build_model("airbench28", num_classes=10, widths=[])
