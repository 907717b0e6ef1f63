"""The model registry: architecture name -> builder function plus metadata.

A builder has the signature ``builder(x, *, num_classes, include_top, **options) -> tensor``:
it receives the already-preprocessed input tensor and returns the output tensor, so every
model is one flat functional graph (good for inspection, Grad-CAM and surgery). Metadata keys:
``input_shape`` (default), ``preprocessing`` (default mode), ``paper`` and ``description``.
"""

from __future__ import annotations

from foveal.registry import Registry

MODELS: Registry = Registry("model")
