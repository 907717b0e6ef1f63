"""``foveal serve``: a trained classifier behind a small web page and a JSON API.

:func:`create_app` (in :mod:`foveal.serve.app`) builds the FastAPI app for one ``.keras`` file;
:func:`add_serve_command` (in :mod:`foveal.serve.cli`) adds the ``serve`` subcommand. FastAPI
and uvicorn come with the ``serve`` extra (``pip install "foveal[serve]"``) and are imported
only when the app is built.

Example:
    >>> from foveal.serve import create_app  # doctest: +SKIP
    >>> app = create_app("runs/digits-demo/best.keras", top_k=3)  # doctest: +SKIP
"""

from __future__ import annotations

from foveal._lazy import lazy_getattr

_LAZY = {"add_serve_command": "foveal.serve.cli", "create_app": "foveal.serve.app",
         "background_server": "foveal.serve.app", "load_image_bytes": "foveal.serve.app"}


# Lazy: `foveal --help` must not import FastAPI, and `python -m foveal.serve.cli` must not
# find its own module imported already.
__getattr__ = lazy_getattr("foveal.serve", _LAZY)


__all__ = ["add_serve_command", "background_server", "create_app", "load_image_bytes"]
