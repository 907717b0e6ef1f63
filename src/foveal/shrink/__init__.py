"""Make models smaller: magnitude pruning with a sparsity schedule, and knowledge distillation."""

from foveal._lazy import lazy_getattr

_LAZY = {
    "DistillationLoss": "foveal.shrink.distill", "Distiller": "foveal.shrink.distill",
    "HardLabelAccuracy": "foveal.shrink.distill", "logits_model": "foveal.shrink.distill",
    "with_teacher_targets": "foveal.shrink.distill",
    "MagnitudePruning": "foveal.shrink.prune", "PolynomialSparsity": "foveal.shrink.prune",
    "prune_model": "foveal.shrink.prune", "prune_during_fit": "foveal.shrink.prune",
    "sparsity_report": "foveal.shrink.prune",
}


__getattr__ = lazy_getattr("foveal.shrink", _LAZY)


__all__ = list(_LAZY)
