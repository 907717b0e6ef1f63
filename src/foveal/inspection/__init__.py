"""Looking inside a model: per-layer summary with FLOPs, receptive fields, memory budget.

Pictures of what a network computes (first-layer filters, feature maps, Grad-CAM) live in
:mod:`foveal.visualize`; ``foveal inspect`` (:mod:`foveal.inspection.cli`) puts it all together.
The names below are imported lazily, so building the command line parser (which imports
:mod:`foveal.inspection.cli`) does not import Keras.

Example:
    >>> from foveal.inspection import summarize, receptive_fields, memory_budget
    >>> from foveal.models import build_model
    >>> model = build_model("lenet5")
    >>> receptive_fields(model)[5].receptive_field, memory_budget(model)["parameters"]
    ((16, 16), 61706)
"""

from __future__ import annotations

from foveal._lazy import lazy_getattr

_LAZY = {
    "BYTES_PER_MB": "foveal.inspection.memory",
    "format_memory": "foveal.inspection.memory",
    "memory_budget": "foveal.inspection.memory",
    "ReceptiveField": "foveal.inspection.receptive_field",
    "receptive_fields": "foveal.inspection.receptive_field",
    "FLOPS_CONVENTION": "foveal.inspection.summary",
    "LayerInfo": "foveal.inspection.summary",
    "format_summary": "foveal.inspection.summary",
    "summarize": "foveal.inspection.summary",
    "totals": "foveal.inspection.summary",
}


__getattr__ = lazy_getattr("foveal.inspection", _LAZY)


__all__ = sorted(_LAZY)
