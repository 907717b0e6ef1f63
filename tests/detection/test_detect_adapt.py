"""Domain adaptation of detectors (``foveal detect train --adapt-target``): the adapter's losses
against NumPy, the gradient that reaches the backbone (and its sign flip for DANN), AdaBN's
statistics against NumPy, the paired target stream, the refusals, and (slow tier) CLI runs from
shapes to colour-shifted shapes (DANN with resume; AdaBN with the features' picture)."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from foveal.detection.adapt import (
    DomainAdapter,
    adapt_batch_norm,
    feature_rows,
    load_target,
    pooled_features,
    uses_adabn,
    uses_adapter,
)
from foveal.detection.config import DetectConfig
from foveal.errors import ConfigError, DataError

from .test_detect_run import TINY, make_shapes

ANCHORS = np.array([[0.2, 0.2], [0.4, 0.4]], np.float32)


def numpy_coral(source: np.ndarray, target: np.ndarray) -> float:
    """Deep CORAL, ||C_s - C_t||_F^2 / (4 d^2), with NumPy's (n - 1)-normalised covariance."""
    d = source.shape[1]
    diff = np.cov(source, rowvar=False) - np.cov(target, rowvar=False)
    return float((diff ** 2).sum() / (4 * d * d))


@pytest.fixture(scope="module")
def maps():
    rng = np.random.default_rng(0)
    return (rng.normal(size=(3, 4, 5, 6)).astype("float32"),
            (rng.normal(size=(2, 3, 4, 6)) * 1.5 + 0.3).astype("float32"))


@pytest.mark.parametrize("features", ["positions", "pooled"])
def test_coral_term_equals_numpy(maps, features):
    source, target = maps
    adapter = DomainAdapter("coral", 6, weight=2.0, features=features, total_steps=4)
    adapter.step.assign(2.0)  # progress 0.5
    term, loss, weight, _ = adapter(source, target)
    rows = (lambda m: m.reshape(-1, 6)) if features == "positions" else (lambda m: m.mean(axis=(1, 2)))
    expected = numpy_coral(rows(source), rows(target))
    ramp = 2.0 * (2 / (1 + np.exp(-10 * 0.5)) - 1)
    np.testing.assert_allclose(float(loss), expected, rtol=1e-4)
    np.testing.assert_allclose(float(weight), ramp, rtol=1e-5)
    np.testing.assert_allclose(float(term), ramp * expected, rtol=1e-4)
    assert float(adapter.step.numpy()) == 3.0  # each call is one step of the ramp


def test_normalised_coral_term_and_its_round_trip(maps):
    source, target = maps
    adapter = DomainAdapter("coral", 6, weight=3.0, features="pooled", total_steps=1, normalize=True)
    adapter.step.assign(1.0)  # the ramp at its end
    term, loss, weight, _ = adapter(source, target)
    s, t = source.mean(axis=(1, 2)), target.mean(axis=(1, 2))
    scale2 = np.concatenate([s, t]).var(axis=0).mean()
    np.testing.assert_allclose(float(loss), numpy_coral(s, t) / scale2 ** 2, rtol=1e-4)
    np.testing.assert_allclose(float(term), float(weight) * float(loss), rtol=1e-6)
    again = DomainAdapter.from_config(adapter.get_config())
    assert again.normalize and "normalised CORAL" in again.describe()
    assert not DomainAdapter.from_config({**adapter.get_config(), "normalize": False}).normalize


def test_target_comparison_puts_source_only_beside_the_adapted_scores():
    from foveal.detection.adapt_run import target_comparison

    def score(m):
        return {"map50": m, "coco_ap": m / 3, "precision": 0.5, "recall": 0.25, "num_images": 40, "num_boxes": 45}

    html = str(target_comparison({"target_baseline": score(0.5) | {"model": "src/best.keras"},
                                  "target_before_adabn": score(0.55), "target": score(0.6)}))
    assert "source-only: --adapt-baseline src/best.keras" in html and "40 images, 45 boxes" in html
    assert "+0.0500" in html and "+0.1000" in html and "after AdaBN" in html
    alone = str(target_comparison({"target": score(0.6)}))
    assert "Pass --adapt-baseline" in alone and "adapted (best.keras)" in alone
    assert str(target_comparison({})) == ""


def test_dann_flips_the_gradient_the_head_learns_plainly(maps):
    source, target = maps
    adapter = DomainAdapter("dann", 6, weight=0.5, units=(8,), total_steps=2)
    adapter.step.assign(1.0)
    s, t = tf.constant(source), tf.constant(target)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([s, t])
        term, loss, weight, accuracy = adapter(s, t)
        # the same classifier without the reversal layer, on the same rows
        rows = tf.concat([feature_rows(s), feature_rows(t)], axis=0)
        hidden = adapter.head.get_layer("domain_dense1")(rows)
        logits = adapter.head.get_layer("domain_logit")(hidden)[:, 0]
        n = source.shape[0] * source.shape[1] * source.shape[2]
        truth = tf.concat([tf.zeros([n]), tf.ones([logits.shape[0] - n])], axis=0)
        bce = tf.nn.sigmoid_cross_entropy_with_logits(labels=truth, logits=logits)
        plain = 0.5 * (tf.reduce_mean(bce[:n]) + tf.reduce_mean(bce[n:]))
    np.testing.assert_allclose(float(term), float(plain), rtol=1e-6)
    lam = float(weight)
    assert lam == pytest.approx(0.5 * (2 / (1 + np.exp(-5)) - 1), rel=1e-5)
    for x in (s, t):  # the features get -lambda times the plain gradient
        np.testing.assert_allclose(tape.gradient(term, x).numpy(), -lam * tape.gradient(plain, x).numpy(),
                                   rtol=1e-4, atol=1e-7)
    kernel = adapter.head.get_layer("domain_logit").kernel
    np.testing.assert_allclose(tape.gradient(term, kernel).numpy(), tape.gradient(plain, kernel).numpy(), rtol=1e-5)
    assert 0.0 <= float(accuracy) <= 1.0


@pytest.fixture(scope="module")
def detector():
    from foveal.detection.model import build_detector

    keras.utils.set_random_seed(0)
    return build_detector("resnet18", 2, ANCHORS, input_shape=(64, 64, 3), backbone_options={"width": 16})


def test_the_domain_loss_reaches_the_backbone(detector):
    rng = np.random.default_rng(1)
    images = rng.uniform(0, 255, (2, 64, 64, 3)).astype("float32")
    shifted = np.clip(images[..., ::-1] * 0.6 + 60, 0, 255)
    kernel = next(v for v in detector.trainable_variables if v.path.endswith("kernel") and "head" not in v.path)
    channels = detector.feature_channels()
    assert channels == detector.get_layer(detector.feature_layer).output.shape[-1]  # the map the head reads
    for method in ("coral", "dann"):
        adapter = DomainAdapter(method, channels, weight=1.0, total_steps=1)
        adapter.step.assign(1.0)
        with tf.GradientTape() as tape:
            _, source_map = detector.outputs_and_features(images)
            term, loss, _, _ = adapter(source_map, detector.feature_map(shifted))
        assert float(loss) > 0
        gradient = tape.gradient(term, kernel)
        assert gradient is not None and float(tf.reduce_max(tf.abs(gradient))) > 0, method


def test_adapter_is_saved_with_the_detector(detector, tmp_path):
    from foveal.detection.model import DetectorModel

    model = DetectorModel.from_config(detector.get_config())
    model.enable_adaptation("dann", weight=0.3, features="pooled", units=(4,), total_steps=7)
    model.adapter.step.assign(5.0)
    model.save(tmp_path / "a.keras")
    loaded = keras.models.load_model(tmp_path / "a.keras")
    assert loaded.adaptation_config() == {"method": "dann", "weight": 0.3, "features": "pooled", "units": [4],
                                          "total_steps": 7, "normalize": False}
    assert float(loaded.adapter.step.numpy()) == 5.0
    np.testing.assert_array_equal(loaded.adapter.head.get_weights()[0], model.adapter.head.get_weights()[0])
    plain = DetectorModel.from_config(detector.get_config())
    assert plain.adapter is None and plain.get_config()["adaptation"] is None


def test_adabn_sets_the_target_statistics_of_every_batch_norm_layer(detector):
    from foveal.adaptation.statistics import batch_norm_layers
    from foveal.detection.model import DetectorModel

    model = DetectorModel.from_config(detector.get_config())
    model.set_weights(detector.get_weights())
    rng = np.random.default_rng(2)
    target = np.clip(rng.normal(150, 40, (6, 64, 64, 3)), 0, 255).astype(np.uint8)
    before = pooled_features(model, target)
    layers = batch_norm_layers(model)
    assert adapt_batch_norm(model, target, batch_size=4) == len(layers) > 0
    for layer in (layers[0], layers[-1]):  # the first sees the target through adapted layers only at its input
        x = keras.Model(model.input, layer.input)(target.astype(np.float32), training=False).numpy()
        x = x.reshape(-1, x.shape[-1]).astype(np.float64)
        np.testing.assert_allclose(layer.moving_mean.numpy(), x.mean(axis=0), rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(layer.moving_variance.numpy(), x.var(axis=0), rtol=1e-3, atol=1e-4)
    after = pooled_features(model, target)
    assert after.shape == before.shape == (6, model.feature_channels()) and not np.allclose(after, before)
    assert adapt_batch_norm(model, target, batch_size=6) == len(layers)  # the same images: the same statistics
    np.testing.assert_allclose(pooled_features(model, target), after, rtol=1e-3, atol=1e-4)


def test_adabn_is_a_method_without_a_training_loss():
    adabn = DetectConfig(data="x", adapt_target="y", adapt_method="adabn", detector="faster-rcnn",
                         rcnn_training="alternating")
    adabn.validate()  # no adapter trains the backbone: alternating training is fine
    assert uses_adabn(adabn) and not uses_adapter(adabn)
    coral = DetectConfig(data="x", adapt_target="y", target_statistics=True)
    assert uses_adabn(coral) and uses_adapter(coral)
    assert not uses_adabn(DetectConfig(data="x", adapt_target="y")) and not uses_adapter(DetectConfig(data="x"))
    with pytest.raises(ConfigError, match="need --adapt-target"):
        DetectConfig(data="x", target_statistics=True).validate()
    with pytest.raises(ConfigError, match="need --adapt-target"):
        DetectConfig(data="x", adapt_baseline="m.keras").validate()


def _shift_colours(root: Path) -> Path:
    """The shapes' images with channels swapped and brightened: the same boxes in a new domain."""
    for path in (root / "images").iterdir():
        image = np.asarray(Image.open(path).convert("RGB"), np.float32)
        Image.fromarray(np.clip(image[..., [1, 2, 0]] * 0.7 + 70, 0, 255).astype(np.uint8)).save(path)
    return root


@pytest.fixture(scope="module")
def domains(tmp_path_factory):
    root = tmp_path_factory.mktemp("domains")
    return make_shapes(root / "source"), _shift_colours(make_shapes(root / "target", seed=1))


# a training run with resume (4.8 CPU-s); the default tier checks the CORAL/DANN terms and the adapter's round
# trip above
@pytest.mark.slow
def test_target_batches_pair_every_step_and_replay_on_resume(domains):
    from foveal.data.boxes.splits import load_box_splits
    from foveal.detection.pipeline import make_detection_pipeline

    source, target = domains
    train = load_box_splits(str(source), val_split=0.0, test_split=0.0)["train"]  # 12 images
    images, test = load_target(str(target))
    assert len(images) == 12 and len(test) == 4
    common = dict(image_size=64, batch_size=5, training=True, augment="light", seed=3, target=images)
    whole = list(make_detection_pipeline(train, start_epoch=0, **common).take(6))  # 2 epochs of 3 batches
    assert [len(x["target"]) for x, _ in whole] == [5, 5, 5] * 2
    assert [len(x["images"]) for x, _ in whole] == [5, 5, 2] * 2
    first = whole[0][0]["target"].numpy()
    assert first.shape == (5, 64, 64, 3) and not np.array_equal(first, whole[3][0]["target"].numpy())
    resumed = list(make_detection_pipeline(train, start_epoch=1, **common).take(3))
    for (a, _), (b, _) in zip(whole[3:], resumed):
        np.testing.assert_array_equal(a["target"].numpy(), b["target"].numpy())
        np.testing.assert_array_equal(a["images"].numpy(), b["images"].numpy())


def test_bad_adaptation_options_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="adapt_target is not supported with --distribute"):
        DetectConfig(data="x", adapt_target="y", distribute="mirrored").validate()
    with pytest.raises(ConfigError, match="rcnn-training joint"):
        DetectConfig(data="x", adapt_target="y", detector="faster-rcnn", rcnn_training="alternating").validate()
    with pytest.raises(ConfigError, match="adapt_weight"):
        DetectConfig(data="x", adapt_target="y", adapt_weight=-1.0).validate()
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no images")
    with pytest.raises(DataError, match="empty: the --adapt-target folder has no images"):
        load_target(str(tmp_path / "empty"))
    with pytest.raises(DataError, match="no such file"):
        load_target(str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match="unknown adaptation method"):
        DomainAdapter("mmd", 4)


# --------------------------------------------------------------------------- slow: end to end


@pytest.mark.slow
def test_cli_adapts_shapes_to_colour_shifted_shapes_and_resumes(domains, tmp_path):
    from foveal.cli.main import main
    from foveal.detection.train import train_detector
    from foveal.models import load_model

    source, target = domains
    code = main(["detect", "train", "--data", str(source), "--adapt-target", str(target), "--adapt-method", "dann",
                 "--image-size", "64", "--backbone-options", "width=16", "--batch-size", "4", "--epochs", "2",
                 "--anchors", "2", "--augment", "light", "--learning-rate", "3e-3", "--warmup-epochs", "0",
                 "--score-threshold", "0.001", "--val-split", "0.2", "--output", str(tmp_path), "--name", "dann",
                 "--no-progress", "--report-images", "2"])
    assert code == 0
    run = tmp_path / "dann"
    history = (run / "history.csv").read_text().splitlines()
    columns = history[0].split(",")
    for column in ("adapt_loss", "adapt_weight", "domain_accuracy", "target_map50", "val_map50"):
        assert column in columns
    assert "val_adapt_loss" not in columns
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["target"]["num_images"] == 4 and 0.0 <= metrics["target"]["map50"] <= 1.0
    assert metrics["adaptation"]["method"] == "dann" and metrics["adaptation"]["weight"] == 0.1
    report = (run / "report.html").read_text()
    assert "Domain adaptation" in report and "target test mAP@0.5" in report
    model, card = load_model(run / "best.keras")
    assert card.training["adaptation"]["target"] == str(target)
    steps = 3  # 10 training images (2 held out), batches of 4
    model, _ = load_model(run / "last.keras")  # best.keras may be epoch 1's
    assert float(model.adapter.step.numpy()) == 2 * steps and model.adapter.total_steps == 2 * steps

    # a resume with more epochs continues the ramp from the saved step
    resumed = train_detector(resume=run, epochs=3)
    assert len(resumed.history["adapt_loss"]) == 3
    model, _ = load_model(run / "last.keras")
    assert float(model.adapter.step.numpy()) == 3 * steps and model.adapter.total_steps == 3 * steps


@pytest.mark.slow
def test_coral_on_an_unlabelled_folder_through_the_api(domains, tmp_path):
    from foveal.detection.train import train_detector

    source, target = domains
    result = train_detector(DetectConfig(data=str(source), adapt_target=str(target / "images"),
                                         adapt_features="pooled", output=str(tmp_path), name="coral", val_split=0.0,
                                         monitor="loss", **(TINY | {"epochs": 1, "report_images": 0})))
    assert result.history["adapt_loss"][0] > 0 and "target_map50" not in result.history
    assert "target" not in result.metrics and result.metrics["map50"] >= 0


@pytest.mark.slow
def test_adabn_run_saves_target_statistics_and_pictures_the_features(domains, tmp_path):
    from foveal.cli.main import main
    from foveal.models import load_model

    source, target = domains
    common = ["--data", str(source), "--image-size", "64", "--backbone-options", "width=16", "--batch-size", "4",
              "--epochs", "1", "--anchors", "2", "--augment", "light", "--warmup-epochs", "0", "--score-threshold",
              "0.001", "--val-split", "0.2", "--output", str(tmp_path), "--no-progress", "--report-images", "0"]
    assert main(["detect", "train", *common, "--name", "adabn", "--adapt-target", str(target), "--adapt-method",
                 "adabn"]) == 0
    run = tmp_path / "adabn"
    assert "adapt_loss" not in (run / "history.csv").read_text().splitlines()[0]  # no domain loss, no target stream
    metrics = json.loads((run / "metrics.json").read_text())
    facts = metrics["adaptation"]
    assert facts["method"] == "adabn" and facts["batch_norm_layers"] > 0 and facts["batch_norm_images"] == 12
    assert 0.0 <= facts["target_before_adabn"]["map50"] <= 1.0 and metrics["target"]["num_images"] == 4
    model, card = load_model(run / "best.keras")
    assert card.training["adaptation"]["batch_norm_layers"] == facts["batch_norm_layers"]
    last, _ = load_model(run / "last.keras")  # the resume point keeps the training statistics
    bn = "moving_mean"
    saved = [v.numpy() for v in model.weights if v.path.endswith(bn)]
    trained = [v.numpy() for v in last.weights if v.path.endswith(bn)]
    assert len(saved) == len(trained) > 0 and not all(np.allclose(a, b) for a, b in zip(saved, trained))
    report = (run / "report.html").read_text()
    assert "Source and target features" in report and "before AdaBN" in report
    assert facts["picture_images"] == [4, 12]
    # CORAL against that source-only detector: both scored on the target test split, side by side
    assert main(["detect", "train", *common, "--name", "coral", "--adapt-target", str(target), "--adapt-method",
                 "coral", "--adapt-normalize", "--adapt-baseline", str(run / "last.keras"), "--feature-plot",
                 "none"]) == 0
    coral = json.loads((tmp_path / "coral" / "metrics.json").read_text())
    base = coral["adaptation"]["target_baseline"]
    assert base["model"] == str(run / "last.keras") and base["num_images"] == 4
    assert coral["adaptation"]["normalize"] is True
    report = (tmp_path / "coral" / "report.html").read_text()
    assert "source-only: --adapt-baseline" in report and "gain over source-only" in report
    assert f"{coral['target']['map50'] - base['map50']:+.4f}" in report


def test_adapt_baseline_that_is_not_a_detector_is_refused_before_training(tmp_path):
    """`--adapt-baseline` is read only when the run ends: a missing file or a classifier is refused
    by the task's check, before any data is read or any epoch trained."""
    from foveal.detection.task import DetectTask
    from foveal.models.io import ModelCard, save_model

    options = dict(data="x", adapt_target=str(tmp_path))
    with pytest.raises(ConfigError, match="--adapt-baseline must be a detector.*no such file"):
        DetectTask().check(DetectConfig(**options, adapt_baseline=str(tmp_path / "missing.keras")))
    classifier = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(2)])
    path = save_model(classifier, tmp_path / "classifier.keras", ModelCard("tiny", ["a", "b"], (8, 8, 1)))
    with pytest.raises(ConfigError, match="--adapt-baseline must be a detector.*a classify model"):
        DetectTask().check(DetectConfig(**options, adapt_baseline=str(path)))
