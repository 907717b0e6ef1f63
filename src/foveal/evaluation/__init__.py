"""Evaluation of trained models: metrics computed from labels and predicted probabilities."""

from foveal.evaluation.classification import (
    classification_metrics,
    format_metrics_table,
    top_k_predictions,
)

__all__ = ["classification_metrics", "format_metrics_table", "top_k_predictions"]
