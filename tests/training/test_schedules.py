"""Learning-rate schedules: shapes checked against closed forms."""

from __future__ import annotations

import math

import keras
import pytest

from foveal.training.schedules import OneCycle, Warmup, make_optimizer, make_schedule


def test_one_cycle_shape():
    s = OneCycle(0.1, total_steps=100, pct_start=0.3)
    assert float(s(0)) == pytest.approx(0.1 / 25)
    assert float(s(30)) == pytest.approx(0.1)
    assert float(s(65)) == pytest.approx(0.1 / 1e4 + (0.1 - 0.1 / 1e4) * 0.5 * (1 + math.cos(math.pi * 0.5)), rel=1e-5)
    assert float(s(100)) == pytest.approx(0.1 / 1e4, rel=1e-4)
    assert keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(s)).get_config() == s.get_config()


def test_step_exponential_cosine_and_warmup():
    step = make_schedule("step", learning_rate=1.0, steps_per_epoch=10, epochs=30, step_epochs=10, gamma=0.1)
    assert [float(step(i)) for i in (0, 99, 100, 200)] == pytest.approx([1.0, 1.0, 0.1, 0.01])
    exp = make_schedule("exponential", learning_rate=1.0, steps_per_epoch=10, epochs=5, gamma=0.5)
    assert float(exp(20)) == pytest.approx(0.25)
    cos = make_schedule("cosine", learning_rate=1.0, steps_per_epoch=10, epochs=10)
    assert float(cos(50)) == pytest.approx(0.5, abs=1e-6)
    warm = make_schedule("cosine", learning_rate=1.0, steps_per_epoch=10, epochs=10, warmup_epochs=1)
    assert isinstance(warm, Warmup)
    assert float(warm(4)) == pytest.approx(0.5) and float(warm(10)) == pytest.approx(1.0)
    assert make_schedule("constant", learning_rate=0.3, steps_per_epoch=5, epochs=2) == 0.3


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw", "nadam", "rmsprop"])
def test_optimizers(name):
    opt = make_optimizer(name, 0.01, nesterov=True)
    assert float(opt.learning_rate) == pytest.approx(0.01)


def test_bias_scaled_sgd_scales_only_the_normalisation_shifts():
    """One plain SGD step against one BiasScaledSGD step: the BN shift moves ``scale`` times
    further, every other variable the same, and the scale survives a save and load."""
    import numpy as np

    from foveal.training.schedules import BiasScaledSGD

    def one_step(optimizer):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.BatchNormalization(),
                                  keras.layers.Dense(2)])
        before = [v.numpy().copy() for v in model.trainable_variables]
        model.compile(optimizer, "mse")
        model.train_on_batch(np.arange(16, dtype="float32").reshape(4, 4) / 10, np.ones((4, 2), "float32"))
        return [(v.path.endswith("/beta"), v.numpy() - b) for v, b in zip(model.trainable_variables, before)], model

    plain, _ = one_step(keras.optimizers.SGD(0.1))
    scaled, model = one_step(make_optimizer("sgd", 0.1, momentum=0.0, bias_lr_scale=8.0))
    assert isinstance(model.optimizer, BiasScaledSGD)
    for (is_shift, delta), (_, scaled_delta) in zip(plain, scaled):
        np.testing.assert_allclose(scaled_delta, (8.0 if is_shift else 1.0) * delta, rtol=1e-5, atol=1e-7)
    assert any(is_shift and np.abs(d).max() > 0 for is_shift, d in plain)
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(model.optimizer))
    assert isinstance(restored, BiasScaledSGD) and restored.bias_lr_scale == 8.0
