"""The detection report: one HTML page (:mod:`foveal.visualize.report`) with the training curves,
the metrics, each class's precision-recall curve and test images with predicted (red) and true
(green) boxes.

Example:
    >>> write_detection_report("run/report.html", title="raccoon", summary={}, config={},
    ...                        history=None, data=None, detections=None, curves=None,
    ...                        metrics=None)  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

if TYPE_CHECKING:
    from foveal.data.boxes import BoxedImages
    from foveal.detection.scoring import ImageDetections
    from foveal.evaluation.detection import ClassCurve


def plot_pr_curves(curves: Sequence[ClassCurve], class_names: Sequence[str], path: str | Path | None = None) -> bytes:
    """Precision against recall for each class (VOC matching at IoU 0.5), AP in the legend."""
    from foveal.evaluation.detection import voc_ap
    from foveal.visualize.plots import _finish, _new_figure

    fig = _new_figure(5.5, 4.2)
    ax = fig.add_subplot(1, 1, 1)
    for name, curve in zip(class_names, curves):
        if not curve.num_gt:
            continue
        recall, precision, _ = curve.curve()
        # The monotone envelope is what AP integrates; the raw curve is drawn faintly under it.
        envelope = np.maximum.accumulate(precision[::-1])[::-1] if len(precision) else precision
        line, = ax.plot(recall, envelope, label=f"{name} (AP50 {voc_ap(recall, precision):.3f})")
        ax.plot(recall, precision, color=line.get_color(), alpha=0.3, linewidth=0.8)
    ax.set(xlim=(0, 1.0), ylim=(0, 1.02), xlabel="recall", ylabel="precision", title="precision-recall at IoU 0.5")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="lower left")
    return _finish(fig, path)


def detection_thumbnail(image: np.ndarray, detections: ImageDetections, true_boxes: np.ndarray,
                        class_names: Sequence[str], size: int = 200) -> np.ndarray:
    """``image`` with true boxes (green) and detections (red, ``class score``), padded square."""
    from PIL import Image, ImageOps

    from foveal.visualize.draw import PRED_COLOR, TRUE_COLOR, draw_boxes

    canvas = draw_boxes(image, true_boxes, color=TRUE_COLOR) if len(true_boxes) else np.asarray(image)
    labels = [f"{class_names[int(c)]} {s:.2f}" if len(class_names) > 1 else f"{s:.2f}"
              for c, s in zip(detections.classes, detections.scores)]
    canvas = draw_boxes(canvas, detections.boxes, labels=labels, color=PRED_COLOR)
    return np.asarray(ImageOps.pad(Image.fromarray(canvas), (size, size), color="black"))


def example_grid(data: BoxedImages, detections: Sequence[ImageDetections], count: int,
                 channels: int = 3) -> tuple[np.ndarray, list[str]] | None:
    """The first ``count`` images with their boxes drawn, and captions."""
    from foveal.prediction import example_thumbnails

    return example_thumbnails(data, count if detections else 0, channels, lambda i, image: (
        detection_thumbnail(image, detections[i], data.boxes[i], data.class_names),
        f"{len(detections[i])} det. / {len(data.boxes[i])} true"))


def write_detection_report(path: str | Path, *, title: str, summary: dict[str, Any], config: dict[str, Any],
                           history: dict[str, list[float]] | None, data: BoxedImages | None,
                           detections: Sequence[ImageDetections] | None, curves: Sequence[ClassCurve] | None,
                           metrics: dict[str, Any] | None, count: int = 12,
                           first: Sequence[tuple[str, Any]] = ()) -> Path:
    """Write the single-file HTML report of a detection run or evaluation; ``first``: sections
    shown before the others (``--adapt-target``'s table and figure)."""
    from markupsafe import Markup

    from foveal.visualize.plots import plot_image_grid
    from foveal.visualize.report import figure_section, write_task_report

    extra: list[tuple[str, Any]] = list(first)
    if metrics is not None:
        rows = "".join(
            Markup("<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>").format(
                name, "n/a" if r["ap50"] is None else f"{r['ap50']:.4f}", f"{r['precision']:.3f}",
                f"{r['recall']:.3f}", r["num_gt"], r["num_detections"])
            for name, r in metrics["per_class"].items())
        coco = "".join(Markup("<tr><td>{}</td><td>{}</td></tr>").format(k, f"{v:.4f}")
                       for k, v in metrics["coco"].items())
        extra.append(("Per-class results (VOC, IoU 0.5)", Markup(
            "<table><tr><th>class</th><th>AP50</th><th>precision</th><th>recall</th><th>true boxes</th>"
            "<th>detections</th></tr>{}</table><p>AP on the detections scoring &ge; {}; precision and recall "
            "at score &ge; {} (the display threshold)</p>").format(
                Markup(rows), metrics.get("ap_score_threshold", metrics["score_threshold"]),
                metrics["score_threshold"])))
        extra.append(("COCO metrics (pycocotools' definitions)", Markup("<table>{}</table>").format(Markup(coco))))
    if curves is not None and data is not None:
        extra.append(figure_section("Precision-recall curves", plot_pr_curves(curves, data.class_names),
                                    "precision-recall curves"))
    if detections is not None and metrics is not None:  # draw what a user of the display threshold sees
        detections = [d.above(metrics["score_threshold"]) for d in detections]
    grid = example_grid(data, detections, count) if data is not None and detections is not None else None
    if grid is not None:
        extra.append(figure_section("Example detections: predicted red, true green",
                                    plot_image_grid(grid[0], grid[1], cols=4), "test images with boxes"))
    return write_task_report(path, title=title, summary=summary, config=config, history=history,
                             extra_sections=extra)

