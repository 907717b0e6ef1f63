"""Exceptions that carry a message meant for the user.

Anything raised as a :class:`FovealError` is a user error (bad file, bad option, unknown
name): the CLI prints its message and a hint, and exits with status 2, never a traceback.
"""

from __future__ import annotations


class FovealError(Exception):
    """A problem the user can fix; ``hint`` says how."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"


class ConfigError(FovealError):
    """An option or config-file key that is unknown or has the wrong type."""


class DataError(FovealError):
    """A dataset, image or annotation file that cannot be read as asked."""


class OutputError(FovealError):
    """A file or folder foveal was asked to write cannot be written there."""


class ModelError(FovealError):
    """An unknown architecture or a model file that cannot be used."""


class TrainingInterrupted(Exception):
    """Raised inside ``fit`` when SIGINT/SIGTERM arrives; the last finished epoch is on disk."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"interrupted by signal {signum}")
        self.signum = signum
