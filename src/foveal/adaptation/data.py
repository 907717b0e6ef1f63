"""The two domains of an adaptation run, read once into memory at the model's input size.

The source is any labelled dataset foveal reads; the target is a class folder (or any labelled
dataset: its labels are used only to score, and for ``--target-labels``) or a flat folder of
unlabelled images. Both are decoded once, resized to the model's input and kept as uint8
arrays (:class:`DomainImages`): the training batches then pair a shuffled labelled batch with
a shuffled target batch without touching the disk again.

Example:
    >>> domains = load_domains(AdaptConfig(source="mnist/", target="mnist-m/", channels=3),  # doctest: +SKIP
    ...                        (28, 28))
    >>> len(domains.target), domains.channels  # doctest: +SKIP
    (60000, 3)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from foveal.errors import ConfigError, DataError
from foveal.utils_io import printable_path

UNLABELLED = -1


@dataclass(frozen=True)
class DomainImages:
    """Images of one domain at the model's input size.

    Attributes:
        images: uint8 (N, H, W, C).
        labels: int32 (N,), the source's class indices; -1 where unknown.
        domain: 0 (source) or 1 (target) for every image.
        origin: where they came from, for messages and reports.
    """

    images: np.ndarray
    labels: np.ndarray
    domain: int
    origin: str

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def labelled(self) -> bool:
        return bool(len(self.labels)) and bool(np.all(self.labels >= 0))

    def take(self, indices: np.ndarray, origin: str | None = None) -> "DomainImages":
        return DomainImages(self.images[indices], self.labels[indices], self.domain, origin or self.origin)


@dataclass
class Domains:
    """Everything an adaptation run reads: source splits, target splits, classes, channels."""

    source_train: DomainImages
    source_val: DomainImages | None
    source_test: DomainImages | None
    target_train: DomainImages
    target_test: DomainImages | None
    few: DomainImages | None
    class_names: list[str]
    channels: int


def _first_file(part: Any) -> str:
    if part.paths is not None and len(part.paths):
        return printable_path(part.paths[0])
    return part.origin


def channels_of(part: Any) -> int:
    """1 or 3: the channel count a LabeledImages' images have (its first file, for folders)."""
    if part.images is not None:
        return 1 if part.images.ndim == 3 or part.images.shape[-1] == 1 else 3
    if part.paths is not None and len(part.paths):
        from PIL import Image

        from foveal.data.imagecheck import mode_channels

        try:
            with Image.open(part.paths[0]) as im:
                return mode_channels(im.mode)
        except OSError as exc:
            raise DataError(f"{printable_path(part.paths[0])}: cannot read this image ({exc})") from None
    return 3


def load_target(spec: str, **load: Any) -> dict[str, Any]:
    """The target's parts; a flat folder of images becomes one unlabelled ``train`` part.

    Raises:
        DataError: the folder has no images (named), or cannot be read.
    """
    from foveal.data.readers import load_dataset
    from foveal.data.readers.folder import IMAGE_EXTENSIONS
    from foveal.data.source import LabeledImages

    path = Path(spec)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
        has_dirs = any(p.is_dir() and not p.name.startswith(".") for p in path.iterdir())
        if not has_dirs:
            if not files:
                raise DataError(f"{printable_path(path)}: the target folder has no images "
                                f"(looked for {', '.join(sorted(IMAGE_EXTENSIONS))})",
                                hint="--target takes a class folder or a folder of unlabelled images")
            part = LabeledImages(["?"], np.zeros(len(files), np.int32), paths=np.array([str(f) for f in files]),
                                 origin=printable_path(path), info={"unlabelled": True})
            return {"train": part}
    parts = load_dataset(spec, **load)
    if not any(len(p) for p in parts.values()):
        raise DataError(f"{spec}: the target has no images", hint="--target takes a folder of images")
    return parts


def _align(part: Any, source_classes: list[str]) -> np.ndarray:
    """The part's labels as source class indices (by name); -1 for an unlabelled part."""
    if part.info.get("unlabelled"):
        return np.full(len(part), UNLABELLED, np.int32)
    index = {name: i for i, name in enumerate(source_classes)}
    unknown = [name for name in part.class_names if name not in index]
    if unknown:
        raise DataError(f"{part.origin}: target classes {unknown[:5]} are not source classes "
                        f"{source_classes[:10]}", hint="the target's class folders must be named like the source's "
                        "(or give the target as a flat folder of unlabelled images)")
    table = np.array([index[name] for name in part.class_names], np.int32)
    return table[part.labels]


def _arrays(part: Any, labels: np.ndarray, domain: int, size: tuple[int, int], channels: int,
            skip_invalid: bool) -> DomainImages:
    """Decode and resize every image of ``part`` (uint8), keeping ``labels`` aligned."""
    from foveal.data.pipeline import make_pipeline

    if part.images is not None and part.images.shape[1:3] == size and part.images.dtype == np.uint8:
        images = part.images if part.images.ndim == 4 else part.images[..., None]
        if images.shape[-1] == 1 and channels == 3:  # gray to RGB as the pipeline does, without tracing it
            images = np.repeat(images, 3, axis=-1)
        if images.shape[-1] == channels:
            return DomainImages(np.ascontiguousarray(images), labels.astype(np.int32), domain, part.origin)
    ds = make_pipeline(part, image_size=size, channels=channels, batch_size=512, training=False,
                       skip_invalid=skip_invalid, one_hot=False, cache="none")
    chunks = [np.asarray(x).round().clip(0, 255).astype(np.uint8) for x, _ in ds]
    images = np.concatenate(chunks) if chunks else np.zeros((0, *size, channels), np.uint8)
    if len(images) != len(part):
        raise DataError(f"{part.origin}: {len(part) - len(images)} image(s) could not be read",
                        hint="leave out --skip-invalid to see which, or remove them")
    return DomainImages(images, labels.astype(np.int32), domain, part.origin)


def load_domains(cfg: Any, size: tuple[int, int], default_channels: int) -> Domains:
    """Read, split, check and decode source and target (see the module docstring).

    Raises:
        DataError: unreadable data, a target with no images, target classes the source lacks.
        ConfigError: source and target have different channel counts and ``--channels`` is unset.
    """
    from foveal.data.readers import load_dataset
    from foveal.data.splits import make_splits, stratified_indices

    source = make_splits(load_dataset(cfg.source, skip_invalid=cfg.skip_invalid), val_split=cfg.val_split,
                         test_split=0.0, seed=cfg.seed)
    classes = list(source.train.class_names)
    if len(classes) < 2:
        raise DataError(f"{source.train.origin}: classification needs at least two classes, found {classes}")
    target = load_target(cfg.target, skip_invalid=cfg.skip_invalid)
    t_train = target.get("train") or next(iter(target.values()))
    t_test = target.get("test")
    labelled = not t_train.info.get("unlabelled")
    if t_test is None and labelled and "val" in target:
        t_test = target["val"]
    if t_test is None and labelled:
        keep, held = stratified_indices(t_train.labels, [cfg.target_test_split], cfg.seed)[:2]
        t_train, t_test = t_train.subset(keep), t_train.subset(held, origin=f"{t_train.origin} (test split)")

    s_channels, t_channels = channels_of(source.train), channels_of(t_train)
    channels = cfg.channels
    if channels is None:
        if s_channels != t_channels:
            raise ConfigError(f"source {_first_file(source.train)} has {s_channels} channel(s) but target "
                              f"{_first_file(t_train)} has {t_channels}: the model takes one channel count",
                              hint="pass --channels 3 (gray images are repeated to RGB) or --channels 1")
        channels = s_channels if s_channels else default_channels

    decode = dict(size=size, channels=channels, skip_invalid=cfg.skip_invalid)
    t_labels = _align(t_train, classes)
    few = None
    if cfg.target_labels:
        if not labelled:
            raise ConfigError(f"--target-labels {cfg.target_labels}: the target {cfg.target} has no labels",
                              hint="give the target as a class folder, or leave out --target-labels")
        rng = np.random.default_rng(cfg.seed)
        chosen = np.concatenate([rng.permutation(np.flatnonzero(t_labels == c))[:cfg.target_labels]
                                 for c in range(len(classes))]).astype(np.int64)
        few_part = t_train.subset(np.sort(chosen), origin=f"{t_train.origin} ({cfg.target_labels} per class)")
        few = _arrays(few_part, t_labels[np.sort(chosen)], 1, **decode)
    return Domains(
        source_train=_arrays(source.train, source.train.labels, 0, **decode),
        source_val=_arrays(source.val, source.val.labels, 0, **decode) if source.val is not None else None,
        source_test=_arrays(source.test, source.test.labels, 0, **decode) if source.test is not None else None,
        # the target's labels ride along for scoring only; the unlabelled stream never reads them
        target_train=_arrays(t_train, t_labels, 1, **decode),
        target_test=_arrays(t_test, _align(t_test, classes), 1, **decode) if t_test is not None else None,
        few=few, class_names=classes, channels=channels)


def to_labeled(part: DomainImages, class_names: list[str]):
    """A :class:`~foveal.data.source.LabeledImages` of a labelled part (for the classifier's scoring)."""
    from foveal.data.source import LabeledImages

    return LabeledImages(list(class_names), part.labels, images=part.images, origin=part.origin)


__all__ = ["DomainImages", "Domains", "channels_of", "load_domains", "load_target", "to_labeled"]
