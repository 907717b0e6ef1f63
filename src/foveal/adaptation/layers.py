"""The gradient-reversal layer and DANN's schedules, now in :mod:`foveal.layers.reversal` (shared
with the detectors' adaptation); importable from here as before."""

from foveal.layers.reversal import DannAnnealing, GradientReversal, domain_classifier, reversal_weight, reverse_gradient

__all__ = ["DannAnnealing", "GradientReversal", "domain_classifier", "reversal_weight", "reverse_gradient"]
