"""Writing files safely: atomic writes (a crash or kill mid-write never leaves a broken file
behind), output folders checked before any work, and file names that are not UTF-8 made
printable."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

from foveal.errors import OutputError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` atomically.

    The temporary file keeps ``path``'s suffix (Keras insists on ``.keras``). On error the
    temporary file is removed and ``path`` is left as it was.

    Example:
        >>> with atomic_path("/tmp/x.txt") as tmp:
        ...     tmp.write_text("hello")
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(
            prefix=f".{path.name}.", suffix=f".tmp{suffix or path.suffix}", dir=path.parent
        )
    except OSError as exc:
        raise OutputError(f"cannot write {printable_path(path)}: {_reason(exc, path.parent)}",
                          hint="choose a path in a folder you can write to") from None
    os.close(fd)
    tmp = Path(tmp_name)
    # mkstemp creates 0600; give the final file the mode a plain open() would.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _reason(exc: OSError, folder: Path) -> str:
    """Why ``folder`` cannot hold files, in words (the errno names are cryptic)."""
    if isinstance(exc, FileExistsError) or (isinstance(exc, NotADirectoryError) and folder.is_file()):
        return f"{printable_path(folder)} is a file, not a folder"
    if isinstance(exc, NotADirectoryError):
        return "a part of the path is a file, not a folder"
    if isinstance(exc, PermissionError):
        return "permission denied"
    return exc.strerror or str(exc)


def ensure_output_dir(path: str | os.PathLike, what: str = "--output", *, create: bool = True) -> Path:
    """Create the folder ``path`` (with its parents) and check that files can be written in it.

    Called by every library function that writes into a folder it is given (train, evaluate,
    export, datasets convert), before any work, so a bad place fails at once in one line
    instead of as a traceback after training.

    Args:
        path: the folder.
        what: the option that named it, for the message (``--output``).
        create: False only checks, creating nothing: ``path`` or, where it does not exist yet,
            its nearest existing parent must be a folder that can be written (for callers
            that decide later whether to write there at all, such as a non-chief worker).

    Raises:
        OutputError: ``path`` is a file, lies under a file, or cannot be created or written.
    """
    folder = Path(path)
    if not create:
        existing = folder
        while not existing.exists() and existing.parent != existing:
            existing = existing.parent
        if not existing.is_dir():
            why = "is a file, not a folder" if existing == folder else f"lies under {printable_path(existing)}, a file"
            raise OutputError(f"{what} {printable_path(folder)}: {why}", hint=f"give {what} a folder you can write to")
        if not os.access(existing, os.W_OK | os.X_OK):
            raise OutputError(f"{what} {printable_path(folder)}: cannot write in {printable_path(existing)}: "
                              "permission denied", hint=f"give {what} a folder you can write to")
        return folder
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{what} {printable_path(folder)}: cannot create the folder: {_reason(exc, folder)}",
                          hint=f"give {what} a folder you can write to") from None
    if not folder.is_dir():  # mkdir(exist_ok=True) passes a symlink to a file on some systems
        raise OutputError(f"{what} {printable_path(folder)}: is a file, not a folder",
                          hint=f"give {what} a folder you can write to")
    try:
        # os.access says yes to root even on a read-only mount: write a file to be sure.
        fd, probe = tempfile.mkstemp(prefix=".foveal-write-check.", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise OutputError(f"{what} {printable_path(folder)}: cannot write there: {_reason(exc, folder)}",
                          hint=f"give {what} a folder you can write to") from None
    return folder


def refuse_nonempty_output(out: Path, overwrite: bool) -> None:
    """Refuse ``--output`` naming a file or a folder that is not empty, unless ``overwrite``."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise OutputError(f"--output {printable_path(out)}: exists and is not empty",
                          hint="choose a new folder, or pass --overwrite to replace it")


@contextlib.contextmanager
def staged_folder(out: Path, what: str = "the dataset") -> Iterator[Path]:
    """Yield an empty staging folder beside ``out``; on success it replaces ``out`` (any old
    content included) in one rename, so a killed writer never leaves half a dataset there.

    An ``OSError`` inside becomes one :class:`OutputError` line naming ``out`` and ``what``;
    the staging folder is removed either way.

    Example:
        >>> with staged_folder(Path("/tmp/shapes")) as tmp:  # doctest: +SKIP
        ...     (tmp / "labels.txt").write_text("a")
    """
    staging = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        staging.mkdir(parents=True)
        yield staging
        if out.exists():
            shutil.rmtree(out) if out.is_dir() else out.unlink()
        os.replace(staging, out)
    except OSError as exc:
        raise OutputError(f"--output {printable_path(out)}: cannot write {what} ({exc.strerror or exc})",
                          hint="give --output a folder you can write to") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically and return the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_metrics(folder: str | os.PathLike, metrics: dict) -> Path:
    """``folder/metrics.json`` (indented JSON), written atomically: every task's scores."""
    return atomic_write_text(Path(folder) / "metrics.json", json.dumps(metrics, indent=1))


def printable_path(path: str | os.PathLike) -> str:
    """``path`` safe to print and to store as JSON: bytes that are not UTF-8 become ``\\xNN``.

    File names on POSIX are bytes; Python keeps the ones that are not UTF-8 as lone
    surrogates, which ``print`` and TensorFlow refuse.
    """
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def is_utf8_path(path: str | os.PathLike) -> bool:
    """Whether ``path``'s bytes are valid UTF-8 (TensorFlow and our reports need that)."""
    try:
        os.fspath(path).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
