"""Architectures (registered by name), the model builder and self-describing model files."""

from foveal.models import classification  # noqa: F401  registers the architectures
from foveal.models.build import add_weight_penalty, build_model
from foveal.models.io import ModelCard, load_model, read_card, save_model
from foveal.models.registry import MODELS

__all__ = ["MODELS", "ModelCard", "add_weight_penalty", "build_model", "load_model", "read_card", "save_model"]
