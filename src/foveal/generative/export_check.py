"""Export and serve hooks of generative models (see :mod:`foveal.export.tasks`).

What is exported is the sampler alone: a VAE's decoder, or a GAN's generator, as one graph
from **latent codes** to images in [0, 1] (``[N, H, W, C]``, float32). The codes are one
float32 row per image: ``latent_dim`` standard normal values, followed for a class-conditional
GAN by a one-hot vector over its classes (``[N, latent_dim + K]``). A one-hot row times the
generator's label embedding matrix is exactly the embedding lookup the Keras model does, so
the export needs no integer input and every runtime (TFLite, ONNX, SavedModel) takes one
float tensor, as for the other tasks. The card written beside the export says the layout
(``training["codes"]``).

Parity: the export and the Keras model's own :meth:`generate` (noise and class ids, not the
rewritten graph) draw images from the same seeded codes, every class in turn; the check is the
largest pixel difference and the share of 8-bit pixels that agree, as for enhancement models.
The discriminator and the VAE's encoder are training-time parts and are not exported.

Example:
    >>> from foveal.export import export_model  # doctest: +SKIP
    >>> export_model("runs/cgan/best.keras", "onnx").passed  # doctest: +SKIP
    True
    >>> images, classes = sample(open_runner("runs/cgan/best.onnx"), card, 8, "7", seed=0)  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from foveal.errors import ConfigError, ModelError
from foveal.models.io import ModelCard

#: the exports take latent codes, not images (no bytes signature, no image calibration)
TAKES_IMAGES = False


def code_layout(card: ModelCard) -> tuple[int, int]:
    """``(latent_dim, classes)`` of the codes an export takes (classes 0 for unconditional models)."""
    t = card.training
    if "latent_dim" not in t:
        raise ModelError(f"the {card.architecture} model's card has no latent size",
                         hint="use a model written by `foveal generate train`")
    return int(t["latent_dim"]), (len(card.class_names) if t.get("conditional") else 0)


def export_graph(model: Any, card: ModelCard) -> Any:
    """A Keras model from codes ``[N, latent_dim (+ K)]`` to images in [0, 1], named ``images``."""
    import keras
    from keras import layers

    latent, classes = code_layout(card)
    codes = keras.Input((latent + classes,), name="codes")
    if card.architecture == "vae" or hasattr(model, "decoder"):
        x = model.decoder(codes, training=False)
        likelihood = getattr(model, "likelihood", "bernoulli")
        out = layers.Activation("sigmoid", name="images")(x) if likelihood == "bernoulli" else \
            layers.ReLU(max_value=1.0, name="images")(x)  # min(max(x, 0), 1): the clip of VAE.decode
        return keras.Model(codes, out, name="vae_sampler")
    generator = model.generator
    if not classes:
        x = generator(codes, training=False)
    else:
        z = layers.Lambda(lambda c: c[:, :latent], output_shape=(latent,), name="z")(codes)
        onehot = layers.Lambda(lambda c: c[:, latent:], output_shape=(classes,), name="class_onehot")(codes)
        table = generator.get_layer("label_embedding")
        embed = layers.Dense(table.output_dim, use_bias=False, name="label_embedding")
        e = embed(onehot)
        embed.set_weights([np.asarray(table.embeddings)])  # one-hot x table = the table's row, exactly
        x = layers.Concatenate(name="z_and_label")([z, e])
        names = [layer.name for layer in generator.layers]
        for layer in generator.layers[names.index("z_and_label") + 1:]:  # the generator's chain after the join
            x = layer(x)
    out = layers.Rescaling(0.5, offset=0.5, name="images")(x)  # tanh's [-1, 1] -> [0, 1], as GAN.generate
    return keras.Model(codes, out, name=f"{card.architecture}_sampler")


def input_signature(card: ModelCard) -> tuple[int | None, ...]:
    latent, classes = code_layout(card)
    return (latent + classes,)


def export_card(model: Any, card: ModelCard) -> ModelCard:
    """The card, with the codes' layout for whoever runs the export."""
    latent, classes = code_layout(card)
    return dataclasses.replace(card, training={**card.training, "codes": {
        "latent_dim": latent, "classes": classes,
        "layout": "latent_dim standard normal values, then a one-hot class vector" if classes else
                  "latent_dim standard normal values"}})


def codes(card: ModelCard, count: int, labels: np.ndarray | None, seed: int) -> np.ndarray:
    """The export's input for ``count`` images: the noise :func:`~foveal.generative.sampling.noise`
    draws for ``seed`` (as ``foveal generate predict`` does), then one-hot ``labels``."""
    from foveal.generative.sampling import noise

    latent, classes = code_layout(card)
    z = noise(count, latent, seed)
    if not classes:
        return z
    onehot = np.zeros((count, classes), np.float32)
    onehot[np.arange(count), np.asarray(labels, np.int64)] = 1.0
    return np.concatenate([z, onehot], axis=1)


def random_inputs(card: ModelCard, count: int, seed: int = 0) -> np.ndarray:
    """Parity inputs: seeded codes, a conditional model's classes in turn."""
    _, classes = code_layout(card)
    return codes(card, count, (np.arange(count) % classes) if classes else None, seed)


def calibration_inputs(card: ModelCard, count: int):
    """int8 calibration batches (one code each), drawn like parity inputs from another seed."""
    rows = random_inputs(card, count, seed=1)

    def batches():
        for row in rows:
            yield row[None]

    return batches


def model_input(image: np.ndarray, card: ModelCard) -> np.ndarray:
    raise ModelError("a generative model takes latent codes, not images",
                     hint="sample with `foveal generate predict MODEL`, or GET /generate of `foveal serve`")


def outputs(source: Any, card: ModelCard, inputs: np.ndarray) -> dict[str, np.ndarray]:
    """``{"images": [N, H, W, C]}`` in [0, 1] for codes ``inputs``: a Keras model's own
    ``generate`` (class ids read from the one-hot part), or an export's graph."""
    from foveal.export.tasks import is_runner
    from foveal.generative.sampling import sample

    inputs = np.asarray(inputs, np.float32)
    if is_runner(source):  # raw: the sampler graph's output (a Keras runner's own call would run the whole model)
        out = source.raw(inputs)
        out = next(iter(out.values())) if isinstance(out, dict) else out
        return {"images": np.clip(np.asarray(out, np.float32), 0.0, 1.0)}
    latent, classes = code_layout(card)
    labels = np.argmax(inputs[:, latent:], axis=1).astype(np.int32) if classes else None
    return {"images": sample(source, len(inputs), labels, z=inputs[:, :latent])}


def parity(reference: dict[str, np.ndarray], exported: dict[str, np.ndarray], card: ModelCard,
           tolerance: float) -> dict[str, Any]:
    """Largest pixel difference (in [0, 1]) and the share of 8-bit pixels that agree."""
    ref, got = reference["images"], exported["images"]
    diff = float(np.abs(ref - got).max()) if ref.size else 0.0
    same = np.round(ref * 255) == np.round(got * 255)
    return {"passed": diff <= tolerance, "max_abs_diff": diff, "agreement": float(same.mean()) if same.size else 1.0,
            "agreement_name": "8-bit pixel agreement"}


@dataclasses.dataclass
class JudgedImages:
    """The real side of an export's quality check: held-out images' judge features, and the judge."""

    real: Any  # foveal.generative.quality.RealStats
    judge: Any  # foveal.generative.quality.Judge
    count: int


def load_parts(spec: str, card: ModelCard, model_path: Any = None, count: int = 500) -> dict[str, Any]:
    """With ``--data``, a generator's export (a quantized one above all) is scored next to the Keras model by
    the classifier-space Frechet distance of ``count`` samples to ``count`` test images of ``spec``, in the
    feature space of the run's judge (``classifier.keras`` beside the model)."""
    from pathlib import Path

    from foveal.data.readers import load_dataset
    from foveal.generative.data import images01
    from foveal.generative.quality import RealStats
    from foveal.generative.shrink import find_judge

    judge = find_judge(model_path, None) if model_path is not None else None
    if judge is None:
        where = Path(model_path).parent / "classifier.keras" if model_path is not None else "classifier.keras"
        raise ConfigError(f"--data: a generative model's export is scored by the Frechet distance with its run's "
                          f"judge classifier, and there is none at {where}",
                          hint="leave out --data (parity on seeded latent codes still runs), or put the run's "
                               "classifier.keras beside the model")
    parts = load_dataset(spec)
    part = parts.get("test") or parts.get("val") or parts["train"]
    real, _ = images01(part, tuple(card.input_shape), count)
    return {"test": JudgedImages(RealStats.of(judge, real), judge, len(real))}


def sample_images(part: Any, card: ModelCard, count: int) -> np.ndarray:
    """Parity inputs: seeded latent codes (the data scores the samples, it is not the input)."""
    return random_inputs(card, count)


def accuracy(source: Any, card: ModelCard, part: JudgedImages, limit: int | None) -> dict[str, Any]:
    """The classifier-space Frechet distance (lower is better) of samples drawn by ``source`` (the Keras
    model or an export's runner, from the same seeded codes) to the held-out images of ``part``."""
    from foveal.generative.quality import compare

    count = min(limit or part.count, part.count)
    images, labels = sample(source, card, count, None, seed=1)
    requested = None
    if labels is not None:
        from foveal.generative.task import judge_class_ids

        requested = judge_class_ids(card.class_names, part.judge)[labels]
    scores = compare(part.judge, part.real, images, requested)
    return {"metric": "classifier-space Frechet distance (lower is better)", "value": float(scores["frechet"])}


def sample(source: Any, card: ModelCard, count: int, requested: str | int | None = None,
           seed: int = 0) -> tuple[np.ndarray, np.ndarray | None]:
    """``count`` images in [0, 1] and their class ids (None: unconditional), from a Keras model or
    an export's runner; the same ``seed`` gives the same images as ``foveal generate predict``.

    Raises:
        ConfigError: ``requested`` for an unconditional model, or a class the model does not know.
    """
    from foveal.generative.sampling import class_index

    latent, classes = code_layout(card)
    if not classes:
        if requested is not None:
            raise ConfigError(f"class {requested}: this {card.architecture} model is not class-conditional",
                              hint="leave out the class")
        labels = None
    elif requested is not None:
        labels = np.full(count, class_index(requested, card.class_names, option="class"), np.int32)
    else:
        labels = (np.arange(count) % classes).astype(np.int32)
    return outputs(source, card, codes(card, count, labels, seed))["images"], labels


def render(row: dict[str, np.ndarray], card: ModelCard, image: tuple[int, int], top_k: int) -> dict[str, Any]:
    raise ModelError("a generative model answers GET /generate, not image uploads")


__all__ = ["TAKES_IMAGES", "JudgedImages", "accuracy", "calibration_inputs", "code_layout", "codes", "export_card", "export_graph",
           "input_signature", "load_parts", "model_input", "sample_images", "outputs", "parity", "random_inputs", "render", "sample"]
