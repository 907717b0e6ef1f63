"""Memory budget: the texts' 200-filter exercise in decimal megabytes, and the training total."""

from __future__ import annotations

import keras
import pytest
from keras import layers

from foveal.inspection import BYTES_PER_MB, memory_budget


@pytest.fixture(scope="module")
def exercise_model():
    inputs = keras.Input((150, 100, 3))
    return keras.Model(inputs, layers.Conv2D(200, 5, padding="same")(inputs))


def test_texts_exercise_12_mb_per_instance_and_1_2_gb_per_batch(exercise_model):
    assert BYTES_PER_MB == 1_000_000  # 200 * 150 * 100 * 4 bytes = 12,000,000 bytes = "12 MB"
    one = memory_budget(exercise_model)
    assert one["activations_mb_per_instance"] == 200 * 150 * 100 * 4 / 1e6 == 12.0
    assert one["parameters"] == 15_200 and one["parameters_mb"] == pytest.approx(15_200 * 4 / 1e6)
    hundred = memory_budget(exercise_model, batch_size=100)
    assert hundred["activations_mb"] == 1200.0  # 1.2 GB
    assert hundred["inference_mb"] == pytest.approx(15_200 * 4 / 1e6 + 100 * (12.0 + 150 * 100 * 3 * 4 / 1e6))


def test_training_adds_gradients_optimizer_slots_and_uses_dtype(exercise_model):
    budget = memory_budget(exercise_model, batch_size=10, training=True)
    params = 15_200 * 4 / 1e6
    assert budget["gradients_mb"] == pytest.approx(params)
    assert budget["optimizer_mb"] == pytest.approx(2 * params)  # Adam: two slots per weight
    activations = 10 * (12.0 + 0.18)
    assert budget["training_mb"] == pytest.approx(4 * params + activations)
    assert budget["total_mb"] == budget["training_mb"]
    sgd = memory_budget(exercise_model, batch_size=10, training=True, optimizer_slots=0)
    assert sgd["training_mb"] == pytest.approx(2 * params + activations)
    half = memory_budget(exercise_model, dtype_bytes=2)
    assert half["activations_mb_per_instance"] == 6.0


def test_non_trainable_weights_get_no_gradient():
    inputs = keras.Input((4, 4, 2))
    model = keras.Model(inputs, layers.BatchNormalization()(inputs))
    budget = memory_budget(model, training=True)
    assert budget["parameters"] == 8 and budget["trainable_parameters"] == 4
    assert budget["gradients_mb"] == pytest.approx(4 * 4 / 1e6)
