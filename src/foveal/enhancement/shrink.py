"""``foveal prune`` of an enhancement model: magnitude pruning while fine-tuning on patches, with the
PSNR of the model before and after, next to its baseline (the noisy input, or bicubic upscaling).

The fine-tuning is the training run's own: random patches of the card's size cut from the data's
training images, degraded by the card's corruption and scale, the card's pixel loss (MSE or MAE);
the sparsity follows Zhu & Gupta's cubic schedule (:mod:`foveal.shrink.prune`). The scoring is
:func:`~foveal.enhancement.score.score_enhancer`, the task's evaluation.

Example:
    >>> model, card, report = prune_enhancer("runs/sr/best.keras", "photos/", sparsity=0.5)  # doctest: +SKIP
    >>> report["quality_before"], report["quality_after"]  # doctest: +SKIP
    (27.0, 26.9)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from foveal.errors import ConfigError


def prune_enhancer(model_path: str | Path, data: str, *, sparsity: float = 0.5, epochs: int = 2,
                   learning_rate: float = 1e-4, batch_size: int = 16, steps_per_epoch: int | None = None,
                   split: str = "test", seed: int = 42,
                   limit: int | None = None) -> tuple[Any, Any, dict[str, Any]]:
    """Prune the enhancer at ``model_path`` to ``sparsity`` while fine-tuning on ``data``'s training
    images; return ``(model, card, report)`` (sparsity per kernel, the headline PSNR before and after
    and the baseline's). ``foveal prune`` (:func:`foveal.shrink.cli.prune_file`) saves it.

    Args:
        steps_per_epoch: batches per epoch (default: one patch per training image).
        split: the part of ``data`` scored before and after (``test``, else its only part).
        limit: score only the first ``limit`` images.
    """
    import keras
    import numpy as np

    from foveal.enhancement.data import check_sizes, read_images
    from foveal.enhancement.pipeline import patch_dataset
    from foveal.enhancement.predict import check_card, geometry
    from foveal.enhancement.score import card_corruption, score_enhancer
    from foveal.models.io import load_model
    from foveal.shrink.prune import prune_during_fit

    model, card = load_model(model_path)
    check_card(card)
    parts = read_images(data, channels=card.input_shape[-1])
    train = parts.get("train") or next(iter(parts.values()))
    evaluation = parts.get(split) or parts.get("test") or train
    g, t = geometry(card), card.training
    patch = int(t.get("patch_size") or 0) or None
    if patch is not None:
        train = check_sizes(train, patch, f"the {patch}x{patch} training patch of the model's card")
    if g["fixed"] is None and patch is None and train.same_size() is None:
        raise ConfigError(f"{data}: the model was trained on whole images, which must share one size to be "
                          "batched", hint="fine-tune on images of one size")

    def quality() -> tuple[float, float, str]:
        metrics, _ = score_enhancer(model, card, evaluation, limit=limit)
        h = metrics["headline"]
        return float(metrics["model"][h]), float(metrics["baseline"][h]), h

    before, baseline, headline = quality()
    keras.utils.set_random_seed(seed)
    ds = patch_dataset(train, training=True, patch=patch, scale=g["scale"], corruption=card_corruption(card),
                       batch_size=batch_size, seed=seed, multiple=g["multiple"])
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=t.get("loss", "mse"), jit_compile=False)
    report = prune_during_fit(model, ds, final_sparsity=sparsity, epochs=epochs,
                              steps_per_epoch=steps_per_epoch or max(1, int(np.ceil(len(train) / batch_size))))
    after, _, _ = quality()
    report.update({"metric": f"{headline} (dB)", "quality_before": before, "quality_after": after,
                   "baseline": baseline, "baseline_name": "bicubic upscaling" if g["scale"] > 1 else "the input",
                   "split": split, "scored_images": min(len(evaluation), limit or len(evaluation))})
    return model, card, report


__all__ = ["prune_enhancer"]
