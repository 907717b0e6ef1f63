"""Image + mask pairs for semantic segmentation: find them, check them, decode them.

:func:`read_mask_folder` reads ``ROOT/images/NAME.ext`` + ``ROOT/masks/NAME.png`` (matched by
file stem) or the ISBI 2012 layout ``ROOT/image/N.png`` + ``ROOT/label/N.png``. Mask formats:

``index``    the pixel value is the class (``ignore_label``, 255, is "don't care"): gray, or
             palette-mode (``P``, as Pascal VOC's), whose palette *index* is the class
``binary``   gray 0 and 255 (ISBI, most medical masks) -> classes 0 and 1
``palette``  RGB, one colour per class, listed in ``ROOT/palette.txt`` as ``R G B name`` lines
             (line order = class index; ``#`` comments and blank lines skipped); VOC's "void"
             colour (:data:`VOID_COLOUR`, 224 224 192) is the ignore label unless a class has it
``auto``     ``palette`` when ``palette.txt`` exists, else ``index`` for a P-mode first mask,
             else ``binary`` when it holds only 0 and 255, else ``index``

COCO instance files are read as masks drawn from their annotations by :mod:`.coco`.

Example:
    >>> data = read_mask_folder("../shared/datasets/isbi-membrane/train")   # doctest: +SKIP
    >>> len(data), data.class_names
    (30, ['background', 'foreground'])
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from foveal.data.files import image_size, natural_key
from foveal.errors import DataError
from foveal.utils_io import is_utf8_path, printable_path

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff")
FOLDER_PAIRS = (("images", "masks"), ("image", "label"), ("images", "labels"))
MASK_FORMATS = ("auto", "index", "binary", "palette")
VOID_COLOUR = (224, 224, 192)  # PASCAL VOC's colour of its index 255: "don't care" in palette masks
INDEXED_MODES = ("P", "PA")  # PIL modes whose pixel values are palette indices


@dataclass(frozen=True)
class SegmentationImages:
    """Image files with their mask files, read on the fly.

    ``palette``: the (K, 3) uint8 colours of ``palette`` masks; ``colours``: the class colours of
    P-mode index masks (predicted masks are then written as P-mode PNGs with them); ``info``:
    facts a reader passes on (e.g. ``skipped``: the pairs left out and why).
    """

    image_paths: np.ndarray
    mask_paths: np.ndarray
    class_names: list[str]
    ignore_label: int = 255
    mask_format: str = "index"
    palette: np.ndarray | None = None
    colours: np.ndarray | None = None
    origin: str = ""
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.image_paths) != len(self.mask_paths):
            raise DataError(f"{self.origin}: {len(self.image_paths)} images but {len(self.mask_paths)} masks")
        if self.mask_format not in (*MASK_FORMATS[1:], "coco"):  # coco: see foveal.segmentation.coco
            raise DataError(f"unknown mask format {self.mask_format!r}", hint=f"use one of {', '.join(MASK_FORMATS[1:])}")
        if 0 <= self.ignore_label < self.num_classes:
            raise DataError(f"ignore_label {self.ignore_label} is also a class index (0..{self.num_classes - 1})")

    def __len__(self) -> int:
        return len(self.image_paths)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def subset(self, indices: np.ndarray) -> "SegmentationImages":
        """The pairs at ``indices``, in that order."""
        indices = np.asarray(indices, dtype=np.int64)
        return replace(self, image_paths=self.image_paths[indices], mask_paths=self.mask_paths[indices])

    def load_mask(self, index: int) -> np.ndarray:
        """Mask ``index`` as an HxW uint8 array of class indices (unknown values -> ignore)."""
        return decode_mask_array(read_mask_pixels(self.mask_paths[index], self.mask_format), self)

    def to_tf_dataset(self, channels: int = 3, skip_invalid: bool = False):
        """An unbatched ``tf.data.Dataset`` of ``(uint8 HxWxC image, uint8 HxW mask)``.

        Masks are decoded by PIL as :meth:`load_mask` does (TensorFlow's PNG decoder would expand
        a P-mode mask's palette to colours), so training, evaluation and the checks read the
        same class indices; unknown values become ``ignore_label``.
        """
        import tensorflow as tf

        from foveal.data.decode import decode_image_bytes, map_skipping_undecodable

        def decode_mask(path: bytes) -> np.ndarray:
            try:
                return decode_mask_array(read_mask_pixels(path.decode(), self.mask_format), self)
            except DataError as exc:  # TensorFlow reports a ValueError as InvalidArgumentError
                raise ValueError(exc.message) from None

        def load(image_path, mask_path):
            image = decode_image_bytes(tf.io.read_file(image_path), channels)
            mask = tf.numpy_function(decode_mask, [mask_path], tf.uint8, stateful=False)
            mask.set_shape([None, None])
            tf.debugging.assert_equal(tf.shape(image)[:2], tf.shape(mask)[:2], message="mask size differs from image")
            return image, mask

        ds = tf.data.Dataset.from_tensor_slices((self.image_paths.astype(str), self.mask_paths.astype(str)))
        if skip_invalid:  # left out, named (by the image) and counted in info["undecodable"]
            return map_skipping_undecodable(ds, load, self.info)
        return ds.map(load, num_parallel_calls=tf.data.AUTOTUNE)


def read_pixels(path: str | Path, *, indices: bool = False) -> np.ndarray:
    """The pixels of an image file as a uint8 array (HxW or HxWxC), turned upright by its EXIF
    orientation as the image decoder does; a P-mode file gives its palette indices with
    ``indices``, else its colours."""
    from PIL import Image, ImageOps

    from foveal.data.imagecheck import exif_orientation_of

    try:
        with Image.open(path) as img:
            if exif_orientation_of(img) != 1:  # as shown, and as the decoder turns images
                img = ImageOps.exif_transpose(img)
            if indices and img.mode in INDEXED_MODES:
                pixels = np.asarray(img)
                return pixels if pixels.ndim == 2 else pixels[..., 0]  # PA: drop the alpha
            if img.mode in ("P", "PA", "RGBA", "LA", "CMYK"):
                img = img.convert("RGB")
            elif img.mode not in ("L", "RGB"):
                img = img.convert("L")
            return np.asarray(img)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read the image ({exc})") from None


def read_mask_pixels(path: str | Path, mask_format: str) -> np.ndarray:
    """A mask file's pixels as its format reads them: colours for ``palette`` masks, else
    values (the palette indices of a P-mode file); ``coco`` masks are drawn from their file."""
    if mask_format == "coco":
        from foveal.segmentation.coco import read_coco_mask

        return read_coco_mask(path)
    return read_pixels(path, indices=mask_format != "palette")


def is_indexed_png(path: str | Path) -> bool:
    """True when the file is a palette-mode (``P``) image, as VOC's class masks are."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            return img.mode in INDEXED_MODES
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read the image ({exc})") from None


def read_palette(path: str | Path) -> tuple[np.ndarray, list[str]]:
    """A ``palette.txt`` (``R G B name`` per line) -> ((K, 3) uint8 colours, K names)."""
    colours, names = [], []
    for number, line in enumerate(Path(path).read_text().splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split(maxsplit=3)
        try:
            rgb = [int(v) for v in parts[:3]]
            if len(parts) < 4 or not all(0 <= v <= 255 for v in rgb):
                raise ValueError
        except ValueError:
            raise DataError(f"{path}:{number}: expected 'R G B name' with R, G, B in 0..255, got {line!r}") from None
        colours.append(rgb)
        names.append(parts[3])
    if not colours:
        raise DataError(f"{path}: the palette lists no colours")
    if len({tuple(c) for c in colours}) != len(colours):
        raise DataError(f"{path}: two classes share a colour")
    return np.asarray(colours, dtype=np.uint8), names


def decode_mask_array(raw: np.ndarray, data: SegmentationImages) -> np.ndarray:
    """Pixels of a mask file -> HxW uint8 class indices, unknown values -> ignore label."""
    if data.mask_format == "palette":
        assert data.palette is not None
        code = _pixel_codes(raw)
        out = np.full(code.shape, data.ignore_label, dtype=np.uint8)
        for index, colour in enumerate(_colour_codes(data.palette)):
            out[code == colour] = index
        return out
    if is_colour(raw):
        raise DataError(f"a {data.mask_format} mask of {data.origin} is a colour image; it would be read "
                        "by its red channel alone", hint=_COLOUR_HINT)
    gray = raw if raw.ndim == 2 else raw[..., 0]
    return _value_table(data)[gray]


_COLOUR_HINT = ("use --mask-format auto (the palette is derived from the colours) or palette with a "
                "palette.txt ('R G B name' per line)")


def unknown_values(raw: np.ndarray, data: SegmentationImages) -> list:
    """The mask values (or colours) of ``raw`` that are neither a class nor the ignore label."""
    if data.mask_format == "palette":
        known = set(_colour_codes(data.palette).tolist()) | {int(_colour_codes(np.asarray(VOID_COLOUR)))}
        return [_code_colour(c) for c in np.unique(_pixel_codes(raw)) if c not in known]
    gray = raw if raw.ndim == 2 else raw[..., 0]
    table = _value_table(data)
    ignore = -1 if data.mask_format == "binary" else data.ignore_label  # binary masks' 255 is the foreground
    return [int(v) for v in np.unique(gray) if table[v] == data.ignore_label and v != ignore]


def validate_pairs(data: SegmentationImages, skip_invalid: bool = False) -> SegmentationImages:
    """Check that every mask matches its image's size and holds only known labels; bad pairs
    raise a DataError naming them, or with ``skip_invalid`` are listed in ``info["skipped"]``."""
    keep, skipped = [], []
    for i, (image_path, mask_path) in enumerate(zip(data.image_paths, data.mask_paths)):
        problem = _pair_problem(str(image_path), str(mask_path), data)
        if problem is None:
            keep.append(i)
            continue
        if not skip_invalid:
            raise DataError(problem, hint="fix or remove the pair, or pass --skip-invalid to leave it out")
        skipped.append(problem)
    if not skipped:
        return data
    kept = data.subset(np.asarray(keep, dtype=np.int64))
    return replace(kept, info={**data.info, "skipped": data.info.get("skipped", []) + skipped})


def _pair_problem(image_path: str, mask_path: str, data: SegmentationImages) -> str | None:
    try:
        raw = read_mask_pixels(mask_path, data.mask_format)
        size = image_size(image_path)
    except DataError as exc:
        return exc.message
    if data.mask_format != "palette" and is_colour(raw):
        return (f"mask {mask_path} is a colour image but the masks are read as {data.mask_format} "
                f"(its red channel alone would be the class); {_COLOUR_HINT}")
    if raw.shape[:2] != size:
        return (f"mask {mask_path} is {raw.shape[1]}x{raw.shape[0]} but its image {image_path} is "
                f"{size[1]}x{size[0]} (width x height)")
    bad = unknown_values(raw, data)
    if bad:
        shown = ", ".join(map(str, bad[:8])) + (" ..." if len(bad) > 8 else "")
        return (f"mask {mask_path} (image {image_path}) holds values that are no class of "
                f"{data.class_names} and not the ignore label {data.ignore_label}: {shown}")
    return None


def read_mask_folder(
    root: str | Path,
    *,
    mask_format: str = "auto",
    class_names: list[str] | None = None,
    ignore_label: int = 255,
    skip_invalid: bool = False,
) -> SegmentationImages:
    """Pair the images and masks under ``root`` (see the module docstring for layouts).

    Args:
        class_names: names for ``index`` masks (default: ``class_0`` .. up to the largest value
            in the first masks); ``binary`` defaults to background/foreground, ``palette`` takes
            the palette's names.
        skip_invalid: leave out pairs with a missing partner, a size mismatch or unknown
            values (listed in ``info["skipped"]``) instead of raising a DataError.
    """
    root = Path(root)
    pair = next(((root / a, root / b) for a, b in FOLDER_PAIRS if (root / a).is_dir() and (root / b).is_dir()), None)
    if pair is None:
        raise DataError(
            f"{root}: no image/mask folders found",
            hint="expected images/ + masks/ (matched by file stem) or image/ + label/ (ISBI)",
        )
    images = {p.stem: p for p in sorted(pair[0].iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES}
    masks = {p.stem: p for p in sorted(pair[1].iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES}
    # TensorFlow cannot open a path that is not UTF-8, nor can a message print it: name it here.
    unnamed = sorted(p for p in [*images.values(), *masks.values()] if not is_utf8_path(p))
    for path in unnamed:
        (images if path.parent == pair[0] else masks).pop(path.stem, None)
    bad_names = [f"{printable_path(p)}: path is not valid UTF-8 (rename the file or its folder)" for p in unnamed]
    if bad_names and not skip_invalid:
        raise DataError(f"{len(bad_names)} file name(s) cannot be used: " + "; ".join(bad_names[:5]),
                        hint="rename the files, or pass --skip-invalid")
    lonely = sorted(set(images) ^ set(masks))
    skipped = [f"{images.get(s) or masks[s]} has no {'mask' if s in images else 'image'} in {pair[1] if s in images else pair[0]}" for s in lonely]
    if skipped and not skip_invalid:
        raise DataError(f"{len(lonely)} unpaired file(s): " + "; ".join(skipped[:5]),
                        hint="every image needs a mask with the same file stem, or pass --skip-invalid")
    skipped = bad_names + skipped
    stems = sorted(set(images) & set(masks), key=natural_key)
    if not stems:
        raise DataError(f"{root}: no image/mask pairs")
    first = masks[stems[0]]
    fmt, palette, names = _resolve_format(root, mask_format, first, class_names, ignore_label, [masks[s] for s in stems[:64]])
    colours = _indexed_colours(first, len(names)) if fmt == "index" else None
    data = SegmentationImages(
        image_paths=np.asarray([str(images[s]) for s in stems]),
        mask_paths=np.asarray([str(masks[s]) for s in stems]),
        class_names=names, ignore_label=ignore_label, mask_format=fmt, palette=palette, colours=colours,
        origin=str(root), info={"skipped": skipped} if skipped else {},
    )
    return validate_pairs(data, skip_invalid)


def _resolve_format(root: Path, mask_format: str, first_mask: Path, class_names, ignore_label: int, sample: list[Path]):
    if mask_format not in MASK_FORMATS:
        raise DataError(f"unknown mask format {mask_format!r}", hint=f"use one of {', '.join(MASK_FORMATS)}")
    palette_file = root / "palette.txt"
    if mask_format == "auto":
        if palette_file.is_file():
            mask_format = "palette"
        elif is_indexed_png(first_mask):  # VOC style: 0 and 255 there are background and "ignore"
            mask_format = "index"
        else:
            pixels = read_pixels(first_mask)
            if is_colour(pixels):  # read as gray, its red channel alone would be the class
                palette, names = derive_palette(sample)
                return "palette", palette, list(class_names or names)
            values = set(np.unique(pixels).tolist())
            mask_format = "binary" if values <= {0, 255} else "index"
    if mask_format == "palette":
        if not palette_file.is_file():
            raise DataError(f"{root}: palette masks need {palette_file} ('R G B name' per line)")
        palette, names = read_palette(palette_file)
        return "palette", palette, list(class_names or names)
    if mask_format == "binary":
        return "binary", None, list(class_names or ["background", "foreground"])
    if class_names is None:
        found = [int(v) for p in sample for v in np.unique(read_pixels(p, indices=True)) if v != ignore_label]
        top = max(found, default=0)
        class_names = [f"class_{i}" for i in range(top + 1)]
    return "index", None, list(class_names)


def is_colour(pixels: np.ndarray) -> bool:
    """Whether decoded pixels are a colour image (some pixel's R, G and B differ)."""
    if pixels.ndim != 3 or pixels.shape[-1] < 3:
        return False
    rgb = pixels[..., :3]
    return bool((rgb[..., 0] != rgb[..., 1]).any() or (rgb[..., 1] != rgb[..., 2]).any())


def derive_palette(masks: list[Path]) -> tuple[np.ndarray, list[str]]:
    """A palette (K, 3) and class names from the colours of colour masks: black is class 0,
    ``background``, the others follow in RGB order as ``colour_R_G_B``. The palette is logged as
    ``palette.txt`` lines, so a guessed palette is never silent."""
    import logging

    codes: set[int] = set()
    for path in masks:
        codes.update(np.unique(_pixel_codes(read_pixels(path))).tolist())
    ordered = sorted(codes)  # black (code 0) first when present
    colours = np.asarray([_code_colour(c) for c in ordered], dtype=np.uint8)
    names = ["background" if c == 0 else "colour_{}_{}_{}".format(*colours[i]) for i, c in enumerate(ordered)]
    lines = "\n".join(f"  {r} {g} {b} {name}" for (r, g, b), name in zip(colours.tolist(), names))
    logging.getLogger("foveal").warning(
        "%s: colour masks without palette.txt; %d classes derived from the colours of %d mask(s):\n%s\n"
        "save these lines as palette.txt beside images/ and masks/ to name the classes or fix their order",
        Path(masks[0]).parent.parent, len(names), len(masks), lines)
    return colours, names


def _indexed_colours(first_mask: Path, count: int) -> np.ndarray | None:
    """The first ``count`` colours of a P-mode first mask's palette (missing ones from
    :func:`~foveal.visualize.draw.default_palette`); None for other or unreadable masks (validation names those)."""
    from PIL import Image

    from foveal.visualize.draw import default_palette

    try:
        with Image.open(first_mask) as img:
            if img.mode not in INDEXED_MODES:
                return None
            stored = np.asarray(img.getpalette("RGB") or [], np.uint8).reshape(-1, 3)[:count]
    except (OSError, ValueError):
        return None
    colours = default_palette(count)
    colours[: len(stored)] = stored
    return colours


def _value_table(data: SegmentationImages) -> np.ndarray:
    """Gray value -> class index lookup (256 entries) for index and binary masks."""
    table = np.full(256, data.ignore_label, dtype=np.uint8)
    if data.mask_format == "binary":
        table[0], table[255] = 0, 1
    else:
        table[: data.num_classes] = np.arange(data.num_classes)
    return table


def _colour_codes(rgb: np.ndarray) -> np.ndarray:
    """``R * 65536 + G * 256 + B`` over the last axis."""
    rgb = np.asarray(rgb, dtype=np.int64)
    return rgb[..., 0] * 65536 + rgb[..., 1] * 256 + rgb[..., 2]


def _pixel_codes(pixels: np.ndarray) -> np.ndarray:
    """HxW colour codes of HxW (gray) or HxWxC pixels."""
    return _colour_codes(pixels[..., :3] if pixels.ndim == 3 else np.repeat(pixels[..., None], 3, axis=-1))


def _code_colour(code: int) -> tuple[int, int, int]:
    return (int(code) >> 16) & 255, (int(code) >> 8) & 255, int(code) & 255
