"""Named training recipes: presets of :class:`~foveal.config.TrainConfig` options.

Example:
    >>> from foveal.config import TrainConfig
    >>> cfg = resolve_recipe(TrainConfig(recipe="fast", batch_size=64))
    >>> cfg.batch_size, cfg.schedule
    (64, 'one-cycle')
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from foveal.errors import ConfigError
from foveal.registry import did_you_mean


@dataclass(frozen=True)
class Recipe:
    """A named preset: ``options`` are TrainConfig field values, ``description`` says why."""

    description: str
    options: dict[str, Any] = field(default_factory=dict)


# the airbench28 network of the fast-mnist / fast-fashion recipes (recipes/fast-training.md): batch
# norm through TensorFlow's fused kernel, 2x the training steps/s of Keras' unfused layer under bfloat16
_AIRBENCH28: dict[str, Any] = {"stem": 0, "widths": [32, 64, 128], "fused_bn": True}


def _fast28(**options: Any) -> dict[str, Any]:
    """The options fast-mnist and fast-fashion share, with ``options`` on top."""
    return dict(model="airbench28", model_options=dict(_AIRBENCH28), optimizer="adamw", learning_rate=4e-3,
                schedule="one-cycle", batch_size=256, weight_decay=5e-4, label_smoothing=0.1,
                mixed_precision="bfloat16", cache="memory", deterministic=False, tensorboard=False, **options)


RECIPES: dict[str, Recipe] = {
    "fast": Recipe(
        "time-to-accuracy: one-cycle AdamW at peak 4e-3, batch 256, label smoothing 0.1, light "
        "augmentation, no op-determinism or TensorBoard overhead; float32, as bfloat16 measured "
        "only 1.02x as fast end to end (Smith & Topin 2017; see recipes/fast-training.md)",
        dict(optimizer="adamw", learning_rate=4e-3, schedule="one-cycle", batch_size=256,
             label_smoothing=0.1, augment="light", weight_decay=5e-4, deterministic=False,
             tensorboard=False),
    ),
    "airbench": Recipe(
        "CIFAR-sized images, airbench94 (Jordan 2024, arXiv:2404.00498): airbench with a whitened "
        "first layer (bias trained 3 epochs), SGD-Nesterov (momentum 0.85) at peak 1.5 for batch 1024 "
        "with the batch-norm shifts 64x faster, weight decay 0.0089, the paper's triangular schedule, "
        "Lookahead from epoch 3, label smoothing 0.2, alternating flips + 2-pixel crops, 10 epochs, "
        "bfloat16, flip-shift test-time augmentation (see recipes/fast-training.md#cifar-10-airbench)",
        dict(model="airbench", model_options={"whiten": True}, optimizer="sgd", nesterov=True,
             momentum=0.85, learning_rate=1.5, bias_lr_scale=64.0, weight_decay=0.0089, epochs=10,
             schedule="triangle", batch_size=1024, label_smoothing=0.2, lookahead=True, augment="altflip,crop=2",
             mixed_precision="bfloat16", tta="flip-shift", cache="memory", deterministic=False,
             tensorboard=False),
    ),
    "fast-mnist": Recipe(
        "28x28 digits (MNIST) in one epoch: the airbench28 CNN, one-cycle AdamW at peak 4e-3, batch "
        "256, label smoothing 0.1, no augmentation (flips would mirror the glyphs), bfloat16; 99.3% "
        "test accuracy after 1 epoch (see recipes/fast-training.md#mnist-and-fashion-mnist-airbench28)",
        _fast28(epochs=1, augment="none", tta="none"),
    ),
    "fast-fashion": Recipe(
        "28x28 clothing (Fashion-MNIST) in two epochs: fast-mnist's airbench28 and optimizer with "
        "random horizontal flips and mirror-image test-time views; 92% test accuracy after 2 epochs "
        "(see recipes/fast-training.md#mnist-and-fashion-mnist-airbench28)",
        _fast28(epochs=2, augment="flip", tta="flip"),
    ),
    "texts": Recipe(
        "the books' defaults (Géron ch. 14): Nadam at 1e-3, batch 32, constant rate, "
        "no augmentation, no label smoothing",
        dict(optimizer="nadam", learning_rate=1e-3, schedule="constant", batch_size=32,
             augment="none", label_smoothing=0.0),
    ),
    "finetune": Recipe(
        "transfer learning from ImageNet weights: frozen base for --epochs, then the whole "
        "network at a 10x lower rate for 5 epochs, cosine schedule, frozen batch norm",
        dict(weights="imagenet", freeze="base", fine_tune_epochs=5, optimizer="adam",
             learning_rate=1e-3, schedule="cosine", freeze_batchnorm=True, augment="standard"),
    ),
}


def recipe_help() -> str:
    """One line per recipe, for ``foveal train --help``."""
    return "; ".join(f"{name}: {r.description}" for name, r in RECIPES.items())


def check_recipe(name: str | None) -> None:
    """Raise ConfigError for an unknown recipe name, suggesting the closest one."""
    if name is None or name in RECIPES:
        return
    raise ConfigError(f"unknown recipe {name!r}; recipes: {', '.join(RECIPES)}",
                      hint=did_you_mean(name, RECIPES, n=1, cutoff=0.6, quote=True) or "see `foveal train --help`")


def resolve_recipe(cfg: Any, explicit: set[str] | frozenset[str] | None = None) -> Any:
    """A validated copy of ``cfg`` with its recipe's options filled in where not in ``explicit``
    (default: the fields ``cfg`` was built with); ``cfg`` itself when it names no recipe."""
    name = getattr(cfg, "recipe", None)
    if name is None:
        return cfg
    check_recipe(name)
    explicit = getattr(cfg, "explicit_options", frozenset()) if explicit is None else explicit
    changes = {k: v for k, v in RECIPES[name].options.items() if k not in explicit}
    resolved = dataclasses.replace(cfg, **changes)
    resolved.validate()
    return resolved
