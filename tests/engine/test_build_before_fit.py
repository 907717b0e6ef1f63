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


def _fit_counting_traces(model, data, *, build: bool, epochs: int = 2):
    """``(history, traces of the train step)`` of ``model.fit(data)``, built first or not."""
    traces = []
    own_step = model.train_step

    def counted(batch):
        traces.append(1)  # Python runs only while the step is traced
        return own_step(batch)

    model.train_step = counted
    if build:
        build_before_fit(model, data.element_spec)
    history = model.fit(data, epochs=epochs, verbose=0).history
    return history, len(traces)


def _detector():
    from foveal.detection.model import build_detector

    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    model = build_detector("geron_cnn", 2, np.array([[0.25, 0.25], [0.45, 0.45]], np.float32),
                           input_shape=(32, 32, 3), head_width=0, backbone_options={"width": 4})
    model.compile(keras.optimizers.Adam(1e-3))
    return model


def _detector_data():
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    targets = {"boxes": np.array([[[0.1, 0.1, 0.4, 0.5], [0, 0, 0, 0]], [[0.5, 0.2, 0.9, 0.7], [0.1, 0.1, 0.3, 0.3]]],
                                 "float32"),
               "classes": np.array([[0, -1], [1, 0]], "int32")}
    return tf.data.Dataset.from_tensors((images, targets)).repeat(2)


def _gan(name: str):
    from foveal.generative.models import build_generative

    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    model = build_generative(name, image_shape=(8, 8, 1), latent_dim=4, width=4, seed=0)
    model.compile(keras.optimizers.Adam(1e-3))
    return model


def _image_data():
    images = np.random.default_rng(0).integers(0, 256, (8, 8, 8, 1)).astype("float32")
    return tf.data.Dataset.from_tensor_slices((images, np.zeros(8, "int32"))).batch(4)


def _auxiliary():
    from foveal.models.auxiliary import AuxiliaryClassifierModel

    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    inputs = keras.Input((12, 12, 1))
    x = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    side = keras.layers.Dense(3, activation="softmax")(keras.layers.GlobalAveragePooling2D()(x))
    x = keras.layers.Conv2D(4, 3, activation="relu")(x)
    main = keras.layers.Dense(3, activation="softmax")(keras.layers.GlobalAveragePooling2D()(x))
    model = AuxiliaryClassifierModel(inputs, main, [side])
    model.compile(keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


@pytest.mark.parametrize("make, data", [pytest.param(_detector, _detector_data, id="detector"),
                                        pytest.param(_auxiliary, _data, id="auxiliary-heads"),
                                        pytest.param(lambda: _gan("dcgan"), _image_data, id="dcgan"),
                                        pytest.param(lambda: _gan("vae"), _image_data, id="vae",
                                                     marks=pytest.mark.slow)])
def test_a_model_with_its_own_step_and_build_optimizers_traces_once_with_the_same_history(make, data):
    """A detector (its domain-adaptation step), GoogLeNet-style side heads, a GAN (two optimizers)
    and a VAE: built first through their ``build_optimizers``, the step is traced once, not twice,
    and trains the same."""
    expected, plain_traces = _fit_counting_traces(make(), data(), build=False)
    history, traces = _fit_counting_traces(make(), data(), build=True)
    assert (plain_traces, traces) == (2, 1)
    assert history == expected  # bit for bit
