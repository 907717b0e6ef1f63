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
    import keras

    train, _ = digits
    # seeded: unseeded, its weights came from whatever the worker ran before (a teacher drawn after
    # another test order lost 0.058 accuracy to pruning in test_prune_command, past its 0.05)
    keras.utils.set_random_seed(0)
    model = build_model("lenet5")
    model.compile("adam", "categorical_crossentropy")
    model.fit(train, epochs=8, verbose=0)
    return model


def test_polynomial_schedule():
    s = PolynomialSparsity(0.0, 0.8, begin_step=0, end_step=100)
    assert s(0) == 0.0 and s(100) == pytest.approx(0.8) and s(500) == pytest.approx(0.8)
    assert s(50) == pytest.approx(0.8 - 0.8 * 0.5**3)
    assert all(s(i) <= s(i + 1) for i in range(100))


# slow tier (4 pruning epochs); the default tier prunes the same teacher through the command line in
# test_prune_command (target sparsity, accuracy kept within 0.05, a smaller gzip file)
@pytest.mark.slow
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


@pytest.mark.slow  # a distillation run (6.9 CPU-s); the default tier prunes through the CLI in test_prune_command
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


def test_distillation_loss_against_numpy():
    from foveal.shrink import DistillationLoss

    rng = np.random.default_rng(0)
    logits_s, logits_t = rng.normal(size=(5, 4)), rng.normal(size=(5, 4))
    softmax = lambda z: np.exp(z - z.max(1, keepdims=True)) / np.exp(z - z.max(1, keepdims=True)).sum(1, keepdims=True)
    p, t, hard = softmax(logits_s), 3.0, np.eye(4)[[0, 1, 2, 3, 0]]
    soft = softmax(logits_t / t)
    loss = DistillationLoss(temperature=t, alpha=0.25)
    got = float(loss(np.concatenate([hard, soft], 1).astype("float32"), p.astype("float32")))
    ce = -(hard * np.log(p)).sum(1)
    kl = (soft * (np.log(soft) - np.log(softmax(logits_s / t)))).sum(1) * t * t
    assert got == pytest.approx(float((0.25 * ce + 0.75 * kl).mean()), rel=1e-4)


@pytest.mark.slow  # test_distillation_trains_a_student covers distillation in the default tier
def test_train_with_distillation_option_and_resume(tmp_path, teacher):
    """`foveal train --distill-from TEACHER`: the student is the saved model; resume works."""
    import json

    from foveal.config import TrainConfig
    from foveal.training.trainer import train

    teacher_path = save_model(teacher, tmp_path / "teacher.keras",
                              ModelCard("lenet5", [str(i) for i in range(10)], (32, 32, 1)))
    cfg = TrainConfig(data="digits", model="geron_cnn", image_size=[28, 28], model_options={"width": 8},
                      distill_from=str(teacher_path), distill_temperature=3.0, distill_alpha=0.3, epochs=4,
                      dropout=0.0, learning_rate=3e-3,
                      batch_size=128, output=str(tmp_path), name="kd", tensorboard=False, progress=False)
    result = train(cfg)
    assert result.metrics["accuracy"] > 0.5
    assert {"loss", "accuracy", "val_accuracy"} <= set(result.history)
    student, card = load_model(result.run_dir / "best.keras")
    assert student.name == "geron_cnn" and card.input_shape == (28, 28, 1)
    resumed = train(resume=result.run_dir, epochs=5)
    assert len(resumed.history["loss"]) == 5
    assert json.loads((result.run_dir / "state.json").read_text())["status"] == "done"


def test_distillation_refuses_a_teacher_with_other_classes(tmp_path, teacher):
    from foveal.config import TrainConfig
    from foveal.errors import ConfigError
    from foveal.training.trainer import train

    path = save_model(teacher, tmp_path / "t.keras", ModelCard("lenet5", [f"c{i}" for i in range(10)], (32, 32, 1)))
    with pytest.raises(ConfigError, match="teacher"):
        train(TrainConfig(data="digits", distill_from=str(path), epochs=1, output=str(tmp_path),
                          tensorboard=False, progress=False))


def test_prune_command(tmp_path, teacher, capsys):
    import json

    from foveal.cli.main import main

    path = save_model(teacher, tmp_path / "t.keras", ModelCard("lenet5", [str(i) for i in range(10)], (32, 32, 1)))
    data = tmp_path / "digits.npz"
    from sklearn.datasets import load_digits

    d = load_digits()
    images = np.round(d.images * 255 / 16).astype(np.uint8)
    np.savez(data, x_train=images[:1400], y_train=d.target[:1400], x_test=images[1400:], y_test=d.target[1400:])
    assert main(["prune", str(path), "--data", str(data), "--sparsity", "0.6", "--epochs", "2", "--json",
                 "--output", str(tmp_path / "p.keras")]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["overall_sparsity"] == pytest.approx(0.6, abs=0.02)
    assert report["accuracy_after"] >= report["accuracy_before"] - 0.05
    assert report["gzip_bytes_after"] < report["gzip_bytes_before"]
    assert main(["prune", str(path), "--data", str(data), "--sparsity", "1.5"]) == 2
