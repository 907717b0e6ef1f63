"""YOLO text box annotations: one ``.txt`` file per image, read into and written from :class:`BoxedImages`.

The Darknet/Ultralytics layout (Redmon & Farhadi, "YOLO9000: Better, Faster, Stronger", CVPR
2017, ship it with Darknet)::

    root/images/[split/]*.jpg
    root/labels/[split/]*.txt     one line per box: "class cx cy w h", all but class 0..1
    root/classes.txt              class names, one a line (or root/data.yaml with ``names``)

Splits are the sub-folders ``train``/``val``/``test`` of ``images/`` (``valid`` counts as
``val``); without them everything is ``train``. An image without a label file (or with an
empty one) has no boxes; a label file without an image is a problem (an annotation without
image), as is a class index outside the names.

Example:
    >>> splits = load_yolo("my_yolo_dataset")  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from foveal.data.boxes.source import CLIP_TOLERANCE, AnnotatedImage, BoxedImages, build_boxed_images
from foveal.data.boxes.voc import IMAGE_EXTENSIONS
from foveal.errors import DataError

_HINT = "expected ROOT/images/, ROOT/labels/*.txt ('class cx cy w h' normalised) and ROOT/classes.txt or data.yaml"
_SPLITS = {"train": ("train",), "val": ("val", "valid", "validation"), "test": ("test",)}


def is_yolo_folder(path: str | Path) -> bool:
    """True for a folder with ``images/`` and ``labels/`` sub-folders."""
    path = Path(path)
    return (path / "images").is_dir() and (path / "labels").is_dir()


def read_class_names(root: str | Path) -> list[str]:
    """The names in ``classes.txt`` (one a line) or ``data.yaml``'s ``names`` (list or dict)."""
    root = Path(root)
    if (root / "classes.txt").is_file():
        return [n.strip() for n in (root / "classes.txt").read_text(encoding="utf-8").splitlines() if n.strip()]
    for name in ("data.yaml", "dataset.yaml"):
        if (root / name).is_file():
            import yaml

            try:
                names = (yaml.safe_load((root / name).read_text(encoding="utf-8")) or {}).get("names")
            except yaml.YAMLError as exc:
                raise DataError(f"{root / name}: not readable YAML ({exc})") from None
            if isinstance(names, dict):
                return [str(names[k]) for k in sorted(names, key=int)]
            if isinstance(names, list):
                return [str(n) for n in names]
            raise DataError(f"{root / name}: no 'names' list", hint=_HINT)
    raise DataError(f"{root}: no classes.txt or data.yaml naming the classes", hint=_HINT)


def _split_folders(root: Path) -> dict[str, tuple[Path, Path]]:
    found = {}
    for split, names in _SPLITS.items():
        for n in names:
            if (root / "images" / n).is_dir():
                found[split] = (root / "images" / n, root / "labels" / n)
                break
    return found or {"train": (root / "images", root / "labels")}


def _parse_labels(txt: Path, record: AnnotatedImage, names: list[str], size: tuple[int, int]) -> None:
    width, height = size
    try:
        lines = txt.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        record.problem = f"unreadable label file {txt} ({exc})"
        return
    for number, line in enumerate(lines, start=1):
        parts = line.split()
        if not parts:
            continue
        try:
            if len(parts) != 5:
                raise ValueError
            cls, cx, cy, w, h = int(parts[0]), *(float(v) for v in parts[1:])
        except ValueError:
            record.problem = f"{txt}:{number}: expected 'class cx cy w h', got {line.strip()!r}"
            return
        name = names[cls] if 0 <= cls < len(names) else f"class index {cls}"
        box = ((cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height)
        record.objects.append((name, box, False))


def read_yolo(
    images: str | Path,
    labels: str | Path,
    class_names: list[str],
    *,
    skip_invalid: bool = False,
    tolerance: float = CLIP_TOLERANCE,
    max_image_pixels: int | None = None,
) -> BoxedImages:
    """Read one folder of images and its folder of YOLO label files into a :class:`BoxedImages`."""
    from foveal.data.imagecheck import DEFAULT_MAX_PIXELS, probe_files

    images, labels = Path(images), Path(labels)
    if not images.is_dir():
        raise DataError(f"image folder not found: {images}", hint=_HINT)
    files = sorted(f for f in images.iterdir() if f.suffix in IMAGE_EXTENSIONS)
    probes = probe_files(files, full=False, max_pixels=max_image_pixels or DEFAULT_MAX_PIXELS, progress=False)
    records = []
    for f, probe in zip(files, probes):
        txt = labels / f"{f.stem}.txt"
        record = AnnotatedImage(str(f), str(txt) if txt.is_file() else str(f))
        if txt.is_file() and probe.problem is None:
            # YOLO fractions are of the image as shown (EXIF orientation applied), as Ultralytics reads it
            _parse_labels(txt, record, class_names, tuple(int(v) for v in probe.shown_size))
        records.append(record)
    stems = {f.stem for f in files}
    if labels.is_dir():
        records += [AnnotatedImage("", str(t), problem=f"annotation without image: no image {t.stem}.* in {images}")
                    for t in sorted(labels.glob("*.txt")) if t.stem not in stems and t.name != "classes.txt"]
    if not records:
        raise DataError(f"{images}: no images", hint=_HINT)
    return build_boxed_images(records, origin=str(labels), class_names=class_names, skip_invalid=skip_invalid,
                              tolerance=tolerance, max_image_pixels=max_image_pixels)


def load_yolo(root: str | Path, *, class_names: list[str] | None = None, **options) -> dict[str, BoxedImages]:
    """Read a YOLO dataset folder into splits (see the module docstring)."""
    root = Path(root)
    if not is_yolo_folder(root):
        raise DataError(f"{root}: not a YOLO dataset folder", hint=_HINT)
    names = class_names if class_names is not None else read_class_names(root)
    return {split: read_yolo(im, lab, names, **options) for split, (im, lab) in _split_folders(root).items()}


def yolo_lines(boxes: np.ndarray, labels: np.ndarray, width: int, height: int) -> list[str]:
    """``class cx cy w h`` lines (normalised, 6 decimals) of corner boxes in a ``width`` x ``height`` image."""
    # Clipped first: a box that sticks out by rounding would come back further outside.
    b = np.clip(np.asarray(boxes, np.float64).reshape(-1, 4), 0, [width, height, width, height])
    cx, cy = (b[:, 0] + b[:, 2]) / 2 / width, (b[:, 1] + b[:, 3]) / 2 / height
    w, h = (b[:, 2] - b[:, 0]) / width, (b[:, 3] - b[:, 1]) / height
    return [f"{int(c)} {x:.6f} {y:.6f} {ww:.6f} {hh:.6f}" for c, x, y, ww, hh in zip(labels, cx, cy, w, h)]


def write_yolo_labels(boxed: BoxedImages, labels_dir: str | Path) -> None:
    """One label file per image of ``boxed`` (empty for images without boxes)."""
    labels_dir = Path(labels_dir)
    labels_dir.mkdir(parents=True, exist_ok=True)
    for path, boxes, labels, (w, h) in zip(boxed.paths, boxed.boxes, boxed.labels, boxed.image_sizes):
        lines = yolo_lines(boxes, labels, int(w), int(h))
        (labels_dir / f"{Path(str(path)).stem}.txt").write_text("".join(f"{s}\n" for s in lines), encoding="utf-8")


def write_class_names(root: str | Path, class_names: list[str], splits: list[str]) -> None:
    """``classes.txt`` and an Ultralytics ``data.yaml`` naming the classes and split folders."""
    import yaml

    root = Path(root)
    (root / "classes.txt").write_text("".join(f"{n}\n" for n in class_names), encoding="utf-8")
    spec = {"path": ".", **{s: f"images/{s}" for s in splits}, "names": dict(enumerate(class_names))}
    (root / "data.yaml").write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")


__all__ = ["is_yolo_folder", "load_yolo", "read_class_names", "read_yolo", "write_class_names",
           "write_yolo_labels", "yolo_lines"]
