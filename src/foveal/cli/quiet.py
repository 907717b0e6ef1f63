"""Import TensorFlow without its native start-up noise (used before anything loads it)."""

from __future__ import annotations

import logging
import sys


def import_tensorflow_quietly() -> None:
    """Import TensorFlow with file descriptor 2 muted: its native start-up lines are written
    before its log level is read. Import errors still propagate once stderr is restored."""
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
    drop_retracing_warnings()


class _NoRetracingWarning(logging.Filter):
    """Drops TensorFlow's "triggered tf.function retracing" warning: advice for a loop's author
    (folds, a prune's fine-tune), nothing a command-line user can act on."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "triggered tf.function retracing" not in record.getMessage()


def drop_retracing_warnings() -> None:
    """Install :class:`_NoRetracingWarning` on TensorFlow's Python logger (once)."""
    import tensorflow as tf

    logger = tf.get_logger()
    if not any(isinstance(f, _NoRetracingWarning) for f in logger.filters):
        logger.addFilter(_NoRetracingWarning())
