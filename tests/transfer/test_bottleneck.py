"""Bottleneck features: split a classifier, cache features on disk, train and attach a head."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from foveal.data.readers import load_dataset
from foveal.errors import ModelError
from foveal.layers.preprocess import Preprocess
from foveal.models import ModelCard, build_model, load_model, save_model
from foveal.transfer.bottleneck import (
    attach_head,
    compute_features,
    feature_split,
    make_head,
    train_head_on_features,
)


@pytest.fixture(scope="module")
def digits():
    data = load_dataset("digits")["train"]
    return data.subset(np.arange(240))


def _x(n=4, size=32):
    return np.random.default_rng(0).integers(0, 256, (n, size, size, 1)).astype("float32")


def test_split_and_attach_give_the_same_predictions(tmp_path):
    model = build_model("lenet5", num_classes=10, dropout=0.2)
    extractor, head = feature_split(model)
    assert extractor.output_shape == (None, 400) and extractor.layers[-1].name == "flatten"
    assert [layer.name for layer in head.layers[1:]] == ["c5", "c5_dropout", "f6", "f6_dropout", "logits",
                                                         "probabilities"]
    assert head.get_layer("c5") is model.get_layer("c5")  # shared: training the head trains the model
    x = _x()
    expected = model.predict(x, verbose=0)
    np.testing.assert_allclose(head.predict(extractor.predict(x, verbose=0), verbose=0), expected, rtol=1e-5)
    full = attach_head(extractor, head)
    np.testing.assert_allclose(full.predict(x, verbose=0), expected, rtol=1e-5)
    save_model(full, tmp_path / "full.keras",
               ModelCard(architecture="lenet5", class_names=list("0123456789"), input_shape=(32, 32, 1)))
    loaded, _ = load_model(tmp_path / "full.keras")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), expected, rtol=1e-5)
    # the original model still saves after its head layers were reused elsewhere
    save_model(model, tmp_path / "model.keras",
               ModelCard(architecture="lenet5", class_names=list("0123456789"), input_shape=(32, 32, 1)))


def test_gap_heads_split_after_the_pooling():
    model = build_model("resnet18", num_classes=3, input_shape=(32, 32, 3), width=4, stem="cifar")
    extractor, head = feature_split(model)
    assert extractor.layers[-1].name == "gap" and extractor.output_shape == (None, 32)


def test_a_branching_head_is_refused():
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Flatten(name="flat")(keras.layers.Conv2D(2, 3, name="conv")(inputs))
    a = keras.layers.Dense(4, name="a")(x)
    b = keras.layers.Dense(4, name="b")(x)
    out = keras.layers.Dense(2, activation="softmax", name="out")(keras.layers.Concatenate(name="cat")([a, b]))
    with pytest.raises(ModelError, match="not a simple chain"):
        feature_split(keras.Model(inputs, out))


def test_features_are_cached_and_keyed_by_weights(digits, tmp_path):
    model = build_model("lenet5", num_classes=10)
    extractor, _ = feature_split(model)
    geometry = dict(image_size=(32, 32), channels=1, batch_size=64, cache_dir=tmp_path)
    first = compute_features(extractor, digits, **geometry)
    assert not first.from_cache and first.features.shape == (240, 400) and first.path.is_file()
    np.testing.assert_array_equal(first.labels, digits.labels)
    np.testing.assert_allclose(first.features[:4], extractor.predict(_digit_pixels(digits, 4), verbose=0),
                               rtol=1e-4, atol=1e-5)
    again = compute_features(extractor, digits, **geometry)
    assert again.from_cache and again.path == first.path
    np.testing.assert_array_equal(again.features, first.features)

    model.get_layer("c1").kernel.assign(model.get_layer("c1").kernel * 2.0)  # new weights, new key
    changed = compute_features(extractor, digits, **geometry)
    assert not changed.from_cache and changed.path != first.path
    other_data = compute_features(extractor, digits.subset(np.arange(100)), **geometry)
    assert not other_data.from_cache and len(list(tmp_path.glob("*.npz"))) == 3


def _digit_pixels(data, n):
    import tensorflow as tf

    return tf.image.resize(data.images[:n], (32, 32), antialias=True).numpy().round().clip(0, 255)


def test_head_trained_on_features_attaches_to_a_base(digits, tmp_path):
    """Raw 8x8 pixels as "features": a linear head learns the digits in a few epochs."""
    inputs = keras.Input((8, 8, 1), name="image")
    x = Preprocess("rescale", name="preprocess")(inputs)
    base = keras.Model(inputs, keras.layers.Flatten(name="pixels")(x), name="pixels")
    train = compute_features(base, digits, image_size=(8, 8), channels=1, cache_dir=tmp_path)
    head = train_head_on_features(train.features, train.labels, 10, epochs=40, batch_size=32,
                                  learning_rate=0.01, seed=0)
    full = attach_head(base, head)
    predictions = full.predict(digits.images.astype("float32"), verbose=0).argmax(axis=1)
    assert (predictions == digits.labels).mean() > 0.85
    with pytest.raises(ModelError, match="outputs"):
        attach_head(base, make_head(32, 10))
