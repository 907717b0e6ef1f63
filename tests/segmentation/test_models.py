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


# unet and fcn8s in the default tier; the U-Net on a VGG backbone and FCN-32s (FCN-8s without its skips) in the slow one.
CASES = [pytest.param(*b, id=b[0], marks=[pytest.mark.slow] if b[0] in ("unet_backbone", "fcn32s") else [])
         for b in BUILDERS]


@pytest.mark.parametrize("name, build, shape", CASES)
def test_train_step_and_round_trip(name, build, shape, tmp_path):
    model = build()
    assert model.output_shape == (None, *shape[:2], 3)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (2, *shape)).astype("float32")
    y = rng.integers(0, 3, (2, *shape[:2]))
    y[0, 0] = 255
    # Eager calls and step: tracing predict and the training graph cost several times the work
    # (the graph-mode step runs in the engine's runs, tests/segmentation/test_training.py).
    probs = np.asarray(model(x, training=False))
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-5)
    model.compile(optimizer="adam", loss=CrossEntropyDice(num_classes=3), run_eagerly=True)
    loss = model.train_on_batch(x, y)
    assert np.isfinite(loss)
    path = save_model(model, tmp_path / f"{name}.keras", ModelCard(name, ["a", "b", "c"], shape, task="segment"))
    again, card = load_model(path)
    assert card.task == "segment"
    np.testing.assert_allclose(np.asarray(again(x, training=False)), np.asarray(model(x, training=False)), atol=1e-5)


def test_fcn_skip_structure():
    m8 = fcn("vgg16", "8s", (64, 64, 3), 4, fc_filters=8, width=0.0625)
    m16 = fcn("vgg16", "16s", (64, 64, 3), 4, fc_filters=8, width=0.0625)
    names8, names16 = {l.name for l in m8.layers}, {l.name for l in m16.layers}
    assert {"score_pool4", "score_pool3", "upscore8"} <= names8
    assert "score_pool4" in names16 and "score_pool3" not in names16 and "upscore16" in names16
    assert not m8.get_layer("upscore8").trainable


def _source(model, layer: str) -> str:
    """Name of the layer whose output feeds ``layer``."""
    return model.get_layer(layer).input._keras_history.operation.name


def test_fcn_taps_are_measured_pools_on_vgg_and_last_maps_elsewhere():
    vgg = fcn("vgg11", "8s", (64, 64, 3), 3, fc_filters=8, width=0.0625)
    assert (_source(vgg, "score_pool3"), _source(vgg, "score_pool4"), _source(vgg, "fc6")) == (
        "block3_pool", "block4_pool", "block5_pool")
    resnet = fcn("resnet18", "8s", (64, 64, 3), 3, fc_filters=8, width=16)
    assert (_source(resnet, "score_pool3"), _source(resnet, "fc6")) == ("stage2_unit2_out", "stage4_unit2_out")
    with pytest.raises(ModelError, match="no P4, P5 feature map.*P3"):  # the CIFAR stem stops at stride 8
        fcn("resnet18", "16s", (64, 64, 3), 3, fc_filters=8, width=16, stem="cifar")


def test_unet_backbone_follows_the_measured_strides():
    # CIFAR stem: P2 and P3 only (stride 8 at most), so one skip and two x2 steps to full size
    model = unet_backbone("resnet18", (64, 64, 3), 3, stem="cifar", width=16, decoder_widths=(16, 8, 8))
    assert model.output_shape == (None, 64, 64, 3)
    assert model.get_layer("dec1_concat").input[1]._keras_history.operation.name == "stage3_unit2_out"
    assert [layer.name for layer in model.layers if layer.name.endswith("_up")] == ["dec1_up", "dec2_up", "dec3_up"]
    with pytest.raises(ModelError, match="unpadded convolutions"):  # Xception trims borders: 15 vs 2x8
        unet_backbone("xception", (64, 64, 3), 2, alpha=0.0625, middle_blocks=1)


def test_registry_lists_builders():
    assert SEGMENTATION_MODELS.names() == ["fcn", "unet", "unet_backbone"]
