"""Raccoon detection under a wall-clock budget: from scratch vs a foveal-pretrained backbone.

Runs exactly what ``foveal detect train`` does (:func:`foveal.detection.train_detector`) on
``../shared/datasets/raccoon`` with its own ``train.txt`` / ``test.txt`` split (16 of the 160
training images held out for validation, which picks ``best.keras``), twice:

1. ``scratch``: a YOLOv2-style head on ResNet-18 (width 16) initialised at random;
2. ``pretrained``: the same detector whose backbone starts from a ResNet-18 (width 16) that
   foveal trained on CIFAR-10 (``--backbone-weights``; or trained here first with
   ``--pretrain-epochs``, from ``../shared/datasets/cifar10-jpeg.tar.gz``; that time is reported
   separately and not counted in the detector's budget).

Each detector trains until ``--seconds`` of training have passed (``--time-budget``), then its
best checkpoint is scored on the 40 test images: mAP@0.5 (VOC all-point), COCO AP/AP50 (equal
to pycocotools'), precision and recall at score 0.25. The JSON also holds the commands and the
machine's load (timings on a shared machine are noisy).

    .venv/bin/python benchmarks/raccoon_detection.py --data-root ../shared/datasets --seconds 1800 > raccoon.json
    .venv/bin/python benchmarks/raccoon_detection.py --data-root ../shared/datasets --seconds 120 --only scratch    # quick check
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shlex
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = Path(__file__).resolve().parents[1]
DATASETS = Path()  # --data-root, set by main()

#: The detector options (recipes/raccoon-detection.md says how they were chosen).
DETECTOR: dict[str, Any] = {
    "backbone": "resnet18", "backbone_options": {"width": 16}, "image_size": [256], "scales": 1, "anchors": 5,
    "augment": "detect", "batch_size": 8, "optimizer": "adam", "learning_rate": 1e-3, "schedule": "cosine",
    "warmup_epochs": 1.0, "val_split": 0.1, "eval_every": 5, "monitor": "val_map50",
}
#: The CIFAR-10 backbone (``foveal train``'s fast recipe at 32x32).
BACKBONE: dict[str, Any] = {"model": "resnet18", "model_options": {"width": 16}, "recipe": "fast",
                            "image_size": [32]}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def command_line(prefix: str, options: dict[str, Any]) -> str:
    parts = [prefix]
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):  # the CLI's booleans are --name / --no-name
            parts.append(flag if value else "--no-" + flag[2:])
        elif isinstance(value, dict):
            parts += [flag, ",".join(f"{k}={v}" for k, v in value.items())]
        elif isinstance(value, list):
            parts += [flag, *map(str, value)]
        else:
            parts += [flag, str(value)]
    return shlex.join(parts)


def pretrain_backbone(epochs: int, output: Path, cifar: Path) -> dict[str, Any]:
    from foveal.config import TrainConfig
    from foveal.training.trainer import train

    folder = output / "cifar10"
    if not (folder / "train").is_dir():
        log(f"extracting {cifar} to {folder}")
        with tarfile.open(cifar) as archive:
            archive.extractall(folder, filter="data")
    options = BACKBONE | {"data": str(folder), "epochs": epochs, "output": str(output), "name": "cifar10-backbone",
                          "progress": False, "report_misclassified": 0}
    started = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):
        result = train(TrainConfig(**options))
    return {"weights": str(result.run_dir / "best.keras"), "seconds": round(time.perf_counter() - started, 1),
            "test_accuracy": result.metrics.get("accuracy") if result.metrics else None,
            "command": command_line("foveal train", {k: v for k, v in options.items() if k != "progress"})}


def run_detector(name: str, seconds: float, epochs: int, output: Path, extra: dict[str, Any]) -> dict[str, Any]:
    from foveal.detection.config import DetectConfig
    from foveal.detection.train import train_detector

    options = DETECTOR | extra | {"data": str(DATASETS / "raccoon"), "time_budget": seconds, "epochs": epochs}
    cfg = DetectConfig(**options, output=str(output), name=name, progress=False)
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):
        result = train_detector(cfg)
    total = time.perf_counter() - started
    history, metrics = result.history, result.metrics or {}
    val = history.get("val_map50", [])
    return {
        "command": command_line("foveal detect train", options),
        "epochs_run": len(history.get("loss", [])), "train_seconds": round(sum(history.get("epoch_seconds", [])), 1),
        "total_seconds": round(total, 1), "best_val_map50": round(max(val), 4) if val else None,
        "test_map50": metrics.get("map50"), "test_map50_voc07": metrics.get("map50_voc07"),
        "test_coco_ap": metrics.get("coco", {}).get("AP"), "test_coco_ap50": metrics.get("coco", {}).get("AP50"),
        "test_precision": metrics.get("precision"), "test_recall": metrics.get("recall"),
        "run_dir": str(result.run_dir), "load_average_before": load_before, "load_average_after": os.getloadavg()[0],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=1800.0, help="training budget per detector (default: 1800)")
    parser.add_argument("--epochs", type=int, default=None, help="epochs of the cosine schedule (default: about "
                        "one per 4.5 s of budget, so the schedule ends near the budget on this machine)")
    parser.add_argument("--only", choices=["scratch", "pretrained"], help="run one detector only")
    parser.add_argument("--backbone-weights", help="a CIFAR-10 resnet18 (width 16) .keras written by foveal train")
    parser.add_argument("--pretrain-epochs", type=int, default=10, help="CIFAR-10 epochs when no --backbone-weights "
                        "is given (default: 10)")
    parser.add_argument("--data-root", type=Path, required=True, help="folder holding raccoon/ and "
                        "cifar10-jpeg.tar.gz, e.g. ../shared/datasets")
    parser.add_argument("--cifar", type=Path, help="CIFAR-10 archive (default: DATA_ROOT/cifar10-jpeg.tar.gz)")
    parser.add_argument("--output", type=Path, help="folder for the run folders (default: a temporary one)")
    args = parser.parse_args(argv)
    global DATASETS
    DATASETS = args.data_root
    args.cifar = args.cifar or DATASETS / "cifar10-jpeg.tar.gz"
    output = args.output or Path(tempfile.mkdtemp(prefix="foveal-raccoon-"))
    epochs = args.epochs or max(10, int(args.seconds / 4.5))
    import tensorflow as tf

    report: dict[str, Any] = {
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "tensorflow": tf.__version__},
        "budget_seconds": args.seconds, "epochs_scheduled": epochs, "output": str(output),
        "started_at": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    if args.only in (None, "scratch"):
        log(f"scratch: budget {args.seconds:.0f} s, {epochs} scheduled epochs")
        report["scratch"] = run_detector("scratch", args.seconds, epochs, output, {})
    if args.only in (None, "pretrained"):
        weights = args.backbone_weights
        if weights is None:
            log(f"pretraining the backbone on CIFAR-10 for {args.pretrain_epochs} epochs")
            report["backbone"] = pretrain_backbone(args.pretrain_epochs, output, args.cifar)
            weights = report["backbone"]["weights"]
        else:
            report["backbone"] = {"weights": weights}
        log(f"pretrained: budget {args.seconds:.0f} s, {epochs} scheduled epochs")
        report["pretrained"] = run_detector("pretrained", args.seconds, epochs, output, {"backbone_weights": weights})
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
