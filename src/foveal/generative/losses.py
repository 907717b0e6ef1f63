"""The losses of the generative models, as plain tensor functions (Keras ops, any backend).

* GANs (Goodfellow et al. 2014, "Generative Adversarial Nets", sec. 3): the discriminator
  minimises the binary cross-entropy of real images labelled 1 and generated ones labelled 0;
  the generator uses the *non-saturating* loss ``-E[log D(G(z))]``, which gives strong
  gradients early in training when ``D(G(z))`` is near 0 (the minimax form
  ``E[log(1 - D(G(z)))]`` saturates there). Everything takes the discriminator's *logits*, so
  ``log D = log_sigmoid(logit)`` and ``log(1 - D) = log_sigmoid(-logit)`` stay finite.
* VAEs (Kingma & Welling 2014, "Auto-Encoding Variational Bayes", appendix B): the closed-form
  KL divergence between a diagonal Gaussian ``N(mu, exp(log_var))`` and ``N(0, I)``, the
  reparameterised sample ``z = mu + exp(log_var / 2) * eps``, and the negative log-likelihoods
  of the Bernoulli and Gaussian decoders, summed over pixels, in nats.

Example:
    >>> import numpy as np
    >>> float(generator_loss(np.array([0.0])))  # D(G(z)) = 0.5: -log 0.5
    0.6931471...
"""

from __future__ import annotations

import math
from typing import Any

import keras
from keras import ops


def _log_sigmoid(x: Any) -> Any:
    return ops.log_sigmoid(ops.convert_to_tensor(x, "float32"))


def generator_loss(fake_logits: Any) -> Any:
    """Non-saturating generator loss ``-mean(log D(G(z)))`` from the discriminator's logits on fakes.

    It falls as the discriminator rates the fakes as more real (larger logits)."""
    return -ops.mean(_log_sigmoid(fake_logits))


def minimax_generator_loss(fake_logits: Any) -> Any:
    """The generator's side of the original minimax game, ``mean(log(1 - D(G(z))))`` (for comparison:
    its gradient vanishes when the discriminator rejects the fakes confidently)."""
    return ops.mean(_log_sigmoid(-ops.convert_to_tensor(fake_logits, "float32")))


def discriminator_loss(real_logits: Any, fake_logits: Any, *, label_smoothing: float = 0.0) -> Any:
    """``-mean(log D(x)) - mean(log(1 - D(G(z))))``: cross-entropy with real = 1, fake = 0.

    ``label_smoothing`` (one-sided, Salimans et al. 2016): real targets become ``1 - s``."""
    real = ops.convert_to_tensor(real_logits, "float32")
    fake = ops.convert_to_tensor(fake_logits, "float32")
    target = 1.0 - label_smoothing
    real_term = -(target * ops.log_sigmoid(real) + (1.0 - target) * ops.log_sigmoid(-real))
    return ops.mean(real_term) + ops.mean(-ops.log_sigmoid(-fake))


def kl_divergence(mean: Any, log_var: Any) -> Any:
    """Per-example ``KL(N(mean, exp(log_var)) || N(0, I))`` in nats, summed over latent dimensions:
    ``-0.5 * sum(1 + log_var - mean**2 - exp(log_var))``."""
    mean = ops.convert_to_tensor(mean, "float32")
    log_var = ops.convert_to_tensor(log_var, "float32")
    return -0.5 * ops.sum(1.0 + log_var - ops.square(mean) - ops.exp(log_var), axis=-1)


def reparameterize(mean: Any, log_var: Any, seed: Any = None) -> Any:
    """``mean + exp(log_var / 2) * eps`` with ``eps ~ N(0, I)``: a sample whose gradient reaches
    ``mean`` and ``log_var`` (the noise is an input, not a sampling op in the path)."""
    eps = keras.random.normal(ops.shape(mean), seed=seed)
    return mean + ops.exp(0.5 * log_var) * eps


def bernoulli_nll(x: Any, logits: Any) -> Any:
    """Per-example ``-log p(x | logits)`` of independent Bernoulli pixels (x in [0, 1]), summed
    over pixels: the binary cross-entropy from logits, in nats."""
    x = ops.convert_to_tensor(x, "float32")
    logits = ops.convert_to_tensor(logits, "float32")
    per_pixel = -(x * ops.log_sigmoid(logits) + (1.0 - x) * ops.log_sigmoid(-logits))
    return ops.sum(ops.reshape(per_pixel, (ops.shape(per_pixel)[0], -1)), axis=-1)


def gaussian_nll(x: Any, mean: Any, log_sigma: Any) -> Any:
    """Per-example ``-log N(x; mean, sigma**2)`` of independent pixels, summed over pixels, in nats
    (a density: it can be negative). ``log_sigma`` broadcasts (a scalar: one sigma for all pixels)."""
    x = ops.convert_to_tensor(x, "float32")
    mean = ops.convert_to_tensor(mean, "float32")
    log_sigma = ops.convert_to_tensor(log_sigma, "float32")
    per_pixel = 0.5 * ops.square((x - mean) * ops.exp(-log_sigma)) + log_sigma + 0.5 * math.log(2 * math.pi)
    return ops.sum(ops.reshape(per_pixel, (ops.shape(per_pixel)[0], -1)), axis=-1)


__all__ = ["bernoulli_nll", "discriminator_loss", "gaussian_nll", "generator_loss", "kl_divergence",
           "minimax_generator_loss", "reparameterize"]
