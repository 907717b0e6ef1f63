"""The generative models: a cGAN learns its class conditioning; save/load keeps both GAN optimizers."""

from __future__ import annotations

import numpy as np
import pytest

from foveal.errors import ConfigError
from foveal.generative.models import build_generative
from foveal.generative.sampling import noise, sample


def _two_class_images(n: int = 256, seed: int = 0):
    """Class 0: dark 8x8 images, class 1: bright ones."""
    rng = np.random.default_rng(seed)
    y = (np.arange(n) % 2).astype(np.int32)
    base = np.where(y[:, None, None, None] == 1, 220.0, 30.0)
    x = np.clip(base + rng.normal(0, 15, size=(n, 8, 8, 1)), 0, 255).astype(np.float32)
    return x, y


def test_cgan_generator_follows_the_requested_class():
    import keras

    keras.utils.set_random_seed(0)
    x, y = _two_class_images(128)
    gan = build_generative("cgan", image_shape=(8, 8, 1), latent_dim=8, num_classes=2, width=8, dropout=0.0)
    gan.compile(optimizer=keras.optimizers.Adam(5e-3, beta_1=0.5), d_optimizer=keras.optimizers.Adam(5e-3, beta_1=0.5))
    z = noise(64, 8, seed=1)
    before = [sample(gan, 64, np.full(64, k, np.int32), z=z).mean() for k in (0, 1)]
    assert abs(before[1] - before[0]) < 0.05  # untrained: the label hardly matters
    gan.fit(x, y, batch_size=32, epochs=8, verbose=0)
    dark, bright = (sample(gan, 64, np.full(64, k, np.int32), z=z).mean() for k in (0, 1))
    assert bright - dark > 0.3, (dark, bright)  # same noise, the class decides the brightness


def test_unknown_model_and_too_few_classes_are_refused():
    with pytest.raises(ConfigError, match="unknown generative model"):
        build_generative("pixelcnn", image_shape=(8, 8, 1), latent_dim=4)
    with pytest.raises(ConfigError, match="at least two classes"):
        build_generative("cgan", image_shape=(8, 8, 1), latent_dim=4, num_classes=1)
    with pytest.raises(ConfigError, match="multiple of 4"):
        build_generative("dcgan", image_shape=(10, 10, 1), latent_dim=4)


@pytest.mark.parametrize("conditioning", ["concat", "projection"])
def test_conditional_networks_see_the_label(conditioning):
    gan = build_generative("cgan", image_shape=(8, 8, 1), latent_dim=4, num_classes=3, width=4,
                           conditioning=conditioning)
    images = np.random.default_rng(0).uniform(-1, 1, size=(2, 8, 8, 1)).astype(np.float32)
    a = np.asarray(gan.discriminator([images, np.zeros(2, np.int32)]))
    b = np.asarray(gan.discriminator([images, np.full(2, 2, np.int32)]))
    assert np.abs(a - b).max() > 1e-6
    z = noise(2, 4, seed=0)
    assert np.abs(sample(gan, 2, np.zeros(2, np.int32), z=z) - sample(gan, 2, np.ones(2, np.int32), z=z)).max() > 1e-6
    with pytest.raises(ConfigError, match="unknown conditioning"):
        build_generative("cgan", image_shape=(8, 8, 1), latent_dim=4, num_classes=3, conditioning="film")


def test_dcgan_trains_and_its_file_keeps_both_optimizers(tmp_path):
    import keras

    x, y = _two_class_images(32)
    gan = build_generative("dcgan", image_shape=(8, 8, 1), latent_dim=4, width=4)
    gan.compile(optimizer=keras.optimizers.Adam(1e-3, beta_1=0.5), d_optimizer=keras.optimizers.Adam(1e-3, beta_1=0.5))
    history = gan.fit(x, y, batch_size=16, epochs=1, verbose=0).history
    assert set(history) >= {"d_loss", "g_loss", "d_real", "d_fake"} and np.isfinite(history["g_loss"]).all()
    gan.save(tmp_path / "gan.keras")
    loaded = keras.models.load_model(tmp_path / "gan.keras", compile=True)
    for mine, theirs in ((gan.optimizer, loaded.optimizer), (gan.d_optimizer, loaded.d_optimizer)):
        assert int(theirs.iterations) == 2
        for a, b in zip(mine.variables, theirs.variables):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    z = noise(3, 4, seed=0)
    np.testing.assert_allclose(sample(gan, 3, z=z), sample(loaded, 3, z=z), atol=1e-6)
