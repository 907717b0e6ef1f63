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


def write_shapes_npz(path: Path, per_class: int = 12, size: int = 16) -> Path:
    """An ``.npz`` (train and test parts, class names zero/one/two) of gray 16x16 images of three kinds (a
    bright square, a vertical bar, a horizontal bar) on noise, for pruning and scoring tests; arrays, not
    files, so that no decoding pipeline is built."""
    import numpy as np

    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", per_class), ("test", per_class // 2)):
        images, labels = [], []
        for k in range(len(CLASSES)):
            for _ in range(n):
                image = rng.integers(0, 40, (size, size)).astype(np.uint8)
                a, b = rng.integers(2, 6, 2)
                if k == 0:
                    image[a:a + 8, b:b + 8] = 220
                elif k == 1:
                    image[:, b + 3:b + 7] = 220
                else:
                    image[a + 3:a + 7, :] = 220
                images.append(image)
                labels.append(k)
        arrays[f"x_{split}"], arrays[f"y_{split}"] = np.stack(images), np.array(labels)
    np.savez(path, class_names=np.array(CLASSES), **arrays)
    return path


def save_judge(path: Path, size: int = 16) -> Path:
    """A tiny classifier of the three classes (untrained, seed 0): a judge for the Frechet distance."""
    import keras

    from foveal.models import ModelCard, save_model

    keras.utils.set_random_seed(0)
    inputs = keras.Input((size, size, 1))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Conv2D(4, 3, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(8, activation="relu")(x)
    out = keras.layers.Dense(len(CLASSES), activation="softmax")(x)
    card = ModelCard(architecture="tiny", class_names=list(CLASSES), input_shape=(size, size, 1))
    save_model(keras.Model(inputs, out), path, card)
    return path
