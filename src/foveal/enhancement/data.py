"""Images for enhancement: any folder of images, or any dataset foveal reads, labels ignored.

``--data`` is a folder searched recursively for image files (JPEG, PNG, BMP, GIF; a flat folder
such as COCO's ``train2017/`` or a folder of class subfolders alike), or any dataset spec of
:func:`foveal.data.readers.load_dataset` whose images are arrays (MNIST-style IDX folders,
CIFAR batches, ``.npz``, ``mnist``/``fashion_mnist``/``cifar10`` through ``keras.datasets``).
Every file's header is read first: unreadable files, files smaller than what the run needs
(the training patch, or the scale factor) and a folder that mixes gray and colour images are
refused in one line naming the file (``--channels 1|3`` converts every image instead).

Example:
    >>> parts = read_images("../shared/datasets/coco-mini/val2017")  # doctest: +SKIP
    >>> parts["train"].channels, len(parts["train"])  # doctest: +SKIP
    (3, 79)
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from foveal.data.imagecheck import mode_channels
from foveal.errors import ConfigError, DataError
from foveal.utils_io import printable_path


@dataclass
class ImageSet:
    """Images as a uint8 array (N, H, W, C) or as files, with their sizes and channel count.

    Attributes:
        origin: where they came from, for messages.
        channels: the channel count they are decoded to (1 or 3).
        images: the array, or None.
        paths: the files, or None.
        sizes: (height, width) of each image.
        info: e.g. ``skipped`` files.
    """

    origin: str
    channels: int
    images: np.ndarray | None = None
    paths: list[str] | None = None
    sizes: list[tuple[int, int]] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.sizes)

    def subset(self, indices: Any) -> ImageSet:
        idx = [int(i) for i in np.asarray(indices, np.int64)]
        return replace(self, images=None if self.images is None else self.images[idx],
                       paths=None if self.paths is None else [self.paths[i] for i in idx],
                       sizes=[self.sizes[i] for i in idx])

    def name(self, i: int) -> str:
        """A file name for image ``i`` (its own, or ``NNNNN.png`` for arrays)."""
        return Path(self.paths[i]).name if self.paths is not None else f"{i:05d}.png"

    def load(self, i: int) -> np.ndarray:
        """Image ``i`` as uint8 HxWxC."""
        if self.images is not None:
            return to_channels(self.images[i], self.channels)
        from foveal.data.files import decode_file

        return decode_file(self.paths[i], self.channels)

    def same_size(self) -> tuple[int, int] | None:
        """The common (height, width) of every image, else None."""
        return self.sizes[0] if self.sizes and all(s == self.sizes[0] for s in self.sizes) else None


def to_channels(image: np.ndarray, channels: int) -> np.ndarray:
    """A uint8 HxWxC array with ``channels`` channels (gray <-> RGB, alpha dropped)."""
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[..., None]
    c = image.shape[-1]
    if c == channels:
        return image
    if c in (2, 4):
        image, c = image[..., :c - 1], c - 1
    if channels == 3 and c == 1:
        return np.repeat(image, 3, axis=-1)
    if channels == 1 and c == 3:
        y = image.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
        return np.clip(np.round(y), 0, 255).astype(np.uint8)[..., None]
    return image


def is_array_spec(spec: str) -> bool:
    """Whether ``spec`` is a dataset of arrays (IDX, CIFAR, npz, keras.datasets, digits), not a folder of files."""
    from foveal.data.readers import detect_format

    if Path(spec).is_dir() or Path(spec).is_file():
        try:
            kind, _ = detect_format(spec)
        except DataError:
            return False
        return kind not in ("folder",)
    return True


def read_images(spec: str, *, channels: int = 0, skip_invalid: bool = False, verify: str = "header",
                option: str = "--data") -> dict[str, ImageSet]:
    """The parts (``train``, and ``test``/``val`` when the dataset has them) of ``spec``.

    Raises:
        DataError: no images, an unreadable file, or mixed channel counts (naming the files).
    """
    if is_array_spec(spec):
        return _read_arrays(spec, channels, option)
    return {"train": read_folder(spec, channels=channels, skip_invalid=skip_invalid, verify=verify, option=option)}


def _read_arrays(spec: str, channels: int, option: str) -> dict[str, ImageSet]:
    from foveal.data.readers import load_dataset

    parts = load_dataset(spec)
    out: dict[str, ImageSet] = {}
    for name, part in parts.items():
        if part.images is None:
            raise DataError(f"{option} {spec}: the {name} part is stored as files or TFRecords, which enhancement "
                            "does not read", hint="pass the folder of image files itself")
        images = part.images if part.images.ndim == 4 else part.images[..., None]
        c = images.shape[-1]
        chosen = channels or (1 if c in (1, 2) else 3)
        out[name] = ImageSet(origin=f"{spec} ({name})", channels=chosen, images=images,
                             sizes=[tuple(images.shape[1:3])] * len(images))
    return out


def read_folder(folder: str, *, channels: int = 0, skip_invalid: bool = False, verify: str = "header",
                option: str = "--data") -> ImageSet:
    """Every image file under ``folder`` (recursively), header-checked (``verify="full"``:
    decoded), with one channel count (see the module docstring)."""
    from foveal.data.files import collect_images
    from foveal.data.imagecheck import probe_files

    path = Path(folder)
    if not path.exists():
        raise DataError(f"{option} {folder}: no such file or folder")
    files = [str(p) for p in collect_images([path])]
    probes = probe_files(files, full=verify == "full", progress=False)
    skipped = []
    keep = []
    for probe in probes:
        if probe.problem:
            if not skip_invalid:
                raise DataError(f"{printable_path(probe.path)}: {probe.problem}",
                                hint="fix or remove the file, or pass --skip-invalid to leave it out")
            skipped.append(f"{printable_path(probe.path)}: {probe.problem}")
            continue
        keep.append(probe)
    if not keep:
        raise DataError(f"{option} {folder}: no usable images" + (f" ({len(skipped)} skipped)" if skipped else ""))
    counts = [mode_channels(p.mode) for p in keep]
    if channels == 0:
        if len(set(counts)) > 1:
            gray = next(p for p, c in zip(keep, counts) if c == 1)
            colour = next(p for p, c in zip(keep, counts) if c == 3)
            raise DataError(f"{option} {folder}: mixed channel counts: {printable_path(gray.path)} is gray "
                            f"({gray.mode}) but {printable_path(colour.path)} is colour ({colour.mode})",
                            hint="pass --channels 1 or --channels 3 to convert every image")
        channels = counts[0]
    return ImageSet(origin=str(folder), channels=channels, paths=[p.path for p in keep],
                    sizes=[(int(p.height), int(p.width)) for p in keep], info={"skipped": skipped})


def check_sizes(images: ImageSet, min_side: int, what: str, *, skip_invalid: bool = False) -> ImageSet:
    """Refuse (or, with ``skip_invalid``, leave out) images with a side under ``min_side``;
    ``what`` says why, e.g. ``"the 96x96 patch (--patch-size)"``."""
    small = [i for i, (h, w) in enumerate(images.sizes) if min(h, w) < min_side]
    if not small:
        return images
    i = small[0]
    h, w = images.sizes[i]
    where = printable_path(images.paths[i]) if images.paths is not None else f"{images.origin} image {i}"
    if not skip_invalid:
        more = f" (and {len(small) - 1} more)" if len(small) > 1 else ""
        raise DataError(f"{where}: {w}x{h} is smaller than {what}{more}",
                        hint="lower the size, or pass --skip-invalid to leave such images out")
    keep = [k for k in range(len(images)) if k not in set(small)]
    if not keep:
        raise DataError(f"{images.origin}: every image is smaller than {what}")
    out = images.subset(keep)
    out.info = {**images.info, "skipped": images.info.get("skipped", []) + [f"{where}: smaller than {what}"]}
    return out


def split(images: ImageSet, fraction: float, seed: int) -> tuple[ImageSet, ImageSet | None]:
    """(rest, a seeded random ``fraction`` of the images); None when it would be empty."""
    count = int(round(len(images) * fraction))
    if fraction <= 0 or count == 0:
        return images, None
    if count >= len(images):
        raise ConfigError(f"a split of {fraction:g} of {len(images)} image(s) leaves none to train on")
    order = np.random.default_rng(seed).permutation(len(images))
    return images.subset(np.sort(order[count:])), images.subset(np.sort(order[:count]))


__all__ = ["ImageSet", "check_sizes", "is_array_spec", "mode_channels", "read_folder", "read_images", "split",
           "to_channels"]
