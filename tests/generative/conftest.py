"""Tiny untrained generative models saved with their cards, for the export and serve tests."""

from __future__ import annotations

from pathlib import Path

CLASSES = ["zero", "one", "two"]


def save_generator(path: Path, kind: str, *, latent_dim: int = 4, shape: tuple[int, int, int] = (16, 16, 1)) -> Path:
    """A ``vae``, ``dcgan`` or ``cgan`` (3 classes) of width 4, built from seed 0, compiled and saved
    with the card ``foveal generate train`` writes (latent size, conditional)."""
    import keras

    from foveal.generative.models import build_generative
    from foveal.models import ModelCard, save_model

    keras.utils.set_random_seed(0)
    model = build_generative(kind, image_shape=shape, latent_dim=latent_dim,
                             num_classes=len(CLASSES) if kind == "cgan" else 0, width=4)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    card = ModelCard(architecture=kind, class_names=list(CLASSES), input_shape=shape, preprocessing="none",
                     task="generate", training={"latent_dim": latent_dim, "conditional": kind == "cgan",
                                                "likelihood": "bernoulli" if kind == "vae" else None})
    save_model(model, path, card)
    return path
