"""Two domains' feature vectors side by side in 2-D: the "before and after adaptation" picture.

:func:`feature_picture` draws, for each panel (e.g. a source-only model and an adapted one), the
source and the target feature vectors projected to two dimensions by PCA or t-SNE (scikit-learn),
as in figure 4 of Ganin et al., "Domain-Adversarial Training of Neural Networks", JMLR 17 (2016):
features that a domain-adapted network makes alike mix the two colours. Used by ``foveal adapt``
(classifier features) and ``foveal detect train --adapt-target`` (the backbone map, pooled).

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> png = feature_picture({"before": (rng.normal(size=(20, 8)), rng.normal(size=(20, 8)) + 3)}, "pca")
    >>> png[:4] == b"\\x89PNG"
    True
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from foveal.visualize.plots import _finish, _new_figure

PROJECTIONS = ("pca", "tsne")


def project(features: np.ndarray, how: str, seed: int) -> np.ndarray:
    """(N, 2) coordinates of ``features`` by PCA or t-SNE (scikit-learn)."""
    if how == "tsne":
        from sklearn.manifold import TSNE

        return TSNE(n_components=2, init="pca", random_state=seed, perplexity=min(30.0, len(features) / 4)
                    ).fit_transform(features)
    from sklearn.decomposition import PCA

    return PCA(n_components=2, random_state=seed).fit_transform(features)


def feature_picture(panels: Mapping[str, tuple[np.ndarray, np.ndarray]], how: str, seed: int = 0) -> bytes:
    """PNG: for each ``title -> (source features, target features)``, a 2-D scatter of both
    (each panel projected on its own)."""
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


__all__ = ["PROJECTIONS", "feature_picture", "project"]
