"""``foveal adapt`` end to end on tiny generated domains, the model's training step for every
method, and the one-line refusals of bad input."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from foveal.adaptation.model import METHODS, AdaptModel, adapt_model
from foveal.cli.main import main
from foveal.models import build_model


def _digits(n_per_class: int, offset: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    keep = np.concatenate([np.flatnonzero(d.target == c)[offset:offset + n_per_class] for c in range(3)])
    images = np.kron(np.round(d.images[keep] * 255 / 16), np.ones((2, 2))).astype(np.uint8)  # 16x16
    return images, d.target[keep].astype(np.int64)


@pytest.fixture(scope="module")
def domains(tmp_path_factory) -> dict[str, Path]:
    """A gray source (.npz) and an MNIST-M-style RGB target folder made from other digits."""
    from foveal.data.synth.mnist_m import make_mnist_m

    root = tmp_path_factory.mktemp("adapt")
    x, y = _digits(40, 0)
    xt, yt = _digits(10, 40)
    np.savez(root / "source.npz", x_train=x, y_train=y, x_test=xt, y_test=yt)
    xg, yg = _digits(15, 50)
    test = np.arange(len(yg)) % 15 >= 10  # 5 per class
    np.savez(root / "target_digits.npz", x_train=xg[~test], y_train=yg[~test], x_test=xg[test], y_test=yg[test])
    photos = root / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)).save(photos / f"{i}.jpg")
    make_mnist_m(str(root / "target_digits.npz"), photos, root / "target", seed=0)
    (root / "empty").mkdir()
    return {"root": root, "source": root / "source.npz", "target": root / "target", "empty": root / "empty"}


@pytest.fixture(scope="module")
def trained(domains) -> Path:
    runs = domains["root"] / "runs"
    code = main(["adapt", "train", "--source", str(domains["source"]), "--target", str(domains["target"]),
                 "--channels", "3", "--image-size", "16", "--epochs", "1", "--batch-size", "16", "--output",
                 str(runs), "--name", "dann", "--no-progress", "--eval-images", "20", "--domain-units", "8"])
    assert code == 0
    return runs / "dann"


@pytest.mark.slow  # the CLI run (7 CPU-s); the default tier steps, saves and reloads the coral adapter below
def test_train_writes_both_models_and_the_comparison(trained):
    for name in ("best.keras", "last.keras", "classifier.keras", "source_only.keras", "history.csv",
                 "metrics.json", "report.html", "source_only_history.json"):
        assert (trained / name).is_file(), name
    metrics = json.loads((trained / "metrics.json").read_text())
    assert metrics["method"] == "dann"
    for key in ("target_accuracy", "source_only_target_accuracy", "source_accuracy", "source_only_source_accuracy"):
        assert 0.0 <= metrics[key] <= 1.0
    assert metrics["gain"] == pytest.approx(metrics["target_accuracy"] - metrics["source_only_target_accuracy"])
    history = (trained / "history.csv").read_text().splitlines()
    for column in ("target_accuracy", "source_accuracy", "domain_accuracy", "adapt_weight", "progress"):
        assert column in history[0]
    assert len(history) == 2
    html = (trained / "report.html").read_text()
    assert "Adapted and source-only, epoch by epoch" in html and "Source and target features" in html


@pytest.mark.slow  # uses the CLI run above
def test_saved_files_predict_like_a_classifier(trained, domains, capsys):
    from foveal.models import load_model

    adapted, card = load_model(trained / "best.keras")
    plain, plain_card = load_model(trained / "classifier.keras")
    assert isinstance(adapted, AdaptModel) and card.task == "adapt"
    assert plain_card.task == "classify" and plain_card.class_names == card.class_names
    x = np.random.default_rng(0).uniform(0, 255, (4, 16, 16, 3)).astype("float32")
    # direct calls: the same numbers as predict without tracing a predict function per model
    np.testing.assert_allclose(np.asarray(adapted(x, training=False)), np.asarray(plain(x, training=False)), atol=1e-6)

    image = next((domains["target"] / "test").rglob("*.png"))
    assert main(["predict", str(trained / "classifier.keras"), str(image), "--format", "json"]) == 0
    assert main(["predict", str(trained / "best.keras"), str(image), "--format", "json"]) == 0  # -> adapt predict
    capsys.readouterr()
    assert main(["export", str(trained / "best.keras")]) == 2
    assert "classifier.keras" in capsys.readouterr().err
    assert main(["adapt", "evaluate", str(trained / "best.keras"), "--data", str(domains["target"]), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["num_examples"] == 15


# dann and source-only train (and dann's file loads) in the run above; coral stands for the statistics methods
@pytest.mark.parametrize("method", [m if m == "coral" else pytest.param(m, marks=pytest.mark.slow) for m in METHODS])
def test_train_step_of_every_method_and_round_trip(method, tmp_path):
    keras.utils.set_random_seed(0)
    model = adapt_model(build_model("lenet5", num_classes=3, input_shape=(16, 16, 1)), method, total_steps=4,
                        domain_units=(8,))
    model.compile(optimizer="sgd", loss="categorical_crossentropy", metrics=["accuracy"])
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (8, 16, 16, 1)).astype("float32")
    y = keras.utils.to_categorical(np.arange(8) % 3, 3)
    ds = tf.data.Dataset.from_tensor_slices(({"image": x, "domain": np.zeros(8, "int32"), "target": x[::-1]}, y))
    logs = model.fit(ds.batch(4), epochs=1, verbose=0).history
    assert ("domain_accuracy" in logs) == (method == "dann")
    assert ("adapt_loss" in logs) == (method != "source-only")
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert loaded.method == method and loaded.output_shape == (None, 3)
    np.testing.assert_allclose(np.asarray(loaded(x, training=False)), np.asarray(model(x, training=False)), atol=1e-6)


def test_bad_input_is_one_line(domains, capsys):
    common = ["--image-size", "16", "--epochs", "1", "--output", str(domains["root"] / "bad"), "--no-progress"]
    assert main(["adapt", "train", "--source", str(domains["source"]), "--target", str(domains["target"]), *common]) == 2
    err = capsys.readouterr().err
    assert "source.npz:x_train has 1 channel(s) but target" in err and ".png has 3" in err and "--channels 3" in err
    assert main(["adapt", "train", "--source", str(domains["source"]), "--target", str(domains["empty"]),
                 "--channels", "3", *common]) == 2
    assert "the target folder has no images" in capsys.readouterr().err
    assert main(["adapt", "train", "--source", str(domains["source"]), *common]) == 2
    assert "needs --target" in capsys.readouterr().err
    assert not (domains["root"] / "bad").exists() or not any((domains["root"] / "bad").iterdir())


def test_feature_layer_is_chosen_and_checked():
    from foveal.adaptation.model import feature_tensor
    from foveal.errors import ModelError

    model = build_model("lenet5", num_classes=3, input_shape=(32, 32, 1))
    assert tuple(feature_tensor(model).shape[1:]) == (84,)  # the input of the logits layer
    assert tuple(feature_tensor(model, "flatten").shape[1:]) == (400,)
    with pytest.raises(ModelError, match="layer 'c1' gives"):
        feature_tensor(model, "c1")
    with pytest.raises(ModelError, match="has no layer 'nope'"):
        feature_tensor(model, "nope")
    paper = adapt_model(build_model("dann_mnist", num_classes=10), "dann", total_steps=1, feature_layer="flatten")
    assert paper.training_model.output_shape[1] == (None, 768)


@pytest.mark.slow
def test_resume_extends_the_run_and_reuses_the_baseline(domains, capsys):
    runs = domains["root"] / "resumed"
    args = ["--source", str(domains["source"]), "--target", str(domains["target"]), "--channels", "3",
            "--image-size", "16", "--batch-size", "16", "--output", str(runs), "--name", "r", "--no-progress",
            "--eval-images", "20", "--method", "coral", "--feature-plot", "none"]
    assert main(["adapt", "train", *args, "--epochs", "1"]) == 0
    assert main(["adapt", "train", "--resume", str(runs / "r"), "--epochs", "2"]) == 0
    assert len((runs / "r" / "history.csv").read_text().splitlines()) == 3
    assert len(json.loads((runs / "r" / "source_only_history.json").read_text())["loss"]) == 2
    capsys.readouterr()
    assert main(["adapt", "train", "--resume", str(runs / "r")]) == 0  # finished: scored again, baseline read back
    assert "source-only baseline: read back" in capsys.readouterr().out
