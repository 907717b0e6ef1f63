"""Static PNG plots of training runs and evaluation results.

Every function draws on its own :class:`matplotlib.figure.Figure` attached to an Agg canvas,
returns the PNG bytes and, when given ``path``, also writes them there. The Agg canvas is chosen
per figure rather than with ``matplotlib.use`` and nothing goes through ``pyplot``: no display is
ever needed, no global figure list grows across calls, and the interactive backend of a notebook
that imports foveal is left untouched.
"""

from __future__ import annotations

import io
import math
import os
import textwrap
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator, PercentFormatter

from foveal.errors import FovealError
from foveal.training.runs import lower_is_better

DPI = 100
_LR_KEYS = ("learning_rate", "lr")
_COLORS = {"train": "#1f77b4", "val": "#ff7f0e", "lr": "#2ca02c"}


def _new_figure(width: float, height: float) -> Figure:
    """A figure of ``width`` x ``height`` inches bound to its own Agg canvas."""
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _finish(fig: Figure, path: str | os.PathLike[str] | None) -> bytes:
    """Render ``fig`` to PNG bytes (no timestamp/version metadata) and optionally save them."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    png = buffer.getvalue()
    if path is not None:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(png)
    return png


def _short(label: str, limit: int = 24) -> str:
    """``label`` cut to ``limit`` characters with an ellipsis, so long names keep axes readable."""
    label = str(label)
    return label if len(label) <= limit else label[: limit - 1] + "\u2026"


def _history_panels(history: dict[str, Sequence[float]]) -> list[tuple[str, list[str]]]:
    """Group history keys into panels: loss, accuracy, other metrics, then learning rate."""
    bases: list[str] = []
    for key in history:
        if key in _LR_KEYS:
            continue
        base = key[4:] if key.startswith("val_") else key
        if base not in bases:
            bases.append(base)
    order = [b for b in ("loss", "accuracy") if b in bases] + [
        b for b in bases if b not in ("loss", "accuracy")
    ]
    panels = [(base, [k for k in (base, f"val_{base}") if k in history]) for base in order]
    panels.extend((key, [key]) for key in _LR_KEYS if key in history)
    return [(title, keys) for title, keys in panels if any(len(history[k]) for k in keys)]


def plot_history(
    history: dict[str, Sequence[float]], path: str | os.PathLike[str] | None = None
) -> bytes:
    """Plot training curves, one panel per metric family.

    Args:
        history: Per-epoch values as in ``keras.callbacks.History.history``: ``loss`` and
            ``val_loss`` share a panel, so do ``accuracy``/``val_accuracy`` and every other
            ``x``/``val_x`` pair; ``learning_rate`` (or ``lr``) gets its own panel.
        path: Also write the PNG here when given.

    Returns:
        The PNG bytes.

    Raises:
        FovealError: If the history holds no values.
    """
    panels = _history_panels(history)
    if not panels:
        raise FovealError("the training history is empty; there are no curves to plot")
    cols = min(len(panels), 3)
    rows = math.ceil(len(panels) / cols)
    fig = _new_figure(4.6 * cols, 3.3 * rows)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, (title, keys) in zip(axes, panels):
        is_lr = title in _LR_KEYS
        for key in keys:
            values = np.asarray(history[key], dtype=np.float64)
            epochs = np.arange(1, len(values) + 1)
            split = "lr" if is_lr else ("val" if key.startswith("val_") else "train")
            label = "learning rate" if is_lr else ("validation" if split == "val" else "train")
            ax.plot(epochs, values, color=_COLORS[split], label=label,
                    marker="o" if len(values) <= 30 else None, markersize=3, linewidth=1.6)
            if split == "val" and np.any(np.isfinite(values)):
                # Mark the best validation epoch: what early stopping / checkpointing keeps.
                best = np.nanargmin(values) if lower_is_better(title) else np.nanargmax(values)
                ax.scatter([epochs[best]], [values[best]], s=60, facecolors="none",
                           edgecolors=_COLORS["val"], linewidths=1.5, zorder=3)
        if is_lr:
            values = np.asarray(history[title], dtype=np.float64)
            finite = values[np.isfinite(values)]
            if finite.size and finite.min() > 0 and finite.max() / finite.min() >= 10:
                ax.set_yscale("log")
            ax.set_title("learning rate")
        else:
            ax.set_title(title.replace("_", " "))
            ax.legend(fontsize=8, frameon=False)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(True, alpha=0.3)
    for ax in axes[len(panels):]:
        ax.set_axis_off()
    return _finish(fig, path)


def plot_confusion_matrix(
    cm: Any,
    class_names: Sequence[str],
    normalize: bool = True,
    path: str | os.PathLike[str] | None = None,
) -> bytes:
    """Draw a confusion matrix as a heat map (rows: true class, columns: predicted class).

    Args:
        cm: Square matrix of counts, shape ``(C, C)`` (nested lists are fine).
        class_names: One name per row/column.
        normalize: Colour by the fraction of each true class (row) instead of raw counts;
            cells then show the percentage, and also the count when there are at most 10
            classes.
        path: Also write the PNG here when given.

    Returns:
        The PNG bytes. Cell values are written only when there are at most 20 classes.

    Raises:
        FovealError: If ``cm`` is not square or does not match ``class_names``.
    """
    counts = np.asarray(cm)
    c = len(class_names)
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1] or counts.shape[0] != c or c == 0:
        raise FovealError(
            f"the confusion matrix must be {c}x{c} for {c} class names, got shape {counts.shape}"
        )
    counts = counts.astype(np.float64)
    if normalize:
        totals = counts.sum(axis=1, keepdims=True)
        values = np.divide(counts, totals, out=np.zeros_like(counts), where=totals != 0)
    else:
        values = counts

    side = float(np.clip(2.5 + 0.35 * c, 4.5, 16.0))
    fig = _new_figure(side + 1.2, side)
    ax = fig.add_subplot()
    vmax = 1.0 if normalize else max(float(values.max()), 1.0)
    image = ax.imshow(values, cmap="Blues", vmin=0.0, vmax=vmax, interpolation="nearest")
    colorbar = fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    if normalize:
        colorbar.ax.yaxis.set_major_formatter(PercentFormatter(xmax=1.0))

    tick_size = 9 if c <= 20 else max(4.0, 9 - (c - 20) / 8)
    if c <= 120:
        labels = [_short(name) for name in class_names]
        ax.set_xticks(range(c), labels, rotation=45, ha="right", rotation_mode="anchor",
                      fontsize=tick_size)
        ax.set_yticks(range(c), labels, fontsize=tick_size)
    else:
        ax.set_xticks([])
        ax.set_yticks([])
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title("confusion matrix" + (" (fraction of each true class)" if normalize else ""))

    if c <= 20:
        cell_size = 9 if c <= 10 else 7
        for i in range(c):
            for j in range(c):
                if normalize:
                    text = f"{values[i, j]:.0%}"
                    if c <= 10:
                        text += f"\n({int(counts[i, j])})"
                else:
                    text = f"{int(counts[i, j])}"
                dark = values[i, j] > 0.55 * vmax
                # in_layout=False: the cell texts lie inside the image, so the layout does not
                # need their extents (measuring C*C texts was most of the figure's layout time)
                ax.text(j, i, text, ha="center", va="center", fontsize=cell_size,
                        color="white" if dark else "#222222", in_layout=False)
    return _finish(fig, path)


def plot_image_grid(
    images: np.ndarray,
    titles: Sequence[str],
    cols: int = 8,
    path: str | os.PathLike[str] | None = None,
) -> bytes:
    """Show images in a grid with a small title above each.

    Args:
        images: uint8 array ``(N, H, W, C)`` with ``C`` 1 (gray) or 3 (RGB); ``(N, H, W)`` is
            taken as gray. Small images are enlarged with nearest-neighbour sampling so pixels
            stay crisp.
        titles: One title per image, e.g. ``"true cat\\npred dog (p=0.93)"``; long lines wrap.
        cols: Images per row at most.
        path: Also write the PNG here when given.

    Returns:
        The PNG bytes.

    Raises:
        FovealError: If there are no images, their shape or dtype is unsupported, or the
            number of titles differs from the number of images.
    """
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise FovealError(
            f"images must have shape (N, H, W, C) with C 1 or 3, got {images.shape}"
        )
    if images.dtype != np.uint8:
        raise FovealError(
            f"images must be uint8, got {images.dtype}",
            hint="pass the raw decoded images, not the normalized model inputs",
        )
    n = images.shape[0]
    if n == 0:
        raise FovealError("there are no images to plot")
    if len(titles) != n:
        raise FovealError(f"got {len(titles)} titles for {n} images; pass one title per image")
    if cols < 1:
        raise FovealError(f"cols must be at least 1, got {cols}")

    cols = min(cols, n)
    rows = math.ceil(n / cols)
    height, width, channels = images.shape[1:]
    # One tiled image on one Axes (32 Axes, each with its own layout, cost about a second per
    # report): cells of ``pad + image + pad`` pixels under a white band that holds the title.
    pad = max(1, round(width * 0.03))
    cell_w = width + 2 * pad
    inch = 1.7 / cell_w  # one mosaic pixel in inches: a cell is 1.7 inches wide, as before
    band = max(1, round(0.45 / inch))
    cell_h = band + height + 2 * pad
    mosaic = np.full((rows * cell_h, cols * cell_w, channels), 255, dtype=np.uint8)
    for index, image in enumerate(images):
        top, left = divmod(index, cols)
        top, left = top * cell_h + band + pad, left * cell_w + pad
        mosaic[top:top + height, left:left + width] = image
    fig = Figure(figsize=(cols * cell_w * inch, rows * cell_h * inch), dpi=DPI)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
    ax.set_axis_off()
    if channels == 1:
        ax.imshow(mosaic[..., 0], cmap="gray", vmin=0, vmax=255, interpolation="nearest", aspect="auto")
    else:
        ax.imshow(mosaic, interpolation="nearest", aspect="auto")
    for index, title in enumerate(titles):
        row, col = divmod(index, cols)
        wrapped = "\n".join(textwrap.fill(line, 26) for line in str(title).splitlines() or [""])
        ax.text((col + 0.5) * cell_w - 0.5, row * cell_h + band - 0.5, wrapped, fontsize=7,
                ha="center", va="bottom", multialignment="center")
    return _finish(fig, path)


def plot_per_class_bars(
    per_class: Sequence[dict[str, Any]], path: str | os.PathLike[str] | None = None
) -> bytes:
    """Draw precision, recall and F1 of every class as grouped bars.

    Args:
        per_class: The ``per_class`` list of
            :func:`foveal.evaluation.classification_metrics`.
        path: Also write the PNG here when given.

    Returns:
        The PNG bytes.

    Raises:
        FovealError: If ``per_class`` is empty.
    """
    if not per_class:
        raise FovealError("there are no per-class metrics to plot")
    c = len(per_class)
    names = [_short(row["class"]) for row in per_class]
    x = np.arange(c)
    bar = 0.27
    fig = _new_figure(float(np.clip(1.5 + 0.55 * c, 6.0, 26.0)), 3.8)
    ax = fig.add_subplot()
    for offset, key, color in ((-bar, "precision", "#4c72b0"), (0.0, "recall", "#dd8452"),
                               (bar, "f1", "#55a868")):
        ax.bar(x + offset, [row[key] for row in per_class], bar, label=key.replace("f1", "F1"),
               color=color)
    ax.set_ylim(0, 1.18)  # headroom for the legend above bars at 1.0
    ax.set_xlim(-0.6, c - 0.4)
    ax.set_ylabel("score")
    ax.set_title("per-class precision, recall and F1")
    if c <= 80:
        tilt = c > 6 or max(len(name) for name in names) > 10
        ax.set_xticks(x, names, rotation=45 if tilt else 0, ha="right" if tilt else "center",
                      rotation_mode="anchor", fontsize=9 if c <= 30 else 6)
    else:
        ax.set_xticks([])
        ax.set_xlabel(f"{c} classes")
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=8, ncols=3, loc="upper center", frameon=False)
    return _finish(fig, path)
