"""ISBI 2012 membranes with a U-Net under a wall-clock training budget; prints JSON.

Runs exactly what ``foveal segment train`` does (:func:`foveal.segmentation.train_segmenter`)
with the options of ``recipes/isbi-unet.md``: the 30 training slices, the last 5 held out as
the test split and 3 others as validation (they pick ``best.keras``), a small U-Net trained on
augmented 256x256 crops of the other 22 for the recipe's 30 epochs or until ``--seconds`` of
training have passed, whichever comes first, then the best checkpoint scored on the 5 whole
held-out 512x512 slices: pixel
accuracy, and IoU and Dice of the membrane class (the black pixels, label value 0) and of the
cell class (white, 255). The JSON also holds the equivalent command line, the wall time and
the machine's load, since timings on a shared machine are noisy.

Run from the repository root::

    .venv/bin/python benchmarks/isbi_unet_quick.py --data ../shared/datasets/isbi-membrane/train --seconds 1200 > isbi.json
    .venv/bin/python benchmarks/isbi_unet_quick.py --data ../shared/datasets/isbi-membrane/train --seconds 60 --epochs 2 --output /tmp/isbi  # a smoke test

Measured (recipes/isbi-unet.md): 30 epochs in 1012 s of training on a shared 2-core CPU, test pixel
accuracy 0.9225, membrane IoU 0.673, membrane Dice 0.805.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shlex
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = Path(__file__).resolve().parents[1]

#: The recipe's options (see recipes/isbi-unet.md for how they were chosen).
RECIPE: dict[str, object] = {
    "classes": ["membrane", "cell"],
    "foreground": "membrane",
    "holdout": 5,
    "val_split": 0.12,
    "test_split": 0.0,
    "model": "unet",
    "model_options": {"width": 16, "depth": 4, "batch_norm": True},
    "crop_size": [256],
    "augment": "hflip,vflip,rot90,angle=10,scale=0.9-1.1,elastic=6,brightness=0.05,contrast=0.1",
    "loss": "ce+dice",
    "batch_size": 4,
    "steps_per_epoch": 50,
    "epochs": 30,
    "learning_rate": 2e-3,
    "schedule": "cosine",
    "seed": 0,
}


def command_line(options: dict[str, object]) -> str:
    """The ``foveal segment train`` command equivalent to ``options``."""
    parts = ["foveal", "segment", "train"]
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            parts.append(flag if value else "--no-" + key.replace("_", "-"))
        elif isinstance(value, list):
            parts += [flag, *map(str, value)]
        elif isinstance(value, dict):
            parts += [flag, ",".join(f"{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in value.items())]
        else:
            parts += [flag, str(value)]
    return shlex.join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, help="ISBI train folder (image/ + label/)")
    parser.add_argument("--seconds", type=float, default=1200, help="training budget in seconds (default: 1200)")
    parser.add_argument("--epochs", type=int, help="override the recipe's epoch count")
    parser.add_argument("--output", help="folder for the run (default: a new temporary folder, kept)")
    args = parser.parse_args()

    from foveal.segmentation.train import SegmentConfig, train_segmenter

    output = args.output or tempfile.mkdtemp(prefix="isbi-unet-")
    options = {"data": args.data, **RECIPE, "time_budget": args.seconds}
    if args.epochs:
        options["epochs"] = args.epochs
    load_before = os.getloadavg()
    started = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):  # the trainer's progress lines; stdout is the JSON
        result = train_segmenter(SegmentConfig(**options, output=output, name="isbi-unet", progress=False))
    wall = time.perf_counter() - started
    state = json.loads((result.run_dir / "state.json").read_text())
    metrics = result.metrics or {}
    by_class = {row["class"]: row for row in metrics.get("per_class", [])}
    report = {
        "command": command_line({k: v for k, v in options.items() if k != "data"} | {"data": args.data}),
        "run_dir": str(result.run_dir),
        "wall_seconds": round(wall, 1),
        "train_seconds": round(sum(result.history.get("epoch_seconds", [])), 1),
        "epochs": len(result.history.get("loss", [])),
        "time_budget_reached": state.get("time_budget_reached"),
        "test_images": metrics.get("num_images"),
        "pixel_accuracy": metrics.get("pixel_accuracy"),
        "membrane_iou": by_class.get("membrane", {}).get("iou"),
        "membrane_dice": by_class.get("membrane", {}).get("dice"),
        "cell_iou": by_class.get("cell", {}).get("iou"),
        "cell_dice": by_class.get("cell", {}).get("dice"),
        "mean_iou": metrics.get("mean_iou"),
        "all_cell_baseline_accuracy": round(by_class["cell"]["pixels"] / metrics["num_pixels"], 6) if by_class else None,
        "final_train_loss": result.history.get("loss", [None])[-1],
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": sys.version.split()[0],
                    "load_average_before": [round(v, 2) for v in load_before],
                    "load_average_after": [round(v, 2) for v in os.getloadavg()]},
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
