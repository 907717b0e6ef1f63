"""The engine builds the optimizer (and a functional model's loss and metrics) before ``fit``:
the same variables and the same numbers as Keras' own build inside the first trace."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from foveal.engine.optim import build_before_fit


def _data():
    rng = np.random.default_rng(0)
    x = rng.random((40, 12, 12, 1)).astype("float32")
    y = rng.integers(0, 3, 40)
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(16)


def _model(optimizer: str):
    keras.backend.clear_session()  # the same layer and optimizer names for both models
    keras.utils.set_random_seed(0)
    inputs = keras.Input((12, 12, 1))
    x = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x))
    opt = keras.optimizers.Adam(1e-2) if optimizer == "adam" else keras.optimizers.SGD(0.1, momentum=0.9)
    model.compile(opt, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


@pytest.mark.parametrize("optimizer", ["adam", pytest.param("sgd", marks=pytest.mark.slow)])
def test_built_before_fit_trains_exactly_as_built_inside(optimizer):
    ds = _data()
    plain = _model(optimizer)
    expected = plain.fit(ds, validation_data=ds, epochs=2, verbose=0).history
    built = _model(optimizer)
    build_before_fit(built, ds.element_spec)
    assert built.optimizer.built
    history = built.fit(ds, validation_data=ds, epochs=2, verbose=0).history
    assert history == expected  # bit for bit
    assert [v.path for v in built.optimizer.variables] == [v.path for v in plain.optimizer.variables]
    for mine, theirs in zip(built.optimizer.variables, plain.optimizer.variables):
        np.testing.assert_array_equal(np.asarray(mine), np.asarray(theirs))


def test_a_model_with_its_own_train_step_is_left_alone():
    class Custom(keras.Model):
        def train_step(self, data):
            return super().train_step(data)

    inputs = keras.Input((4,))
    model = Custom(inputs, keras.layers.Dense(2)(inputs))
    model.compile("adam", loss="mse")
    build_before_fit(model, (tf.TensorSpec([None, 4]), tf.TensorSpec([None, 2])))
    assert not model.optimizer.built
