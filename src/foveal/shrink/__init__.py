"""Make models smaller: magnitude pruning with a sparsity schedule, and knowledge distillation."""

_LAZY = {
    "DistillationLoss": "foveal.shrink.distill", "Distiller": "foveal.shrink.distill",
    "HardLabelAccuracy": "foveal.shrink.distill", "logits_model": "foveal.shrink.distill",
    "with_teacher_targets": "foveal.shrink.distill",
    "MagnitudePruning": "foveal.shrink.prune", "PolynomialSparsity": "foveal.shrink.prune",
    "prune_model": "foveal.shrink.prune", "sparsity_report": "foveal.shrink.prune",
}


def __getattr__(name: str):
    """Import the Keras-backed parts only when used (keeps `foveal --help` instant)."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'foveal.shrink' has no attribute {name!r}")


__all__ = list(_LAZY)
