"""The single-file HTML report of an enhancement run or evaluation.

Built on :func:`foveal.visualize.report.write_classification_report` (summary, curves,
configuration) with two sections: the scores of the model next to its baseline (the degraded
input, or bicubic upscaling) and strips of example images: the input (enlarged pixel by pixel
for super-resolution), the baseline, the model's output and the reference.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

STRIP = 224


def scores_table(metrics: dict[str, Any]):
    """Model, baseline and gain per measure, as HTML (Markup)."""
    from foveal.visualize.report import html_table

    rows = [[label, f"{metrics['model'][key]:.4f}", f"{metrics['baseline'][key]:.4f}", f"{metrics['gain'][key]:+.4f}"]
            for key, label in (("psnr", "PSNR (dB)"), ("ssim", "SSIM"), ("psnr_y", "PSNR on Y (dB)"),
                               ("ssim_y", "SSIM on Y")) if metrics["model"][key] is not None]
    return html_table(["measure", "model", metrics["baseline_name"], "gain"], rows,
                      note=f"{metrics['num_images']} image(s); x{metrics['scale']}; corruption {metrics['corruption']}; "
                      f"{metrics['border']} px cropped from each side before measuring; Y is BT.601 luma.")


def strip_grid(strips: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, str]], scale: int) -> bytes:
    """A PNG grid: per example the input, the baseline, the output and the reference."""
    from foveal.visualize.draw import thumbnail
    from foveal.visualize.plots import plot_image_grid

    tiles, titles = [], []
    names = ("input (pixels enlarged)" if scale > 1 else "input", "bicubic" if scale > 1 else "input",
             "enhanced", "reference")
    for *pictures, caption in strips:
        chosen = pictures if scale > 1 else [pictures[0], pictures[2], pictures[3]]
        labels = names if scale > 1 else (names[0], names[2], names[3])
        for picture, label in zip(chosen, labels):
            rgb = picture if picture.shape[-1] == 3 else np.repeat(picture, 3, axis=-1)
            tiles.append(thumbnail(rgb, STRIP))
            titles.append(f"{caption}\n{label}" if label.startswith("input") else label)
    return plot_image_grid(np.stack(tiles), titles, cols=4 if scale > 1 else 3)


def write_enhancement_report(path: str | Path, *, title: str, summary: dict[str, Any], config: dict[str, Any],
                             history: dict[str, list[float]] | None, metrics: dict[str, Any] | None,
                             strips: Sequence = ()) -> Path:
    """Write the report; returns its path."""

    from foveal.visualize.report import figure_section, write_task_report

    extra: list[tuple[str, Any]] = []
    if metrics is not None:
        extra.append(("Quality: model and baseline", scores_table(metrics)))
    if strips:
        scale = int((metrics or {}).get("scale", 1))
        extra.append(figure_section("Before, after, reference", strip_grid(strips, scale), "example strips"))
    return write_task_report(path, title=title, summary=summary, config=config, history=history,
                             extra_sections=extra)


__all__ = ["scores_table", "strip_grid", "write_enhancement_report"]
