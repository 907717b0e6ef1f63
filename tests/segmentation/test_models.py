"""Segmentation models: paper shapes, per-pixel softmax, a training step, .keras round trips."""

from __future__ import annotations

import numpy as np
import pytest

from foveal.errors import ModelError
from foveal.models import ModelCard, load_model, save_model
from foveal.segmentation.losses import CrossEntropyDice
from foveal.segmentation.models import SEGMENTATION_MODELS, fcn, unet, unet_backbone, valid_unet_output_size


def test_valid_unet_matches_paper_figure():
    model = unet((572, 572, 1), num_classes=2, width=2, padding="valid")
    assert model.output_shape == (None, 388, 388, 2) == (None, *[valid_unet_output_size(572)] * 2, 2)
    assert model.get_layer("crop1").output.shape[1:3] == (392, 392)  # 568 cropped to 392 (Fig. 1)


def test_unet_rejects_indivisible_size():
    with pytest.raises(ModelError, match="divisible by 16"):
        unet((100, 100, 1), 2, width=2)


BUILDERS = [
    ("unet", lambda: unet((32, 32, 1), 3, depth=2, width=4, batch_norm=True), (32, 32, 1)),
    ("unet_backbone", lambda: unet_backbone("vgg16", (32, 32, 3), 3, width=0.0625), (32, 32, 3)),
    ("fcn8s", lambda: fcn("vgg16", "8s", (32, 32, 3), 3, fc_filters=8, width=0.0625), (32, 32, 3)),
    ("fcn32s", lambda: fcn("vgg16", "32s", (32, 32, 3), 3, fc_filters=8, width=0.0625), (32, 32, 3)),
]


@pytest.mark.parametrize("name, build, shape", BUILDERS, ids=[b[0] for b in BUILDERS])
def test_train_step_and_round_trip(name, build, shape, tmp_path):
    model = build()
    assert model.output_shape == (None, *shape[:2], 3)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (2, *shape)).astype("float32")
    y = rng.integers(0, 3, (2, *shape[:2]))
    y[0, 0] = 255
    probs = model.predict(x, verbose=0)
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-5)
    model.compile(optimizer="adam", loss=CrossEntropyDice(num_classes=3))
    loss = model.train_on_batch(x, y)
    assert np.isfinite(loss)
    path = save_model(model, tmp_path / f"{name}.keras", ModelCard(name, ["a", "b", "c"], shape, task="segment"))
    again, card = load_model(path)
    assert card.task == "segment"
    np.testing.assert_allclose(again.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5)


def test_fcn_skip_structure():
    m8 = fcn("vgg16", "8s", (64, 64, 3), 4, fc_filters=8, width=0.0625)
    m16 = fcn("vgg16", "16s", (64, 64, 3), 4, fc_filters=8, width=0.0625)
    names8, names16 = {l.name for l in m8.layers}, {l.name for l in m16.layers}
    assert {"score_pool4", "score_pool3", "upscore8"} <= names8
    assert "score_pool4" in names16 and "score_pool3" not in names16 and "upscore16" in names16
    assert not m8.get_layer("upscore8").trainable


def test_registry_lists_builders():
    assert SEGMENTATION_MODELS.names() == ["fcn", "unet", "unet_backbone"]
