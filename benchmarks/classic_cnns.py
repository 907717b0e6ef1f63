"""Reproduce two classic CNN results of the texts through foveal's Python API.

* ``fashion``: the Fashion-MNIST CNN of Géron (ch. 14, ``geron_cnn``), trained as the book
  does: Nadam at 1e-3, 10 epochs, batch 32, 5,000 validation images, no augmentation.
* ``mnist``: LeNet-5 (``lenet5``, 32x32 input) on MNIST with Adam and early stopping.

Each experiment runs ``foveal.training.trainer.train`` with a :class:`TrainConfig` whose exact
``foveal train`` equivalent is printed alongside the results. One JSON document goes to stdout;
progress (foveal's own messages included) goes to stderr, so ``> results.json`` captures only
the results.

Example:
    python benchmarks/classic_cnns.py --data-root ../shared/datasets --only mnist > /tmp/mnist.json
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import platform
import shlex
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]

# Settings shared by every experiment: repeatable, and no output that costs time.
COMMON: dict[str, Any] = {"seed": 42, "deterministic": True, "tensorboard": False, "progress": False}

EXPERIMENTS: dict[str, dict[str, Any]] = {
    "mnist": {
        "dataset": "mnist",
        "claim": "Planche & Andres, ch. 3: LeNet-5 on MNIST with plain SGD (batch 32, up to 80 "
                 "epochs, early stopping patience 3) reaches above ~98.5% validation accuracy "
                 "after ~60 epochs (their validation set is the MNIST test set)",
        "claimed_accuracy": 0.985,
        "options": {
            "model": "lenet5",
            # LeNet-5 takes 32x32; foveal stretches the 28x28 digits to it (bilinear).
            "image_size": [32, 32],
            "preprocessing": "rescale",
            "augment": "none",
            "val_split": 0.1,
            "epochs": 10,
            "batch_size": 64,
            "optimizer": "adam",
            "learning_rate": 1e-3,
            "early_stopping": 3,
            "monitor": "val_loss",
        },
    },
    "fashion": {
        "dataset": "fashion-mnist",
        "claim": "Géron, ch. 14: the CNN 'should reach over 92% accuracy on the test set' after "
                 "10 epochs with Nadam (batch 32, last 5,000 training images for validation)",
        "claimed_accuracy": 0.92,
        "options": {
            "model": "geron_cnn",
            "image_size": [28, 28],
            "preprocessing": "rescale",
            "augment": "none",
            # The book holds out the last 5,000 images; foveal's split is stratified and seeded.
            "val_split": 5000 / 60000,
            "epochs": 10,
            "batch_size": 32,
            "optimizer": "nadam",
            "learning_rate": 1e-3,
            "early_stopping": 0,
            "monitor": "val_loss",
        },
    },
}

# Options always written on the command line even when they equal foveal's defaults, so the
# command documents the recipe on its own.
ALWAYS_ON_COMMAND = ("data", "model", "image_size", "preprocessing", "augment", "val_split", "epochs",
                     "batch_size", "optimizer", "learning_rate", "early_stopping", "seed", "deterministic",
                     "tensorboard", "progress")
NOT_ON_COMMAND = ("output", "name")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info() -> dict[str, Any]:
    import keras
    import tensorflow as tf

    info: dict[str, Any] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "gpus": [d.name for d in tf.config.list_physical_devices("GPU")],
    }
    if hasattr(os, "sched_getaffinity"):
        info["usable_cpus"] = len(os.sched_getaffinity(0))
    return info


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def make_config(name: str, data_root: Path, output: Path, epochs: int | None) -> Any:
    from foveal.config import TrainConfig

    spec = EXPERIMENTS[name]
    options = dict(spec["options"], **COMMON)
    if epochs is not None:
        options["epochs"] = epochs
    cfg = TrainConfig(data=str(data_root / spec["dataset"]), output=str(output), **options)
    cfg.validate()
    return cfg


def _flag(name: str, value: Any) -> list[str]:
    flag = "--" + name.replace("_", "-")
    if isinstance(value, bool):
        return [flag if value else "--no-" + name.replace("_", "-")]
    if isinstance(value, (list, tuple)):
        return [flag, *(str(v) for v in value)]
    if isinstance(value, dict):
        return [flag, ",".join(f"{k}={v}" for k, v in value.items())]
    return [flag, repr(value) if isinstance(value, float) else str(value)]


def command_line(cfg: Any) -> str:
    """The ``foveal train`` invocation that trains exactly like ``cfg`` (run folder aside)."""
    from foveal.config import TrainConfig

    defaults = TrainConfig()
    words = ["foveal", "train"]
    for field in dataclasses.fields(cfg):
        if field.name in NOT_ON_COMMAND:
            continue
        value = getattr(cfg, field.name)
        if field.name == "data":
            value = os.path.relpath(value)
        if field.name in ALWAYS_ON_COMMAND or value != getattr(defaults, field.name):
            words += _flag(field.name, value)
    return shlex.join(words)


def best_epoch(history: dict[str, list[float]], monitor: str) -> int | None:
    """1-based epoch with the best monitored value (the weights foveal tests)."""
    values = history.get(monitor) or history.get(monitor.removeprefix("val_"))
    if not values:
        return None
    pick = min if "loss" in monitor else max
    return values.index(pick(values)) + 1


def run_experiment(name: str, data_root: Path, output: Path, epochs: int | None) -> dict[str, Any]:
    import keras

    from foveal.training.trainer import prepare_data, train

    cfg = make_config(name, data_root, output, epochs)
    command = command_line(cfg)
    log(f"[{name}] {command}")
    keras.backend.clear_session()
    load_before = load_average()
    started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):  # train() reports on stdout; keep stdout JSON only
        result = train(cfg)
    total_seconds = time.perf_counter() - t0
    history = result.history
    epoch_seconds = history.get("epoch_seconds", [])
    epochs_run = len(epoch_seconds)
    train_seconds = sum(epoch_seconds)
    # Re-derive the split (seeded, so identical) to count the images that were trained on.
    splits = prepare_data(cfg)
    train_images = len(splits.train)
    metrics = result.metrics or {}
    per_epoch = [
        {"epoch": i + 1, **{k: round(v[i], 6) for k, v in history.items() if i < len(v)}}
        for i in range(epochs_run)
    ]
    return {
        "experiment": name,
        "dataset": EXPERIMENTS[name]["dataset"],
        "data": cfg.data,
        "model": cfg.model,
        "command": command,
        "benchmark_command": f"python benchmarks/classic_cnns.py --data-root ../shared/datasets --only {name}"
                             + ("" if epochs is None else f" --epochs {epochs}"),
        "config": dataclasses.asdict(cfg),
        "epochs": cfg.epochs,
        "epochs_run": epochs_run,
        "batch_size": cfg.batch_size,
        "optimizer": {"name": cfg.optimizer, "learning_rate": cfg.learning_rate,
                      "schedule": cfg.schedule},
        "early_stopping": cfg.early_stopping,
        "images": {"train": train_images, "val": len(splits.val) if splits.val is not None else 0,
                   "test": metrics.get("num_examples")},
        "train_seconds": round(train_seconds, 2),
        "total_seconds": round(total_seconds, 2),
        "train_images_per_second": round(train_images * epochs_run / train_seconds, 1) if train_seconds else None,
        "test_accuracy": metrics.get("accuracy"),
        "test_split": metrics.get("split"),
        "best_epoch": best_epoch(history, cfg.monitor),
        "monitor": cfg.monitor,
        "claim": EXPERIMENTS[name]["claim"],
        "claimed_accuracy": EXPERIMENTS[name]["claimed_accuracy"],
        "interrupted": result.interrupted,
        "run_dir": str(result.run_dir),
        "started_at": started_at,
        "load_average_before": load_before,
        "load_average_after": load_average(),
        "history": per_epoch,
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Train the texts' Fashion-MNIST CNN (Géron ch. 14) and LeNet-5 on MNIST with "
                    "foveal and print one JSON document of timings and accuracies to stdout.")
    parser.add_argument("--data-root", type=Path, required=True,
                        help="folder holding mnist/ and fashion-mnist/, e.g. ../shared/datasets")
    parser.add_argument("--only", choices=sorted(EXPERIMENTS), action="append",
                        help="run only this experiment (repeatable; default: mnist then fashion)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="override every experiment's epoch count (for a quick check)")
    parser.add_argument("--output", type=Path, default=None,
                        help="folder for the run folders (default: a new temporary folder, kept)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    names = args.only or ["mnist", "fashion"]
    for name in names:
        folder = args.data_root / EXPERIMENTS[name]["dataset"]
        if not folder.is_dir():
            log(f"error: {folder} not found; pass --data-root")
            return 2
    output = args.output or Path(tempfile.mkdtemp(prefix="foveal-classic-cnns-"))
    output.mkdir(parents=True, exist_ok=True)
    log(f"run folders go to {output}")
    report: dict[str, Any] = {
        "benchmark": "classic_cnns",
        "machine": machine_info(),
        "output": str(output),
        "experiments": [run_experiment(name, args.data_root, output, args.epochs) for name in names],
    }
    json.dump(report, sys.stdout, indent=1)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
