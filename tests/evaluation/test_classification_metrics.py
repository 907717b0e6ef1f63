"""Check the NumPy classification metrics against scikit-learn and their error messages."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn import metrics as skm

from foveal.errors import FovealError
from foveal.evaluation import classification_metrics, format_metrics_table, top_k_predictions

TOL = 1e-12


def _random_case(seed: int, n: int = 120, c: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """Labels and probabilities where class 0 is never predicted and class c-1 never occurs."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, c - 1, size=n)  # class c-1 absent from y_true
    probs = rng.dirichlet(np.full(c, 0.7), size=n)
    # Nudge half the rows towards the true class so accuracy is far from chance.
    boost = rng.random(n) < 0.5
    probs[boost, labels[boost]] += 1.0
    probs[:, 0] = probs[:, 1:].min(axis=1) / 2  # class 0 is never the arg-max
    probs /= probs.sum(axis=1, keepdims=True)
    return labels, probs


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_matches_scikit_learn(seed: int) -> None:
    labels, probs = _random_case(seed)
    c = probs.shape[1]
    names = [f"class_{i}" for i in range(c)]
    pred = probs.argmax(axis=1)
    assert not np.any(pred == 0) and not np.any(labels == c - 1)
    all_labels = list(range(c))

    m = classification_metrics(labels, probs, names, top_k=3)

    assert m["num_examples"] == len(labels)
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(labels, pred), abs=TOL)
    expected_top3 = skm.top_k_accuracy_score(labels, probs, k=3, labels=all_labels)
    assert m["top_3_accuracy"] == pytest.approx(expected_top3, abs=TOL)
    expected_loss = skm.log_loss(labels, probs, labels=all_labels)
    assert m["loss"] == pytest.approx(expected_loss, abs=TOL)
    assert m["confusion_matrix"] == skm.confusion_matrix(labels, pred, labels=all_labels).tolist()

    p, r, f, s = skm.precision_recall_fscore_support(
        labels, pred, labels=all_labels, zero_division=0
    )
    for i, row in enumerate(m["per_class"]):
        assert row["class"] == names[i]
        assert row["precision"] == pytest.approx(p[i], abs=TOL)
        assert row["recall"] == pytest.approx(r[i], abs=TOL)
        assert row["f1"] == pytest.approx(f[i], abs=TOL)
        assert row["support"] == s[i]
    for key, average in (("macro_avg", "macro"), ("weighted_avg", "weighted")):
        p, r, f, _ = skm.precision_recall_fscore_support(
            labels, pred, labels=all_labels, average=average, zero_division=0
        )
        assert m[key]["precision"] == pytest.approx(p, abs=TOL)
        assert m[key]["recall"] == pytest.approx(r, abs=TOL)
        assert m[key]["f1"] == pytest.approx(f, abs=TOL)
    # The never-predicted and the absent class hit the zero-division rule.
    assert m["per_class"][0]["precision"] == 0.0
    assert m["per_class"][c - 1]["support"] == 0
    assert m["per_class"][c - 1]["recall"] == 0.0


def test_result_is_plain_json() -> None:
    labels, probs = _random_case(7)
    m = classification_metrics(labels.astype(np.int32), probs.astype(np.float32), list("abcdef"))
    assert json.loads(json.dumps(m)) == m
    for value in (m["accuracy"], m["loss"], m["per_class"][0]["f1"], m["macro_avg"]["f1"]):
        assert type(value) is float
    assert type(m["per_class"][0]["support"]) is int
    assert type(m["confusion_matrix"][0][0]) is int


def test_top_k_is_clipped_and_skipped() -> None:
    labels = np.array([0, 1, 2, 1])
    probs = np.array([[0.7, 0.2, 0.1], [0.5, 0.3, 0.2], [0.2, 0.5, 0.3], [0.1, 0.1, 0.8]])
    clipped = classification_metrics(labels, probs, ["a", "b", "c"], top_k=5)
    assert clipped["top_3_accuracy"] == 1.0
    assert not any(k.startswith("top_5") for k in clipped)
    two = classification_metrics(labels, probs, ["a", "b", "c"], top_k=2)
    assert two["top_2_accuracy"] == pytest.approx(0.75)
    one = classification_metrics(labels, probs, ["a", "b", "c"], top_k=1)
    assert not any(k.startswith("top_") and k.endswith("_accuracy") for k in one)


def test_loss_clips_zero_probabilities() -> None:
    probs = np.array([[1.0, 0.0], [0.0, 1.0]])
    m = classification_metrics(np.array([1, 1]), probs, ["a", "b"])
    assert m["loss"] == pytest.approx(-(np.log(1e-7) + np.log(1 - 1e-7)) / 2, rel=1e-12)


def test_table_lists_classes_and_summary() -> None:
    labels, probs = _random_case(3)
    names = ["cat", "dog", "a-rather-long-class-name", "bird", "fish", "ox"]
    table = format_metrics_table(classification_metrics(labels, probs, names, top_k=3))
    lines = table.splitlines()
    for name in names + ["macro avg", "weighted avg", "accuracy", "top-3 accuracy", "loss"]:
        assert any(line.startswith(name) for line in lines), name
    header = lines[0]
    assert all(len(line) == len(header) for line in lines[1:9])


def test_top_k_predictions() -> None:
    probs = np.array([[0.1, 0.6, 0.3], [0.5, 0.25, 0.25]])
    result = top_k_predictions(probs, ["a", "b", "c"], 2)
    assert result == [[("b", 0.6), ("c", 0.3)], [("a", 0.5), ("b", 0.25)]]
    assert all(type(p) is float for row in result for _, p in row)
    assert len(top_k_predictions(probs, ["a", "b", "c"], 10)[0]) == 3
    with pytest.raises(FovealError, match="at least 1"):
        top_k_predictions(probs, ["a", "b", "c"], 0)
    with pytest.raises(FovealError, match="3 columns but there are 2 class names"):
        top_k_predictions(probs, ["a", "b"], 1)


@pytest.mark.parametrize(
    ("labels", "probs", "names", "message"),
    [
        ([0, 1, 1], [[0.5, 0.5]] * 2, ["a", "b"], "3 labels but 2 rows"),
        ([0, 1], [[0.2, 0.3, 0.5]] * 2, ["a", "b"], "3 columns but there are 2 class names"),
        ([0, 2], [[0.5, 0.5]] * 2, ["a", "b"], r"labels must lie in \[0, 1\].*found 2"),
        ([0, -1], [[0.5, 0.5]] * 2, ["a", "b"], "found -1"),
        ([0, 1], [0.5, 0.5], ["a", "b"], "2-D array"),
        ([[1, 0], [0, 1]], [[0.5, 0.5]] * 2, ["a", "b"], "1-D array of class indices"),
        ([0.5, 1], [[0.5, 0.5]] * 2, ["a", "b"], "integer class indices"),
        ([0, 1], [[2.0, -1.0]] * 2, ["a", "b"], "negative"),
        ([0, 1], [[np.nan, 1.0]] * 2, ["a", "b"], "NaN"),
        ([], np.zeros((0, 2)), ["a", "b"], "zero examples"),
    ],
)
def test_bad_inputs_raise_foveal_error(labels, probs, names, message) -> None:
    with pytest.raises(FovealError, match=message) as info:
        classification_metrics(np.asarray(labels), np.asarray(probs), names)
    assert info.value.message


def test_shape_errors_carry_hints() -> None:
    with pytest.raises(FovealError) as info:
        classification_metrics(np.array([0, 1]), np.full((2, 3), 1 / 3), ["a", "b"])
    assert info.value.hint
