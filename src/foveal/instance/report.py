"""The single-file HTML report of an instance segmentation run or evaluation.

Summary, training curves (the engine's history: each loss and the validation mask AP50), COCO
box and mask AP side by side, and test images with their predicted masks and boxes (red) over
the true boxes (green), in the same report frame as every other task
(:func:`foveal.visualize.report.write_classification_report`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from foveal.instance.scoring import ImageInstances


def example_grid(data: Any, instances: Sequence[ImageInstances], count: int, channels: int = 3,
                 size: int = 200) -> tuple[np.ndarray, list[str]] | None:
    """The first ``count`` images with their instances drawn, and captions."""
    from PIL import Image, ImageOps

    from foveal.instance.predict import draw_instances
    from foveal.prediction import example_thumbnails

    def draw(i: int, image: np.ndarray) -> tuple[np.ndarray, str]:
        drawn = draw_instances(image, instances[i], data.class_names, true_boxes=data.boxes[i])
        return (np.asarray(ImageOps.pad(Image.fromarray(drawn), (size, size), color="black")),
                f"{len(instances[i])} found / {len(data.boxes[i])} true")

    return example_thumbnails(data, count if instances else 0, channels, draw)


def write_instance_report(path: str | Path, *, title: str, summary: dict[str, Any], config: dict[str, Any],
                          history: dict[str, list[float]] | None, data: Any | None,
                          instances: Sequence[ImageInstances] | None, metrics: dict[str, Any] | None,
                          count: int = 12) -> Path:
    """Write the report (see the module docstring); returns its path."""
    from markupsafe import Markup

    from foveal.visualize.plots import plot_image_grid
    from foveal.visualize.report import figure_section, write_task_report

    extra: list[tuple[str, Any]] = []
    if metrics is not None:
        names = list(metrics["box"])
        rows = "".join(Markup("<tr><td>{}</td><td>{}</td><td>{}</td></tr>").format(
            n, f"{metrics['box'][n]:.4f}", f"{metrics['mask'][n]:.4f}") for n in names)
        extra.append(("COCO box and mask AP (pycocotools' definitions)", Markup(
            "<table><tr><th>metric</th><th>box (bbox)</th><th>mask (segm)</th></tr>{}</table>"
            "<p>{} images, {} instances; AP on the detections scoring &ge; 0.001, at most 100 per image</p>").format(
                Markup(rows), metrics["num_images"], metrics["num_instances"])))
    if instances is not None and metrics is not None:
        instances = [d.above(metrics["score_threshold"]) for d in instances]
    grid = example_grid(data, instances, count) if data is not None and instances is not None else None
    if grid is not None:
        extra.append(figure_section("Example instances: predicted masks and boxes (red), true boxes (green)",
                                    plot_image_grid(grid[0], grid[1], cols=4), "test images with masks"))
    return write_task_report(path, title=title, summary=summary, config=config, history=history,
                             extra_sections=extra)


__all__ = ["example_grid", "write_instance_report"]
