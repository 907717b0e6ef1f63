"""A tiny untrained enhancement model saved with its card, for the export and serve tests."""

from __future__ import annotations

from pathlib import Path


def save_enhancer(path: Path, *, scale: int = 2, channels: int = 3, tile: int = 32) -> Path:
    """An ESPCN (width 8) at ``scale``, built from seed 0, with the card ``foveal enhance train``
    writes (scale, input multiple, tile size); ``tile`` is small so that tests reach the tiling."""
    import keras

    from foveal.enhancement.models import build_enhancer
    from foveal.models import ModelCard, save_model

    keras.utils.set_random_seed(0)
    model = build_enhancer("espcn", channels=channels, scale=scale, options={"width": 8})
    card = ModelCard(architecture="espcn", class_names=["image"], input_shape=(16, 16, channels), task="enhance",
                     keep_aspect=False, training={"scale": scale, "multiple": 1, "tile": tile, "fixed_size": None,
                                                  "baseline": "bicubic", "corruption": "none"})
    save_model(model, path, card)
    return path
