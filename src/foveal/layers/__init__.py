"""Reusable Keras layers, registered as serializable so ``.keras`` files load in safe mode."""

from foveal.layers.preprocess import PREPROCESSING_MODES, Preprocess

__all__ = ["PREPROCESSING_MODES", "Preprocess"]
