"""keras.applications networks as flat foveal models; ImageNet weights offline (cache hit,
download failure naming the file); weights from .keras, .weights.h5 and legacy .h5 files."""

from __future__ import annotations

import importlib
import urllib.error
import warnings

import h5py
import keras
import numpy as np
import pytest

from foveal.errors import ConfigError, ModelError
from foveal.layers.preprocess import Preprocess
from foveal.models import MODELS, ModelCard, build_model, save_model
from foveal.transfer import pretrained
from foveal.transfer.pretrained import (
    PRETRAINED,
    build_pretrained,
    builder_for,
    decode_predictions,
    imagenet_class_names,
    load_weights_by_name,
)

SMALL = dict(input_shape=(128, 128, 3), alpha=0.25, builder="keras")  # MobileNet 0.25: 220k parameters


@pytest.fixture
def offline_keras_home(tmp_path, monkeypatch):
    """Keras' download cache in tmp_path/models, and every download failing as it does offline."""
    from keras.src.backend import config
    from keras.src.utils import file_utils

    def no_network(url, *args, **kwargs):
        raise urllib.error.URLError("network unreachable (test)")

    (tmp_path / "models").mkdir()
    monkeypatch.setattr(config, "_KERAS_DIR", str(tmp_path))
    monkeypatch.setattr(file_utils, "urlretrieve", no_network)
    imagenet_class_names.cache_clear()
    yield tmp_path / "models"
    imagenet_class_names.cache_clear()


def write_keras_applications_h5(model: keras.Model, path) -> None:
    """Write weights the way keras.applications' downloads are laid out (Keras 2 HDF5):
    root attribute ``layer_names``, one group per layer with ``weight_names``."""
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [layer.name.encode() for layer in model.layers]
        f.attrs["backend"] = b"tensorflow"
        f.attrs["keras_version"] = b"2.15.0"
        for layer in model.layers:
            group = f.create_group(layer.name)
            weights = layer.trainable_weights + layer.non_trainable_weights
            names = [f"{layer.name}/{w.name}:0" for w in weights]
            group.attrs["weight_names"] = [n.encode() for n in names]
            for n, w in zip(names, weights):
                group.create_dataset(n, data=keras.ops.convert_to_numpy(w))


def randomize(model: keras.Model, seed: int = 0) -> None:
    """Give every weight (batch-norm statistics too) a distinctive random value."""
    rng = np.random.default_rng(seed)
    model.set_weights([rng.uniform(0.5, 1.5, w.shape).astype(w.dtype) for w in model.get_weights()])


@pytest.mark.parametrize("name", sorted(PRETRAINED))
def test_table_preprocessing_equals_keras_preprocess_input(name):
    spec = PRETRAINED[name]
    module = importlib.import_module(getattr(keras.applications, spec.constructor).__module__)
    x = np.random.default_rng(1).uniform(0, 255, (2, 4, 4, 3)).astype("float32")
    expected = module.preprocess_input(x.copy())
    got = keras.ops.convert_to_numpy(Preprocess(spec.preprocessing)(x))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-4)


def test_flat_graph_new_head_features_and_imagenet_top(tmp_path):
    model = build_pretrained("mobilenet", weights=None, num_classes=3, dropout=0.2, **SMALL)
    assert [layer.name for layer in model.layers[:3]] == ["image", "preprocess", "conv1"]
    assert not any(isinstance(layer, keras.Model) for layer in model.layers)
    assert model.get_layer("preprocess").mode == "tf" and model.name == "mobilenet"
    assert [layer.name for layer in model.layers[-4:]] == ["head_avg_pool", "head_dropout", "logits", "probabilities"]
    card = ModelCard(architecture="mobilenet", class_names=["a", "b", "c"], input_shape=(128, 128, 3),
                     preprocessing="tf")
    from foveal.models import load_model

    save_model(model, tmp_path / "m.keras", card)
    loaded, _ = load_model(tmp_path / "m.keras")
    x = np.random.default_rng(0).uniform(0, 255, (2, 128, 128, 3)).astype("float32")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-4, atol=1e-6)

    features = build_pretrained("mobilenet", weights=None, include_top=False, **SMALL)
    assert features.output_shape == (None, 4, 4, 256)
    imagenet_shaped = build_pretrained("mobilenet", weights=None, **SMALL)
    assert imagenet_shaped.output_shape == (None, 1000) and imagenet_shaped.layers[-1].name == "probabilities"


def test_imagenet_errors_before_any_download():
    with pytest.raises(ConfigError, match="224x224"):  # the ImageNet classifier needs its own size
        build_pretrained("mobilenet", weights="imagenet", input_shape=(128, 128, 3), alpha=0.25)
    with pytest.raises(ConfigError, match="3 channels"):
        build_pretrained("mobilenet", weights="imagenet", num_classes=2, input_shape=(128, 128, 1))
    with pytest.raises(ModelError, match="unknown model"):
        build_pretrained("resnet5O")
    with pytest.raises(ModelError, match="no ImageNet weights"):
        build_pretrained("lenet5", weights="imagenet", num_classes=2)


@pytest.mark.parametrize("name, options, expected", [
    ("resnet50", {}, "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"),
    ("mobilenet", dict(alpha=0.25, input_shape=(128, 128, 3)), "mobilenet_2_5_128_tf_no_top.h5"),
])
def test_offline_download_failure_names_file_and_folder(offline_keras_home, name, options, expected):
    with pytest.raises(ModelError) as info:
        build_pretrained(name, weights="imagenet", num_classes=4, **options)
    text = str(info.value)
    assert expected in text and str(offline_keras_home) in text and "--weights PATH" in text
    assert "download failed" in text and not (offline_keras_home / expected).exists()


def test_weights_already_in_the_cache_are_used_offline(offline_keras_home):
    """MobileNet's downloads carry no checksum in keras.applications, so a file we write
    ourselves under the expected name is exactly what Keras loads from its cache."""
    reference = build_pretrained("mobilenet", weights=None, include_top=False, **SMALL)
    randomize(reference)
    write_keras_applications_h5(reference, offline_keras_home / "mobilenet_2_5_128_tf_no_top.h5")

    model = build_pretrained("mobilenet", weights="imagenet", num_classes=3, input_shape=(128, 128, 3), alpha=0.25)
    for layer in reference.layers:
        for mine, theirs in zip(model.get_layer(layer.name).get_weights(), layer.get_weights()):
            np.testing.assert_array_equal(mine, theirs)


def test_checksummed_file_that_does_not_match_is_reported(offline_keras_home):
    (offline_keras_home / "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5").write_bytes(b"not weights")
    with pytest.raises(ModelError, match="did not match the checksum"):
        build_pretrained("resnet50", weights="imagenet", num_classes=2, input_shape=(32, 32, 3))


def test_class_names_fall_back_offline_and_decode(offline_keras_home):
    with pytest.warns(UserWarning, match="imagenet_0"):
        names = imagenet_class_names()
    assert len(names) == 1000 and names[7] == "imagenet_7"
    probs = np.zeros((1, 1000))
    probs[0, [3, 9]] = [0.25, 0.75]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert decode_predictions(probs, top=2) == [[("imagenet_9", 0.75), ("imagenet_3", 0.25)]]
    assert decode_predictions(np.array([[0.1, 0.7, 0.2]]), ["cat", "dog", "fox"], top=1) == [[("dog", 0.7)]]


def _saved_lenet(path, classes, channels=1, seed=0):
    model = build_model("lenet5", num_classes=len(classes), input_shape=(32, 32, channels))
    randomize(model, seed)
    save_model(model, path, ModelCard(architecture="lenet5", class_names=classes, input_shape=(32, 32, channels)))
    return model


def test_weights_from_a_keras_file_copy_by_name(tmp_path):
    source = _saved_lenet(tmp_path / "src.keras", ["0", "1", "2"])
    other_task = build_pretrained("lenet5", weights=tmp_path / "src.keras", num_classes=3, class_names=["x", "y", "z"])
    report = other_task._foveal_weight_transfer
    assert report.loaded == ["c1", "c3", "c5", "f6"] and report.skipped == {"logits": "new classifier"}
    np.testing.assert_array_equal(other_task.get_layer("c3").kernel.numpy(), source.get_layer("c3").kernel.numpy())
    assert not np.array_equal(other_task.get_layer("logits").kernel.numpy(), source.get_layer("logits").kernel.numpy())

    same_task = build_pretrained("lenet5", weights=tmp_path / "src.keras")  # classes from the card
    assert same_task.output_shape == (None, 3) and "logits" in same_task._foveal_weight_transfer.loaded

    rgb = build_pretrained("lenet5", weights=tmp_path / "src.keras", num_classes=2, input_shape=(32, 32, 3))
    assert rgb._foveal_weight_transfer.skipped["c1"].startswith("shapes differ")


def test_weights_from_weights_h5_and_legacy_h5(tmp_path):
    source = build_model("lenet5", num_classes=4)
    randomize(source, 3)
    source.save_weights(tmp_path / "src.weights.h5")
    write_keras_applications_h5(source, tmp_path / "src.h5")
    for path in (tmp_path / "src.weights.h5", tmp_path / "src.h5"):
        target = build_model("lenet5", num_classes=4)
        report = load_weights_by_name(target, path)
        assert report.loaded == ["c1", "c3", "c5", "f6", "logits"], path
        for a, b in zip(target.get_weights(), source.get_weights()):
            np.testing.assert_array_equal(a, b)
    with pytest.raises(ModelError, match="no layer"):
        load_weights_by_name(build_pretrained("mobilenet", weights=None, num_classes=2, **SMALL), tmp_path / "src.h5")
    with pytest.raises(ModelError, match="not found"):
        build_pretrained("lenet5", weights=tmp_path / "missing.keras", num_classes=2)


def test_builder_choice_for_names_both_know(tmp_path, monkeypatch):
    from foveal.registry import Entry

    monkeypatch.setitem(MODELS._entries, "vgg16", Entry("vgg16", MODELS.get("lenet5").obj, {}))
    assert builder_for("lenet5", None) == "foveal" and builder_for("nasnet_mobile", None) == "keras"
    assert builder_for("vgg16", None) == "foveal" and builder_for("vgg16", "imagenet") == "keras"
    assert builder_for("vgg16", "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5") == "keras"
    assert builder_for("vgg16", "mine.weights.h5") == "foveal"
    model = build_model("lenet5", num_classes=2)
    card = ModelCard(architecture="vgg16", class_names=["a", "b"], input_shape=(32, 32, 1),
                     training={"builder": "keras"})
    save_model(model, tmp_path / "k.keras", card)
    assert builder_for("vgg16", tmp_path / "k.keras") == "keras"
    with pytest.raises(ModelError, match="unknown model"):
        builder_for("vgg17", None)


def test_cache_dir_follows_keras_home(offline_keras_home):
    assert pretrained.weights_cache_dir() == offline_keras_home


def _nested(classes: int) -> keras.Model:
    from foveal.layers import InceptionModule

    inputs = keras.Input((8, 8, 3), name="image")
    x = Preprocess("rescale", name="preprocess")(inputs)
    x = InceptionModule(2, 2, 3, 2, 3, 2, name="inception")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inputs, keras.layers.Dense(classes, activation="softmax", name="logits")(x))


def test_layers_with_sub_layers_copy_whole_from_keras_files(tmp_path):
    source = _nested(4)
    randomize(source, 5)
    save_model(source, tmp_path / "nested.keras", ModelCard(architecture="nested", class_names=list("abcd"),
                                                            input_shape=(8, 8, 3)))
    target = _nested(2)
    report = load_weights_by_name(target, tmp_path / "nested.keras")
    assert report.loaded == ["inception"] and "logits" in report.skipped
    for a, b in zip(target.get_layer("inception").get_weights(), source.get_layer("inception").get_weights()):
        np.testing.assert_array_equal(a, b)
