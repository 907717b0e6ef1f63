"""A burst of POST /predict requests against ``foveal serve``: throughput, latency, errors.

The server runs in a child process (``python -m foveal.serve.cli MODEL --port 0``, the same
code as ``foveal serve``) on 127.0.0.1 and a free port; the clients are threads with one
``httpx.Client`` each, sharing a request counter, all in this process. Before the timed burst a
few requests warm the server up. Only loopback addresses are used, and the run stops by itself
(every request has a timeout, the whole burst a deadline).

Without ``--model`` the served model is a freshly built, untrained ``lenet5`` for the ten digit
classes (throughput does not depend on the weights) and the images are scikit-learn's real
handwritten digits, upscaled to 28x28 PNG files like MNIST's.

One JSON document goes to stdout; the server's log goes to stderr.

Example:
    python benchmarks/serve_burst.py > serve_burst.json
    python benchmarks/serve_burst.py --model runs/digits-demo/best.keras --requests 200
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

HOST = "127.0.0.1"  # never anything but loopback
WARM_UP_REQUESTS = 16


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    p.add_argument("--model", type=Path, help="a .keras file to serve (default: an untrained lenet5, 10 classes)")
    p.add_argument("--requests", type=int, default=1000, help="requests in the burst (default: 1000)")
    p.add_argument("--concurrency", type=int, default=8, help="concurrent clients (default: 8)")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds one request may take (default: 30)")
    p.add_argument("--deadline", type=float, default=600.0, help="seconds the whole burst may take (default: 600)")
    return p.parse_args(argv)


def digit_pngs(count: int = 64) -> list[bytes]:
    """Real handwritten digits (scikit-learn's 8x8 set) as 28x28 PNG bytes."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.round(digits.images[:count] * 255 / 16).astype(np.uint8)
    out = []
    for image in images:
        buffer = io.BytesIO()
        Image.fromarray(image).resize((28, 28), Image.BILINEAR).save(buffer, "PNG")
        out.append(buffer.getvalue())
    return out


def default_model(folder: Path) -> Path:
    from foveal.models import ModelCard, build_model, save_model

    path = folder / "lenet5-digits-untrained.keras"
    model = build_model("lenet5", num_classes=10)
    save_model(model, path, ModelCard(architecture="lenet5", class_names=[str(i) for i in range(10)],
                                      input_shape=(32, 32, 1)))
    return path


class Server:
    """``python -m foveal.serve.cli MODEL --port 0`` in a child process; ``url`` once it answers."""

    def __init__(self, model: Path) -> None:
        command = [sys.executable, "-m", "foveal.serve.cli", str(model), "--host", HOST, "--port", "0"]
        self.proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=sys.stderr, text=True)
        line = self.proc.stdout.readline()
        match = re.search(r"http://127\.0\.0\.1:\d+/", line)
        if not match:
            self.stop()
            raise SystemExit(f"the server did not start: {line!r}")
        self.url = match.group(0)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()


def wait_until_ready(url: str, seconds: float = 120) -> dict[str, Any]:
    import httpx

    deadline = time.monotonic() + seconds
    while True:
        try:
            return httpx.get(url + "health", timeout=5).json()
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise SystemExit("the server never answered /health") from None
            time.sleep(0.1)


def burst(url: str, images: list[bytes], args: argparse.Namespace) -> dict[str, Any]:
    """Send ``args.requests`` requests from ``args.concurrency`` threads; collect timings."""
    import httpx

    lock = threading.Lock()
    next_index = [0]
    latencies: list[float] = []
    server_ms: list[float] = []
    errors: dict[str, int] = {}
    examples: list[str] = []
    stop_at = time.monotonic() + args.deadline

    def take() -> int | None:
        with lock:
            if next_index[0] >= args.requests or time.monotonic() > stop_at:
                return None
            next_index[0] += 1
            return next_index[0] - 1

    def client() -> None:
        with httpx.Client(base_url=url, timeout=args.timeout) as http:
            while (i := take()) is not None:
                data = images[i % len(images)]
                start = time.perf_counter()
                try:
                    answer = http.post("predict", files={"image": (f"{i}.png", data, "image/png")})
                    seconds = time.perf_counter() - start
                    key = None if answer.status_code == 200 else f"HTTP {answer.status_code}"
                    detail = answer.text[:200]
                except httpx.HTTPError as exc:
                    seconds, key, detail = time.perf_counter() - start, type(exc).__name__, str(exc)[:200]
                with lock:
                    if key is None:
                        latencies.append(seconds * 1000)
                        server_ms.append(answer.json()["elapsed_ms"])
                    else:
                        errors[key] = errors.get(key, 0) + 1
                        if len(examples) < 5:
                            examples.append(detail)

    threads = [threading.Thread(target=client, name=f"client-{n}") for n in range(args.concurrency)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    sent = next_index[0]
    return {
        "requests_asked": args.requests,
        "requests_sent": sent,
        "stopped_by_deadline": sent < args.requests,
        "ok": len(latencies),
        "errors": sum(errors.values()),
        "errors_by_kind": errors,
        "error_examples": examples,
        "wall_seconds": round(wall, 3),
        "requests_per_second": round(len(latencies) / wall, 2) if wall else None,
        "latency_ms": percentiles(latencies),
        "server_elapsed_ms": percentiles(server_ms),
    }


def percentiles(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    a = np.asarray(values)
    p50, p90, p99 = np.percentile(a, [50, 90, 99])
    return {"p50": round(float(p50), 2), "p90": round(float(p90), 2), "p99": round(float(p99), 2),
            "mean": round(float(a.mean()), 2), "min": round(float(a.min()), 2), "max": round(float(a.max()), 2)}


def machine() -> dict[str, Any]:
    import httpx

    cpu = "unknown"
    with open("/proc/cpuinfo", encoding="utf-8") if os.path.exists("/proc/cpuinfo") else io.StringIO() as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    versions = {}
    for name in ("tensorflow", "keras", "fastapi", "uvicorn"):
        try:
            from importlib.metadata import version

            versions[name] = version(name if name != "tensorflow" else _tf_dist())
        except Exception:  # not installed under that name
            versions[name] = None
    versions["httpx"] = httpx.__version__
    return {"platform": platform.platform(), "python": platform.python_version(), "cpu_model": cpu,
            "cpu_count": os.cpu_count(), "usable_cpus": usable, **versions}


def _tf_dist() -> str:
    from importlib.metadata import PackageNotFoundError, version

    for dist in ("tensorflow-cpu", "tensorflow"):
        try:
            version(dist)
            return dist
        except PackageNotFoundError:
            continue
    return "tensorflow"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.requests < 1 or args.concurrency < 1:
        raise SystemExit("--requests and --concurrency must be positive")
    import httpx

    images = digit_pngs()
    with tempfile.TemporaryDirectory(prefix="foveal-serve-burst-") as tmp:
        model = args.model or default_model(Path(tmp))
        load_before = os.getloadavg()
        server = Server(model)
        try:
            health = wait_until_ready(server.url)
            with httpx.Client(base_url=server.url, timeout=args.timeout) as http:
                for i in range(WARM_UP_REQUESTS):
                    http.post("predict", files={"image": ("warm.png", images[i % len(images)], "image/png")})
            started = datetime.now(timezone.utc).isoformat(timespec="seconds")
            results = burst(server.url, images, args)
            stats = httpx.get(server.url + "health", timeout=args.timeout).json()["stats"]
        finally:
            server.stop()
    report = {
        "benchmark": "serve_burst",
        "started_at": started,
        "command": " ".join(["python", "benchmarks/serve_burst.py", *(sys.argv[1:] if argv is None else argv)]),
        "server": {"command": "foveal serve MODEL --host 127.0.0.1 --port 0 (1 worker)",
                   "model": health["model"]["architecture"], "model_file": str(args.model) if args.model else
                   "untrained lenet5, 10 classes, 32x32x1", "input_shape": health["model"]["input_shape"],
                   "limits": health["limits"]},
        "images": f"{len(images)} scikit-learn digits as 28x28 PNG ({min(map(len, images))}-"
                  f"{max(map(len, images))} bytes), multipart uploads",
        "concurrency": args.concurrency,
        "warm_up_requests": WARM_UP_REQUESTS,
        **results,
        "server_batches": {"batches": stats["batches"], "mean_batch": stats["mean_batch"],
                           "max_batch": stats["max_batch"], "note": "counted since start, warm-up included"},
        "machine": machine(),
        "clients_share_the_machine": True,
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
    }
    print(json.dumps(report, indent=1))
    return 0 if results["errors"] == 0 and not results["stopped_by_deadline"] else 1


if __name__ == "__main__":
    sys.exit(main())
