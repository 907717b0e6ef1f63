"""Layer specs, freezing, batch-norm behaviour while frozen, and the trainable summary."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from foveal.errors import ConfigError
from foveal.models import build_model
from foveal.transfer.freeze import freeze, select_layers, trainable_counts, trainable_summary, unfreeze


@pytest.fixture
def lenet():
    return build_model("lenet5", num_classes=10, batch_norm=True)


def names(layers):
    return [layer.name for layer in layers]


def test_spec_terms_select_the_layers_they_say(lenet):
    all_names = names(lenet.layers[1:])
    assert names(select_layers(lenet, "all")) == all_names
    assert select_layers(lenet, "none") == []
    base = names(select_layers(lenet, "base"))
    assert base[0] == "preprocess" and base[-1] == "s4"
    assert names(select_layers(lenet, "head")) == ["flatten", "c5", "f6", "logits", "probabilities"]
    assert base + names(select_layers(lenet, "head")) == all_names
    assert names(select_layers(lenet, ":3")) == ["preprocess", "c1"]  # a slice of model.layers
    assert names(select_layers(lenet, "-2:")) == ["logits", "probabilities"]
    assert names(select_layers(lenet, "c1*")) == ["c1", "c1_bn", "c1_relu"]
    assert names(select_layers(lenet, "re:^c[13]_bn$")) == ["c1_bn", "c3_bn"]
    assert names(select_layers(lenet, "c3")) == ["c3", "c3_bn", "c3_relu"]  # a prefix up to "_"
    assert names(select_layers(lenet, "c3, logits")) == ["c3", "c3_bn", "c3_relu", "logits"]


def test_prefix_stops_at_a_separator():
    inputs = keras.Input((4,))
    x = keras.layers.Dense(2, name="block1_a")(inputs)
    x = keras.layers.Dense(2, name="block10_a")(x)
    model = keras.Model(inputs, x)
    assert names(select_layers(model, "block1")) == ["block1_a"]
    assert names(select_layers(model, "block1*")) == ["block1_a", "block10_a"]


@pytest.mark.parametrize("spec", ["blok5", "c9*", "re:^nothing$", ""])
def test_a_spec_that_selects_nothing_is_an_error(lenet, spec):
    with pytest.raises(ConfigError):
        select_layers(lenet, spec)


def test_bad_regex_is_a_config_error(lenet):
    with pytest.raises(ConfigError, match="regular expression"):
        select_layers(lenet, "re:(")


def test_freeze_unfreeze_and_counts(lenet):
    changed = freeze(lenet, "base")
    assert "c1" in changed and "c5" not in changed
    assert not lenet.get_layer("c3").trainable and lenet.get_layer("c5").trainable
    counts = trainable_counts(lenet)
    head_params = sum(int(np.prod(w.shape)) for n in ("c5", "f6", "logits") for w in lenet.get_layer(n).weights)
    assert counts.trainable_params == head_params
    assert counts.trainable_params + counts.frozen_params == lenet.count_params()
    assert freeze(lenet, "base") == []  # nothing left to change
    unfreeze(lenet, "c3")
    assert lenet.get_layer("c3_bn").trainable and not lenet.get_layer("c1").trainable
    freeze(lenet, "all")
    unfreeze(lenet, "all", batch_norm=False)
    assert lenet.get_layer("c1").trainable and not lenet.get_layer("c1_bn").trainable
    text = trainable_summary(lenet)
    assert "frozen" in text and "trainable" in text and text.splitlines()[-1].startswith("trainable:")


def _bn_model():
    inputs = keras.Input((6, 6, 1))
    x = keras.layers.Conv2D(3, 3, name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inputs, keras.layers.Dense(2, activation="softmax", name="out")(x))


def _fit_once(model, compile: bool = True):
    if compile:
        model.compile(keras.optimizers.SGD(0.1), "categorical_crossentropy")
    rng = np.random.default_rng(0)
    x = rng.normal(3.0, 2.0, (32, 6, 6, 1)).astype("float32")  # far from the BN's initial stats
    y = np.eye(2, dtype="float32")[rng.integers(0, 2, 32)]
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)


def test_frozen_batchnorm_runs_in_inference_mode_and_trains_again_when_unfrozen():
    keras.utils.set_random_seed(0)
    model = _bn_model()
    bn = model.get_layer("bn")
    freeze(model, "conv,bn")
    stats = [w.numpy().copy() for w in bn.weights]  # gamma, beta, moving mean, moving variance
    _fit_once(model)
    assert all(np.array_equal(a, w.numpy()) for a, w in zip(stats, bn.weights))  # nothing moved
    x = np.random.default_rng(1).normal(size=(4, 6, 6, 1)).astype("float32")
    # inference mode even when called with training=True: the output ignores batch statistics
    np.testing.assert_allclose(model(x, training=True), model(x, training=False), rtol=1e-5)

    unfreeze(model, "bn")
    _fit_once(model)  # recompiled inside: the new flags take effect
    assert not np.allclose(stats[2], bn.moving_mean.numpy())
    assert not np.allclose(stats[0], bn.gamma.numpy())
    assert not np.allclose(model(x, training=True), model(x, training=False), rtol=1e-5)


def test_a_recompiled_model_leaves_frozen_layers_alone():
    """Without a new ``compile`` Keras may keep the train step traced before the change
    (whether it retraces depends on input shapes), so a frozen layer could go on training:
    the trainer recompiles at every phase."""
    keras.utils.set_random_seed(0)
    model = _bn_model()
    _fit_once(model)
    freeze(model, "conv")
    kernel = model.get_layer("conv").kernel.numpy().copy()
    _fit_once(model)
    assert np.array_equal(kernel, model.get_layer("conv").kernel.numpy())


def test_flags_survive_save_and_load(tmp_path):
    from foveal.models import ModelCard, load_model, save_model

    model = build_model("lenet5", num_classes=3, batch_norm=True)
    freeze(model, "base")
    card = ModelCard(architecture="lenet5", class_names=["a", "b", "c"], input_shape=(32, 32, 1))
    save_model(model, tmp_path / "m.keras", card)
    loaded, _ = load_model(tmp_path / "m.keras")
    assert [layer.trainable for layer in loaded.layers] == [layer.trainable for layer in model.layers]
