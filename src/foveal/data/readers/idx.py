"""MNIST-style IDX files (MNIST, Fashion-MNIST and their relatives), gzipped or not.

An IDX file is a 4-byte magic number (two zero bytes, a type code, the number of dimensions),
one big-endian uint32 per dimension, then the raw values. Only unsigned bytes (type 0x08) are
read, which is what every MNIST-like image set uses. The header is checked against the file:
a wrong magic number, dimension count or length, or different image and label counts, raise a
:class:`~foveal.errors.DataError` that names the file.

Example:
    >>> splits = load_idx_dir(Path("datasets/fashion-mnist"))   # doctest: +SKIP
    >>> splits["train"].images.shape, splits["train"].class_names[0]  # doctest: +SKIP
    ((60000, 28, 28, 1), 'T-shirt/top')
"""

from __future__ import annotations

import gzip
import re
import zlib
from pathlib import Path

import numpy as np

from foveal.data.readers import check_label_range, classes_txt_beside, infer_class_count, numbered_names
from foveal.data.source import LabeledImages
from foveal.errors import DataError

IDX_NAME = re.compile(r"^(train|t10k)-(images|labels)[-.]idx([13])-ubyte(\.gz)?$", re.IGNORECASE)
UBYTE = 0x08
FASHION_NAMES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]  # fmt: skip
_PREFIX_SPLIT = {"train": "train", "t10k": "test"}
_FIX_HINT = "the file may be damaged or only partly downloaded; download it again"


def _read_raw(path: Path) -> bytes:
    """The file's bytes, gunzipped when it starts with the gzip magic number."""
    try:
        with open(path, "rb") as f:
            head = f.read(2)
            f.seek(0)
            if head == b"\x1f\x8b":
                with gzip.GzipFile(fileobj=f) as gz:
                    return gz.read()
            return f.read()
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: corrupt gzip data ({exc})", hint=_FIX_HINT) from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read the file ({exc.strerror or exc})") from None


def read_idx(path: str | Path, expect_ndim: int) -> np.ndarray:
    """Read an unsigned-byte IDX file with ``expect_ndim`` dimensions, checking its header.

    Args:
        path: the file, gzipped or not.
        expect_ndim: 3 for images, 1 for labels.

    Returns:
        A writable uint8 array with the shape the header declares.
    """
    path = Path(path)
    raw = _read_raw(path)
    kind = "image" if expect_ndim == 3 else "label"
    if len(raw) < 4:
        raise DataError(
            f"{path}: only {len(raw)} bytes, too short for an IDX header", hint=_FIX_HINT
        )
    if raw[0] != 0 or raw[1] != 0:
        raise DataError(
            f"{path}: not an IDX file (magic number 0x{raw[:4].hex()}, "
            f"expected 0x000008{expect_ndim:02x})",
            hint=_FIX_HINT,
        )
    if raw[2] != UBYTE:
        raise DataError(
            f"{path}: IDX data type 0x{raw[2]:02x}; only unsigned bytes (0x08) are supported"
        )
    ndim = raw[3]
    if ndim != expect_ndim:
        raise DataError(
            f"{path}: the IDX header declares {ndim} dimensions, but an {kind} file has "
            f"{expect_ndim}",
            hint="check that the images and labels files were not swapped or renamed",
        )
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: the IDX header is cut short", hint=_FIX_HINT)
    dims = tuple(int(d) for d in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    expected = int(np.prod(dims, dtype=np.int64))
    if len(raw) - header != expected:
        raise DataError(
            f"{path}: the IDX header declares dimensions {'x'.join(map(str, dims))} "
            f"({expected} bytes of data) but the file holds {len(raw) - header} bytes",
            hint=_FIX_HINT,
        )
    return np.frombuffer(bytearray(raw), np.uint8, offset=header).reshape(dims)


def find_idx_files(folder: Path) -> dict[tuple[str, str], Path]:
    """``{(prefix, "images"|"labels"): path}`` for the IDX files in ``folder``.

    When both ``x`` and ``x.gz`` exist, the uncompressed one is used.
    """
    found: dict[tuple[str, str], Path] = {}
    try:
        entries = sorted(folder.iterdir())
    except OSError:
        return found
    for entry in entries:
        match = IDX_NAME.match(entry.name)
        if not match or not entry.is_file():
            continue
        key = (match.group(1).lower(), match.group(2).lower())
        if key not in found or found[key].suffix == ".gz":
            found[key] = entry
    return found


def class_names_for(folder: Path, labels: list[tuple[str, np.ndarray]]) -> list[str]:
    """``classes.txt`` if present, Fashion-MNIST names for a folder named *fashion*, or digits."""
    listed = classes_txt_beside(folder)
    if listed is not None:
        return listed
    if "fashion" in folder.name.lower():
        return list(FASHION_NAMES)
    return numbered_names(infer_class_count(labels, minimum=10))


def _pair(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    images = read_idx(images_path, 3)
    labels = read_idx(labels_path, 1)
    if len(images) != len(labels):
        raise DataError(
            f"{images_path} holds {len(images)} images but {labels_path} holds "
            f"{len(labels)} labels",
            hint="the two files must come from the same set (train-* with train-*, "
            "t10k-* with t10k-*)",
        )
    return images[..., None], labels.astype(np.int32)


def _build(
    pairs: dict[str, tuple[Path, Path]], folder: Path
) -> dict[str, LabeledImages]:
    arrays = {split: _pair(img, lab) for split, (img, lab) in pairs.items()}
    names = class_names_for(folder, [(str(pairs[split][1]), lab) for split, (_, lab) in arrays.items()])
    out = {}
    for split, (images, labels) in arrays.items():
        origin = str(pairs[split][1])
        check_label_range(labels, names, origin)
        out[split] = LabeledImages(
            class_names=names,
            labels=labels,
            images=images,
            origin=str(pairs[split][0]),
            info={"format": "idx"},
        )
    return out


def load_idx_dir(folder: Path) -> dict[str, LabeledImages]:
    """Read ``train-*`` (required) and ``t10k-*`` (optional) IDX pairs from ``folder``."""
    found = find_idx_files(folder)
    pairs: dict[str, tuple[Path, Path]] = {}
    for prefix, split in _PREFIX_SPLIT.items():
        images, labels = found.get((prefix, "images")), found.get((prefix, "labels"))
        if images is None and labels is None:
            continue
        if images is None or labels is None:
            have, missing = (images or labels), ("images" if images is None else "labels")
            raise DataError(
                f"{folder}: found {have.name} but no {prefix}-{missing}-idx"
                f"{3 if missing == 'images' else 1}-ubyte[.gz] beside it",
                hint="IDX images and labels come in pairs; add the missing file",
            )
        pairs[split] = (images, labels)
    if "train" not in pairs:
        raise DataError(
            f"{folder}: IDX test files but no train-images-idx3-ubyte / "
            "train-labels-idx1-ubyte",
            hint="add the train files, or point at the t10k image file itself",
        )
    return _build(pairs, folder)


def load_idx_file(images_path: Path) -> dict[str, LabeledImages]:
    """Read one IDX image file and the labels file beside it (``images-idx3`` -> ``labels-idx1``).

    The split is ``"test"`` for ``t10k-*`` files and ``"train"`` otherwise.
    """
    name = images_path.name
    base = re.sub(r"\.gz$", "", name, flags=re.IGNORECASE)
    label_base = re.sub(r"images([-.])idx3", r"labels\1idx1", base, flags=re.IGNORECASE)
    if label_base == base:
        raise DataError(
            f"{images_path}: not an IDX image file name (expected *-images-idx3-ubyte[.gz])"
        )
    candidates = [images_path.with_name(label_base), images_path.with_name(label_base + ".gz")]
    labels_path = next((c for c in candidates if c.is_file()), None)
    if labels_path is None:
        raise DataError(
            f"{images_path}: no labels file {label_base}[.gz] beside it",
            hint="put the matching labels-idx1-ubyte file in the same folder",
        )
    split = "test" if name.lower().startswith("t10k") else "train"
    return _build({split: (images_path, labels_path)}, images_path.parent)
