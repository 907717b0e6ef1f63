"""A strict name -> builder registry.

Names are registered by an explicit decorator at import time; registering a name twice is an
error, and looking up an unknown name lists the close matches. Nothing is found by
``globals()`` or ``eval``.

Example:
    >>> MODELS = Registry("model")
    >>> @MODELS.register("tiny", input_shape=(8, 8, 1))
    ... def tiny(x, *, num_classes, include_top=True): ...
    >>> MODELS.get("tiny").meta["input_shape"]
    (8, 8, 1)
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any, Callable, Generic, Iterable, Iterator, TypeVar

from foveal.errors import FovealError

T = TypeVar("T", bound=Callable[..., Any])


def did_you_mean(name: str, known: Iterable[str], *, n: int = 3, cutoff: float = 0.5, quote: bool = False) -> str | None:
    """The hint "did you mean a, b?" naming the known names closest to ``name`` (None if none is close).

    Example:
        >>> did_you_mean("fcn8", ["unet", "fcn8s"], n=1, quote=True)
        "did you mean 'fcn8s'?"
    """
    close = difflib.get_close_matches(name, list(known), n=n, cutoff=cutoff)
    return f"did you mean {', '.join(map(repr, close) if quote else close)}?" if close else None


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One registered object with its metadata."""

    name: str
    obj: T
    meta: dict[str, Any] = field(default_factory=dict)


class Registry(Generic[T]):
    """A mapping from unique lowercase names to callables plus free-form metadata."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}

    def register(self, name: str, **meta: Any) -> Callable[[T], T]:
        """Decorator that registers ``obj`` under ``name``; duplicates raise ``ValueError``."""
        key = name.lower()

        def decorator(obj: T) -> T:
            if key in self._entries:
                raise ValueError(f"{self.kind} name {name!r} is already registered")
            self._entries[key] = Entry(key, obj, dict(meta))
            return obj

        return decorator

    def get(self, name: str) -> Entry[T]:
        """The entry for ``name``; an unknown name raises a :class:`FovealError` with suggestions."""
        key = name.lower()
        if key not in self._entries:
            known = ", ".join(sorted(self._entries))
            raise FovealError(f"unknown {self.kind} {name!r}; known: {known}", hint=did_you_mean(key, self._entries))
        return self._entries[key]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._entries

    def __iter__(self) -> Iterator[Entry[T]]:
        return iter(sorted(self._entries.values(), key=lambda e: e.name))

    def names(self) -> list[str]:
        return sorted(self._entries)
