"""Training throughput of ``foveal train --distribute``: one process, one worker, two workers.

Each setting is a real ``foveal train`` command (``python -m foveal.cli.main train ...``),
run as its own process(es) on this machine, on the first ``--images`` MNIST training images
(from ``../shared/datasets/mnist``) without validation. Throughput is images per second over
the epochs after the first (the first pays for tracing), from the ``epoch_seconds`` the chief
records in ``state.json``; ``wall_s`` is the whole command, start-up and report included.

Settings:

* ``none``: the classic single-process path (``--distribute none``);
* ``mirrored``: ``MirroredStrategy`` on whatever devices exist (on a CPU-only machine: one
  replica on the CPU);
* ``multi-worker-1``: ``MultiWorkerMirroredStrategy`` with one local worker;
* ``multi-worker-2``: two worker processes on 127.0.0.1, each with half of every global batch.

Two processes on one machine share its cores, so ``multi-worker-2`` measures the cost of the
extra process and of the all-reduce, not a speed-up (see the ``note`` in the output).

Example:
    .venv/bin/python benchmarks/distributed_throughput.py --mnist ../shared/datasets/mnist --images 8192 --epochs 3 > dist.json
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]


def write_npz(path: Path, images: int, mnist: Path) -> None:
    with gzip.open(mnist / "train-images-idx3-ubyte.gz") as f:
        x = np.frombuffer(f.read(16 + (images + 512) * 784)[16:], np.uint8).reshape(-1, 28, 28)
    with gzip.open(mnist / "train-labels-idx1-ubyte.gz") as f:
        y = np.frombuffer(f.read(8 + images + 512)[8:], np.uint8).astype(np.int64)
    np.savez(path, x_train=x[:images], y_train=y[:images], x_test=x[images:], y_test=y[images:])


def free_ports(n: int) -> list[str]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [f"127.0.0.1:{s.getsockname()[1]}" for s in sockets]
    for s in sockets:
        s.close()
    return ports


def run_setting(name: str, base: list[str], output: Path, workers: int, extra: list[str]) -> dict:
    """Run one setting (``workers`` processes) and measure it."""
    env = {**{k: v for k, v in os.environ.items() if k != "TF_CONFIG"}, "TF_CPP_MIN_LOG_LEVEL": "2"}
    command = [sys.executable, "-m", "foveal.cli.main", "train", *base, "--output", str(output),
               "--name", f"run-{name}", *extra]
    if workers > 1:
        command += ["--workers", ",".join(free_ports(workers))]
    started = time.perf_counter()
    procs = []
    for i in range(workers):
        index = ["--worker-index", str(i)] if workers > 1 else []
        procs.append(subprocess.Popen(command + index, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                      env=env))
    outputs = [p.communicate(timeout=1800)[0] for p in procs]
    wall = time.perf_counter() - started
    if any(p.returncode for p in procs):
        raise SystemExit(f"{name} failed:\n" + "\n".join(o[-3000:] for o in outputs))
    state = json.loads((output / f"run-{name}" / "state.json").read_text())
    seconds = state["history"]["epoch_seconds"]
    images = int(next(re.search(r"train (\d+)", line).group(1) for line in outputs[0].splitlines()
                      if line.startswith("data: ")))
    timed = seconds[1:] or seconds
    shown = ["MNIST.npz" if arg.endswith("mnist.npz") else arg for arg in [*base, *extra]]
    return {"command": " ".join(["foveal train", *shown] + (["--workers ... --worker-index I"]
                                                            if workers > 1 else [])),
            "processes": workers, "images_per_s": round(images * len(timed) / sum(timed), 1),
            "epoch_seconds": [round(s, 2) for s in seconds], "wall_s": round(wall, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mnist", type=Path, required=True, help="MNIST IDX folder, e.g. ../shared/datasets/mnist")
    parser.add_argument("--images", type=int, default=8192, help="MNIST training images (default: 8192)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs; the first is not timed (default: 3)")
    parser.add_argument("--batch-size", type=int, default=128, help="global batch (default: 128)")
    parser.add_argument("--model", default="lenet5", help="architecture (default: lenet5)")
    parser.add_argument("--only", action="append", help="run only these settings (repeatable)")
    args = parser.parse_args(argv)
    settings = {
        "none": (1, ["--distribute", "none"]),
        "mirrored": (1, ["--distribute", "mirrored"]),
        "multi-worker-1": (1, ["--distribute", "multi-worker"]),
        "multi-worker-2": (2, ["--distribute", "multi-worker"]),
    }
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "mnist.npz"
        write_npz(data, args.images, args.mnist)
        base = ["--data", str(data), "--model", args.model, "--epochs", str(args.epochs), "--batch-size",
                str(args.batch_size), "--val-split", "0", "--no-tensorboard", "--no-progress",
                "--report-misclassified", "0"]
        for name, (workers, extra) in settings.items():
            if args.only and name not in args.only:
                continue
            print(f"running {name} ...", file=sys.stderr, flush=True)
            results[name] = run_setting(name, base, Path(tmp) / "runs", workers, extra)
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    print(json.dumps({
        "machine": {"cpus": os.cpu_count(), "gpus": len(gpus), "platform": platform.platform(),
                    "python": platform.python_version(), "tensorflow": tf.__version__},
        "setup": {"data": f"first {args.images} MNIST training images", "model": args.model,
                  "global_batch": args.batch_size, "epochs": args.epochs, "timed": "epochs after the first"},
        "note": ("all processes share this machine's cores: two workers on one machine show the overhead of a "
                 "second process and of the gradient all-reduce, not a speed-up; scaling needs one worker per "
                 "machine (or per GPU set). GPU scaling is not measured here."),
        "results": results,
    }, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
