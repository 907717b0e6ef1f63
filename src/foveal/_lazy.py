"""Lazy package attributes: public names imported on first use, so importing a package (and
``foveal --help``) never loads TensorFlow or Keras."""

from __future__ import annotations

import importlib
from typing import Any, Callable


def lazy_getattr(package: str, table: dict[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that imports ``table[name]`` (a module path) on first access.

    Example:
        >>> __getattr__ = lazy_getattr("foveal.export", {"export_model": "foveal.export.parity"})
    """

    def __getattr__(name: str) -> Any:
        if name in table:
            return getattr(importlib.import_module(table[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__


def lazy_exports(package: str, by_module: dict[str, str]) -> tuple[Callable[[str], Any], list[str]]:
    """``(__getattr__, __all__)`` of a package whose public names, listed per module (space
    separated; a module starting with ``.`` is inside ``package``), are imported on first use.

    Example:
        >>> __getattr__, __all__ = lazy_exports("foveal.export", {".parity": "export_model"})
        >>> __all__
        ['export_model']
    """
    table = {name: package + module if module.startswith(".") else module
             for module, names in by_module.items() for name in names.split()}
    return lazy_getattr(package, table), list(table)
