"""Classification metrics computed from integer labels and predicted class probabilities.

Everything here is plain NumPy (no scikit-learn at run time) and returns plain Python
``int``/``float``/``list``/``dict`` values, so the results can go straight into JSON files and
HTML reports. Definitions follow scikit-learn's: precision, recall and F1 that would divide by
zero are reported as ``0.0`` (``zero_division=0``), macro averages include every class named in
``class_names`` (also those absent from the labels), and weighted averages weight by support.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from foveal.errors import FovealError

#: Probabilities are clipped to ``[EPSILON, 1 - EPSILON]`` before the log, as Keras does, so the
#: loss reported here matches the one logged during training.
EPSILON = 1e-7


def _check_probs(probs: Any, class_names: list[str]) -> np.ndarray:
    """Return ``probs`` as a float64 (N, C) array, or raise :class:`FovealError`."""
    probs = np.asarray(probs)
    if probs.ndim != 2:
        raise FovealError(
            f"probabilities must be a 2-D array (examples, classes), got shape {probs.shape}",
            hint="pass the softmax output of the model for a batch of examples",
        )
    if not np.issubdtype(probs.dtype, np.number) or np.issubdtype(probs.dtype, np.complexfloating):
        raise FovealError(f"probabilities must be real numbers, got dtype {probs.dtype}")
    num_classes = len(class_names)
    if num_classes == 0:
        raise FovealError("class_names is empty", hint="pass one name per model output")
    if probs.shape[1] != num_classes:
        raise FovealError(
            f"probabilities have {probs.shape[1]} columns but there are {num_classes} class names",
            hint="the model's number of outputs must equal the number of classes in the dataset",
        )
    probs = probs.astype(np.float64, copy=False)
    if not np.all(np.isfinite(probs)):
        raise FovealError(
            "probabilities contain NaN or infinite values",
            hint="the model probably diverged; lower the learning rate and train again",
        )
    if np.any(probs < 0):
        raise FovealError(
            "probabilities contain negative values",
            hint="these look like logits; apply a softmax first (or end the model with one)",
        )
    return probs


def _check_labels(y_true: Any, num_examples: int, num_classes: int) -> np.ndarray:
    """Return ``y_true`` as an int64 (N,) array, or raise :class:`FovealError`."""
    labels = np.asarray(y_true)
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1:
        raise FovealError(
            f"labels must be a 1-D array of class indices, got shape {labels.shape}",
            hint="for one-hot labels pass np.argmax(labels, axis=1)",
        )
    if labels.size and not np.issubdtype(labels.dtype, np.integer):
        if not np.issubdtype(labels.dtype, np.floating) or not np.all(
            np.isfinite(labels) & (labels == np.round(labels))
        ):
            raise FovealError(f"labels must be integer class indices, got dtype {labels.dtype}")
    labels = labels.astype(np.int64)
    if labels.shape[0] != num_examples:
        raise FovealError(
            f"there are {labels.shape[0]} labels but {num_examples} rows of probabilities",
            hint="predict on exactly the examples whose labels are passed, in the same order",
        )
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        bad = labels[(labels < 0) | (labels >= num_classes)]
        raise FovealError(
            f"labels must lie in [0, {num_classes - 1}] for {num_classes} classes, "
            f"found {int(bad[0])}",
            hint="the labels and class names come from different datasets or class orders",
        )
    return labels


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """Element-wise ``num / den`` with 0.0 where ``den`` is 0 (scikit-learn's zero_division=0)."""
    out = np.zeros(np.shape(num), dtype=np.float64)
    np.divide(num, den, out=out, where=den != 0)
    return out


def _ranked(probs: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` largest entries per row, largest first; ties keep the lower index.

    The lower-index rule is the one ``np.argmax`` uses, so top-1 here equals the prediction.
    """
    return np.argsort(-probs, axis=1, kind="stable")[:, :k]


def classification_metrics(
    y_true: np.ndarray, probs: np.ndarray, class_names: list[str], top_k: int = 5
) -> dict[str, Any]:
    """Compute the standard single-label classification metrics.

    Args:
        y_true: Integer class indices, shape ``(N,)`` (``(N, 1)`` is accepted too).
        probs: Predicted probabilities, shape ``(N, C)`` with ``C == len(class_names)``;
            the prediction is the arg-max of each row.
        class_names: One name per class, in model output order.
        top_k: ``k`` for the top-k accuracy; clipped to ``C``, and the entry is left out when
            the clipped value is 1 or less.

    Returns:
        A JSON-serialisable dict with keys ``num_examples``, ``num_classes``, ``accuracy``,
        ``top_{k}_accuracy`` and ``top_k`` (only when k > 1), ``loss`` (mean categorical
        cross-entropy), ``confusion_matrix`` (rows: true class, columns: predicted class),
        ``per_class`` (list of ``{class, precision, recall, f1, support}``), ``macro_avg`` and
        ``weighted_avg`` (each ``{precision, recall, f1}``).

    Raises:
        FovealError: If the shapes of labels, probabilities and class names disagree, a label
            is out of range, there are no examples, or the probabilities are not finite and
            non-negative.
    """
    probs = _check_probs(probs, class_names)
    labels = _check_labels(y_true, probs.shape[0], len(class_names))
    n, c = probs.shape
    if n == 0:
        raise FovealError("cannot compute metrics on zero examples", hint="check the test split")

    pred = np.argmax(probs, axis=1)
    cm = np.bincount(labels * c + pred, minlength=c * c).reshape(c, c)
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    precision = _ratio(tp, predicted)
    recall = _ratio(tp, support)
    # 2TP / (2TP + FP + FN) equals the harmonic mean of precision and recall, and is 0 (not
    # NaN) when a class is neither present nor predicted; scikit-learn computes it this way.
    f1 = _ratio(2 * tp, support + predicted)

    metrics: dict[str, Any] = {
        "num_examples": int(n),
        "num_classes": int(c),
        "accuracy": float(np.mean(pred == labels)),
    }
    k = min(int(top_k), c)
    if k > 1:
        hits = np.any(_ranked(probs, k) == labels[:, None], axis=1)
        metrics[f"top_{k}_accuracy"] = float(np.mean(hits))
        metrics["top_k"] = k
    true_probs = np.clip(probs[np.arange(n), labels], EPSILON, 1.0 - EPSILON)
    metrics["loss"] = float(-np.mean(np.log(true_probs)))
    metrics["confusion_matrix"] = cm.tolist()
    metrics["per_class"] = [
        {
            "class": str(name),
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
        for i, name in enumerate(class_names)
    ]
    metrics["macro_avg"] = {
        "precision": float(np.mean(precision)),
        "recall": float(np.mean(recall)),
        "f1": float(np.mean(f1)),
    }
    weights = support / support.sum()
    metrics["weighted_avg"] = {
        "precision": float(np.sum(precision * weights)),
        "recall": float(np.sum(recall * weights)),
        "f1": float(np.sum(f1 * weights)),
    }
    return metrics


COLLAPSE_SHARE = 0.9
"""A model that gives one class to this share of the images is said to have collapsed (when that
class is less than half of the true labels)."""


def collapse_warning(metrics: dict[str, Any], train_accuracy: float | None = None) -> str | None:
    """A one-line warning when inference-mode predictions collapsed, else None.

    Two signs, from the metrics of :func:`classification_metrics`: one class predicted for at
    least :data:`COLLAPSE_SHARE` of the images while it is under half of the true labels; or,
    given the training accuracy of the last epoch (measured in training mode, batch statistics
    in the batch norms), an accuracy under half of it while training beat the majority class
    by 2x. Both are what stale batch-norm moving statistics do after a short, fast run from
    scratch: the moving averages that inference uses mix statistics of past weights (with
    keras.applications' momentum 0.999 they even keep ``0.999 ** steps`` of their initial 0 and
    1), while training mode normalizes with each batch's own statistics
    (:func:`foveal.training.precise_bn.recalibrate_batchnorm` recomputes them).

    Example:
        >>> m = classification_metrics([0, 1, 2, 3] * 5, np.eye(4)[[0] * 20], ["a", "b", "c", "d"])
        >>> collapse_warning(m).split(":")[0]
        'predictions collapsed to one class'
    """
    cm = np.asarray(metrics.get("confusion_matrix", []))
    if cm.ndim != 2 or cm.shape[0] < 2 or cm.sum() == 0:
        return None
    n = cm.sum()
    predicted, true = cm.sum(axis=0) / n, cm.sum(axis=1) / n
    top = int(np.argmax(predicted))
    accuracy = float(metrics.get("accuracy", np.trace(cm) / n))
    hint = ("the batch-norm moving statistics that inference uses may not match the final weights (a short or "
            "fast run from scratch): recompute them with foveal.training.precise_bn.recalibrate_batchnorm "
            "on ~20 training batches, or train longer")
    if predicted[top] >= COLLAPSE_SHARE and true[top] < 0.5:
        names = metrics.get("per_class") or []
        name = names[top]["class"] if top < len(names) else str(top)
        seen = f"; training accuracy {train_accuracy:.4f}" if train_accuracy is not None else ""
        return (f"predictions collapsed to one class: {name!r} for {predicted[top]:.0%} of the images "
                f"(its true share {true[top]:.0%}), accuracy {accuracy:.4f}{seen}; {hint}")
    if train_accuracy is not None and accuracy < 0.5 * train_accuracy and train_accuracy > 2 * true.max():
        return (f"accuracy {accuracy:.4f} in inference mode is under half the training accuracy "
                f"{train_accuracy:.4f}; besides overfitting, {hint}")
    return None


def top_k_accuracy_key(metrics: dict[str, Any]) -> str | None:
    """Return the ``top_{k}_accuracy`` key present in ``metrics``, or None."""
    k = metrics.get("top_k")
    if k is not None and f"top_{k}_accuracy" in metrics:
        return f"top_{k}_accuracy"
    for key in metrics:
        if key.startswith("top_") and key.endswith("_accuracy") and key[4:-9].isdigit():
            return key
    return None


def format_metrics_table(metrics: dict[str, Any]) -> str:
    """Render the output of :func:`classification_metrics` as a fixed-width text table.

    Args:
        metrics: A dict as returned by :func:`classification_metrics`.

    Returns:
        Several lines (no trailing newline): one row per class, the macro and weighted
        averages, then accuracy, top-k accuracy and loss.
    """
    per_class = metrics.get("per_class", [])
    averages = [
        ("macro avg", metrics.get("macro_avg")),
        ("weighted avg", metrics.get("weighted_avg")),
    ]
    total = sum(row["support"] for row in per_class)
    width = max([len("weighted avg")] + [len(str(row["class"])) for row in per_class])
    header = f"{'class':<{width}}  {'precision':>9}  {'recall':>9}  {'f1-score':>9}  {'support':>8}"
    lines = [header, "-" * len(header)]

    def row(name: str, p: float, r: float, f: float, s: int) -> str:
        return f"{name:<{width}}  {p:>9.4f}  {r:>9.4f}  {f:>9.4f}  {s:>8d}"

    for entry in per_class:
        name = str(entry["class"])
        lines.append(row(name, entry["precision"], entry["recall"], entry["f1"], entry["support"]))
    if any(avg for _, avg in averages):
        lines.append("-" * len(header))
    for name, avg in averages:
        if avg:
            lines.append(row(name, avg["precision"], avg["recall"], avg["f1"], total))

    summary: list[tuple[str, str]] = []
    if "accuracy" in metrics:
        n = metrics.get("num_examples")
        suffix = f"  ({n} examples)" if n is not None else ""
        summary.append(("accuracy", f"{metrics['accuracy']:.4f}{suffix}"))
    key = top_k_accuracy_key(metrics)
    if key is not None:
        summary.append((f"top-{key[4:-9]} accuracy", f"{metrics[key]:.4f}"))
    if "loss" in metrics:
        summary.append(("loss", f"{metrics['loss']:.4f}"))
    summary.extend(("warning", text) for text in metrics.get("warnings", []))
    if summary:
        lines.append("")
        label_width = max(len(label) for label, _ in summary)
        lines.extend(f"{label:<{label_width}}  {value}" for label, value in summary)
    return "\n".join(lines)


def top_k_predictions(
    probs: np.ndarray, class_names: list[str], k: int
) -> list[list[tuple[str, float]]]:
    """Return the ``k`` most probable classes of every row, most probable first.

    Args:
        probs: Predicted probabilities, shape ``(N, C)``.
        class_names: One name per column of ``probs``.
        k: How many classes per row; clipped to ``C``.

    Returns:
        ``N`` lists of ``(class name, probability)`` pairs. Ties are ordered by class index.

    Raises:
        FovealError: If ``k < 1`` or the shapes of ``probs`` and ``class_names`` disagree.
    """
    if int(k) < 1:
        raise FovealError(f"k must be at least 1, got {k}")
    probs = _check_probs(probs, class_names)
    k = min(int(k), probs.shape[1])
    ranked = _ranked(probs, k)
    return [
        [(str(class_names[j]), float(probs[i, j])) for j in row] for i, row in enumerate(ranked)
    ]
