"""``foveal serve MODEL``: the classifier as a web page and a JSON API, run by uvicorn.

Only the argparse wiring lives here; :mod:`foveal.serve.app` builds the app. FastAPI and
uvicorn are imported when the command runs, so ``foveal --help`` works without them.

Example:
    foveal serve runs/digits-demo/best.keras --port 8000 --top-k 3
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import ipaddress
import os
import sys
from typing import Any, Iterator

from foveal.errors import ConfigError, FovealError
from foveal.serve.limits import BODY_TIMEOUT, HEADER_TIMEOUT, MAX_CONNECTIONS, host_problem

# Distribution -> importable module names (python-multipart renamed its module).
_NEEDS = {"fastapi": ("fastapi",), "uvicorn": ("uvicorn",), "python-multipart": ("python_multipart", "multipart")}

EPILOG = """examples:
  foveal serve runs/digits-demo/best.keras            # http://127.0.0.1:8000/
  foveal serve best.keras --port 0                    # any free port (printed)
  foveal serve best.keras --host 0.0.0.0 --workers 2  # reachable from other machines
  foveal serve best.keras --browser-model best.onnx   # the page's in-browser mode runs this file
  foveal serve best.int8.tflite                       # an export: the fastest format from `foveal benchmark`
  foveal serve runs/sr-espcn/best.keras               # an enhancer: the page shows the enhanced upload
  foveal serve runs/cgan/best.keras                   # a generator: the page draws samples per class
  foveal serve runs/fight/best.keras                  # a video classifier: upload a clip, get its label and timeline
  foveal serve runs/fight/best.onnx --max-video-seconds 60   # its export (`foveal export`), shorter videos only
  foveal serve runs/mask-rcnn/best.onnx               # instances: boxes, classes, scores and RLE masks

API:
  GET  /health                      model, classes, limits, counters
  POST /predict?top_k=K             multipart field "image", or raw bytes with Content-Type image/*
  POST /predict?format=png          an enhancer's answer as the enhanced PNG itself
  POST /predict?window=2&stride=1   a video model: multipart field "video" (or raw bytes, Content-Type video/*)
  GET  /generate?count=16&seed=0&class=7[&format=png]   a generator's samples (JSON, or the grid PNG)
  GET  /model.onnx, /model.json     the ONNX export and its card (the page's in-browser mode)
  curl -F image=@cat.jpg http://127.0.0.1:8000/predict
"""


def add_serve_command(subparsers: Any) -> None:
    """Add ``serve`` to the ``foveal`` command's subparsers."""
    s = subparsers.add_parser(
        "serve", help="serve a model as a web page and a JSON API (needs foveal[serve])",
        description="Serve a model: a web page to drop images on, and POST /predict returning the\n"
        "top-k labels (classifiers), boxes (detectors, localizers), a mask (segmenters) or the\n"
        "enhanced image (enhancers) as JSON; the page draws them. A video classifier takes an\n"
        "uploaded clip and answers its label and a timeline over sliding windows. A generative model (VAE,\n"
        "GAN, conditional GAN) is served at GET /generate, and the page draws its samples.\n"
        "There is no authentication: keep the default loopback --host unless the network is\n"
        "trusted.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False)
    s.add_argument("model", help="a .keras model file written by foveal, or its export from `foveal export` "
                   "(.tflite, .onnx or a SavedModel folder): serve the fastest format from `foveal benchmark`")
    s.add_argument("--host", metavar="ADDRESS", default="127.0.0.1",
                   help="address to listen on (default: 127.0.0.1, this machine only)")
    s.add_argument("--port", metavar="N", type=int, default=8000,
                   help="TCP port; 0 picks a free one (default: 8000)")
    s.add_argument("--top-k", metavar="K", type=int, default=5,
                   help="labels per answer unless a request sets ?top_k= (default: 5)")
    s.add_argument("--max-upload-mb", metavar="MIB", type=float, default=10.0,
                   help="refuse uploads larger than this many MiB with 413 (default: 10)")
    s.add_argument("--max-pixels", metavar="N", type=int, default=40_000_000,
                   help="refuse images with more pixels (decompression bombs) with 413 (default: 40000000)")
    s.add_argument("--max-video-seconds", metavar="S", type=float, default=600.0,
                   help="video models: refuse longer videos with 413 (default: 600)")
    s.add_argument("--workers", metavar="N", type=int, default=1,
                   help="server processes, each with its own copy of the model (default: 1)")
    s.add_argument("--read-timeout", metavar="S", type=float, default=HEADER_TIMEOUT,
                   help="close a connection whose request headers are not complete in S seconds, and answer "
                   f"408 to a body that pauses longer (default: {HEADER_TIMEOUT:g})")
    s.add_argument("--body-timeout", metavar="S", type=float, default=BODY_TIMEOUT,
                   help=f"answer 408 to a request body not complete S seconds after its headers (default: "
                   f"{BODY_TIMEOUT:g})")
    s.add_argument("--max-connections", metavar="N", type=int, default=MAX_CONNECTIONS,
                   help="answer 503 to requests beyond N open connections (per worker; default: "
                   f"{MAX_CONNECTIONS})")
    s.add_argument("--trust-model", action="store_true",
                   help="run an export (SavedModel, TFLite, ONNX) even if its graph has ops outside foveal's "
                   "allow-list of inference ops (file, process, network or unknown ops): only for files whose "
                   "origin you trust (.keras files are always loaded in Keras safe mode)")
    browser = s.add_mutually_exclusive_group()
    browser.add_argument("--browser-model", metavar="PATH",
                         help="ONNX file the page runs in the browser (default: export the model once into "
                              ".foveal-cache/ beside it; needs foveal[export] and scripts/fetch_ort_web.sh)")
    browser.add_argument("--no-browser-model", action="store_true",
                         help="serve no ONNX model: the page classifies on the server only")
    s.set_defaults(func=handler)


def _check(args: argparse.Namespace) -> None:
    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port must be between 0 and 65535, got {args.port}")
    for option, value in (("--top-k", args.top_k), ("--max-upload-mb", args.max_upload_mb),
                          ("--max-pixels", args.max_pixels), ("--workers", args.workers),
                          ("--read-timeout", args.read_timeout), ("--body-timeout", args.body_timeout),
                          ("--max-connections", args.max_connections),
                          ("--max-video-seconds", args.max_video_seconds)):
        if value <= 0:
            raise ConfigError(f"{option} must be positive, got {value}")
    problem = host_problem(args.host)
    if problem:
        raise ConfigError(f"--host: {problem}",
                          hint="use 127.0.0.1 (this machine only), 0.0.0.0 (every network interface), or a host "
                          "name or address of this machine")
    if args.workers > 1 and args.port == 0:
        raise ConfigError("--port 0 works with --workers 1 only", hint="give a port number")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _url(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else "[::1]" if host == "::" else host
    return f"http://[{shown}]:{port}/" if ":" in shown and not shown.startswith("[") else f"http://{shown}:{port}/"


def handler(args: argparse.Namespace, _overrides: dict[str, Any]) -> int:
    """Run the server until Ctrl+C; 0 on a clean stop."""
    _check(args)
    missing = [name for name, modules in _NEEDS.items() if not any(importlib.util.find_spec(m) for m in modules)]
    if missing:
        raise FovealError(f"foveal serve needs {', '.join(missing)}, which {'is' if len(missing) == 1 else 'are'} "
                          "not installed", hint='pip install "foveal[serve]"')
    import uvicorn

    from foveal.serve.app import app_environment, bind_socket, create_app
    from foveal.serve.guard import server_config

    limits = {"max_upload_bytes": int(args.max_upload_mb * 2**20), "max_pixels": args.max_pixels, "top_k": args.top_k,
              "max_video_seconds": args.max_video_seconds}
    if not _is_loopback(args.host):
        print(f"warning: listening on {args.host}: anyone who can reach this machine can use the model "
              "(there is no authentication)", file=sys.stderr)
    browser_model = False if args.no_browser_model else args.browser_model
    if args.workers > 1:
        card = _check_model(args.model, args.trust_model)
        # Export once here, not once per worker.
        from foveal.serve.browser import browser_supported, prepare_browser_model

        prepared = (prepare_browser_model(args.model, card, browser_model)
                    if card is not None and browser_supported(card) else None)
        os.environ.update(app_environment(args.model, **limits, browser_model=prepared and prepared.path,
                                          trust_model=args.trust_model, body_idle_timeout=args.read_timeout,
                                          body_timeout=args.body_timeout))
        bind_socket(args.host, args.port).close()  # a bad --host or a busy --port: our message, not uvicorn's
        from foveal.serve.guard import worker_options

        options, variables = worker_options(args.read_timeout, args.max_connections)
        os.environ.update(variables)
        print(f"foveal serve: {_url(args.host, args.port)} ({args.workers} workers; Ctrl+C stops)", flush=True)
        with _stopped_by_ctrl_c():
            uvicorn.run("foveal.serve.app:create_app_from_env", factory=True, host=args.host, port=args.port,
                        workers=args.workers, log_level="info", **options)
        return 0
    app = create_app(args.model, **limits, browser_model=browser_model, trust_model=args.trust_model,
                     body_idle_timeout=args.read_timeout, body_timeout=args.body_timeout)
    sock = bind_socket(args.host, args.port)
    port = sock.getsockname()[1]
    full = app.state.service.health()
    health = full["model"]
    in_browser = "; runs in the browser too" if full["browser_runtime"] else ""
    shape = "x".join(map(str, health["input_shape"]))
    if health["task"] == "generate":
        what = f"generate, {'conditional on ' + str(health['num_classes']) + ' classes, ' if full['generate']['conditional'] else ''}images {shape}; GET /generate"
    elif health["task"] == "video":
        v = full["video"]
        what = (f"video, {health['num_classes']} classes, {v['steps']} frames of {'x'.join(map(str, v['frame_size']))} "
                f"({v['sampling']}), videos up to {v['max_seconds']:g} s; POST /predict")
    elif health["task"] == "enhance":
        what = f"enhance x{full['enhance']['scale']}, {health['channel_order']} images of any size; POST /predict"
    else:
        what = f"{health['task']}, {health['num_classes']} classes, input {shape}{in_browser}"
    print(f"foveal serve: {_url(args.host, port)}  model {health['architecture']} ({what}); Ctrl+C stops", flush=True)
    try:
        with _stopped_by_ctrl_c():
            uvicorn.Server(server_config(app, header_timeout=args.read_timeout,
                                         max_connections=args.max_connections, log_level="info")).run(sockets=[sock])
    finally:
        sock.close()
    return 0


@contextlib.contextmanager
def _stopped_by_ctrl_c() -> Iterator[None]:
    """Ctrl+C is the normal way to stop a server: exit 0, not 130.

    uvicorn shuts down gracefully on SIGINT, then raises the signal again for the caller.
    """
    try:
        yield
    except KeyboardInterrupt:
        pass
    print("foveal serve: stopped", file=sys.stderr)


def _check_model(path: str, trust_model: bool = False):
    """Fail in the parent, with a clear message, before every worker fails the same way;
    return the model's card (None when the file has none)."""
    from pathlib import Path

    from foveal.errors import ModelError
    from foveal.models.io import read_card

    if not Path(path).exists():
        raise ModelError(f"model file not found: {path}",
                         hint="pass a .keras file, or an export of one (.tflite, .onnx, SavedModel folder)")
    if Path(path).suffix != ".keras":
        from foveal.export.runners import read_export_card
        from foveal.export.trust import check_export

        check_export(path, trusted=trust_model)
        return read_export_card(Path(path))
    card = read_card(path)
    if card is not None:
        from foveal.export.tasks import hooks

        hooks(card.task)  # refuses a task foveal cannot serve
    return card


def main(argv: list[str] | None = None) -> int:
    """``python -m foveal.serve.cli MODEL ...``: the same as ``foveal serve MODEL ...``."""
    parser = argparse.ArgumentParser(prog="python -m foveal.serve.cli", allow_abbrev=False)
    add_serve_command(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["serve", *(sys.argv[1:] if argv is None else argv)])
    try:
        return args.func(args, {})
    except FovealError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
