"""Every architecture: parameter count against the published figure, shapes, a training
step, and a save/load round trip with identical predictions."""

from __future__ import annotations

import numpy as np
import pytest

from foveal.errors import ConfigError, FovealError, ModelError
from foveal.models import ModelCard, build_model, load_model, save_model

# Trainable parameters at the architectures' reference settings. ResNet figures are those of
# the paper's reference implementations (torchvision resnet18 / resnet34: 11,689,512 and
# 21,797,672); LeNet-5 and the Géron CNN are counted by hand from their layer tables.
PUBLISHED = [
    ("lenet5", (32, 32, 1), 10, 61_706),
    ("geron_cnn", (28, 28, 1), 10, 1_413_834),
    ("resnet18", (224, 224, 3), 1000, 11_689_512),
    ("resnet34", (224, 224, 3), 1000, 21_797_672),
]


def trainable(model) -> int:
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


@pytest.mark.parametrize("name, shape, classes, expected", PUBLISHED)
def test_parameter_count_matches_published(name, shape, classes, expected):
    model = build_model(name, num_classes=classes, input_shape=shape)
    assert trainable(model) == expected
    assert model.output_shape == (None, classes)


def test_lenet5_layer_table():
    model = build_model("lenet5")
    shapes = {layer.name: layer.output.shape[1:] for layer in model.layers}
    assert shapes["c1"] == (28, 28, 6) and shapes["s2"] == (14, 14, 6)
    assert shapes["c3"] == (10, 10, 16) and shapes["s4"] == (5, 5, 16)
    assert shapes["c5"] == (120,) and shapes["f6"] == (84,)


SMALL = [
    ("lenet5", (32, 32, 1), {}),
    ("geron_cnn", (28, 28, 1), {"width": 8}),
    ("resnet18", (32, 32, 3), {"width": 8, "stem": "cifar"}),
    ("resnet34", (64, 64, 3), {"width": 4}),
]
# Every architecture's headless build, round trip and training step run in the default tier
# (test_every_architecture.py); these whole classifiers, with their heads, in the slow tier.
SMALL = [pytest.param(*case, marks=pytest.mark.slow) if case[0] in ("resnet18", "resnet34") else case for case in SMALL]


@pytest.mark.parametrize("name, shape, options", SMALL)
def test_train_step_and_round_trip(tmp_path, name, shape, options):
    model = build_model(name, num_classes=3, input_shape=shape, **options)
    model.compile("adam", "categorical_crossentropy")
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (4, *shape)).astype("float32")
    y = np.eye(3)[[0, 1, 2, 0]].astype("float32")
    before = [w.copy() for w in model.get_weights()]
    loss = model.train_on_batch(x, y)
    assert np.isfinite(loss)
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))

    card = ModelCard(architecture=name, class_names=["a", "b", "c"], input_shape=shape)
    path = save_model(model, tmp_path / "m.keras", card)
    loaded, loaded_card = load_model(path)
    assert loaded_card.class_names == ["a", "b", "c"] and loaded_card.input_shape == shape
    np.testing.assert_array_equal(model.predict_on_batch(x), loaded.predict_on_batch(x))


def test_headless_model_returns_feature_maps():
    model = build_model("resnet18", num_classes=10, input_shape=(64, 64, 3), include_top=False, width=8)
    assert model.output_shape == (None, 2, 2, 64)


def test_l2_penalty_is_added_and_saved(tmp_path):
    model = build_model("lenet5", l2=0.01)
    assert len(model.losses) == 5  # c1, c3, c5, f6, logits kernels
    path = save_model(model, tmp_path / "m.keras", ModelCard.guess(model))
    loaded, _ = load_model(path)
    assert len(loaded.losses) == 5


def test_unknown_names_and_options_are_clear():
    with pytest.raises(FovealError, match="unknown model 'resnet19'"):
        build_model("resnet19")
    with pytest.raises(ConfigError, match="has no option"):
        build_model("lenet5", stem="cifar")
    with pytest.raises(ModelError, match="cannot build"):
        build_model("geron_cnn", input_shape=(4, 4, 1))


def test_load_model_errors(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        load_model(tmp_path / "nope.keras")
    broken = tmp_path / "broken.keras"
    broken.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(ModelError, match="broken.keras"):
        load_model(broken)


@pytest.mark.parametrize("mode", ["rescale", "tf", "torch", "caffe", "standardize", "none"])
def test_preprocess_layer_against_numpy(mode):
    from foveal.layers import Preprocess

    rng = np.random.default_rng(1)
    x = rng.uniform(0, 255, (2, 4, 4, 3)).astype("float32")
    mean, std = [10.0, 20.0, 30.0], [2.0, 4.0, 8.0]
    layer = Preprocess(mode, mean, std) if mode == "standardize" else Preprocess(mode)
    expected = {
        "rescale": x / 255.0,
        "tf": x / 127.5 - 1.0,
        "torch": (x / 255.0 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225]),
        "caffe": x[..., ::-1] - np.array([103.939, 116.779, 123.68]),
        "standardize": (x - np.array(mean)) / np.array(std),
        "none": x,
    }[mode]
    np.testing.assert_allclose(np.asarray(layer(x)), expected, rtol=1e-5, atol=1e-4)
    assert Preprocess.from_config(layer.get_config()).get_config() == layer.get_config()
