"""Check image files before training: can TensorFlow decode them, and are they safe to open?

A *header* check opens each file with PIL (format, mode, size, decompression-bomb limit) and
costs a few hundred bytes of reading per file, plus the last 4 KB of a PNG or JPEG to find its
end marker (a file without one is decoded to confirm it is truncated); a *full* check also
decodes the pixels, which catches corrupt files. Problems come back as short strings such as
``"not an image file"`` or ``"truncated or corrupt: ..."``; ``None`` means the file is fine.

Gray, RGB, RGBA, palette, gray+alpha, 16-bit and CMYK images are all fine: TensorFlow decodes
them. What is refused is what TensorFlow cannot decode (TIFF, 1-bit or RLE-compressed BMP, odd
PIL modes), plus empty, truncated and oversized files.

Example:
    >>> problems = scan_files(["a.jpg", "b.png"], full=True, max_pixels=89_478_485)
    >>> problems                                           # doctest: +SKIP
    {'b.png': 'truncated or corrupt: image file is truncated'}
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import BinaryIO, Callable, Iterable, Iterator, TypeVar

from PIL import Image, UnidentifiedImageError

DEFAULT_MAX_PIXELS = 89_478_485  # PIL's own default limit
PROGRESS_THRESHOLD = 2000  # show a progress bar above this many files
_CHUNK = 4096  # files handed to the thread pool at a time (bounds the number of futures)

# Formats TensorFlow's ``decode_image`` reads (MPO is a JPEG with extra frames).
DECODABLE_FORMATS = {"JPEG", "MPO", "PNG", "BMP", "GIF", "WEBP"}
FINE_MODES = {
    "1", "L", "P", "LA", "PA", "La", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr",
    "I", "I;16", "I;16B", "I;16L", "I;16N",
}  # fmt: skip
GRAY_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}  # PIL's one-channel modes
_BMP_DEPTHS = {8, 24, 32}  # TensorFlow's BMP decoder refuses 1-, 4- and 16-bit files
_BMP_RLE = {1, 2}  # BI_RLE8, BI_RLE4
_BOMB_PIXELS = re.compile(r"\((\d+) pixels\)")

T = TypeVar("T")


@dataclass(frozen=True)
class ImageProbe:
    """What a check learned about one image.

    Attributes:
        path: the file (or a label such as ``"x.tfrecord#12"`` for bytes).
        problem: ``None`` if the image is usable, else a short description.
        width, height, mode, format: from the header, when it could be read.
        orientation: the EXIF orientation (1..8) of a JPEG, 1 when absent; TensorFlow's
            decoders ignore it, so foveal's decoder applies it
            (:func:`foveal.data.decode.decode_image_bytes`).
    """

    path: str
    problem: str | None = None
    width: int | None = None
    height: int | None = None
    mode: str | None = None
    format: str | None = None
    orientation: int = 1

    @property
    def shown_size(self) -> tuple[int | None, int | None]:
        """``(width, height)`` as the image is shown and decoded: EXIF orientations 5-8 turn it a
        quarter, so its stored width and height swap."""
        return (self.height, self.width) if self.orientation in (5, 6, 7, 8) else (self.width, self.height)


_PIL_LIMIT_LOCK = threading.RLock()


@contextlib.contextmanager
def pil_pixel_limit(max_pixels: int) -> Iterator[None]:
    """Let our own ``max_pixels`` test decide, not PIL's global limit.

    PIL warns above ``Image.MAX_IMAGE_PIXELS`` and raises above twice that. The warning is
    silenced here (the size is checked explicitly), and PIL's limit is raised for the duration
    only when the caller allows more pixels than PIL would ever open.
    """
    limit = Image.MAX_IMAGE_PIXELS
    if limit is None or max_pixels <= limit:
        yield  # PIL neither warns nor refuses below our own limit: nothing global to touch
        return
    with _PIL_LIMIT_LOCK:  # PIL's limit and the warnings filters are process-wide
        yield from _pil_pixel_limit_unlocked(max_pixels)


def _pil_pixel_limit_unlocked(max_pixels: int) -> Iterator[None]:
    old = Image.MAX_IMAGE_PIXELS
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        if old is not None and max_pixels >= 2 * old:
            Image.MAX_IMAGE_PIXELS = max_pixels
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = old


def _bomb_problem(pixels: int | None, max_pixels: int) -> str:
    count = f"{pixels} pixels" if pixels is not None else "too many pixels"
    return f"image has {count}, over the limit of {max_pixels} (decompression bomb?)"


def _bmp_problem(fp: BinaryIO, img: Image.Image) -> str | None:
    """1-, 4- and 16-bit and RLE-compressed BMPs open in PIL but not in TensorFlow."""
    if img.info.get("compression") in _BMP_RLE:
        return "unsupported BMP: RLE-compressed (TensorFlow reads uncompressed BMP only)"
    fp.seek(14)
    header = fp.read(16)
    if len(header) < 16:
        return None
    header_size = int.from_bytes(header[0:4], "little")
    offset = 10 if header_size == 12 else 14  # OS/2 core header vs BITMAPINFOHEADER
    bits = int.from_bytes(header[offset : offset + 2], "little")
    if bits not in _BMP_DEPTHS:
        return f"unsupported BMP: {bits} bits per pixel (TensorFlow reads 8-, 24- and 32-bit BMP)"
    return None


def _inspect_open(img: Image.Image, fp: BinaryIO, full: bool, max_pixels: int) -> str | None:
    """The problem with an opened image, or None."""
    width, height = img.size
    if width <= 0 or height <= 0:
        return f"image has zero size ({width}x{height})"
    if width * height > max_pixels:
        return _bomb_problem(width * height, max_pixels)
    if img.format not in DECODABLE_FORMATS:
        return (
            f"unsupported format {img.format} "
            "(TensorFlow decodes JPEG, PNG, BMP and GIF)"
        )
    if img.mode not in FINE_MODES:
        return f"unsupported mode {img.mode}"
    if img.format == "BMP":
        problem = _bmp_problem(fp, img)
        if problem:
            return problem
    cut = _cut_short(fp, img.format)
    if cut and img.format == "PNG":  # PIL reads such a file, TensorFlow refuses it
        return "truncated or corrupt: the PNG file has no IEND chunk (cut short?)"
    if full or cut:
        try:
            img.load()
        except Image.DecompressionBombError as exc:
            return _bomb_problem(_pixels_in(exc), max_pixels)
        except Exception as exc:  # PIL plugins raise OSError, SyntaxError, ValueError, ...
            return f"truncated or corrupt: {_short(exc)}"
    return None


_TAIL = 4096  # bytes read from the end of a PNG or JPEG to find its end marker
_END_MARKERS = {"PNG": b"IEND", "JPEG": b"\xff\xd9", "MPO": b"\xff\xd9"}


def _cut_short(fp: BinaryIO, fmt: str | None) -> bool:
    """Whether a PNG lacks its end chunk, or a JPEG its end marker near the end.

    A header check alone passes a file cut short (a download that stopped), which then fails
    in the middle of training. Reading the last few KB costs one seek. A PNG whose tail lacks
    ``IEND`` is searched whole (a long trailer is allowed); a JPEG whose tail lacks its end
    marker is then decoded by the caller to confirm, so a trailer there is allowed too.
    """
    marker = _END_MARKERS.get(fmt or "")
    if marker is None:
        return False
    where = fp.tell()
    try:
        fp.seek(0, os.SEEK_END)
        size = fp.tell()
        fp.seek(max(0, size - _TAIL))
        if marker in fp.read(_TAIL):
            return False
        if fmt != "PNG":
            return True
        fp.seek(0)
        previous = b""
        while chunk := fp.read(1 << 20):
            if marker in previous[-len(marker) + 1:] + chunk:
                return False
            previous = chunk
        return True
    except (OSError, ValueError):
        return False
    finally:
        fp.seek(where)


def _pixels_in(exc: Exception) -> int | None:
    match = _BOMB_PIXELS.search(str(exc))
    return int(match.group(1)) if match else None


def _short(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:200]


def _probe_stream(fp: BinaryIO, name: str, full: bool, max_pixels: int) -> ImageProbe:
    try:
        img = Image.open(fp)
    except UnidentifiedImageError:
        return ImageProbe(name, "not an image file")
    except Image.DecompressionBombError as exc:
        return ImageProbe(name, _bomb_problem(_pixels_in(exc), max_pixels))
    except Exception as exc:  # a damaged header can raise almost anything inside PIL
        return ImageProbe(name, f"truncated or corrupt: {_short(exc)}")
    with img:
        problem = _inspect_open(img, fp, full, max_pixels)
        width, height = img.size
        return ImageProbe(name, problem, width, height, img.mode, img.format, exif_orientation_of(img))


_ORIENTATION_TAG = 0x0112


def mode_channels(mode: str | None) -> int:
    """1 for PIL's gray modes, else 3: the channels an image of that mode is read with."""
    return 1 if mode in GRAY_MODES else 3


def exif_orientation_of(img: Image.Image) -> int:
    """EXIF orientation of a JPEG (already parsed with its header, so free); 1 otherwise.

    Only JPEG is asked: phone photos are JPEG, and other formats would need more reading.
    """
    if img.format not in ("JPEG", "MPO") or "exif" not in img.info:
        return 1
    try:
        value = int(img.getexif().get(_ORIENTATION_TAG, 1))
    except Exception:  # a damaged EXIF block must not make a readable image unusable
        return 1
    return value if 1 <= value <= 8 else 1


def _probe_path(path: str, full: bool, max_pixels: int) -> ImageProbe:
    try:
        if os.path.getsize(path) == 0:
            return ImageProbe(path, "empty file")
        with open(path, "rb") as fp:
            return _probe_stream(fp, path, full, max_pixels)
    except OSError as exc:
        return ImageProbe(path, f"cannot read: {exc.strerror or _short(exc)}")


def probe_image(
    path: str | os.PathLike, *, full: bool, max_pixels: int = DEFAULT_MAX_PIXELS
) -> ImageProbe:
    """Header facts and the problem (if any) of one image file."""
    with pil_pixel_limit(max_pixels):
        return _probe_path(os.fspath(path), full, max_pixels)


def probe_bytes(
    data: bytes, name: str, *, full: bool, max_pixels: int = DEFAULT_MAX_PIXELS
) -> ImageProbe:
    """Like :func:`probe_image` for encoded image bytes (e.g. from a TFRecord)."""
    if not data:
        return ImageProbe(name, "empty image bytes")
    with pil_pixel_limit(max_pixels):
        return _probe_stream(io.BytesIO(data), name, full, max_pixels)


def check_image_file(
    path: str | os.PathLike, *, full: bool, max_pixels: int = DEFAULT_MAX_PIXELS
) -> str | None:
    """Return ``None`` if TensorFlow can use the image at ``path``, else a short problem.

    Args:
        path: the image file.
        full: also decode the pixels (finds truncated files; slower).
        max_pixels: refuse images with more pixels than this (decompression bombs).

    Example:
        >>> check_image_file("notes.txt", full=False)          # doctest: +SKIP
        'not an image file'
    """
    return probe_image(path, full=full, max_pixels=max_pixels).problem


def _parallel_map(
    fn: Callable[[str], T], paths: list[str], workers: int, progress: bool, desc: str
) -> list[T]:
    """``[fn(p) for p in paths]`` on a thread pool, with a progress bar for long lists."""
    if len(paths) <= 16 or workers <= 1:
        return [fn(p) for p in paths]
    bar = None
    if progress and len(paths) > PROGRESS_THRESHOLD:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(paths), desc=desc, unit="file")
    results: list[T] = []
    try:
        with ThreadPoolExecutor(max_workers=min(workers, len(paths))) as pool:
            for start in range(0, len(paths), _CHUNK):
                chunk = paths[start : start + _CHUNK]
                results.extend(pool.map(fn, chunk))
                if bar is not None:
                    bar.update(len(chunk))
    finally:
        if bar is not None:
            bar.close()
    return results


def probe_files(
    paths: Iterable[str | os.PathLike],
    *,
    full: bool,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    workers: int = 8,
    progress: bool = True,
) -> list[ImageProbe]:
    """:func:`probe_image` for many files, in parallel, in the order given."""
    items = [os.fspath(p) for p in paths]
    with pil_pixel_limit(max_pixels):
        return _parallel_map(
            lambda p: _probe_path(p, full, max_pixels),
            items,
            workers,
            progress,
            "decoding images" if full else "checking images",
        )


def scan_files(
    paths: Iterable[str | os.PathLike],
    *,
    full: bool,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    workers: int = 8,
    progress: bool = True,
) -> dict[str, str]:
    """Check many image files; return ``{path: problem}`` for the bad ones only.

    Args:
        paths: the files.
        full: decode every image (see :func:`check_image_file`).
        max_pixels: the decompression-bomb limit.
        workers: threads reading files in parallel.
        progress: show a tqdm bar when there are more than 2,000 files.
    """
    probes = probe_files(
        paths, full=full, max_pixels=max_pixels, workers=workers, progress=progress
    )
    return {p.path: p.problem for p in probes if p.problem is not None}
