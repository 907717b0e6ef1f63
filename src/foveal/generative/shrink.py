"""``foveal prune`` of a generative model: the deployed network (a GAN's generator, a VAE's decoder)
magnitude-pruned while the model keeps training with its own step, and its samples scored before and after.

Fine-tuning is the model's own ``train_step``: a GAN's adversarial step (the discriminator stays
dense and keeps learning, the generator is pruned along Zhu & Gupta's cubic schedule,
:mod:`foveal.shrink.prune`), a VAE's ELBO (the decoder pruned). The quality check is the task's:
the classifier-space Frechet distance (lower is better) between samples and held-out real images in
the feature space of the judge classifier (``--classifier``, default the run's ``classifier.keras``
beside the model; :mod:`foveal.generative.quality`), the requested-class accuracy of a conditional
model, and a VAE's negative ELBO.

Example:
    >>> model, card, report = prune_generator("runs/cgan/best.keras", "mnist", sparsity=0.5)  # doctest: +SKIP
    >>> report["quality_before"], report["quality_after"]  # Frechet distances  # doctest: +SKIP
    (3.1, 3.4)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from foveal.errors import ConfigError


def find_judge(model_path: str | Path, classifier: str | None):
    """The judge classifier: ``classifier`` (a file; ``none`` for no judge), else the run's
    ``classifier.keras`` beside the model, else None."""
    from foveal.generative.quality import classifier_judge
    from foveal.generative.task import JUDGE_FILE

    if classifier == "none":
        return None
    if classifier not in (None, "auto"):
        if not Path(classifier).is_file():
            raise ConfigError(f"--classifier {classifier}: file not found")
        return classifier_judge(classifier)
    beside = Path(model_path).parent / JUDGE_FILE
    return classifier_judge(beside) if beside.is_file() else None


def sample_quality(model: Any, card: Any, real: Any, judge: Any, *, count: int, seed: int,
                   evaluation: Any = None) -> dict[str, Any]:
    """Frechet and kernel distances (and requested-class accuracy) of ``count`` samples against ``real``
    (:class:`~foveal.generative.quality.RealStats`); a VAE's negative ELBO on ``evaluation`` too."""
    from foveal.generative import sampling
    from foveal.generative.quality import compare
    from foveal.generative.scoring import negative_elbo

    out: dict[str, Any] = {}
    if judge is not None:
        labels = requested = None
        if sampling.is_conditional(model):
            from foveal.generative.task import judge_class_ids

            labels = (np.arange(count) % len(card.class_names)).astype(np.int32)
            requested = judge_class_ids(card.class_names, judge)[labels]
        out |= compare(judge, real, sampling.sample(model, count, labels, seed=seed + 1), requested, seed=seed)
    if card.architecture == "vae" and evaluation is not None:
        out["neg_elbo"] = negative_elbo(model, evaluation)["neg_elbo"]
    return out


def prune_generator(model_path: str | Path, data: str, *, sparsity: float = 0.5, epochs: int = 1,
                    learning_rate: float = 1e-4, batch_size: int = 64, steps_per_epoch: int | None = None,
                    split: str = "test", seed: int = 42, classifier: str | None = None,
                    count: int = 500) -> tuple[Any, Any, dict[str, Any]]:
    """Prune the generator (GAN, cGAN) or decoder (VAE) of ``model_path`` to ``sparsity`` while the
    model trains on ``data``'s training images; return ``(model, card, report)`` with the sparsity per
    kernel and the quality before and after (see the module docstring). ``foveal prune`` saves it.

    Raises:
        ConfigError: a GAN with no judge classifier (nothing to score its samples with).
    """
    import keras

    from foveal.data.readers import load_dataset
    from foveal.errors import DataError
    from foveal.generative.data import images01, pipeline
    from foveal.generative.quality import RealStats
    from foveal.models.io import load_model
    from foveal.shrink.prune import prune_during_fit

    model, card = load_model(model_path)
    if card.task != "generate":
        raise ConfigError(f"{model_path} is a {card.task} model, not a generative one")
    judge = find_judge(model_path, classifier)
    vae = card.architecture == "vae"
    if judge is None and not vae:
        raise ConfigError(f"{model_path}: nothing to score the pruned generator with (no {Path(model_path).parent}"
                          "/classifier.keras)", hint="pass --classifier CLASSIFIER.keras, trained on the same data")
    if count < 2:
        raise ConfigError(f"--count {count}: compare at least two images")
    parts = load_dataset(data)
    if "train" not in parts:
        raise DataError(f"{data}: has no training part to fine-tune on")
    train = parts["train"]
    evaluation = parts.get(split) or train
    shape = tuple(model.image_shape)
    real, _ = images01(evaluation, shape, count, seed=seed)
    real_stats = RealStats.of(judge, real) if judge is not None else None
    scored = evaluation.subset(np.arange(min(count, len(evaluation))))  # the ELBO on as many images
    before = sample_quality(model, card, real_stats, judge, count=len(real), seed=seed, evaluation=scored)

    keras.utils.set_random_seed(seed)
    if vae:
        model.compile(optimizer=keras.optimizers.Adam(learning_rate), jit_compile=False)
    else:  # no XLA: compiling the two-network step costs more than a short fine-tuning saves
        model.compile(optimizer=keras.optimizers.Adam(learning_rate, beta_1=0.5),
                      d_optimizer=keras.optimizers.Adam(learning_rate, beta_1=0.5), jit_compile=False)
    ds = pipeline(train, shape, batch_size, training=True, seed=seed)
    steps = steps_per_epoch or max(1, int(ds.cardinality()) if int(ds.cardinality()) > 0 else len(train) // batch_size)
    target = model.decoder if vae else model.generator
    report = prune_during_fit(model, ds, target=target, final_sparsity=sparsity, epochs=epochs, steps_per_epoch=steps)
    after = sample_quality(model, card, real_stats, judge, count=len(real), seed=seed, evaluation=scored)

    model = _without_training_state(model, model_path)
    headline = "frechet" if judge is not None else "neg_elbo"
    report.update({
        "pruned_network": "decoder" if vae else "generator",
        "metric": "classifier-space Frechet distance (lower is better)" if judge is not None
                  else "negative ELBO, nats/image (lower is better)",
        "quality_before": before[headline], "quality_after": after[headline],
        "scores_before": before, "scores_after": after, "judge": getattr(judge, "source", None),
        "compared_images": len(real), "split": split})
    return model, card, report


def _without_training_state(model: Any, model_path: str | Path) -> Any:
    """The model as its file holds it, with the pruned weights of every network copied in: the
    fine-tuning's optimizers (a GAN keeps its discriminator's as an attribute) are not saved with it."""
    from foveal.models.io import load_model

    fresh, _ = load_model(model_path)
    for name, network in model.inspection_parts().items():
        getattr(fresh, name).set_weights(network.get_weights())
    if hasattr(model, "log_sigma"):
        fresh.log_sigma.assign(model.log_sigma)
    return fresh


__all__ = ["find_judge", "prune_generator", "sample_quality"]
