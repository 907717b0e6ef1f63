"""The images a generative model learns from: splits, image shape, and NumPy copies for scoring.

Any dataset foveal reads works (image folders, IDX, CIFAR, ``.npz``, TFRecord, ``mnist`` /
``fashion_mnist``); labels are used by conditional models and ignored by the others. The image
shape is ``--image-size`` and ``--channels`` when given, else the data's own; an image folder
whose files mix gray and colour, or differ in size, is refused in one line naming two such
files (a model has one channel count and one size).

Example:
    >>> data = load_generative_data(GenerateConfig(data="mnist"))  # doctest: +SKIP
    >>> data.extra["image_shape"]  # doctest: +SKIP
    (28, 28, 1)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from foveal.engine.plugin import RunData
from foveal.errors import ConfigError, DataError
from foveal.generative.config import GenerateConfig

if TYPE_CHECKING:
    from foveal.data.source import LabeledImages


def _file_geometry(part: LabeledImages) -> tuple[set[int], set[tuple[int, int]], dict[Any, str]]:
    """Channel counts and sizes of a folder's files (from their headers), with an example file for each."""
    from foveal.data.imagecheck import mode_channels, probe_files

    channels, sizes, example = set(), set(), {}
    for probe in probe_files(part.paths, full=False, progress=False):
        if probe.mode is None or probe.width is None:
            continue
        c = mode_channels(probe.mode)
        channels.add(c)
        sizes.add((probe.height, probe.width))
        example.setdefault(c, probe.path)
        example.setdefault((probe.height, probe.width), probe.path)
    return channels, sizes, example


def image_shape_of(cfg: GenerateConfig, train: LabeledImages) -> tuple[int, int, int]:
    """(H, W, C) of the model: the options', else the data's (refusing mixed channel counts or sizes)."""
    hw, channels = cfg.image_hw, cfg.channels or None
    if train.images is not None:
        images = train.images
        data_c = 1 if images.ndim == 3 else int(images.shape[-1])
        data_hw = (int(images.shape[1]), int(images.shape[2]))
    elif train.paths is not None and (hw is None or channels is None):
        found_c, found_hw, example = _file_geometry(train)
        if channels is None and len(found_c) > 1:
            raise DataError(f"{cfg.data}: the images mix gray and colour (e.g. {example[1]} is gray, {example[3]} "
                            "is colour)", hint="pass --channels 1 or --channels 3 to convert them all")
        if hw is None and len(found_hw) > 1:
            a, b = sorted(found_hw)[:2]
            raise DataError(f"{cfg.data}: the images differ in size (e.g. {example[a]} is {a[1]}x{a[0]}, "
                            f"{example[b]} is {b[1]}x{b[0]})", hint="pass --image-size to resize them all")
        data_c = next(iter(found_c), 3)
        data_hw = next(iter(found_hw), (32, 32))
    else:
        if hw is None:
            raise ConfigError(f"{cfg.data}: the image size cannot be read ahead of training",
                              hint="pass --image-size")
        data_c, data_hw = 3, hw
    c = channels or data_c
    if c not in (1, 3):
        c = 3 if c == 4 else 1
    h, w = hw or data_hw
    if h % 4 or w % 4:
        raise ConfigError(f"image size {h}x{w} is not a multiple of 4, which the generative models need",
                          hint="pass --image-size with a multiple of 4 (e.g. 28, 32, 64)")
    return int(h), int(w), int(c)


def load_generative_data(cfg: GenerateConfig) -> RunData:
    """Read and split ``cfg.data``; ``extra``: ``image_shape``."""
    from foveal.data.readers import load_dataset
    from foveal.data.splits import make_splits

    splits = make_splits(load_dataset(cfg.data, skip_invalid=cfg.skip_invalid),
                         val_split=cfg.val_split, test_split=cfg.test_split, seed=cfg.seed)
    names = list(splits.train.class_names)
    if cfg.model == "cgan" and len(names) < 2:
        raise DataError(f"{cfg.data}: cgan needs labelled images of at least two classes (found {names})",
                        hint="use --model dcgan or vae for unlabelled images")
    shape = image_shape_of(cfg, splits.train)
    return RunData(splits.train, splits.val, splits.test, names, extra={"image_shape": shape})


def pipeline(part: LabeledImages, shape: tuple[int, int, int], batch_size: int, *, training: bool, seed: int = 0,
             cache: str = "auto", skip_invalid: bool = False, start_epoch: int | None = None):
    """Batches of ``(float32 images 0..255, int32 labels)`` (``start_epoch``: see
    :func:`foveal.data.pipeline.make_pipeline`)."""
    from foveal.data.pipeline import make_pipeline

    return make_pipeline(part, image_size=shape[:2], channels=shape[2], batch_size=batch_size, training=training,
                         cache=cache, seed=seed, skip_invalid=skip_invalid, one_hot=False, start_epoch=start_epoch)


def images01(part: LabeledImages, shape: tuple[int, int, int], count: int, seed: int = 0,
             skip_invalid: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Up to ``count`` images of ``part`` (a seeded choice) in [0, 1], with their labels."""
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(len(part), min(count, len(part)), replace=False))
    ds = pipeline(part.subset(chosen), shape, 256, training=False, cache="none", skip_invalid=skip_invalid)
    xs, ys = zip(*[(np.asarray(x), np.asarray(y)) for x, y in ds]) if len(chosen) else ((), ())
    if not xs:
        raise DataError(f"{part.origin}: no images to compare with")
    return np.concatenate(xs) / 255.0, np.concatenate(ys)


__all__ = ["image_shape_of", "images01", "load_generative_data", "pipeline"]
