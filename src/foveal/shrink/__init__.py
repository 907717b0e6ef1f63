"""Make models smaller: magnitude pruning with a sparsity schedule, and knowledge distillation."""

from foveal.shrink.distill import Distiller, logits_model
from foveal.shrink.prune import MagnitudePruning, PolynomialSparsity, prune_model, sparsity_report

__all__ = ["Distiller", "MagnitudePruning", "PolynomialSparsity", "logits_model", "prune_model", "sparsity_report"]
