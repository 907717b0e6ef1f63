"""Magnitude pruning (schedule, masks, sparsity reached, accuracy kept) and distillation."""

from __future__ import annotations

import numpy as np
import pytest

from foveal.data.pipeline import make_pipeline
from foveal.data.readers import load_dataset
from foveal.data.splits import make_splits
from foveal.models import ModelCard, build_model, load_model, save_model
from foveal.shrink import Distiller, PolynomialSparsity, prune_model, sparsity_report


@pytest.fixture(scope="module")
def digits():
    splits = make_splits(load_dataset("digits"), val_split=0.0, test_split=0.2, seed=0)
    common = dict(image_size=(32, 32), channels=1, batch_size=64)
    return (make_pipeline(splits.train, training=True, seed=0, **common),
            make_pipeline(splits.test, training=False, **common))


def accuracy(model, ds) -> float:
    hits = total = 0
    for x, y in ds:
        hits += int((np.asarray(model(x, training=False)).argmax(1) == y.numpy().argmax(1)).sum())
        total += len(y)
    return hits / total


@pytest.fixture(scope="module")
def teacher(digits):
    train, _ = digits
    model = build_model("lenet5")
    model.compile("adam", "categorical_crossentropy")
    model.fit(train, epochs=8, verbose=0)
    return model


def test_polynomial_schedule():
    s = PolynomialSparsity(0.0, 0.8, begin_step=0, end_step=100)
    assert s(0) == 0.0 and s(100) == pytest.approx(0.8) and s(500) == pytest.approx(0.8)
    assert s(50) == pytest.approx(0.8 - 0.8 * 0.5**3)
    assert all(s(i) <= s(i + 1) for i in range(100))


def test_pruning_reaches_target_and_keeps_accuracy(digits, teacher, tmp_path):
    train, test = digits
    model = build_model("lenet5")
    model.set_weights(teacher.get_weights())
    before = accuracy(model, test)
    report = prune_model(model, train, final_sparsity=0.7, epochs=4, learning_rate=5e-4)
    assert report["overall_sparsity"] == pytest.approx(0.7, abs=0.02)
    assert all(layer["sparsity"] == pytest.approx(0.7, abs=0.02) for layer in report["layers"].values())
    assert accuracy(model, test) >= before - 0.05
    path = save_model(model, tmp_path / "pruned.keras", ModelCard.guess(model))
    reloaded, _ = load_model(path)
    assert sparsity_report(reloaded)["overall_sparsity"] == pytest.approx(report["overall_sparsity"])


def test_distillation_trains_a_student(digits, teacher):
    train, test = digits
    student = build_model("lenet5")
    distiller = Distiller(student, teacher, temperature=4.0, alpha=0.2)
    distiller.compile(optimizer="adam")
    history = distiller.fit(train, epochs=6, verbose=0).history
    assert history["soft_loss"][-1] < history["soft_loss"][0]
    assert accuracy(distiller.student, test) > 0.85
    assert np.asarray(distiller.predict(next(iter(test))[0], verbose=0)).shape[1] == 10


def test_distillation_needs_logits_layer():
    import keras

    from foveal.errors import ModelError

    plain = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
    with pytest.raises(ModelError, match="logits"):
        Distiller(build_model("lenet5"), plain)
