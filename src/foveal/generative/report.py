"""The single-file HTML report of a generative run or evaluation.

Built on :func:`foveal.visualize.report.write_classification_report` (summary, training
curves, resolved configuration) with the generative sections: the scores (negative ELBO in
nats, classifier-space Frechet and kernel distances, requested-class accuracy, Inception FID),
the figures (samples, reconstructions, the 2-D latent manifold) and the fixed-noise grids of
the epochs, so one page shows how the samples changed during training.

Example:
    >>> write_generative_report("run/report.html", title="run", summary={}, config={}, history=None,
    ...                         metrics=metrics, figures={"samples": grid})  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

CAPTIONS = {
    "samples": ("Samples", "Images decoded from random latent codes (a conditional model: one row per class)."),
    "reconstructions": ("Reconstructions", "Each row of held-out images is followed by its reconstruction "
                        "(the decoded posterior mean)."),
    "manifold": ("2-D latent manifold", "Images decoded from an evenly covered 2-D latent space: the grid's "
                 "coordinates are standard normal quantiles (inverse CDF) of evenly spaced probabilities, so each "
                 "cell holds the same prior mass."),
}

SCORES = [("neg_elbo", "negative ELBO (nats per image, lower is better)"),
          ("reconstruction_nll", "reconstruction NLL (nats per image)"), ("kl", "KL to the prior (nats per image)"),
          ("frechet", "classifier-space Frechet distance (lower is better)"),
          ("kernel_distance", "classifier-space kernel distance, KID (lower is better)"),
          ("class_accuracy", "requested-class accuracy (the judge recognises the class asked for)"),
          ("inception_fid", "Inception FID"), ("inception_kid", "Inception KID"),
          ("compared_images", "real and generated images compared"), ("judge", "judge classifier")]


def _scores_table(metrics: dict[str, Any]):
    from markupsafe import Markup, escape

    rows = []
    for key, label in SCORES:
        value = metrics.get(key)
        if value is None:
            continue
        shown = f"{value:.4f}" if isinstance(value, float) else str(value)
        rows.append(f"<tr><td>{escape(label)}</td><td class=\"num\">{escape(shown)}</td></tr>")
    per_class = metrics.get("class_accuracy_per_class") or {}
    if per_class:
        cells = ", ".join(f"{escape(k)} {v:.3f}" for k, v in per_class.items())
        rows.append(f"<tr><td>requested-class accuracy per class</td><td>{cells}</td></tr>")
    note = ("<p>The classifier-space distances use the penultimate-layer features of a classifier trained on the "
            "same data (not InceptionV3): compare them only between models judged by the same classifier file.</p>")
    return Markup(f"<table><tbody>{''.join(rows)}</tbody></table>{note}")


def _figure(pixels: np.ndarray, alt: str, caption: str, width: int = 480):
    from markupsafe import Markup

    from foveal.generative.sampling import png_bytes
    from foveal.visualize.report import png_data_uri

    uri = png_data_uri(png_bytes(pixels))
    return Markup('<figure><img src="{}" alt="{}" style="image-rendering:pixelated;width:{}px;max-width:100%">'
                  '<figcaption>{}</figcaption></figure>').format(uri, alt, width, caption)


def _epoch_gallery(paths: Sequence[Path], most: int = 8):
    from markupsafe import Markup
    from PIL import Image

    if not paths:
        return None
    picks = sorted({round(i) for i in np.linspace(0, len(paths) - 1, min(most, len(paths)))})
    parts = []
    for i in picks:
        pixels = np.asarray(Image.open(paths[i]))
        parts.append(_figure(pixels, f"epoch {i + 1}", f"after epoch {paths[i].stem.split('_')[-1].lstrip('0')}",
                             width=240))
    return Markup('<div style="display:flex;flex-wrap:wrap;gap:1rem">') + Markup("").join(parts) + Markup("</div>")


def write_generative_report(path: str | Path, *, title: str, summary: dict[str, Any], config: dict[str, Any],
                            history: dict[str, list[float]] | None, metrics: dict[str, Any] | None,
                            figures: dict[str, np.ndarray], epoch_grids: Sequence[Path] = ()) -> Path:
    """Write the report (see the module docstring); returns its path."""
    from foveal.visualize.report import write_classification_report

    extra: list[tuple[str, Any]] = []
    if metrics:
        extra.append(("Scores", _scores_table(metrics)))
    for name in ("samples", "reconstructions", "manifold"):
        if name in figures:
            heading, caption = CAPTIONS[name]
            extra.append((heading, _figure(figures[name], heading, caption)))
    gallery = _epoch_gallery(list(epoch_grids))
    if gallery is not None:
        extra.append(("Fixed-noise samples by epoch", gallery))
    curves = {k: v for k, v in (history or {}).items() if k not in ("epoch_seconds", "epochs_done")}
    return write_classification_report(path, title=title, summary=summary, config=config, history=curves or None,
                                       metrics=None, extra_sections=extra)


__all__ = ["write_generative_report"]
