"""The classic datasets that ``keras.datasets`` downloads: MNIST, Fashion-MNIST, CIFAR-10/100.

``--data mnist`` (or ``keras:mnist``) reads them through Keras, which downloads them once into
``~/.keras/datasets`` (``KERAS_HOME``) and reads the cached copy afterwards. Offline, the download
fails; the error then says which file Keras wanted and how to read a local copy instead (the IDX
files or CIFAR batches folder work with ``--data DIR``). A folder of the same name in the current
directory wins over the download.

Example:
    >>> parts = load_keras_dataset("mnist")  # doctest: +SKIP
    >>> parts["train"].images.shape, parts["test"].images.shape  # doctest: +SKIP
    ((60000, 28, 28, 1), (10000, 28, 28, 1))
"""

from __future__ import annotations

import numpy as np

from foveal.data.source import LabeledImages
from foveal.errors import DataError

FASHION = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
           "Ankle boot"]
CIFAR10 = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]

#: name -> (keras.datasets module, class names or their count, where a local copy comes from)
KERAS_DATASETS: dict[str, tuple[str, list[str] | int, str]] = {
    "mnist": ("mnist", 10, "a folder of the four MNIST IDX files"),
    "fashion_mnist": ("fashion_mnist", FASHION, "a folder of the four Fashion-MNIST IDX files"),
    "cifar10": ("cifar10", CIFAR10, "the extracted cifar-10-batches-py folder"),
    "cifar100": ("cifar100", 100, "the extracted cifar-100-python folder"),
}
ALIASES = {"fashion-mnist": "fashion_mnist", "cifar-10": "cifar10", "cifar-100": "cifar100"}


def keras_dataset_name(spec: str) -> str | None:
    """The ``keras.datasets`` name ``spec`` asks for (``mnist``, ``keras:cifar10``, ...), else None."""
    text = spec.strip().lower()
    text = text[len("keras:"):] if text.startswith("keras:") else text
    text = ALIASES.get(text, text)
    return text if text in KERAS_DATASETS else None


def load_keras_dataset(name: str) -> dict[str, LabeledImages]:
    """``{"train", "test"}`` of a ``keras.datasets`` dataset, downloading it when not cached.

    Raises:
        DataError: the download failed (offline); the message says how to use a local copy.
    """
    import importlib

    module, classes, local = KERAS_DATASETS[name]
    loader = importlib.import_module(f"keras.datasets.{module}")
    try:
        (x_train, y_train), (x_test, y_test) = loader.load_data()
    except Exception as exc:  # noqa: BLE001 - urllib, HTTP and file errors all mean "not available"
        raise DataError(f"{name}: keras.datasets could not download it ({type(exc).__name__}: {str(exc)[:160]})",
                        hint=f"offline? pass a local copy with --data DIR ({local}), or run once online so "
                        "Keras caches it in ~/.keras/datasets") from None
    names = list(classes) if isinstance(classes, list) else [str(i) for i in range(classes)]

    def part(x: np.ndarray, y: np.ndarray, split: str) -> LabeledImages:
        images = x[..., None] if x.ndim == 3 else x
        return LabeledImages(class_names=names, labels=np.asarray(y).reshape(-1).astype(np.int32),
                             images=images.astype(np.uint8), origin=f"keras:{name}/{split}",
                             info={"format": "keras.datasets"})

    return {"train": part(x_train, y_train, "train"), "test": part(x_test, y_test, "test")}


__all__ = ["KERAS_DATASETS", "keras_dataset_name", "load_keras_dataset"]
