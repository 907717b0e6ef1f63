"""The generative losses against NumPy/SciPy: non-saturating GAN loss, KL, likelihoods, reparameterisation."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from scipy import stats

from foveal.generative import losses


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def test_generator_loss_is_non_saturating_minus_log_d():
    logits = np.array([-8.0, -2.0, 0.0, 3.0], np.float32)
    expected = -np.mean(np.log(_sigmoid(logits.astype(np.float64))))
    assert float(losses.generator_loss(logits)) == pytest.approx(expected, rel=1e-5)
    # it falls as the discriminator rates the fakes as more real
    values = [float(losses.generator_loss(np.array([v], np.float32))) for v in (-4.0, 0.0, 4.0)]
    assert values[0] > values[1] > values[2] > 0


def test_generator_gradient_does_not_vanish_where_the_minimax_form_does():
    """The texts' minimax generator term log(1 - D(G(z))) has a vanishing gradient when D rejects the
    fakes (logit -> -inf); the non-saturating -log D(G(z)) keeps a gradient of about -1 there."""
    logit = tf.Variable([-10.0])
    with tf.GradientTape(persistent=True) as tape:
        ns = losses.generator_loss(logit)
        mm = losses.minimax_generator_loss(logit)
    g_ns, g_mm = float(tape.gradient(ns, logit)[0]), float(tape.gradient(mm, logit)[0])
    assert g_ns == pytest.approx(-1.0, abs=1e-3)  # minimising it raises the logit
    assert abs(g_mm) < 1e-4


def test_discriminator_loss_is_binary_cross_entropy():
    rng = np.random.default_rng(0)
    real, fake = rng.normal(size=16).astype(np.float32), rng.normal(size=16).astype(np.float32)
    expected = -np.mean(np.log(_sigmoid(real.astype(np.float64)))) - np.mean(np.log(1 - _sigmoid(fake.astype(np.float64))))
    assert float(losses.discriminator_loss(real, fake)) == pytest.approx(expected, rel=1e-5)
    smoothed = float(losses.discriminator_loss(real, fake, label_smoothing=0.1))
    p = _sigmoid(real.astype(np.float64))
    expected_s = -np.mean(0.9 * np.log(p) + 0.1 * np.log(1 - p)) - np.mean(np.log(1 - _sigmoid(fake.astype(np.float64))))
    assert smoothed == pytest.approx(expected_s, rel=1e-5)


def test_kl_matches_the_closed_form_and_a_monte_carlo_estimate():
    rng = np.random.default_rng(1)
    mean = rng.normal(size=(3, 4)).astype(np.float32)
    log_var = rng.normal(scale=0.5, size=(3, 4)).astype(np.float32)
    got = np.asarray(losses.kl_divergence(mean, log_var))
    sd = np.exp(0.5 * log_var.astype(np.float64))
    closed = (np.log(1 / sd) + (sd ** 2 + mean ** 2) / 2 - 0.5).sum(-1)  # KL(N(m, s^2) || N(0, 1)) per dim
    np.testing.assert_allclose(got, closed, rtol=1e-5)
    z = mean[0] + sd[0] * rng.standard_normal((200_000, 4))
    monte_carlo = np.mean(stats.norm.logpdf(z, mean[0], sd[0]).sum(-1) - stats.norm.logpdf(z).sum(-1))
    assert got[0] == pytest.approx(monte_carlo, abs=0.02)


def test_likelihoods_match_scipy():
    rng = np.random.default_rng(2)
    x = rng.uniform(size=(2, 3, 3, 1)).astype(np.float32)
    logits = rng.normal(size=x.shape).astype(np.float32)
    p = _sigmoid(logits.astype(np.float64))
    bce = -(x * np.log(p) + (1 - x) * np.log(1 - p)).reshape(2, -1).sum(1)
    np.testing.assert_allclose(np.asarray(losses.bernoulli_nll(x, logits)), bce, rtol=1e-5)
    mean = rng.uniform(size=x.shape).astype(np.float32)
    nll = -stats.norm.logpdf(x, mean, np.exp(-1.5)).reshape(2, -1).sum(1)
    np.testing.assert_allclose(np.asarray(losses.gaussian_nll(x, mean, -1.5)), nll, rtol=1e-5)


def test_reparameterisation_gradient_reaches_mean_and_log_variance():
    """E[z^2] = mu^2 + exp(log_var): its gradients are 2 mu and exp(log_var), through the sample."""
    import keras

    mu = tf.Variable(tf.fill((200_000, 1), 0.7))
    log_var = tf.Variable(tf.fill((200_000, 1), -0.4))
    with tf.GradientTape() as tape:
        z = losses.reparameterize(mu, log_var, seed=keras.random.SeedGenerator(3))
        loss = tf.reduce_sum(z ** 2) / 200_000
    g_mu, g_lv = tape.gradient(loss, [mu, log_var])
    assert float(tf.reduce_sum(g_mu)) == pytest.approx(2 * 0.7, rel=0.02)
    assert float(tf.reduce_sum(g_lv)) == pytest.approx(np.exp(-0.4), rel=0.02)
    assert float(np.std(z.numpy())) == pytest.approx(np.exp(-0.2), rel=0.02)
