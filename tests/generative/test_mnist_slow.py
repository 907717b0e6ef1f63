"""Slow: a VAE on real MNIST digits beats the model without a latent code."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import shared_dataset


@pytest.mark.slow
def test_vae_on_mnist_beats_independent_mean_pixels(tmp_path):
    from foveal.data.readers import load_dataset
    from foveal.generative import GenerateConfig, train_generator

    parts = load_dataset(str(shared_dataset("mnist")))
    train, test = parts["train"], parts["test"]
    np.savez(tmp_path / "mnist3k.npz", x_train=train.images[:3000, ..., 0], y_train=train.labels[:3000],
             x_test=test.images[:500, ..., 0], y_test=test.labels[:500])
    cfg = GenerateConfig(data=str(tmp_path / "mnist3k.npz"), model="vae", latent_dim=8, epochs=5, batch_size=32,
                         classifier="none", quality_samples=0, output=str(tmp_path), name="vae", progress=False)
    result = train_generator(cfg)
    p = np.clip(train.images[:3000].reshape(3000, -1).mean(0) / 255.0, 1e-6, 1 - 1e-6)
    x = test.images[:500].reshape(500, -1) / 255.0
    baseline = float(-(x * np.log(p) + (1 - x) * np.log(1 - p)).sum(1).mean())  # about 206 nats
    assert result.metrics["neg_elbo"] < baseline - 20, (result.metrics["neg_elbo"], baseline)
    val = result.history["val_loss"]
    assert val[-1] < val[0]


@pytest.mark.slow
def test_inception_fid_runs_from_a_weights_file(tmp_path):
    """The standard FID path with an InceptionV3 weights file (randomly initialised here: offline there
    are no ImageNet weights)."""
    import keras

    from foveal.generative.quality import RealStats, compare, inception_judge

    net = keras.applications.InceptionV3(weights=None, include_top=False, pooling="avg", input_shape=(299, 299, 3))
    weights = tmp_path / "inception.weights.h5"
    net.save_weights(weights)
    del net
    judge = inception_judge(str(weights))
    rng = np.random.default_rng(0)
    real, fake = rng.uniform(size=(2, 4, 28, 28, 1)).astype(np.float32)
    stats = RealStats.of(judge, real)
    scores = compare(judge, stats, fake)
    assert scores["inception_fid"] >= 0 and "inception_kid" in scores
    assert compare(judge, stats, real)["inception_fid"] == pytest.approx(0.0, abs=1e-6)
