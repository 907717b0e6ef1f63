"""ISBI 2012 cells as instances: COCO mask AP and AP50 of U-Net + marker watershed; prints JSON.

1. ``foveal datasets cells``' function (:func:`foveal.instance.cells.write_cell_instances`)
   derives the instance ground truth (each cell a connected region between membranes) and the
   3-class targets (background, interior, boundary of 2 pixels) into a temporary folder.
2. ``foveal segment train``'s function trains the ISBI recipe's small U-Net
   (recipes/isbi-unet.md: width 16, depth 4, batch norm, 256x256 crops, microscopy
   augmentation, CE + Dice) on those targets for at most ``--seconds`` of training; the last 5
   slices (25-29) are held out as the test split, 3 others validate.
3. :func:`foveal.instance.unet_watershed.evaluate_watershed` scores ``best.keras`` on the 5
   whole test slices: COCO mask AP, AP50, AP75 (pycocotools' rules, ``iou_type="segm"``) with
   the default limit of 100 detections per image and, since a slice holds about 136 cells, also
   with 1000; the baseline in the same invocation is connected components of the same
   network's foreground (no watershed).

Run from the repository root (nice it on a shared machine)::

    nice -n 5 .venv/bin/python benchmarks/isbi_instances.py --seconds 780 > isbi-instances.json
    .venv/bin/python benchmarks/isbi_instances.py --run /tmp/isbi-inst-XXXX/isbi-cells-unet  # score a run again
    .venv/bin/python benchmarks/isbi_instances.py --seconds 60 --epochs 1 --steps 5     # a smoke test
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "datasets" / "isbi-membrane" / "train"

#: recipes/isbi-unet.md's options, on the 3-class targets (class names come from palette.txt)
RECIPE: dict[str, object] = {
    "holdout": 5, "val_split": 0.12, "test_split": 0.0,
    "model": "unet", "model_options": {"width": 16, "depth": 4, "batch_norm": True},
    "crop_size": [256],
    "augment": "hflip,vflip,rot90,angle=10,scale=0.9-1.1,elastic=6,brightness=0.05,contrast=0.1",
    "loss": "ce+dice", "batch_size": 4, "steps_per_epoch": 50, "epochs": 20,
    "learning_rate": 2e-3, "schedule": "cosine", "seed": 0,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="ISBI train folder (image/ + label/)")
    parser.add_argument("--seconds", type=float, default=780, help="training budget in seconds (default: 780)")
    parser.add_argument("--epochs", type=int, help="override the recipe's epoch count")
    parser.add_argument("--steps", type=int, help="override the recipe's steps per epoch")
    parser.add_argument("--boundary-width", type=int, default=2, help="boundary class width (default: 2)")
    parser.add_argument("--output", help="work folder (default: a new temporary folder, kept)")
    parser.add_argument("--run", help="score this existing run folder (its cells/ beside it) instead of training")
    args = parser.parse_args()

    from foveal.instance.cells import write_cell_instances
    from foveal.instance.unet_watershed import evaluate_watershed
    from foveal.segmentation.train import SegmentConfig, train_segmenter

    load_before = os.getloadavg()
    started = time.perf_counter()
    report: dict[str, object] = {}
    if args.run:
        run_dir = Path(args.run)
        cells = run_dir.parent / "cells"
    else:
        work = Path(args.output or tempfile.mkdtemp(prefix="isbi-inst-"))
        cells = work / "cells"
        manifest = write_cell_instances(args.data, cells, boundary_width=args.boundary_width, overwrite=True)
        options = {"data": str(cells), **RECIPE, "time_budget": args.seconds}
        options["epochs"] = args.epochs or options["epochs"]
        options["steps_per_epoch"] = args.steps or options["steps_per_epoch"]
        with contextlib.redirect_stdout(sys.stderr):
            result = train_segmenter(SegmentConfig(**options, output=str(work), name="isbi-cells-unet", progress=False))
        run_dir = result.run_dir
        report |= {"cells": {k: manifest[k] for k in ("images", "instances", "boundary_width")},
                   "train_options": {k: v for k, v in options.items() if k != "data"},
                   "train_seconds": round(sum(result.history.get("epoch_seconds", [])), 1),
                   "epochs": len(result.history.get("loss", [])),
                   "segmentation_test_metrics": {k: (result.metrics or {}).get(k)
                                                 for k in ("pixel_accuracy", "mean_iou", "per_class")}}
    model = run_dir / "best.keras"
    scored = {}
    for limit in (100, 1000):
        t = time.perf_counter()
        with contextlib.redirect_stdout(sys.stderr):
            m = evaluate_watershed(model, cells, split="test", max_dets=(1, 10, limit))
        scored[f"max_dets_{limit}"] = {
            "watershed": {k: m[k] for k in ("mask_ap", "mask_ap50", "mask_ap75", "predicted_instances")},
            "baseline_connected_components": {k: m["baseline"][k] for k in ("mask_ap", "mask_ap50", "mask_ap75",
                                                                            "predicted_instances")},
            "seconds": round(time.perf_counter() - t, 1)}
    report |= {"run_dir": str(run_dir), "test_images": m["images"], "ground_truth_instances": m["ground_truth_instances"],
               "post_processing": m["post_processing"], "seconds_per_image": m["seconds_per_image"], **scored,
               "wall_seconds": round(time.perf_counter() - started, 1),
               "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": sys.version.split()[0],
                           "load_average_before": [round(v, 2) for v in load_before],
                           "load_average_after": [round(v, 2) for v in os.getloadavg()]}}
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
