"""Feature-statistics losses between two domains: CORAL and MMD.

* CORAL: Sun & Saenko, "Deep CORAL: Correlation Alignment for Deep Domain Adaptation", ECCV
  2016 workshops: ``||C_s - C_t||_F^2 / (4 d^2)`` with ``C`` the (n - 1)-normalised feature
  covariance of each domain's batch and ``d`` the feature size. ``normalize=True`` divides it by
  ``s^4``, ``s^2`` the mean per-feature variance of both batches together (not differentiated): the
  same distance between the features divided by their scale, so a weight chosen for one backbone
  (whose features may be 10x larger, and its CORAL 10^4x) keeps its meaning on another.
* MMD: the (biased) squared maximum mean discrepancy with a sum of Gaussian kernels, as in
  Long et al., "Learning Transferable Features with Deep Adaptation Networks", ICML 2015:
  ``mean k(s, s') + mean k(t, t') - 2 mean k(s, t)``, ``k(a, b) = sum_i exp(-|a - b|^2 /
  (m_i * bw))``; the bandwidth ``bw`` is the mean squared distance between all the batch's
  features (not differentiated), and ``m_i`` the multipliers (1/4 .. 4 by default).

Both take two batches of feature vectors, (n_s, d) and (n_t, d), and return a scalar. Shared by
``foveal adapt`` (classifier features) and ``foveal detect train --adapt-method coral`` (the
detector's backbone map, pooled or per position).

Example:
    >>> import numpy as np
    >>> a = np.random.default_rng(0).normal(size=(16, 4)).astype("float32")
    >>> float(coral_loss(a, a))
    0.0
"""

from __future__ import annotations

from typing import Sequence

from keras import ops

MMD_MULTIPLIERS = (0.25, 0.5, 1.0, 2.0, 4.0)


def covariance(x):
    """The (n - 1)-normalised covariance of the rows of ``x`` (n, d)."""
    n = ops.cast(ops.shape(x)[0], x.dtype)
    centred = x - ops.mean(x, axis=0, keepdims=True)
    return ops.matmul(ops.transpose(centred), centred) / ops.maximum(n - 1.0, 1.0)


def coral_loss(source, target, normalize: bool = False):
    """Deep CORAL's ``||C_s - C_t||_F^2 / (4 d^2)``; with ``normalize``, divided by ``s^4`` where
    ``s^2`` is the mean variance of the features over both batches together (a constant for the
    gradient: the direction is Deep CORAL's, only its scale changes). It is then the CORAL of the
    features divided by ``s``, unchanged when every feature is multiplied by one factor."""
    source, target = ops.cast(source, "float32"), ops.cast(target, "float32")
    d = ops.cast(ops.shape(source)[1], "float32")
    diff = covariance(source) - covariance(target)
    loss = ops.sum(diff * diff) / (4.0 * d * d)
    if normalize:
        both = ops.concatenate([source, target], axis=0)
        scale = ops.stop_gradient(ops.mean(ops.var(both, axis=0)))
        loss = loss / ops.maximum(scale * scale, 1e-12)
    return loss


def _squared_distances(a, b):
    aa = ops.sum(a * a, axis=1, keepdims=True)
    bb = ops.sum(b * b, axis=1, keepdims=True)
    return ops.maximum(aa - 2.0 * ops.matmul(a, ops.transpose(b)) + ops.transpose(bb), 0.0)


def mmd_loss(source, target, multipliers: Sequence[float] = MMD_MULTIPLIERS):
    """The biased squared MMD between ``source`` and ``target`` with a sum of Gaussian kernels."""
    source, target = ops.cast(source, "float32"), ops.cast(target, "float32")
    both = ops.concatenate([source, target], axis=0)
    distances = _squared_distances(both, both)
    n = ops.cast(ops.shape(both)[0], "float32")
    bandwidth = ops.stop_gradient(ops.sum(distances) / ops.maximum(n * n - n, 1.0))
    bandwidth = ops.maximum(bandwidth, 1e-12)
    kernel = sum(ops.exp(-distances / (m * bandwidth)) for m in multipliers)
    ns = ops.shape(source)[0]
    k_ss, k_tt, k_st = kernel[:ns, :ns], kernel[ns:, ns:], kernel[:ns, ns:]
    return ops.mean(k_ss) + ops.mean(k_tt) - 2.0 * ops.mean(k_st)


__all__ = ["MMD_MULTIPLIERS", "coral_loss", "covariance", "mmd_loss"]
