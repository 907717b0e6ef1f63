"""Bottleneck features: run a frozen base once, cache its outputs, train a head on them.

With the base frozen, every epoch of phase 1 would push the same images through the same
convolutions again. Computing the pooled features once (no augmentation: they are fixed) and
training only the dense head on them costs one forward pass of the data, after which an epoch
takes milliseconds. Features are cached as ``.npz`` files keyed by a hash of the model (its
name, the layer cut, and every weight), the data (pixels or file sizes and times, labels,
class names) and the input geometry, so a second run on the same data reuses them.

Planche & Andres, *Hands-On Computer Vision with TensorFlow 2*, Packt 2019, ch. 4 calls these
"bottleneck features"; ch. 8 caches InceptionV3 features of video frames the same way.

Example:
    >>> extractor, head = feature_split(model)          # doctest: +SKIP
    >>> train = compute_features(extractor, data, image_size=(224, 224), channels=3)  # doctest: +SKIP
    >>> head = train_head_on_features(train.features, train.labels, data.num_classes)  # doctest: +SKIP
    >>> full = attach_head(extractor, head)             # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

from foveal.data.source import LabeledImages
from foveal.errors import ModelError
from foveal.transfer.surgery import cut, split_index
from foveal.utils_io import atomic_path

CACHE_VERSION = 1
_POOLS = (keras.layers.GlobalAveragePooling2D, keras.layers.GlobalMaxPooling2D, keras.layers.Flatten)


def default_cache_dir() -> Path:
    """``$FOVEAL_CACHE/bottleneck``, else ``$XDG_CACHE_HOME/foveal/bottleneck`` (``~/.cache``)."""
    if os.environ.get("FOVEAL_CACHE"):
        return Path(os.environ["FOVEAL_CACHE"]) / "bottleneck"
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "foveal" / "bottleneck"


@dataclass
class Bottleneck:
    """Features of a dataset with their labels.

    Attributes:
        features: float32 (N, D).
        labels: int32 (N,), in the same order (taken from the pipeline, so skipped files
            cannot misalign them).
        class_names: the dataset's classes.
        path: the cache file.
        from_cache: True when no image was processed this time.
    """

    features: np.ndarray
    labels: np.ndarray
    class_names: list[str]
    path: Path
    from_cache: bool


# --------------------------------------------------------------------------- fingerprints

def weights_fingerprint(model: keras.Model) -> str:
    """SHA-256 of the model's name and every weight's value (any change gives a new key)."""
    digest = hashlib.sha256(model.name.encode())
    for weight in model.weights:
        value = np.ascontiguousarray(keras.ops.convert_to_numpy(weight))
        digest.update(f"{weight.path}{value.shape}{value.dtype}".encode())
        digest.update(value.tobytes())
    return digest.hexdigest()


def data_fingerprint(data: LabeledImages) -> str:
    """SHA-256 of the labels, class names and pixels (arrays) or file sizes and times."""
    digest = hashlib.sha256(json.dumps(list(data.class_names)).encode())
    digest.update(np.ascontiguousarray(data.labels, dtype=np.int64).tobytes())
    if data.images is not None:
        digest.update(str(data.images.shape).encode())
        digest.update(np.ascontiguousarray(data.images).tobytes())
    else:
        files = data.paths if data.paths is not None else data.tfrecord.files  # type: ignore[union-attr]
        for name in files:
            st = os.stat(str(name))
            digest.update(f"{name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        if data.tfrecord is not None:
            digest.update(f"{data.tfrecord.image_key},{data.tfrecord.label_key}".encode())
            if data.tfrecord.record_indices is not None:
                digest.update(np.asarray(data.tfrecord.record_indices, dtype=np.int64).tobytes())
    return digest.hexdigest()


# --------------------------------------------------------------------------- splitting

def feature_split(model: keras.Model) -> tuple[keras.Model, keras.Model]:
    """Split a classifier into a feature extractor and a head on feature vectors.

    The extractor runs up to the head's leading pooling/flatten layers (so its outputs are
    vectors); the head is the remaining chain of layers applied to an input of that size.
    Both **share layers with** ``model``: training the head trains ``model``'s head.

    Raises:
        ModelError: the head is not a simple chain of layers, or the features are not vectors.
    """
    layers_ = model.layers
    start = split_index(model)
    j = start
    while j < len(layers_) and isinstance(layers_[j], _POOLS) and not layers_[j].weights:
        j += 1
    if j == len(layers_):
        raise ModelError(f"model {model.name!r} has no dense head to train on features")
    feature_layer = layers_[j - 1]
    extractor = cut(model, feature_layer.name, name=f"{model.name}_features")
    if len(extractor.output.shape) != 2:
        raise ModelError(f"{model.name!r}: the features at {feature_layer.name!r} are not vectors "
                         f"(shape {extractor.output.shape[1:]})",
                         hint="bottleneck features need a head that starts with pooling or flatten")
    chain = layers_[j:]
    previous = feature_layer
    for layer in chain:
        if layer.input is not previous.output:
            raise ModelError(f"{model.name!r}: the head is not a simple chain of layers "
                             f"({layer.name!r} does not take {previous.name!r}'s output)")
        previous = layer
    if model.output is not previous.output:
        raise ModelError(f"{model.name!r}: the head does not end at the model's output")
    inputs = keras.Input(shape=extractor.output.shape[1:], name="features")
    x = inputs
    for layer in chain:
        x = layer(x)
    return extractor, keras.Model(inputs, x, name=f"{model.name}_head")


# --------------------------------------------------------------------------- features

def compute_features(
    extractor: keras.Model,
    data: LabeledImages,
    *,
    image_size: tuple[int, int],
    channels: int,
    batch_size: int = 64,
    keep_aspect: bool = False,
    skip_invalid: bool = False,
    cache_dir: str | os.PathLike | None = None,
) -> Bottleneck:
    """The extractor's outputs for every image of ``data``, from the cache when possible.

    Images go through :func:`foveal.data.pipeline.make_pipeline` without shuffling or
    augmentation, in inference mode (batch norm uses its moving statistics).

    Args:
        extractor: a model from raw pixels to feature vectors (e.g. from :func:`feature_split`).
        data: the images.
        image_size, channels, keep_aspect: the model's input geometry.
        cache_dir: folder for the ``.npz`` files (default: :func:`default_cache_dir`).
    """
    from foveal.data.decode import decode_errors_as_data_errors
    from foveal.data.pipeline import make_pipeline

    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    key = _cache_key(extractor, data, image_size, channels, keep_aspect, skip_invalid)
    safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in extractor.name)
    path = folder / f"{safe}-{key[:24]}.npz"
    cached = _read_cache(path)
    if cached is not None:
        features, labels = cached
        return Bottleneck(features, labels, list(data.class_names), path, from_cache=True)

    import tensorflow as tf

    ds = make_pipeline(data, image_size=tuple(image_size), channels=channels, batch_size=batch_size,
                       training=False, keep_aspect=keep_aspect, skip_invalid=skip_invalid, one_hot=False,
                       cache="none")
    forward = tf.function(lambda x: extractor(x, training=False), reduce_retracing=True)
    features, labels = [], []
    with decode_errors_as_data_errors(data.origin):
        for images, y in ds:
            features.append(np.asarray(forward(images), dtype=np.float32))
            labels.append(y.numpy().astype(np.int32))
    dim = int(extractor.output.shape[-1])
    feats = np.concatenate(features) if features else np.zeros((0, dim), np.float32)
    labs = np.concatenate(labels) if labels else np.zeros((0,), np.int32)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, features=feats, labels=labs, key=np.array(key))
    return Bottleneck(feats, labs, list(data.class_names), path, from_cache=False)


def _cache_key(extractor, data, image_size, channels, keep_aspect, skip_invalid) -> str:
    facts: dict[str, Any] = {
        "version": CACHE_VERSION, "model": extractor.name, "output": extractor.layers[-1].name,
        "input": [int(d) for d in extractor.input_shape[1:]], "weights": weights_fingerprint(extractor),
        "data": data_fingerprint(data), "size": [int(s) for s in image_size], "channels": int(channels),
        "keep_aspect": bool(keep_aspect), "skip_invalid": bool(skip_invalid),
    }
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()


def _read_cache(path: Path) -> tuple[np.ndarray, np.ndarray] | None:
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as archive:
            return archive["features"], archive["labels"]
    except (OSError, ValueError, KeyError):  # a damaged cache file is simply recomputed
        return None


# --------------------------------------------------------------------------- heads

def features_dataset(features: np.ndarray, labels: np.ndarray, num_classes: int, *, batch_size: int,
                     seed: int | None = None, start_epoch: int | None = None):
    """Batches of (features, one-hot labels); shuffled each epoch when ``seed`` is given.

    A ``tf.data`` pipeline rather than NumPy arrays in ``fit``: Keras' array adapter logs a
    TensorFlow graph warning under op determinism, and this shuffles reproducibly. With
    ``start_epoch``, the endless batches of epochs ``start_epoch``, ... each shuffled by
    ``(seed, epoch)`` (:func:`foveal.data.epochs.shuffled_epochs`; ``fit`` needs ``steps_per_epoch``).
    """
    import tensorflow as tf

    from foveal.data.epochs import shuffled_epochs

    one_hot = np.eye(num_classes, dtype=np.float32)[np.asarray(labels, dtype=np.int64)]
    ds = tf.data.Dataset.from_tensor_slices((np.asarray(features, np.float32), one_hot))
    if seed is None:
        return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)
    return shuffled_epochs(ds, len(labels), seed=seed, start_epoch=start_epoch,
                           then=lambda d, s, e: d.batch(batch_size)).prefetch(tf.data.AUTOTUNE)


def make_head(feature_dim: int, num_classes: int, *, hidden: tuple[int, ...] = (), dropout: float = 0.0,
              name: str = "head") -> keras.Model:
    """A dense classifier on feature vectors: [Dense-ReLU (+dropout)]*, dropout, logits, softmax."""
    from foveal.transfer.surgery import head_tensors

    inputs = keras.Input(shape=(feature_dim,), name="features")
    return keras.Model(inputs, head_tensors(inputs, num_classes, dropout=dropout, hidden=hidden), name=name)


def train_head_on_features(
    features: np.ndarray,
    labels: np.ndarray,
    num_classes: int,
    *,
    validation: tuple[np.ndarray, np.ndarray] | None = None,
    head: keras.Model | None = None,
    hidden: tuple[int, ...] = (),
    dropout: float = 0.0,
    epochs: int = 20,
    batch_size: int = 64,
    learning_rate: float = 1e-3,
    seed: int = 0,
    verbose: int = 0,
) -> keras.Model:
    """Train a dense head on bottleneck features (Adam, cross-entropy); return it.

    Args:
        features, labels: (N, D) features and (N,) integer labels.
        validation: optional (features, labels) reported as ``val_*`` in ``head.history``.
        head: a head to train (e.g. from :func:`feature_split`); else :func:`make_head`.
        hidden, dropout: for the new head.
    """
    features = np.asarray(features, dtype=np.float32)
    if features.ndim != 2 or len(features) != len(labels):
        raise ValueError(f"expected (N, D) features and N labels, got {features.shape} and {len(labels)}")
    keras.utils.set_random_seed(seed)
    head = head or make_head(features.shape[1], num_classes, hidden=hidden, dropout=dropout)
    head.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="categorical_crossentropy",
                 metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")])
    val = None
    if validation is not None:
        val = features_dataset(validation[0], validation[1], num_classes, batch_size=batch_size)
    head.fit(features_dataset(features, labels, num_classes, batch_size=batch_size, seed=seed),
             validation_data=val, epochs=epochs, verbose=verbose)
    return head


def attach_head(base: keras.Model, head: keras.Model, *, name: str | None = None) -> keras.Model:
    """A full image model: ``base`` (raw pixels -> feature vectors) followed by ``head``'s layers.

    ``base`` must output what ``head`` takes (e.g. the extractor of :func:`feature_split`
    or ``cut`` at a pooling layer). The head's layers are reused, so the result predicts
    exactly as base + head did; it saves and loads as a ``.keras`` file.
    """
    if tuple(base.output.shape[1:]) != tuple(head.input_shape[1:]):
        raise ModelError(f"the base outputs {tuple(base.output.shape[1:])} but the head takes "
                         f"{tuple(head.input_shape[1:])}")
    x = base.output
    taken = {layer.name for layer in base.layers}
    for layer in head.layers[1:]:
        if layer.name in taken:
            raise ModelError(f"layer name {layer.name!r} is in both the base and the head")
        x = layer(x)
    return keras.Model(base.inputs, x, name=name or base.name.removesuffix("_features"))


__all__ = ["Bottleneck", "attach_head", "compute_features", "data_fingerprint", "default_cache_dir",
           "feature_split", "features_dataset", "make_head", "train_head_on_features", "weights_fingerprint"]
