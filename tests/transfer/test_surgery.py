"""Model surgery: cut, pop and graft keep a flat graph with the preprocess layer, and the
results save and load as .keras files with identical predictions."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from foveal.errors import ModelError
from foveal.models import ModelCard, build_model, load_model, save_model
from foveal.transfer.surgery import base_output_layer, cut, graft_head, head_layers, pop


def _flat(model: keras.Model) -> bool:
    return not any(isinstance(layer, keras.Model) for layer in model.layers)


def _round_trip(model: keras.Model, path, classes: int) -> keras.Model:
    card = ModelCard(architecture=model.name, class_names=[str(i) for i in range(classes)],
                     input_shape=tuple(model.input_shape[1:]))
    save_model(model, path, card)
    loaded, loaded_card = load_model(path)
    assert loaded_card.class_names == card.class_names
    return loaded


def test_cut_pop_and_graft_keep_the_preprocess_layer(tmp_path):
    model = build_model("lenet5", num_classes=10)
    features = cut(model, "s4")
    assert features.output_shape == (None, 5, 5, 16)
    assert [layer.name for layer in features.layers[:2]] == ["image", "preprocess"]
    assert features.get_layer("c1") is model.get_layer("c1")  # shared, as Keras does
    assert pop(model).layers[-1].name == "logits"
    assert pop(model, 3).layers[-1].name == "c5"

    new = graft_head(features, 4, dropout=0.3, pooling="avg")
    assert [layer.name for layer in new.layers[-4:]] == ["head_avg_pool", "head_dropout", "logits", "probabilities"]
    assert new.get_layer("probabilities").dtype_policy.compute_dtype == "float32"
    assert _flat(new) and new.output_shape == (None, 4)
    x = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 1)).astype("float32")
    loaded = _round_trip(new, tmp_path / "grafted.keras", 4)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), new.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    assert [layer.name for layer in loaded.layers[:2]] == ["image", "preprocess"]


@pytest.mark.parametrize("pooling, name", [("max", "head_max_pool"), ("flatten", "head_flatten")])
def test_pooling_choices(pooling, name):
    head = graft_head(cut(build_model("lenet5", num_classes=10), "s4"), 3, pooling=pooling, hidden=(8,))
    assert head.layers[-4].name == name and head.get_layer("head_dense1").units == 8


def test_graft_on_a_vector_and_name_clashes():
    model = build_model("lenet5", num_classes=10)
    vector = pop(model, 1)  # ends at "logits": the new classifier gets a unique name
    new = graft_head(vector, 2)
    assert new.layers[-2].name == "logits_1" and new.output_shape == (None, 2)


def test_base_and_head_split():
    model = build_model("resnet18", num_classes=5, input_shape=(32, 32, 3), width=4, stem="cifar")
    assert base_output_layer(model).name == "stage4_unit2_out"
    assert [layer.name for layer in head_layers(model)] == ["gap", "logits", "probabilities"]


def test_errors_name_the_problem():
    model = build_model("lenet5", num_classes=10)
    with pytest.raises(ModelError, match="no layer 'c9'"):
        cut(model, "c9")
    with pytest.raises(ModelError, match="cannot pop"):
        pop(model, len(model.layers))
    with pytest.raises(ModelError, match="pooling"):
        graft_head(cut(model, "s4"), 3, pooling="median")
