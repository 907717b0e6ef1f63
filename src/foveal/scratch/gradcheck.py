"""Finite-difference check of a network's back-propagated gradients.

Central differences ``(L(w + h) - L(w - h)) / 2h`` on a few randomly chosen entries of every
parameter (and of the input), compared with what ``backward`` computed. In float64 with
``h = 1e-5`` the two agree to about 1e-7 relative error or better; ReLU and max pooling
are smooth almost everywhere, so random inputs rarely sit on a kink.
"""

from __future__ import annotations

import numpy as np

from foveal.scratch.network import Network


def gradient_check(network: Network, x: np.ndarray, y: np.ndarray, *, entries: int = 5, h: float = 1e-5,
                   seed: int = 0, floor: float = 1e-6) -> float:
    """Largest relative error between analytic and numerical gradients.

    Args:
        network: a float64 network (float32 differences are too coarse).
        x, y: a small batch and its labels.
        entries: entries checked per parameter array (and of the input).
        h: finite-difference step.
        seed: which entries are checked.
        floor: smallest denominator: for near-zero gradients the differences' own rounding
            error (about 1e-10) is compared with ``floor`` rather than with the gradient.

    Returns:
        ``max |g_a - g_n| / max(|g_a| + |g_n|, floor)`` over the checked entries.
    """
    rng = np.random.default_rng(seed)
    x = np.array(x, dtype=network.dtype)

    # With reduction="sum" the reported value is per sample but the gradient is of the sum.
    scale = len(x) if network.loss.reduction == "sum" else 1

    def loss_at() -> float:
        return network.loss.forward(network.forward(x), y) * scale

    loss_at()
    dx = network.backward(network.loss.backward())
    analytic = [(layer.params[key], layer.grads[key].copy()) for layer in network.layers for key in layer.params]
    analytic.append((x, dx.copy()))
    worst = 0.0
    for array, grad in analytic:
        for flat in rng.choice(array.size, size=min(entries, array.size), replace=False):
            index = np.unravel_index(flat, array.shape)
            saved = array[index]
            array[index] = saved + h
            plus = loss_at()
            array[index] = saved - h
            minus = loss_at()
            array[index] = saved
            numeric = (plus - minus) / (2 * h)
            worst = max(worst, abs(grad[index] - numeric) / max(abs(grad[index]) + abs(numeric), floor))
    return worst
