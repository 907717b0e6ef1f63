"""Plots (PNG bytes) and the self-contained HTML report of a classification run."""

from foveal.visualize.filters import plot_feature_maps, plot_first_layer_filters
from foveal.visualize.gradcam import gradcam, overlay_heatmap, plot_gradcam
from foveal.visualize.plots import (
    plot_confusion_matrix,
    plot_history,
    plot_image_grid,
    plot_per_class_bars,
)
from foveal.visualize.report import png_data_uri, write_classification_report

__all__ = [
    "gradcam",
    "overlay_heatmap",
    "plot_feature_maps",
    "plot_first_layer_filters",
    "plot_gradcam",
    "plot_confusion_matrix",
    "plot_history",
    "plot_image_grid",
    "plot_per_class_bars",
    "png_data_uri",
    "write_classification_report",
]
