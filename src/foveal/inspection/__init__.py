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

from foveal._lazy import lazy_exports

__getattr__, __all__ = lazy_exports("foveal.inspection", {
    ".memory": "BYTES_PER_MB format_memory memory_budget",
    ".receptive_field": "ReceptiveField receptive_fields",
    ".summary": "FLOPS_CONVENTION LayerInfo format_summary summarize totals",
})
