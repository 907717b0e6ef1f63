"""The warning for inference-mode predictions that collapsed (one class for everything, or far
under the training accuracy), as stale batch-norm statistics make them."""

from __future__ import annotations

import numpy as np

from foveal.evaluation import classification_metrics, format_metrics_table
from foveal.evaluation.classification import collapse_warning

NAMES = ["a", "b", "c", "d"]
LABELS = np.repeat(np.arange(4), 25)


def _metrics(pred):
    return classification_metrics(LABELS, np.eye(4)[pred], NAMES)


def test_one_class_for_everything_warns():
    metrics = _metrics(np.full(100, 2))
    warning = collapse_warning(metrics, train_accuracy=0.86)
    assert warning.startswith("predictions collapsed to one class: 'c' for 100% of the images (its true share 25%)")
    assert "training accuracy 0.8600" in warning and "recalibrate_batchnorm" in warning
    assert "warning" in format_metrics_table(metrics | {"warnings": [warning]})


def test_far_under_the_training_accuracy_warns():
    pred = np.where(np.arange(100) % 3 == 0, LABELS, (LABELS + 1) % 4)  # 34% right, no class dominant
    assert collapse_warning(_metrics(pred)) is None
    assert "under half the training accuracy 0.9000" in collapse_warning(_metrics(pred), train_accuracy=0.9)


def test_healthy_or_imbalanced_models_do_not_warn():
    assert collapse_warning(_metrics(LABELS), train_accuracy=0.99) is None
    assert collapse_warning(_metrics(np.where(np.arange(100) < 80, LABELS, 0)), train_accuracy=0.9) is None
    # one class is 92% of the labels and is predicted for everything: a majority, not a collapse
    labels = np.r_[np.zeros(92, int), np.arange(1, 4).repeat(3)[:8]]
    metrics = classification_metrics(labels, np.eye(4)[np.zeros(100, int)], NAMES)
    assert collapse_warning(metrics, train_accuracy=0.95) is None
    # a model that trained badly (training accuracy about chance) does not get the warning
    assert collapse_warning(_metrics((LABELS + 1) % 4), train_accuracy=0.3) is None


def test_foveal_evaluate_prints_and_reports_the_warning(tmp_path, capsys):
    import keras
    from PIL import Image

    from foveal.cli.main import main
    from foveal.models.io import ModelCard, save_model

    inputs = keras.Input((8, 8, 1))
    dense = keras.layers.Dense(4, activation="softmax")
    model = keras.Model(inputs, dense(keras.layers.GlobalAveragePooling2D()(inputs)))
    dense.set_weights([np.zeros((1, 4), np.float32), np.float32([0, 0, 5, 0])])  # always 'c'
    path = save_model(model, tmp_path / "constant.keras",
                      ModelCard(architecture="constant", class_names=NAMES, input_shape=(8, 8, 1), preprocessing="none"))
    for k, name in enumerate(NAMES):
        (tmp_path / "data" / name).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(np.full((8, 8), 40 * k + i, np.uint8)).save(tmp_path / "data" / name / f"{i}.png")
    assert main(["evaluate", str(path), "--data", str(tmp_path / "data"), "--output", str(tmp_path / "out")]) == 0
    captured = capsys.readouterr()
    assert "warning: predictions collapsed to one class: 'c' for 100% of the images" in captured.err
    assert "predictions collapsed" in (tmp_path / "out" / "report.html").read_text()
    assert "predictions collapsed" in (tmp_path / "out" / "metrics.json").read_text()
