"""Generative models of images: a convolutional VAE, DCGAN and a class-conditional GAN.

``foveal generate train|evaluate|predict`` and this package's functions train them through the
run engine (each model owns its ``train_step``), score them (negative ELBO in nats,
classifier-space Frechet and kernel distances, requested-class accuracy, Inception FID with
user-supplied weights) and draw samples. See :mod:`.models`, :mod:`.quality`, :mod:`.task`.

Example:
    >>> from foveal.generative import train_generator, GenerateConfig  # doctest: +SKIP
    >>> result = train_generator(GenerateConfig(data="mnist", model="cgan", epochs=5))  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

from foveal.generative.config import GenerateConfig
from foveal.tasks import trainer

train_generator = trainer("generate", "train_generator", "a generative model")


def __getattr__(name: str) -> Any:
    lazy = {"evaluate_generator": "scoring", "write_samples": "sampling", "frechet_distance": "quality",
            "kernel_distance": "quality", "build_generative": "models"}
    if name in lazy:
        import importlib

        return getattr(importlib.import_module(f"foveal.generative.{lazy[name]}"), name)
    raise AttributeError(name)


__all__ = ["GenerateConfig", "build_generative", "evaluate_generator", "frechet_distance", "kernel_distance",
           "train_generator", "write_samples"]
