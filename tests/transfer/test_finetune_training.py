"""The two-phase recipe in ``foveal train``: flags per phase, one history with a phase column,
resume across phases, bottleneck phase 1 (cached, equivalent to a frozen base), CLI options."""

from __future__ import annotations

import csv
import json

import keras
import numpy as np
import pytest

from foveal.cli.main import main
from foveal.config import TrainConfig
from foveal.errors import ConfigError
from foveal.models import ModelCard, build_model, load_model, save_model
from foveal.training.trainer import train
from foveal.transfer.finetune import Phases, two_phase_fit

FAST = dict(data="digits", model="lenet5", batch_size=128, tensorboard=False, progress=False)
STEPS = 12  # ceil(1437 training digits / 128)


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A saved lenet5 for other classes than the digits (its classifier cannot be reused)."""
    path = tmp_path_factory.mktemp("source") / "source.keras"
    keras.utils.set_random_seed(7)
    model = build_model("lenet5", num_classes=10, input_shape=(32, 32, 1))
    save_model(model, path, ModelCard(architecture="lenet5", class_names=list("abcdefghij"), input_shape=(32, 32, 1)))
    return path


def _history_csv(run):
    with open(run / "history.csv") as f:
        return list(csv.DictReader(f))


def test_phases_plan():
    plan = Phases(freeze="base", fine_tune="c3,head", epochs=2, fine_tune_epochs=3, learning_rate=0.01)
    assert plan.two_phase and plan.learning_rate_of(1) == 0.01 and plan.learning_rate_of(2) == pytest.approx(0.001)
    model = build_model("lenet5", num_classes=3, batch_norm=True)
    plan.apply(model, 1)
    assert not model.get_layer("c3").trainable and model.get_layer("c5").trainable
    plan.apply(model, 2)
    assert model.get_layer("c3").trainable and not model.get_layer("c1").trainable
    Phases(freeze="base", fine_tune="all", freeze_batchnorm=True, fine_tune_epochs=1).apply(model, 2)
    assert model.get_layer("c1").trainable and not model.get_layer("c1_bn").trainable
    assert "phase 2: 3 epoch(s)" in plan.describe()


def test_two_phase_fit_history_has_phases():
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    inputs = keras.Input((6, 6, 1))
    x = keras.layers.Conv2D(2, 3, name="conv")(inputs)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax", name="out")(x))
    images = np.random.default_rng(0).normal(size=(16, 6, 6, 1)).astype("float32")
    ds = tf.data.Dataset.from_tensor_slices((images, np.eye(2, dtype="float32")[[0, 1] * 8])).batch(8)
    kernel = model.get_layer("conv").kernel.numpy().copy()
    history = two_phase_fit(model, ds, phases=Phases(freeze="base", epochs=2, fine_tune_epochs=1))
    assert history["phase"] == [1.0, 1.0, 2.0] and len(history["loss"]) == 3
    assert not np.array_equal(kernel, model.get_layer("conv").kernel.numpy())  # trained in phase 2 only


@pytest.mark.parametrize("options, message", [
    (dict(fine_tune="all"), "fine_tune_epochs"),
    (dict(fine_tune_epochs=-1), "negative"),
    (dict(bottleneck=True, freeze="all"), "bottleneck"),
    (dict(fine_tune_learning_rate=0.0), "positive"),
])
def test_bad_transfer_options_are_refused(options, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig(**options).validate()


@pytest.mark.slow  # the CLI run (7 CPU-s); the default tier fits both phases in test_two_phase_fit_history_has_phases
def test_cli_two_phase_run_then_resume_extends_phase_two(source, tmp_path, capsys):
    argv = ["train", "--data", "digits", "--model", "lenet5", "--weights", str(source), "--freeze", "base",
            "--fine-tune", "all", "--fine-tune-epochs", "1", "--epochs", "1", "--batch-size", "128",
            "--output", str(tmp_path), "--name", "tl", "--no-tensorboard", "--no-progress"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "4 layer(s) loaded" in out and "logits (new classifier)" in out
    assert "phase 1: 1 epoch(s) with 'base' frozen; phase 2: 1 epoch(s) with 'all' unfrozen" in out
    run = tmp_path / "tl"
    rows = _history_csv(run)
    assert [r["phase"] for r in rows] == ["1", "2"]
    assert [float(r["learning_rate"]) for r in rows] == pytest.approx([1e-3, 1e-4])
    state = json.loads((run / "state.json").read_text())
    assert state["phase"] == 2 and state["phase_start"] == 1 and state["status"] == "done"
    model, card = load_model(run / "last.keras")
    assert all(layer.trainable for layer in model.layers if layer.weights)
    assert card.training["weights"] == str(source) and card.training["builder"] == "foveal"

    assert main(["train", "--resume", str(run), "--fine-tune-epochs", "2"]) == 0
    assert "after epoch 2 of 3 (phase 2)" in capsys.readouterr().out
    assert [r["phase"] for r in _history_csv(run)] == ["1", "2", "2"]
    saved, _ = load_model(run / "last.keras", compile=True)
    assert int(saved.optimizer.iterations) == 2 * STEPS  # phase 2's optimizer went on


# slow tier: phase plans and resume: test_cli_two_phase_run_then_resume_extends_phase_two keeps the default path in the default tier
@pytest.mark.slow
def test_resume_at_the_phase_boundary_starts_phase_two(source, tmp_path, capsys):
    common = dict(FAST, weights=str(source), freeze="base", epochs=1, output=str(tmp_path))
    first = train(TrainConfig(**common, name="boundary"))
    saved, _ = load_model(first.run_dir / "last.keras")
    assert not saved.get_layer("c1").trainable and saved.get_layer("c5").trainable  # flags are in the file
    resumed = train(resume=first.run_dir, fine_tune="c3,head", fine_tune_epochs=1)
    assert resumed.history["phase"] == [1.0, 2.0]
    model, _ = load_model(first.run_dir / "last.keras", compile=True)
    assert model.get_layer("c3").trainable and not model.get_layer("c1").trainable
    assert int(model.optimizer.iterations) == STEPS  # a fresh optimizer for phase 2

    # Phase 1 on bottleneck features trains the head exactly as the frozen-image phase did.
    capsys.readouterr()
    bottleneck = train(TrainConfig(**{**common, "freeze": None}, bottleneck=True, name="bn"))
    assert "computed in" in capsys.readouterr().out
    assert bottleneck.history["loss"][0] == pytest.approx(first.history["loss"][0], rel=1e-3)
    assert bottleneck.history["val_loss"][0] == pytest.approx(first.history["val_loss"][0], rel=1e-3)
    assert list((tmp_path / ".cache" / "bottleneck").glob("*.npz"))
    again = train(TrainConfig(**{**common, "freeze": None}, bottleneck=True, name="bn2", fine_tune_epochs=1))
    out = capsys.readouterr().out
    assert "read from the cache" in out and again.history["phase"] == [1.0, 2.0]
    assert again.metrics["accuracy"] > 0.15  # above chance after two epochs from a random source


def test_offline_imagenet_run_fails_with_the_file_name(tmp_path, monkeypatch, capsys):
    import urllib.error

    from keras.src.backend import config
    from keras.src.utils import file_utils

    def no_network(*args, **kwargs):
        raise urllib.error.URLError("network unreachable (test)")

    (tmp_path / "home" / "models").mkdir(parents=True)
    monkeypatch.setattr(config, "_KERAS_DIR", str(tmp_path / "home"))
    monkeypatch.setattr(file_utils, "urlretrieve", no_network)
    code = main(["train", "--model", "mobilenetv2", "--weights", "imagenet", "--image-size", "96",
                 "--model-options", "alpha=0.35", "--output", str(tmp_path), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2
    assert "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_96_no_top.h5" in err
    assert str(tmp_path / "home" / "models") in err and "--weights PATH" in err


def test_missing_weights_file_fails_before_reading_data(tmp_path):
    from foveal.errors import ModelError

    with pytest.raises(ModelError, match="weights file not found"):
        train(TrainConfig(data=str(tmp_path / "nowhere"), weights=str(tmp_path / "none.keras"), output=str(tmp_path)))


@pytest.mark.slow  # the bottleneck phase's resume; the default tier resumes a two-phase run
def test_interrupted_bottleneck_phase_resumes_with_early_stopping_state(source, tmp_path, monkeypatch):
    """SIGTERM in the second bottleneck epoch; the resumed run restores the early-stopping
    counters and the head's best weights (read from best.keras), then goes on to phase 2."""
    import os
    import signal

    from foveal.training import callbacks as cb

    original = cb.InterruptGuard

    class Guard(original):  # the guard, plus SIGTERM at batch 3 of epoch 2
        def on_epoch_begin(self, epoch, logs=None):
            self._epoch = epoch
            super().on_epoch_begin(epoch, logs)

        def on_train_batch_end(self, batch, logs=None):
            if self._epoch == 1 and batch == 3:
                os.kill(os.getpid(), signal.SIGTERM)
            super().on_train_batch_end(batch, logs)

    monkeypatch.setattr(cb, "InterruptGuard", Guard)
    cfg = TrainConfig(**FAST, weights=str(source), bottleneck=True, epochs=3, fine_tune_epochs=1, early_stopping=2,
                      output=str(tmp_path), name="bn")
    first = train(cfg)
    assert first.interrupted
    state = json.loads((first.run_dir / "state.json").read_text())
    assert state["epoch"] == 1 and state["phase"] == 1 and "early_stopping" in state["callbacks"]
    monkeypatch.setattr(cb, "InterruptGuard", original)
    resumed = train(resume=first.run_dir)
    assert not resumed.interrupted and resumed.history["phase"] == [1.0, 1.0, 1.0, 2.0]
