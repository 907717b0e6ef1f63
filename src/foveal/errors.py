"""Exceptions that carry a message meant for the user.

Anything raised as a :class:`FovealError` is a user error (bad file, bad option, unknown
name): the CLI prints its message and a hint, and exits with status 2, never a traceback.
"""

from __future__ import annotations

from typing import Any, Iterable


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


def require_all(checks: Iterable[tuple[bool, str]]) -> None:
    """Raise a :class:`ConfigError` with the message of the first ``(ok, message)`` that is not ok.

    Example:
        >>> require_all([(1 > 0, "fine"), (2 < 1, "--size must be at least 16")])
        Traceback (most recent call last):
        ...
        foveal.errors.ConfigError: --size must be at least 16
    """
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)


class DataError(FovealError):
    """A dataset, image or annotation file that cannot be read as asked."""


class OutputError(FovealError):
    """A file or folder foveal was asked to write cannot be written there."""


class ModelError(FovealError):
    """An unknown architecture or a model file that cannot be used."""


def require_task(card: Any, task: str, *, hint: str | None = None, message: str | None = None) -> None:
    """Refuse a model file written for another task than ``task`` (``card`` may be None).

    ``hint`` defaults to "use a model written by `foveal TASK train`"; ``message``, a template
    with ``{found}`` (the card's task), replaces "this model was trained for the task ...".

    Example:
        >>> check_card = functools.partial(require_task, task="segment")  # doctest: +SKIP
    """
    found = getattr(card, "task", None)
    if found != task:
        text = message or "this model was trained for the task {found!r}, not {task!r}"
        raise ModelError(text.format(found=found, task=task), hint=hint or f"use a model written by `foveal {task} train`")


class TrainingInterrupted(Exception):
    """Raised inside ``fit`` when SIGINT/SIGTERM arrives; the last finished epoch is on disk."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"interrupted by signal {signum}")
        self.signum = signum
