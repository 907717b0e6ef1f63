"""Image folders: one subfolder per class, optionally under ``train/``, ``val/`` and ``test/``.

Two layouts are read::

    root/<class>/*.jpg                      -> {"train"}
    root/train/<class>/...  [root/val/ or root/validation/]  [root/test/]
                                            -> {"train", "val", "test"} (those present)

Files with a jpg, jpeg, png, bmp or gif extension (any case) are images, found recursively
inside each class folder and sorted, so the order never depends on the file system. Hidden
files (``.DS_Store``...) are ignored; any other file is reported as a problem. Images are
checked with :mod:`foveal.data.imagecheck` and then *streamed*: the result holds paths, never
pixels. Class names are the sorted subfolder names of the train folder.
"""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from foveal.data.imagecheck import DEFAULT_MAX_PIXELS, probe_files
from foveal.data.source import LabeledImages
from foveal.errors import DataError
from foveal.utils_io import is_utf8_path, printable_path

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif"})
SPLIT_FOLDERS = {"train": ("train",), "val": ("val", "validation", "valid"), "test": ("test",)}
_IGNORED_NAMES = frozenset({"thumbs.db", "desktop.ini"})
_SHOWN = 10  # problems listed in an error message
_SKIP_HINT = "fix or remove them, or pass --skip-invalid"
_LAYOUT_HINT = (
    "arrange the images as ROOT/<class>/*.jpg, or ROOT/train/<class>/... with optional "
    "ROOT/val/ and ROOT/test/"
)

log = logging.getLogger("foveal")


@dataclass
class ClassFolder:
    """One class folder of one split: its image files and its other files."""

    name: str
    path: Path
    images: list[str] = field(default_factory=list)
    others: list[str] = field(default_factory=list)
    notes: dict[str, str] = field(default_factory=dict)  # other -> its problem, when not the extension


@dataclass
class FolderLayout:
    """What :func:`scan_layout` found under a root folder."""

    root: Path
    splits: dict[str, list[ClassFolder]]
    split_dirs: dict[str, Path]
    ignored: list[str] = field(default_factory=list)

    @property
    def class_names(self) -> list[str]:
        return [c.name for c in self.splits["train"]]

    def non_images(self) -> dict[str, str]:
        """``{path: problem}`` for the files that are not images by their extension."""
        out = {}
        for folders in self.splits.values():
            for folder in folders:
                for path in folder.others:
                    ext = os.path.splitext(path)[1] or "no extension"
                    out[path] = folder.notes.get(path) or f"not an image file ({ext})"
        return out


def _visible(entry: os.DirEntry) -> bool:
    return not entry.name.startswith(".") and entry.name.lower() not in _IGNORED_NAMES


def _subdirs(folder: Path) -> list[Path]:
    with os.scandir(folder) as it:
        return sorted(Path(e.path) for e in it if _visible(e) and e.is_dir())


def _prune_links(current: str, dirs: list[str], seen: set[str], found: ClassFolder) -> None:
    """Drop from ``dirs`` the folders already read (symlink loops and repeats), noting them.

    A link back to a folder above it would otherwise be followed until the path is too long
    (40 levels of copies of every image); a link to a folder read elsewhere would count its
    images twice.
    """
    here = os.path.realpath(current)
    keep = []
    for name in sorted(d for d in dirs if not d.startswith(".")):
        path = os.path.join(current, name)
        real = os.path.realpath(path)
        if real not in seen:
            seen.add(real)
            keep.append(name)
            continue
        shown = printable_path(path)
        if here == real or here.startswith(real + os.sep):
            found.notes[shown] = f"symlink loop: leads back to {printable_path(real)} (not followed)"
        else:
            found.notes[shown] = f"link to {printable_path(real)}, which is already read (not followed)"
        found.others.append(shown)
    dirs[:] = keep


def _list_class(folder: Path, name: str) -> ClassFolder:
    """All files under ``folder`` (recursively, sorted), split into images and others.

    Every real folder is read once, however many links lead to it. Names that are not UTF-8
    and links that lead nowhere are listed with their problem among the others.
    """
    found = ClassFolder(name, folder)
    seen = {os.path.realpath(folder)}
    for current, dirs, files in os.walk(folder, followlinks=True):
        _prune_links(current, dirs, seen, found)
        for fname in sorted(files):
            if fname.startswith(".") or fname.lower() in _IGNORED_NAMES:
                continue
            path = os.path.join(current, fname)
            if not is_utf8_path(path):
                shown = printable_path(path)
                found.notes[shown] = "path is not valid UTF-8 (rename the file or its folder)"
                found.others.append(shown)
                continue
            if os.path.islink(path) and not os.path.exists(path):
                found.notes[path] = "broken symlink or symlink loop (leads to no file)"
                found.others.append(path)
                continue
            ext = os.path.splitext(fname)[1].lower()
            (found.images if ext in IMAGE_EXTENSIONS else found.others).append(path)
    return found


def _split_folders(root: Path, subdirs: list[Path]) -> dict[str, Path] | None:
    """The split folders of a split layout, or None for a plain class-folder layout."""
    by_name = {d.name.lower(): d for d in subdirs}
    chosen: dict[str, Path] = {}
    for split, names in SPLIT_FOLDERS.items():
        for name in names:
            if name in by_name and _subdirs(by_name[name]):
                chosen[split] = by_name[name]
                break
    if not chosen:
        return None
    if "train" not in chosen:
        found = ", ".join(p.name for p in chosen.values())
        raise DataError(
            f"{root}: has split folders ({found}) but no train/ folder", hint=_LAYOUT_HINT
        )
    return chosen


def scan_layout(root: str | Path) -> FolderLayout:
    """List the splits, classes and files under ``root`` without opening any image.

    Raises:
        DataError: ``root`` is empty or has no class subfolders.
    """
    root = Path(root)
    try:
        with os.scandir(root) as it:
            entries = [e for e in it if _visible(e)]
    except OSError as exc:
        raise DataError(f"{root}: cannot list the folder ({exc.strerror or exc})") from None
    if not entries:
        raise DataError(f"{root}: the folder is empty", hint=_LAYOUT_HINT)
    subdirs = sorted(Path(e.path) for e in entries if e.is_dir())
    if not subdirs:
        raise DataError(
            f"{root}: no class subfolders (found {len(entries)} files but no folders)",
            hint=_LAYOUT_HINT,
        )
    split_dirs = _split_folders(root, subdirs)
    if split_dirs is None:
        split_dirs = {"train": root}
        ignored: list[str] = []
    else:
        used = set(split_dirs.values())
        ignored = [str(d) for d in subdirs if d not in used]
    splits = {
        split: [_list_class(d, printable_path(d.name)) for d in _subdirs(folder)]  # names get printed
        for split, folder in split_dirs.items()
    }
    return FolderLayout(root, splits, split_dirs, ignored)


def structure_problems(
    layout: FolderLayout, valid: dict[str, set[str]] | None = None
) -> list[tuple[str, str]]:
    """Problems that make the folder unusable whatever is skipped, as ``(path, problem)``.

    Args:
        layout: the scanned folder.
        valid: per class folder path, the usable image files; ``None`` counts every file with
            an image extension as usable.
    """
    problems = []
    train_names = set(layout.class_names)
    for split, folders in layout.splits.items():
        for folder in folders:
            if not is_utf8_path(folder.path):
                problems.append((printable_path(folder.path),
                                 "class folder name is not valid UTF-8 (rename the folder)"))
                continue
            if split != "train" and folder.name not in train_names:
                problems.append((str(folder.path), f"class '{folder.name}' is not a train class"))
            usable = len(folder.images) if valid is None else len(valid[str(folder.path)])
            if usable == 0:
                why = "no image files" if not folder.images else "no valid images"
                problems.append((str(folder.path), f"class folder '{folder.name}' has {why}"))
    if len(layout.class_names) < 2:
        only = f" (only '{layout.class_names[0]}')" if layout.class_names else ""
        problems.append(
            (
                str(layout.split_dirs["train"]),
                f"single-class folder{only}; classification needs at least two classes",
            )
        )
    return problems


def _raise_structure(problems: list[tuple[str, str]]) -> None:
    if problems:
        raise DataError(
            "\n".join(f"{path}: {problem}" for path, problem in problems),
            hint=_LAYOUT_HINT + "; every class folder needs at least one valid image",
        )


def format_problems(root: Path, problems: dict[str, str]) -> str:
    """``N files in ROOT cannot be used:`` followed by up to 10 ``path: problem`` lines."""
    lines = [f"{len(problems)} file(s) in {root} cannot be used as images:"]
    for path, problem in list(problems.items())[:_SHOWN]:
        lines.append(f"  {path}: {problem}")
    if len(problems) > _SHOWN:
        lines.append(f"  ... and {len(problems) - _SHOWN} more")
    return "\n".join(lines)


def _file_problems(layout: FolderLayout, verify: str, max_pixels: int) -> dict[str, str]:
    """``{path: problem}`` of the files the ``verify`` check finds bad (EXIF orientation needs no
    scan: the decoder reads it, :func:`foveal.data.decode.exif_orientation`)."""
    problems = layout.non_images()
    if verify != "none":
        paths = [p for folders in layout.splits.values() for f in folders for p in f.images]
        for probe in probe_files(paths, full=verify == "full", max_pixels=max_pixels):
            if probe.problem is not None:
                problems[probe.path] = probe.problem
    return problems


def _build_split(folders: list[ClassFolder], names: list[str], bad: dict[str, str], origin: str) -> LabeledImages:
    index = {name: i for i, name in enumerate(names)}
    paths: list[str] = []
    labels: list[int] = []
    skipped: dict[str, str] = {}
    for folder in folders:
        for path in folder.images:
            if path in bad:
                skipped[path] = bad[path]
            else:
                paths.append(path)
                labels.append(index[folder.name])
        skipped.update((path, bad[path]) for path in folder.others)
    info: dict = {"format": "folder"}
    if skipped:
        info["skipped"] = skipped
    return LabeledImages(
        class_names=names,
        labels=np.asarray(labels, dtype=np.int32),
        paths=np.asarray(paths, dtype=str),
        origin=origin,
        info=info,
    )


def load_folder(
    root: str | Path,
    *,
    skip_invalid: bool = False,
    verify: str = "header",
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> dict[str, LabeledImages]:
    """Read an image folder into path-backed splits.

    Args:
        root: the folder.
        skip_invalid: drop bad files (warning once) instead of raising.
        verify: ``"none"``, ``"header"`` or ``"full"`` (see :mod:`foveal.data.imagecheck`).
        max_pixels: the decompression-bomb limit per image.

    Raises:
        DataError: an empty folder, no or only one class, an empty class folder, a val/test
            class unknown to train, or (without ``skip_invalid``) any bad file.
    """
    root = Path(root)
    layout = scan_layout(root)
    _raise_structure(structure_problems(layout))
    for path in layout.ignored:
        log.warning("ignoring folder %s (not train/val/test)", path)
    bad = _file_problems(layout, verify, max_pixels)
    if bad and not skip_invalid:
        raise DataError(format_problems(root, bad), hint=_SKIP_HINT)
    if bad:
        valid = {
            str(f.path): {p for p in f.images if p not in bad}
            for folders in layout.splits.values()
            for f in folders
        }
        _raise_structure(structure_problems(layout, valid))
        warnings.warn(
            f"skipping {len(bad)} invalid file(s) in {root} (listed in info['skipped'])",
            stacklevel=3,
        )
    names = layout.class_names
    out = {}
    for split, folders in layout.splits.items():
        out[split] = _build_split(folders, names, bad, str(layout.split_dirs[split]))
    return out
