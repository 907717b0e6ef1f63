"""The single-file HTML report of a segmentation run or evaluation: the task report's summary,
curves and configuration, with a per-class table, the pixel confusion matrix and example images
(image, true mask, predicted mask side by side).

Example:
    >>> write_segmentation_report("run/report.html", title="run", summary={}, config={},
    ...                           history=None, scores=scores, examples=examples)  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

THUMBNAIL = 192


def _fmt(value: Any) -> str:
    return "n/a" if value is None or (isinstance(value, float) and not np.isfinite(value)) else f"{value:.4f}"


def per_class_table(scores: dict[str, Any]):
    """The per-class rows of :func:`~.train.scores_to_metrics` output as an HTML table (Markup)."""
    from foveal.visualize.report import html_table

    rows = [[row["class"], *(_fmt(row[k]) for k in ("iou", "dice", "precision", "recall")),
             f"{row['pixels']:,}", f"{row['predicted_pixels']:,}"] for row in scores["per_class"]]
    return html_table(["class", "IoU", "Dice", "precision", "recall", "true pixels", "predicted pixels"], rows,
                      note=f"pixel accuracy {_fmt(scores['pixel_accuracy'])}, mean IoU {_fmt(scores['mean_iou'])}, "
                      f"mean Dice {_fmt(scores['mean_dice'])} over {scores['num_images']} image(s); a class absent "
                      "from both truth and prediction has no score (n/a) and is left out of the means.")


def example_grid(examples: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray, str]], colours: np.ndarray,
                 skip: Sequence[int], ignore_label: int) -> bytes:
    """A PNG grid: per example the image, the true mask over it and the predicted mask over it."""
    from foveal.visualize.draw import overlay_classes, thumbnail
    from foveal.visualize.plots import plot_image_grid

    tiles, titles = [], []
    for image, truth, predicted, title in examples:
        shown_truth = np.where(truth == ignore_label, len(colours), truth)  # ignored pixels unpainted
        for picture, caption in ((overlay_classes(image, np.zeros_like(truth), colours, alpha=0.0), title),
                                 (overlay_classes(image, shown_truth, colours, skip=skip), "true mask"),
                                 (overlay_classes(image, predicted, colours, skip=skip), "predicted")):
            tiles.append(thumbnail(picture, THUMBNAIL))
            titles.append(caption)
    return plot_image_grid(np.stack(tiles), titles, cols=6)


def legend(class_names: Sequence[str], colours: np.ndarray, skip: Sequence[int]):
    """Coloured class names as HTML (Markup)."""
    from markupsafe import Markup, escape

    parts = []
    for k, name in enumerate(class_names):
        r, g, b = (int(v) for v in colours[k])
        swatch = "transparent" if k in skip else f"rgb({r},{g},{b})"
        parts.append(f'<span style="display:inline-block;width:1em;height:1em;background:{swatch};'
                     f'border:1px solid #888;vertical-align:middle"></span> {escape(name)}')
    return Markup("<p>" + " &nbsp; ".join(parts) + "</p>")


def write_segmentation_report(
    path: str | Path,
    *,
    title: str,
    summary: dict[str, Any],
    config: dict[str, Any],
    history: dict[str, list[float]] | None,
    scores: dict[str, Any] | None,
    examples: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray, str]] = (),
    class_names: Sequence[str] = (),
    colours: np.ndarray | None = None,
    skip: Sequence[int] = (),
    ignore_label: int = 255,
) -> Path:
    """Write the report; ``scores``: :func:`~.train.scores_to_metrics` output or None; ``examples``:
    ``(image, true labels, predicted labels, caption)``; ``skip``: classes left unpainted."""
    from markupsafe import Markup

    from foveal.visualize.draw import default_palette
    from foveal.visualize.plots import plot_confusion_matrix
    from foveal.visualize.report import figure_section, write_task_report

    colours = default_palette(len(class_names)) if colours is None else colours
    extra: list[tuple[str, Any]] = []
    if scores is not None:
        extra.append(("Per-class IoU and Dice", per_class_table(scores)))
        cm = np.asarray(scores["confusion_matrix"])
        if cm.size and cm.sum():
            extra.append(figure_section("Pixel confusion matrix", plot_confusion_matrix(cm, list(class_names)),
                                        "pixel confusion matrix", before=Markup(
                                            "<p>Rows are true classes, columns predicted classes, counted over "
                                            "labelled pixels.</p>")))
    if examples:
        extra.append(figure_section("Example overlays: image, true mask, predicted mask",
                                    example_grid(examples, colours, skip, ignore_label), "example overlays",
                                    before=legend(class_names, colours, skip)))
    return write_task_report(path, title=title, summary=summary, config=config, history=history,
                             extra_sections=extra)
