"""Load errors name what is missing and say how to fix it."""

from __future__ import annotations

import keras
import pytest

from foveal.errors import ModelError
from foveal.models import ModelCard, load_model, save_model


@keras.saving.register_keras_serializable(package="footest")
class Doubler(keras.layers.Layer):
    """A custom layer that the loading process will not know about."""

    def call(self, x):
        return x * 2


def test_missing_custom_class_is_named_with_how_to_register_it(tmp_path):
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Flatten()(Doubler()(inputs))
    # A long name pushes the old 300-character cut well before the class name.
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="d" * 400)(x))
    path = save_model(model, tmp_path / "custom.keras", ModelCard("custom", ["a", "b", "c"], (8, 8, 1)))
    registry = keras.saving.get_custom_objects()
    saved = registry.pop("footest>Doubler")
    try:
        with pytest.raises(ModelError) as caught:
            load_model(path)
    finally:
        registry["footest>Doubler"] = saved
    text = str(caught.value)
    assert "'Doubler'" in text and "footest>Doubler" in text
    assert "register_keras_serializable" in text and "custom_object_scope" in text
    assert "\n" not in caught.value.message  # one line
    assert load_model(path)[0].layers[1].__class__ is Doubler  # registered again: it loads


def test_safe_mode_refusal_keeps_its_reason(tmp_path):
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Lambda(lambda t: t * 3)(inputs))
    path = save_model(model, tmp_path / "lambda.keras", ModelCard("lam", ["a", "b", "c", "d"], (4, 1, 1)))
    with pytest.raises(ModelError, match="safe_mode|Lambda"):
        load_model(path)
