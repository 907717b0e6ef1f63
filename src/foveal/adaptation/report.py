"""The pictures of an adaptation run: accuracy per epoch of both models, and the features.

* :func:`plot_side_by_side`: source and target accuracy per epoch of the adapted model (solid)
  and of the source-only model trained in the same run (dashed).
* :func:`feature_picture`: source and target feature vectors projected to 2-D (PCA, or t-SNE
  through scikit-learn), one panel per model: before adaptation (source-only) and after, the
  picture of the DANN paper's figure 4. Well-adapted features mix the two colours.

Example:
    >>> png = plot_side_by_side({"dann": hist, "source-only": base})  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

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


def project(features: np.ndarray, how: str, seed: int) -> np.ndarray:
    """(N, 2) coordinates of ``features`` by PCA or t-SNE (scikit-learn)."""
    if how == "tsne":
        from sklearn.manifold import TSNE

        return TSNE(n_components=2, init="pca", random_state=seed, perplexity=min(30.0, len(features) / 4)
                    ).fit_transform(features)
    from sklearn.decomposition import PCA

    return PCA(n_components=2, random_state=seed).fit_transform(features)


def feature_picture(panels: Mapping[str, tuple[np.ndarray, np.ndarray]], how: str, seed: int = 0) -> bytes:
    """PNG: for each ``title -> (source features, target features)``, a 2-D scatter of both."""
    fig = _new_figure(4.2 * len(panels), 4.2)
    for i, (title, (source, target)) in enumerate(panels.items()):
        ax = fig.add_subplot(1, len(panels), i + 1)
        xy = project(np.concatenate([source, target]).astype(np.float64), how, seed)
        n = len(source)
        ax.scatter(xy[:n, 0], xy[:n, 1], s=5, alpha=0.5, color="#1f77b4", label="source")
        ax.scatter(xy[n:, 0], xy[n:, 1], s=5, alpha=0.5, color="#d62728", label="target")
        ax.set_title(title, fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.legend(fontsize=8, markerscale=2)
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
