"""The model registry: architecture name -> builder function plus metadata.

A builder has the signature ``builder(x, *, num_classes, include_top, **options) -> tensor``:
it receives the already-preprocessed input tensor and returns the output tensor, so every
model is one flat functional graph (good for inspection, Grad-CAM and surgery). Metadata keys:
``input_shape`` (default), ``preprocessing`` (default mode), ``paper``, ``description`` and
``smoke``: a small but complete build for quick checks, ``{"input_shape": ..., "options": {...}}``
plus ``"slow": True`` when even that takes seconds (tests/models/test_every_architecture.py
builds every architecture with it; one without ``smoke`` is checked at full size, in the slow
tier); optionally ``adapt_features``, the layer whose output domain adaptation
(:mod:`foveal.adaptation`) acts on by default. Feature maps by stride are not metadata: :func:`foveal.models.pyramid.feature_pyramid`
measures them on the built graph.
"""

from __future__ import annotations

from foveal.registry import Registry

MODELS: Registry = Registry("model")
