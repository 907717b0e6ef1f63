"""Scoring a generative model: the VAE's negative ELBO, sample quality, and the report's figures.

:func:`score_generator` is what a training run's end and ``foveal generate evaluate`` share:

* VAE: the negative ELBO in nats per image on held-out images (reconstruction NLL + KL, one
  latent sample per image, KL weight 1), with its two terms; figures: reconstructions (each
  real row followed by its reconstruction), samples from the prior, and the 2-D latent
  manifold when the latent space has two dimensions.
* every model with a judge: the classifier-space Frechet and kernel distances between
  ``count`` samples and ``count`` held-out real images (:mod:`foveal.generative.quality`); a
  conditional model also the requested-class accuracy; with InceptionV3 weights, the FID.
* GANs: a sample grid (one row per class for a conditional model).

Example:
    >>> metrics = evaluate_generator("runs/RUN/best.keras", "mnist")  # doctest: +SKIP
    >>> metrics["neg_elbo"]  # doctest: +SKIP
    101.3
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from foveal.errors import ConfigError, DataError
from foveal.generative import sampling

if TYPE_CHECKING:
    import keras

    from foveal.data.source import LabeledImages
    from foveal.generative.quality import Judge
    from foveal.models import ModelCard


def negative_elbo(model: keras.Model, part: LabeledImages, *, batch_size: int = 256,
                  skip_invalid: bool = False) -> dict[str, float]:
    """Mean negative ELBO, reconstruction NLL and KL (nats per image) of a VAE over ``part``."""
    from foveal.generative.data import pipeline

    nll_sum = kl_sum = 0.0
    n = 0
    for x, _ in pipeline(part, model.image_shape, batch_size, training=False, cache="none", skip_invalid=skip_invalid):
        nll, kl = model.terms(x)
        nll_sum += float(np.sum(nll))
        kl_sum += float(np.sum(kl))
        n += int(x.shape[0])
    if not n:
        raise DataError(f"{part.origin}: no images to score")
    return {"neg_elbo": (nll_sum + kl_sum) / n, "reconstruction_nll": nll_sum / n, "kl": kl_sum / n,
            "num_images": n}


def sample_grid(model: keras.Model, card: ModelCard, seed: int, per_class: int = 10) -> np.ndarray:
    """64 samples (8 per row), or ``per_class`` samples per class row for a conditional model."""
    if sampling.is_conditional(model):
        k = len(card.class_names)
        labels = np.repeat(np.arange(k, dtype=np.int32), per_class)
        return sampling.tile(sampling.sample(model, len(labels), labels, seed=seed), cols=per_class)
    return sampling.tile(sampling.sample(model, 64, seed=seed), cols=8)


def reconstruction_grid(model: keras.Model, images01: np.ndarray, rows: int = 4, cols: int = 8) -> np.ndarray:
    """Rows of real images, each followed by its reconstruction (decoded posterior mean)."""
    real = images01[: rows * cols]
    recon = np.asarray(model(real * 255.0))
    pairs = []
    for r in range(0, len(real), cols):
        pairs += [real[r:r + cols], recon[r:r + cols]]
    return sampling.tile(np.concatenate(pairs), cols=cols)


def score_generator(model: keras.Model, card: ModelCard, part: LabeledImages, *, judge: Judge | None,
                    count: int = 1000, inception_weights: str | None = None, seed: int = 0, batch_size: int = 256,
                    skip_invalid: bool = False) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(metrics, figures) of ``model`` against the real images ``part`` (see the module docstring)."""
    from foveal.generative.data import images01
    from foveal.generative.quality import RealStats, compare, inception_judge

    metrics: dict[str, Any] = {"model": card.architecture, "latent_dim": int(model.latent_dim)}
    figures: dict[str, np.ndarray] = {"samples": sample_grid(model, card, seed)}
    real, real_labels = images01(part, tuple(model.image_shape), count, seed=seed, skip_invalid=skip_invalid)
    if card.architecture == "vae":
        metrics |= negative_elbo(model, part, batch_size=batch_size, skip_invalid=skip_invalid)
        figures["reconstructions"] = reconstruction_grid(model, real)
        if model.latent_dim == 2:
            figures["manifold"] = sampling.manifold(model)
    labels = None
    if sampling.is_conditional(model):
        labels = (np.arange(len(real)) % len(card.class_names)).astype(np.int32)
    fake = sampling.sample(model, len(real), labels, seed=seed + 1) if judge is not None or inception_weights else None
    metrics["compared_images"] = len(real)
    if judge is not None:
        from foveal.generative.task import judge_class_ids

        requested = None if labels is None else judge_class_ids(card.class_names, judge)[labels]
        scores = compare(judge, RealStats.of(judge, real), fake, requested, seed=seed)
        metrics |= scores | {"judge": judge.source}
        if labels is not None:
            _, probs = judge.run(fake)
            predicted = np.argmax(probs, axis=1)
            metrics["class_accuracy_per_class"] = {
                name: float(np.mean(predicted[labels == k] == requested[labels == k]))
                for k, name in enumerate(card.class_names) if np.any(labels == k)}
    if inception_weights:
        inception = inception_judge(inception_weights)
        metrics |= compare(inception, RealStats.of(inception, real), fake, seed=seed)
    del real_labels
    return metrics, figures


def evaluate_generator(model_path: str | Path, data: str, *, split: str = "test", classifier: str | None = None,
                       count: int = 1000, inception_weights: str | None = None, output: str | Path | None = None,
                       seed: int = 0, batch_size: int = 256, skip_invalid: bool = False) -> dict[str, Any]:
    """Score a saved generative model on a dataset's ``split`` (``test``, ``val``, ``train`` or ``all``).

    Args:
        model_path: a ``.keras`` file written by ``foveal generate train``.
        data: the real images (any dataset spec; the same data the model learnt from).
        classifier: the judge's ``.keras`` file; default: the run's ``classifier.keras`` beside
            the model when there is one, else none (the VAE's ELBO is still computed).
        count: generated and real images compared.
        inception_weights: InceptionV3 weights (.h5) for the standard FID.
        output: folder for ``metrics.json``, the figures and ``report.html``.

    Returns:
        The metrics (see :func:`score_generator`), with ``split``.
    """
    from foveal.data.readers import load_dataset
    from foveal.generative.quality import classifier_judge
    from foveal.models import load_model

    model, card = load_model(model_path)
    if card.task != "generate":
        raise ConfigError(f"{model_path} is a {card.task} model, not a generative one",
                          hint="use the evaluate command of its task (foveal evaluate MODEL reads it from the card)")
    if count < 2:
        raise ConfigError(f"--count {count}: compare at least two images")
    beside = Path(model_path).parent / "classifier.keras"
    judge_path = classifier if classifier not in (None, "auto") else (str(beside) if beside.is_file() else None)
    if judge_path == "none":
        judge_path = None
    if judge_path is not None and not Path(judge_path).is_file():
        raise ConfigError(f"--classifier {judge_path}: file not found")
    judge = classifier_judge(judge_path) if judge_path else None
    if judge is None and card.architecture != "vae" and not inception_weights:
        raise ConfigError(f"{model_path}: nothing to score a GAN with (no classifier.keras beside it)",
                          hint="pass --classifier CLASSIFIER.keras (trained on the same data) or --inception-weights")
    parts = load_dataset(data, skip_invalid=skip_invalid)
    if split == "all":
        present = [parts[k] for k in ("train", "val", "test") if k in parts]
        part = present[0] if len(present) == 1 else _concat(present)
    elif split in parts:
        part = parts[split]
    else:
        raise DataError(f"{data} has no {split!r} part (it has {', '.join(parts)})",
                        hint="use --split " + " or ".join([*parts, "all"]))
    if part.class_names != card.class_names and sampling.is_conditional(model):
        raise DataError(f"{data} has classes {part.class_names[:10]} but the model was trained on "
                        f"{card.class_names[:10]}")
    metrics, figures = score_generator(model, card, part, judge=judge, count=count,
                                       inception_weights=inception_weights, seed=seed, batch_size=batch_size,
                                       skip_invalid=skip_invalid)
    metrics["split"] = split
    if output is not None:
        from foveal.generative.report import write_generative_report
        from foveal.utils_io import ensure_output_dir, write_metrics

        out = ensure_output_dir(output)
        write_metrics(out, metrics)
        for name, pixels in figures.items():
            sampling.write_png(out / f"{name}.png", pixels)
        write_generative_report(out / "report.html", title=f"foveal generative evaluation of {Path(model_path).name}",
                                summary={"model": str(model_path), "data": data, "split": split}, config={},
                                history=None, metrics=metrics, figures=figures)
    return metrics


def _concat(parts: list[LabeledImages]) -> LabeledImages:
    from dataclasses import replace

    if any(p.images is None for p in parts):
        raise DataError("--split all needs in-memory data (IDX, CIFAR, .npz); name a split of a folder dataset")
    return replace(parts[0], images=np.concatenate([p.images for p in parts]),
                   labels=np.concatenate([p.labels for p in parts]))


def format_metrics(metrics: dict[str, Any]) -> str:
    """The headline numbers as text lines."""
    names = [("neg_elbo", "negative ELBO (nats/image)"), ("reconstruction_nll", "  reconstruction NLL"),
             ("kl", "  KL"), ("frechet", "classifier-space Frechet distance"),
             ("kernel_distance", "classifier-space kernel distance (KID)"),
             ("class_accuracy", "requested-class accuracy"), ("inception_fid", "Inception FID"),
             ("inception_kid", "Inception KID"), ("compared_images", "images compared")]
    lines = [f"{'split':<40} {metrics.get('split', '')}"]
    for key, label in names:
        if metrics.get(key) is not None:
            value = metrics[key]
            lines.append(f"{label:<40} {value:.4f}" if isinstance(value, float) else f"{label:<40} {value}")
    return "\n".join(lines)


__all__ = ["evaluate_generator", "format_metrics", "negative_elbo", "reconstruction_grid", "sample_grid",
           "score_generator"]
