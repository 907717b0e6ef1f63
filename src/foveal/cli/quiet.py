"""Import TensorFlow without its native start-up noise (used before anything loads it)."""

from __future__ import annotations

import sys


def import_tensorflow_quietly() -> None:
    """Import TensorFlow with file descriptor 2 muted.

    TensorFlow's native start-up lines (oneDNN notice, absl preamble) are written before its
    log level is read, so no environment variable hides them; they mean nothing to a user.
    Python-level import errors still propagate once stderr is restored.
    """
    import os

    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


__all__ = ["import_tensorflow_quietly"]
