"""Class imbalance: loss weights by inverse frequency, or oversampling of rare classes."""

from __future__ import annotations

import numpy as np

from foveal.data.source import LabeledImages


def balanced_class_weights(labels: np.ndarray, num_classes: int) -> dict[int, float]:
    """``n / (k * count_c)`` per class, as scikit-learn's ``compute_class_weight("balanced")``.

    Classes absent from ``labels`` get weight 0 (they contribute no examples anyway).
    """
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    present = counts > 0
    weights = np.zeros(num_classes)
    weights[present] = len(labels) / (present.sum() * counts[present])
    return {i: float(w) for i, w in enumerate(weights)}


def oversample(data: LabeledImages, seed: int) -> LabeledImages:
    """Repeat examples of smaller classes (drawn at random) until each matches the largest."""
    rng = np.random.default_rng(seed)
    counts = np.bincount(data.labels, minlength=data.num_classes)
    target = counts.max()
    chosen = []
    for cls in np.flatnonzero(counts):
        idx = np.flatnonzero(data.labels == cls)
        extra = rng.choice(idx, size=target - len(idx), replace=True) if target > len(idx) else []
        chosen.append(np.concatenate([idx, np.asarray(extra, dtype=np.int64)]))
    return data.subset(np.sort(np.concatenate(chosen)))
