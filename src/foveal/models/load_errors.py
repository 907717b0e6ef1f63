"""Turn Keras' model-loading exceptions into one line that names the problem and the fix.

Keras wraps the reason a ``.keras`` file cannot be rebuilt in layers of context (the outer
model's config, then "Exception encountered: ..."), so the useful part, such as which custom
class is missing, comes last and is easily cut off. :func:`explain_load_error` digs it out.

Example:
    >>> explain_load_error("m.keras", TypeError("... Could not locate class 'Doubler' ..."))  # doctest: +SKIP
    ModelError("m.keras: the model uses the custom class 'Doubler', which is not registered ...")
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from foveal.errors import ModelError

_MISSING = re.compile(r"Could not locate (class|function) '([^']+)'")
_FULL_CONFIG = "Full object config: "
_REASON_MARK = "Exception encountered: "


def _registered_name(text: str) -> tuple[str | None, str | None]:
    """``(registered_name, module)`` of the object config Keras quotes after the missing name."""
    start = text.find(_FULL_CONFIG)
    if start < 0:
        return None, None
    literal = text[start + len(_FULL_CONFIG):].strip()
    try:
        config = ast.literal_eval(literal)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        found = re.search(r"'registered_name': '([^']+)'\}*\s*$", literal)
        return (found.group(1) if found else None), None
    if not isinstance(config, dict):
        return None, None
    return config.get("registered_name"), config.get("module")


def explain_load_error(path: str | Path, exc: BaseException) -> ModelError:
    """A one-line :class:`ModelError` for an exception from ``keras.models.load_model``."""
    text = str(exc)
    missing = _MISSING.search(text)
    if missing:
        kind, name = missing.groups()
        registered, module = _registered_name(text[missing.end():])
        package = registered.split(">", 1)[0] if registered and ">" in registered else None
        key = registered or name
        where = f" (registered as {registered!r}" + (f", from module {module!r}" if module else "") + ")" \
            if registered and registered != name else ""
        decorator = ("@keras.saving.register_keras_serializable(" + (f"package={package!r}" if package else "") + ")")
        return ModelError(
            f"{path}: the model uses the custom {kind} {name!r}{where}, which is not registered in this "
            "Python process",
            hint=f"in Python, import the module that defines {name} (decorated with {decorator}) before "
                 f"loading, or load inside keras.saving.custom_object_scope({{{key!r}: {name}}}); the "
                 "command line can load only models built from foveal's own layers")
    reason = text[text.rfind(_REASON_MARK) + len(_REASON_MARK):] if _REASON_MARK in text else text
    first = " ".join(reason.split())  # one line
    if len(first) > 400:
        first = first[:400] + "..."
    return ModelError(f"{path}: could not load the model ({type(exc).__name__}: {first})",
                      hint="the file may be damaged or written by another program; re-save it with foveal")
