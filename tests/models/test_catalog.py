"""`foveal models`: the reference table covers every architecture and agrees with real builds."""

from __future__ import annotations

import pytest

from foveal.models import MODELS
from foveal.models.catalog import REFERENCE_COUNTS, count_parameters, describe_models


def test_every_registered_model_has_a_reference_count():
    assert set(MODELS.names()) == set(REFERENCE_COUNTS)


# The large ones are checked against the published figures in their own test files.
@pytest.mark.parametrize("name", ["airbench", "airbench28", "lenet5", "lenet5_classic", "geron_cnn", "mobilenet", "googlenet", "resnet18"])
def test_reference_counts_match_a_build(name):
    classes, total, trainable = REFERENCE_COUNTS[name]
    assert count_parameters(name, classes) == (total, trainable)


def test_listing_reads_the_table_and_other_class_counts_build():
    rows = {r["name"]: r for r in describe_models()}
    assert rows["vgg16"]["parameters"] == 138_357_544 and rows["vgg16"]["classes"] == 1000
    assert "feature_layers" not in rows["lenet5"]  # measured on a build (models/pyramid.py), not listed
    assert count_parameters("lenet5", 3)[0] == 61_706 - 7 * 85  # 7 fewer outputs of 84 weights + bias
