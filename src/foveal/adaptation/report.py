"""The pictures of an adaptation run: accuracy per epoch of both models, and the features.

* :func:`plot_side_by_side`: source and target accuracy per epoch of the adapted model (solid)
  and of the source-only model trained in the same run (dashed).
* :func:`feature_picture` (from :mod:`foveal.visualize.features`, shared with the detectors'
  adaptation report): source and target feature vectors projected to 2-D (PCA, or t-SNE
  through scikit-learn), one panel per model: before adaptation (source-only) and after, the
  picture of the DANN paper's figure 4. Well-adapted features mix the two colours.

Example:
    >>> png = plot_side_by_side({"dann": hist, "source-only": base})  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from foveal.visualize.features import feature_picture, project
from foveal.visualize.plots import _finish, _new_figure

CURVES = (("val_accuracy", "source validation"), ("source_accuracy", "source test"),
          ("target_accuracy", "target test"))


def plot_side_by_side(histories: Mapping[str, Mapping[str, Sequence[float]]]) -> bytes:
    """PNG: accuracy per epoch, one colour per curve kind, one line style per model."""
    fig = _new_figure(7.5, 4.2)
    ax = fig.add_subplot(1, 1, 1)
    colours = {"val_accuracy": "#1f77b4", "source_accuracy": "#2ca02c", "target_accuracy": "#d62728"}
    for (model, history), style in zip(histories.items(), ("-", "--", ":")):
        for key, label in CURVES:
            values = [float(v) for v in history.get(key, [])]
            if values:
                ax.plot(range(1, len(values) + 1), values, style, color=colours[key], marker="o", markersize=3,
                        label=f"{label} ({model})")
    ax.set_xlabel("epoch")
    ax.set_ylabel("accuracy")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return _finish(fig, None)


def comparison_table(rows: Sequence[tuple[str, Any, Any]]):
    """An HTML table (Markup) of ``(what, adapted, source-only)`` rows."""
    from markupsafe import Markup, escape

    def cell(value: Any) -> str:
        return "n/a" if value is None else f"{value:.4f}" if isinstance(value, float) else str(escape(value))

    body = "".join(f"<tr><td>{escape(what)}</td><td class=\"num\">{cell(a)}</td><td class=\"num\">{cell(b)}</td></tr>"
                   for what, a, b in rows)
    return Markup("<table><thead><tr><th></th><th class=\"num\">adapted</th><th class=\"num\">source-only</th>"
                  f"</tr></thead><tbody>{body}</tbody></table>")


__all__ = ["comparison_table", "feature_picture", "plot_side_by_side", "project"]
