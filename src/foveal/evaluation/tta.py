"""Test-time augmentation for classifiers: average the predictions over flipped and shifted views.

A classifier trained with horizontal flips and small translations sees, at test time, one of many
equally valid versions of an image; averaging its class probabilities over a few of them is a
cheap ensemble (Krizhevsky et al., "ImageNet Classification with Deep Convolutional Neural
Networks", NIPS 2012, averaged ten crops and their flips). Jordan's airbench (arXiv:2404.00498)
weights the views: the image and its mirror image count half, and the four one-pixel shifts of
both (up-left, down-right) the other half; ``flip-shift`` here does the same. As there, the views
are averaged as logits: foveal's classifiers end in a softmax, so the weighted mean is taken of
the log-probabilities (each view's logits minus a constant of that view, so the winning class
is the one of the mean logits) and turned back into probabilities.

Modes:
    ``none``: the image only. ``flip``: the image and its mirror image, equally weighted.
    ``flip-shift``: as ``flip`` (weight 1/2), plus the image shifted one pixel up-left and one
    pixel down-right with reflected borders, and the mirror images of those two shifts
    (weight 1/2 between the four).

Example:
    >>> import numpy as np, keras
    >>> model = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Flatten(),
    ...                           keras.layers.Dense(2, activation="softmax")])
    >>> predict_tta(model, np.zeros((3, 4, 4, 1), "float32"), "flip").shape
    (3, 2)
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import tensorflow as tf

from foveal.errors import ConfigError

TTA_MODES = ("none", "flip", "flip-shift")


def check_tta(mode: str) -> None:
    """Raise ConfigError for an unknown mode."""
    if mode not in TTA_MODES:
        raise ConfigError(f"unknown test-time augmentation {mode!r}; choose one of {', '.join(TTA_MODES)}")


def shift(images: tf.Tensor, dy: int, dx: int) -> tf.Tensor:
    """``images`` (N, H, W, C) moved by (dy, dx) pixels, the uncovered border reflected."""
    pad = max(abs(dy), abs(dx))
    padded = tf.pad(images, [[0, 0], [pad, pad], [pad, pad], [0, 0]], mode="REFLECT")
    h, w = tf.shape(images)[1], tf.shape(images)[2]
    return padded[:, pad - dy: pad - dy + h, pad - dx: pad - dx + w, :]


def tta_views(images: tf.Tensor, mode: str) -> list[tuple[float, tf.Tensor]]:
    """The weighted views of ``images`` that ``mode`` averages over (weights sum to 1)."""
    check_tta(mode)
    if mode == "none":
        return [(1.0, images)]
    flipped = tf.reverse(images, axis=[2])
    views = [(0.5, images), (0.5, flipped)]
    if mode == "flip-shift":
        views = [(w / 2, v) for w, v in views]
        # the paper's: each one-pixel shift of the image, and the mirror image of that shift
        shifted = [shift(images, d, d) for d in (-1, 1)]
        views += [(0.125, v) for s in shifted for v in (s, tf.reverse(s, axis=[2]))]
    return views


def predict_tta(model: Callable, images, mode: str = "flip", *, batch_size: int = 1000) -> np.ndarray:
    """Class probabilities of ``model`` on ``images`` (array N, H, W, C), averaged over ``mode``'s views."""
    forward = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    out = []
    for start in range(0, len(images), batch_size):
        batch = tf.convert_to_tensor(images[start: start + batch_size])
        out.append(average_views(forward, batch, mode))
    return np.concatenate(out)


def average_views(forward: Callable, images: tf.Tensor, mode: str) -> np.ndarray:
    """Probabilities from the weighted mean of ``forward``'s log-probabilities over the views of
    one batch (the normalised weighted geometric mean), as a float32 array."""
    views = tta_views(images, mode)
    if len(views) == 1:
        return np.asarray(forward(views[0][1]), dtype=np.float32)
    total = None
    for weight, view in views:
        p = weight * np.log(np.maximum(np.asarray(forward(view), dtype=np.float64), 1e-30))
        total = p if total is None else total + p
    total = np.exp(total - total.max(axis=-1, keepdims=True))
    return (total / total.sum(axis=-1, keepdims=True)).astype(np.float32)


__all__ = ["TTA_MODES", "average_views", "check_tta", "predict_tta", "shift", "tta_views"]
