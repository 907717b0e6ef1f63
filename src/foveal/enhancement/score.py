"""Scoring an enhancement model: PSNR and SSIM next to the baseline it must beat.

Every reference image is cropped to a multiple of the scale, degraded as in training (the
same corruption and bicubic downscaling, each image with its own fixed seed, so a score
repeats exactly), enhanced as ``foveal enhance predict`` does (tiles included) and rounded to
8 bits. The baseline is the degraded input itself for denoising (the noisy image) and its
bicubic upscaling for super-resolution. Both are measured by
:func:`foveal.enhancement.metrics.quality`: on RGB (or gray) and on the Y channel, with
``scale`` pixels cropped off every side for super-resolution. The headline is PSNR on Y for
colour super-resolution (the literature's number), PSNR otherwise.

Example:
    >>> metrics, strips = score_enhancer(model, card, images)  # doctest: +SKIP
    >>> metrics["gain"]["psnr"]  # doctest: +SKIP
    11.8
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from foveal.enhancement.data import ImageSet, check_sizes
from foveal.enhancement.metrics import mean_quality, quality
from foveal.errors import ConfigError
from foveal.utils_io import write_metrics

if TYPE_CHECKING:
    from foveal.models import ModelCard

EVAL_SEED = 20_261_206
PER_IMAGE_LIMIT = 500


def card_corruption(card: ModelCard):
    from foveal.enhancement.degrade import parse_corruption

    return parse_corruption(card.training.get("corruption", "none"))


def baseline_name(scale: int, method: str = "bicubic") -> str:
    return f"{method} upscaling" if scale > 1 else "degraded input"


def score_enhancer(model: Any, card: ModelCard, images: ImageSet, *, report_images: int = 0,
                   output: str | Path | None = None, corruption: Any = None, skip_invalid: bool = False,
                   limit: int | None = None, batch_size: int = 32) -> tuple[dict[str, Any], list]:
    """Score ``model`` on ``images`` (see the module docstring).

    Args:
        model: the Keras model (or anything answering ``model(batch)``, e.g. an export).
        card: its card (scale, corruption, geometry).
        images: the reference images.
        report_images: how many ``(input, baseline, enhanced, reference, caption)`` strips to return.
        output: folder that receives ``enhanced/NAME.png`` for every image.
        corruption: another corruption to score under (default: the training one).
        limit: score only the first ``limit`` images.

    Returns:
        ``(metrics, strips)``; metrics has ``model``, ``baseline`` (mean quality), ``gain``
        (model minus baseline), ``baseline_name``, ``headline``, ``num_images`` and ``per_image``
        (up to 500 images).
    """
    from foveal.data.files import write_png
    from foveal.enhancement.degrade import describe_corruption, upscale
    from foveal.enhancement.pipeline import patch_dataset
    from foveal.enhancement.predict import check_card, enhance, enhance_batch, geometry, to_uint8

    check_card(card)
    g = geometry(card)
    scale = g["scale"]
    corruption = card_corruption(card) if corruption is None else corruption
    if images.channels != card.input_shape[-1]:
        images = ImageSet(images.origin, card.input_shape[-1], images.images, images.paths, images.sizes,
                          images.info)
    images = check_sizes(images, scale, f"the x{scale} scale factor" if scale > 1 else "one pixel",
                         skip_invalid=skip_invalid)
    if limit is not None:
        images = images.subset(np.arange(min(limit, len(images))))
    same = images.same_size() is not None
    ds = patch_dataset(images, training=False, patch=None, scale=scale, corruption=corruption,
                       batch_size=batch_size if same else 1, seed=EVAL_SEED, cache="none")
    method = card.training.get("baseline", "bicubic")
    rows_model, rows_base, per_image, strips = [], [], [], []
    out = Path(output) if output is not None else None
    index = 0
    for x, ref in ds:
        x, ref = x.numpy(), ref.numpy()
        if len(x) > 1:
            enhanced = enhance_batch(model, card, x)
        else:
            enhanced = enhance(model, card, x[0])[None]
        lr = x / 255.0
        base = upscale(lr, scale, method).numpy() if scale > 1 else lr
        for k in range(len(x)):
            result = to_uint8(enhanced[k])
            baseline = to_uint8(base[k])
            q_model = quality(ref[k], result / 255.0, border=scale if scale > 1 else 0)
            q_base = quality(ref[k], baseline / 255.0, border=scale if scale > 1 else 0)
            rows_model.append(q_model)
            rows_base.append(q_base)
            name = images.name(index)
            if len(per_image) < PER_IMAGE_LIMIT:
                per_image.append({"image": name, "model": _rounded(q_model), "baseline": _rounded(q_base)})
            if out is not None:
                write_png(out / "enhanced" / f"{Path(name).stem}.png", result)
            if len(strips) < report_images:
                shown_input = np.repeat(np.repeat(to_uint8(lr[k]), scale, 0), scale, 1)
                strips.append((shown_input, baseline, result, to_uint8(ref[k]), name))
            index += 1
    if not rows_model:
        raise ConfigError(f"{images.origin}: no images to score")
    model_q, base_q = mean_quality(rows_model), mean_quality(rows_base)
    gain = {k: (round(model_q[k] - base_q[k], 4) if model_q[k] is not None and base_q[k] is not None else None)
            for k in model_q}
    headline = "psnr_y" if scale > 1 and model_q["psnr_y"] is not None else "psnr"
    metrics = {"headline": headline, "model": model_q, "baseline": base_q, "gain": gain,
               "baseline_name": baseline_name(scale, method), "scale": scale,
               "corruption": describe_corruption(corruption), "border": scale if scale > 1 else 0,
               "num_images": len(rows_model), "per_image": per_image}
    return metrics, strips


def _rounded(q: dict[str, Any]) -> dict[str, Any]:
    return {k: (None if v is None else round(float(v), 4)) for k, v in q.items()}


def format_headline(metrics: dict[str, Any]) -> str:
    """``PSNR 21.3 dB (degraded input 9.6 dB, +11.7 dB); SSIM 0.912 (0.301); 100 images``."""
    h = metrics["headline"]
    label = "PSNR (Y)" if h == "psnr_y" else "PSNR"
    m, b, d = metrics["model"], metrics["baseline"], metrics["gain"]
    s = "ssim_y" if h == "psnr_y" else "ssim"

    def f(v, fmt):
        return "n/a" if v is None else format(v, fmt)

    return (f"{label} {f(m[h], '.2f')} dB ({metrics['baseline_name']} {f(b[h], '.2f')} dB, "
            f"{'+' if (d[h] or 0) >= 0 else ''}{f(d[h], '.2f')} dB); SSIM {f(m[s], '.4f')} ({f(b[s], '.4f')}); "
            f"{metrics['num_images']} image(s)")


def format_metrics(metrics: dict[str, Any]) -> str:
    """A table: measure, model, baseline, gain."""
    lines = [f"images      {metrics['num_images']}", f"scale       x{metrics['scale']}",
             f"corruption  {metrics['corruption']}", f"border      {metrics['border']} px cropped",
             "", f"{'measure':<8}  {'model':>8}  {metrics['baseline_name']:>18}  {'gain':>8}"]
    for key in ("psnr", "ssim", "psnr_y", "ssim_y"):
        m, b, d = metrics["model"][key], metrics["baseline"][key], metrics["gain"][key]
        if m is None:
            continue
        lines.append(f"{key:<8}  {m:>8.4f}  {b:>18.4f}  {d:>+8.4f}")
    return "\n".join(lines)


def evaluate_enhancer(model_path: str | Path, data: str, *, output: str | Path | None = None,
                      corruption: str | None = None, report_images: int = 6, skip_invalid: bool = False,
                      split: str = "test", limit: int | None = None) -> dict[str, Any]:
    """Score a saved enhancement model on ``data`` (a folder of images or a dataset of arrays);
    optionally write ``metrics.json``, ``report.html`` and ``enhanced/`` to ``output``.

    Args:
        split: the dataset part scored when ``data`` has several (``test``, else the first).
        corruption: score under another corruption than the training one (e.g. ``gaussian=0.3``).
        limit: score only the first ``limit`` images.
    """
    from foveal.enhancement.data import read_images
    from foveal.enhancement.degrade import parse_corruption
    from foveal.enhancement.predict import check_card
    from foveal.enhancement.report import write_enhancement_report
    from foveal.models import load_model

    model, card = load_model(model_path)
    check_card(card)
    spec = None if corruption is None else parse_corruption(corruption, "--corruption")
    parts = read_images(data, channels=card.input_shape[-1], skip_invalid=skip_invalid)
    part = parts.get(split) or parts.get("test") or next(iter(parts.values()))
    metrics, strips = score_enhancer(model, card, part, report_images=report_images if output else 0,
                                     output=output, corruption=spec, skip_invalid=skip_invalid, limit=limit)
    metrics["data"] = data
    if output is not None:
        out = Path(output)
        write_metrics(out, metrics)
        write_enhancement_report(out / "report.html", title=f"foveal enhancement evaluation of {Path(model_path).name}",
                                 summary={"model": str(model_path), "data": data, "task": card.architecture},
                                 config={}, history=None, metrics=metrics, strips=strips)
    return metrics


__all__ = ["evaluate_enhancer", "format_headline", "format_metrics", "score_enhancer"]
