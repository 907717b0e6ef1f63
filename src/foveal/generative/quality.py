"""Measuring generated images offline: Frechet and kernel distances in a classifier's feature space.

The Frechet distance between two Gaussians fitted to feature vectors (Heusel et al. 2017, the
"FID" when the features are InceptionV3's pool3 activations):

    d^2 = |mu_1 - mu_2|^2 + Tr(S_1 + S_2 - 2 (S_1 S_2)^(1/2))

Here ``Tr((S_1 S_2)^(1/2))`` is computed as the sum of the square roots of the eigenvalues of
the symmetric matrix ``S_1^(1/2) S_2 S_1^(1/2)`` (same spectrum as ``S_1 S_2``), which is
stable and real, where ``scipy.linalg.sqrtm`` of the non-symmetric product can return complex
noise; the tests compare both.

The kernel distance (KID, Binkowski et al. 2018, "Demystifying MMD GANs") is the unbiased
estimate of the squared maximum mean discrepancy with the cubic polynomial kernel
``k(x, y) = (x . y / d + 1)^3``, averaged over random subsets; unlike the Frechet distance it
has no bias that depends on the sample size.

Offline there are no InceptionV3 weights, so foveal's default judge is a classifier trained on
the same data (its penultimate layer's activations): the numbers are called the
**classifier-space Frechet distance** and **classifier-space kernel distance**, and are
comparable only between runs judged by the same classifier file. With InceptionV3 weights
(``--inception-weights FILE.h5``, a keras.applications file) the standard FID is computed too.
For conditional models the same classifier also says how often a sample is recognised as the
class that was asked for (requested-class accuracy).

Example:
    >>> import numpy as np
    >>> a, b = np.random.default_rng(0).normal(size=(2, 500, 8))
    >>> round(frechet_distance(*gaussian_stats(a), *gaussian_stats(a)), 6)
    0.0
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from foveal.errors import ConfigError, ModelError

if TYPE_CHECKING:
    import keras

    from foveal.models import ModelCard


def gaussian_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean, covariance) of feature rows (float64; covariance with ``N - 1``)."""
    f = np.asarray(features, np.float64)
    if f.ndim != 2 or len(f) < 2:
        raise ValueError(f"need at least two feature rows, got shape {f.shape}")
    return f.mean(axis=0), np.cov(f, rowvar=False)


def _sqrt_psd(matrix: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """The squared Frechet distance between ``N(mu1, sigma1)`` and ``N(mu2, sigma2)`` (module docstring)."""
    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    s1, s2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    root = _sqrt_psd(s1)
    cross = np.linalg.eigvalsh(root @ s2 @ root)
    trace_sqrt = float(np.sqrt(np.clip(cross, 0, None)).sum())
    diff = mu1 - mu2
    return float(max(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * trace_sqrt, 0.0))


def _polynomial_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    d = x.shape[1]
    kxx = (x @ x.T / d + 1.0) ** 3
    kyy = (y @ y.T / d + 1.0) ** 3
    kxy = (x @ y.T / d + 1.0) ** 3
    m, n = len(x), len(y)
    return float((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
                 - 2.0 * kxy.mean())


def kernel_distance(real: np.ndarray, fake: np.ndarray, *, subsets: int = 10, subset_size: int = 1000,
                    seed: int = 0) -> tuple[float, float]:
    """(mean, standard deviation) over ``subsets`` random subsets of the unbiased polynomial-kernel MMD^2.

    A subset holds ``min(subset_size, len(real), len(fake))`` rows of each side, drawn without
    replacement; when that is every row of both, one subset is computed (it is exact)."""
    x, y = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    if len(x) < 2 or len(y) < 2:
        raise ValueError("the kernel distance needs at least two rows on each side")
    size = min(subset_size, len(x), len(y))
    if size == len(x) == len(y):
        return _polynomial_mmd2(x, y), 0.0
    rng = np.random.default_rng(seed)
    values = [_polynomial_mmd2(x[rng.choice(len(x), size, replace=False)], y[rng.choice(len(y), size, replace=False)])
              for _ in range(subsets)]
    return float(np.mean(values)), float(np.std(values))


# ---------------------------------------------------------------------------- judges
@dataclass
class Judge:
    """A network that turns images into feature rows (and, for a classifier, class probabilities).

    Attributes:
        name: what the numbers are called (``classifier-space`` or ``Inception``).
        model: images -> ``[features, probabilities]`` (classifier) or ``features`` (Inception).
        input_shape: (H, W, C) it takes; images are resized and their channels converted to it.
        class_names: the classifier's classes (empty for Inception).
        source: the file it came from.
    """

    name: str
    model: Any
    input_shape: tuple[int, int, int]
    class_names: list[str]
    source: str
    scale: str = "pixels"  # "pixels": 0..255 raw; "inception": [-1, 1]

    def run(self, images01: np.ndarray, batch_size: int = 250) -> tuple[np.ndarray, np.ndarray | None]:
        """(features, probabilities or None) of images in [0, 1] (N, H, W, C)."""
        import tensorflow as tf

        feats, probs = [], []
        h, w, c = self.input_shape
        for start in range(0, len(images01), batch_size):
            x = tf.convert_to_tensor(np.asarray(images01[start:start + batch_size], np.float32))
            if x.shape[-1] != c:
                x = tf.image.grayscale_to_rgb(x) if c == 3 else tf.image.rgb_to_grayscale(x)
            if tuple(x.shape[1:3]) != (h, w):
                x = tf.image.resize(x, (h, w), method="bilinear")
            x = x * 255.0 if self.scale == "pixels" else x * 2.0 - 1.0
            out = self.model(x, training=False)
            if isinstance(out, (list, tuple)):
                feats.append(np.asarray(out[0]))
                probs.append(np.asarray(out[1]))
            else:
                feats.append(np.asarray(out))
        f = np.concatenate(feats).reshape(len(images01), -1).astype(np.float64)
        return f, (np.concatenate(probs) if probs else None)


def classifier_judge(path: str | Path) -> Judge:
    """The judge of a foveal classifier file: its penultimate layer's activations and its probabilities."""

    from foveal.models import load_model

    model, card = load_model(path)
    if card.task != "classify":
        raise ConfigError(f"--classifier {path} is a {card.task} model", hint="give a classifier trained by "
                          "`foveal train` on the same data, or --classifier auto")
    return judge_of_classifier(model, card, str(path))


def judge_of_classifier(model: keras.Model, card: ModelCard, source: str) -> Judge:
    import keras

    last = next((layer for layer in reversed(model.layers) if isinstance(layer, keras.layers.Dense)), None)
    if last is None:
        raise ModelError(f"{source}: the classifier has no final Dense layer whose input could serve as features")
    both = keras.Model(model.inputs, [last.input, model.outputs[0]], name="judge")
    return Judge("classifier-space", both, tuple(card.input_shape), list(card.class_names), source)


INCEPTION_URL = ("https://storage.googleapis.com/tensorflow/keras-applications/inception_v3/"
                 "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5")


def _download_failed(exc: BaseException) -> bool:
    """Whether ``exc`` (from keras.applications) is a failed download, not bad weights: Keras'
    ``get_file`` raises a plain Exception saying "URL fetch failure" (or lets a URLError through)."""
    import urllib.error

    return isinstance(exc, urllib.error.URLError) or "URL fetch failure" in str(exc)


def inception_judge(weights: str) -> Judge:
    """InceptionV3's 2048 pool features (the standard FID) from ``weights``: a keras.applications
    weights file, or ``imagenet`` (downloaded once by Keras into ``~/.keras/models``, where an
    offline machine also finds a copy put there by hand).

    These are keras.applications' InceptionV3 weights, bilinearly resized 299x299 inputs: the
    FID follows Heusel et al.'s formula on the same layer, but the original TF graph of the
    reference implementations (pytorch-fid, TTUR) holds slightly different weights, so values are
    close to, not equal to, published FIDs; compare FIDs computed the same way.

    Raises:
        ConfigError: no such file, or ``imagenet`` offline (one line saying where to get the file);
        ModelError: the file is not InceptionV3 weights.
    """
    import keras

    if weights != "imagenet" and not Path(weights).is_file():
        raise ConfigError(f"--inception-weights {weights}: file not found",
                          hint="pass keras.applications' inception_v3 .h5 weights file (offline there is no download)")
    # "imagenet" downloads only the headless file; a user's file may be either.
    tries = [dict(include_top=False, pooling="avg", input_shape=(299, 299, 3))]
    if weights != "imagenet":
        tries.append(dict(include_top=True))
    last_error: Exception | None = None
    for kwargs in tries:
        try:
            net = keras.applications.InceptionV3(weights=weights, **kwargs)
        except Exception as exc:  # noqa: BLE001 - wrong file shapes, HDF5 errors and download errors alike
            last_error = exc
            if weights == "imagenet" and _download_failed(exc):
                raise ConfigError(
                    "--inception-weights imagenet: InceptionV3's ImageNet weights could not be downloaded "
                    "(no network?)",
                    hint=f"on a machine with network download {INCEPTION_URL} and pass --inception-weights FILE "
                         "(or put it in ~/.keras/models/, where Keras finds it offline)") from None
            continue
        if kwargs.get("include_top"):
            net = keras.Model(net.inputs, net.get_layer("avg_pool").output)
        return Judge("Inception", net, (299, 299, 3), [], weights, scale="inception")
    raise ModelError(f"--inception-weights {weights} is not InceptionV3 weights: {type(last_error).__name__}: "
                     f"{str(last_error)[:160]}",
                     hint="pass keras.applications' inception_v3_weights_tf_dim_ordering_tf_kernels(_notop).h5")


@dataclass
class RealStats:
    """The real side of a comparison, computed once: features, their Gaussian, and the images' count."""

    features: np.ndarray
    mean: np.ndarray
    cov: np.ndarray

    @classmethod
    def of(cls, judge: Judge, images01: np.ndarray) -> "RealStats":
        f, _ = judge.run(images01)
        return cls(f, *gaussian_stats(f))


def compare(judge: Judge, real: RealStats, fake01: np.ndarray, requested: np.ndarray | None = None,
            seed: int = 0) -> dict[str, Any]:
    """Frechet distance, kernel distance (mean, std) and, with ``requested`` class ids, the judge's
    accuracy on them, of generated images in [0, 1] against ``real``."""
    f, probs = judge.run(fake01)
    prefix = "frechet" if judge.name == "classifier-space" else "inception_fid"
    out: dict[str, Any] = {prefix: frechet_distance(real.mean, real.cov, *gaussian_stats(f))}
    if judge.name == "classifier-space":
        kid, kid_std = kernel_distance(real.features, f, seed=seed)
        out |= {"kernel_distance": kid, "kernel_distance_std": kid_std}
        if requested is not None and probs is not None:
            out["class_accuracy"] = float(np.mean(np.argmax(probs, axis=1) == np.asarray(requested)))
    else:
        kid, kid_std = kernel_distance(real.features, f, seed=seed)
        out |= {"inception_kid": kid, "inception_kid_std": kid_std}
    return out


__all__ = ["Judge", "RealStats", "classifier_judge", "compare", "frechet_distance", "gaussian_stats",
           "inception_judge", "judge_of_classifier", "kernel_distance"]
