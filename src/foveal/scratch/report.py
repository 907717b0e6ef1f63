"""The NumPy-vs-Keras part of a scratch run's report: overlaid curves and their differences.

The page itself is foveal's classification report (:mod:`foveal.visualize.report`); this module
draws the comparison figure with the same plotting helpers and builds the extra section.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
from markupsafe import Markup, escape
from matplotlib.ticker import MaxNLocator

from foveal.visualize.plots import _finish, _new_figure
from foveal.visualize.report import png_data_uri

CURVES = ("loss", "accuracy", "val_loss", "val_accuracy")


def max_differences(numpy_history: Mapping[str, Sequence[float]],
                    keras_history: Mapping[str, Sequence[float]]) -> dict[str, float]:
    """Largest |NumPy - Keras| over the epochs, per curve both histories have."""
    return {key: float(np.max(np.abs(np.subtract(numpy_history[key], keras_history[key]))))
            for key in CURVES if key in numpy_history and key in keras_history}


def plot_twin_curves(numpy_history: Mapping[str, Sequence[float]],
                     keras_history: Mapping[str, Sequence[float]]) -> bytes:
    """Loss and accuracy of both networks overlaid, and |difference| per epoch (log scale); PNG bytes."""
    fig = _new_figure(13.8, 3.4)
    axes = fig.subplots(1, 3)
    styles = {"numpy": ("-", 2.6, 0.45), "keras": ("--", 1.4, 1.0)}
    colors = {"": "#1f77b4", "val_": "#ff7f0e"}
    for ax, base in zip(axes[:2], ("loss", "accuracy")):
        for prefix, color in colors.items():
            for who, history in (("numpy", numpy_history), ("keras", keras_history)):
                key = prefix + base
                if key not in history:
                    continue
                values = np.asarray(history[key], dtype=np.float64)
                style, width, alpha = styles[who]
                split = "validation" if prefix else "train"
                ax.plot(np.arange(1, len(values) + 1), values, style, color=color, linewidth=width, alpha=alpha,
                        label=f"{'NumPy' if who == 'numpy' else 'Keras'} {split}")
        ax.set_title(base)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8, frameon=False)
    ax = axes[2]
    for key in CURVES:
        if key in numpy_history and key in keras_history:
            diff = np.abs(np.subtract(numpy_history[key], keras_history[key]))
            ax.semilogy(np.arange(1, len(diff) + 1), np.maximum(diff, 1e-17), marker="o", markersize=3, label=key)
    ax.set_title("|NumPy - Keras| (0 drawn at 1e-17)")
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, frameon=False)
    return _finish(fig, None)


def twin_section(numpy_history: Mapping[str, Sequence[float]], keras_history: Mapping[str, Sequence[float]],
                 facts: Mapping[str, str]) -> Markup:
    """HTML body of the "NumPy network vs Keras twin" section: figure, facts and differences."""
    rows = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in facts.items())
    rows += "".join(f"<tr><th>max |NumPy - Keras| {escape(k)}</th><td>{v:.3g}</td></tr>"
                    for k, v in max_differences(numpy_history, keras_history).items())
    image = png_data_uri(plot_twin_curves(numpy_history, keras_history))
    return Markup(f'<img src="{image}" alt="NumPy and Keras training curves" style="max-width:100%">'
                  f"<table>{rows}</table>")
