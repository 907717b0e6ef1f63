"""ISBI 2012 cells as instances: COCO mask AP and AP50 of U-Net + marker watershed; prints JSON.

1. ``foveal datasets cells``' function (:func:`foveal.instance.cells.write_cell_instances`)
   derives the instance ground truth (each cell a connected region between membranes) and the
   3-class targets (background, interior, boundary of 2 pixels) into a work folder; the last 5
   slices (25-29) are the test set, as in recipes/isbi-unet.md.
2. A small U-Net (the ISBI recipe's: width 16, depth 4, batch norm, 256x256 crops, microscopy
   augmentation, CE + Dice, Adam 2e-3 with cosine decay) is trained on the targets for at most
   ``--seconds`` of training (3 of the other 25 slices validate), by one of two routes:

   * ``--route instance`` (default): ``foveal instance train --model unet-watershed`` on the COCO
     file, the instance task that also trains Mask R-CNN; its test scores (COCO mask and box AP,
     at most 100 detections per image) are the ones Mask R-CNN gets on the same files;
   * ``--route segment``: ``foveal segment train`` on the 3-class masks (then the same scoring);
   * ``--route mask-rcnn``: Mask R-CNN (``--model mask-rcnn``) on the same COCO files, for the
     side-by-side (scored by the instance task only).

3. ``best.keras`` is scored on the 5 whole test slices with COCO mask AP, AP50, AP75
   (``coco_evaluate(iou_type="segm")``, pycocotools' rules) at COCO's 100 detections per image
   and, since a slice holds about 116 cells, also at 1000; the baseline in the same invocation is
   connected components of the same network's foreground (no watershed).

Run from the repository root (nice it on a shared machine)::

    nice -n 5 .venv/bin/python benchmarks/isbi_instances.py --data ../shared/datasets/isbi-membrane/train --seconds 780 > isbi-instances.json
    .venv/bin/python benchmarks/isbi_instances.py --data ../shared/datasets/isbi-membrane/train --run WORK/isbi-cells-instance --sweep  # score a run again
    .venv/bin/python benchmarks/isbi_instances.py --data ../shared/datasets/isbi-membrane/train --seconds 60 --epochs 1        # a smoke test
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

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = Path(__file__).resolve().parents[1]

AUGMENT = "hflip,vflip,rot90,angle=10,scale=0.9-1.1,elastic=6,brightness=0.05,contrast=0.1"
UNET = {"width": 16, "depth": 4, "batch_norm": True}
#: recipes/isbi-unet.md's options, on the 3-class targets (class names come from palette.txt)
SEGMENT_RECIPE: dict[str, object] = {
    "holdout": 5, "val_split": 0.12, "test_split": 0.0, "model": "unet", "model_options": UNET,
    "crop_size": [256], "augment": AUGMENT, "loss": "ce+dice", "batch_size": 4, "steps_per_epoch": 50,
    "epochs": 20, "learning_rate": 2e-3, "schedule": "cosine", "seed": 0,
}
#: the same through the instance task (an epoch is one 256x256 crop of each of the 22 slices)
INSTANCE_RECIPE: dict[str, object] = {
    "model": "unet-watershed", "image_size": [512], "channels": 1, "crop_size": [256], "unet_augment": AUGMENT,
    "unet_options": UNET, "boundary_width": 2, "val_split": 0.12, "batch_size": 4, "epochs": 30,
    "eval_every": 5, "learning_rate": 2e-3, "schedule": "cosine", "seed": 0,
}
#: Mask R-CNN on the same files (``--route mask-rcnn``) at 512 px, set for ~115 small touching cells per slice
#: (benchmarks/isbi_mask_rcnn_diagnostics.py): the stride-4 map P2 and four anchor sizes from 12 to 96 px
#: (cells are 8 to 120 px, sqrt of the box area, 5th to 95th percentile; at P3 with the three sizes chosen
#: from the boxes, 45% of the cells had at most one positive anchor), 1000 proposals kept after NMS (a
#: slice has up to 137 cells; 150 capped the proposal recall), 150 detections per image, 512 sampled
#: anchors per image for the RPN
MASK_RCNN_RECIPE: dict[str, object] = {
    "model": "mask-rcnn", "image_size": [512], "channels": 1, "rcnn_level": "P2", "backbone": "resnet18",
    "backbone_options": {"width": 16}, "anchor_sizes": [12.0, 24.0, 48.0, 96.0], "rpn_batch": 512,
    "roi_batch": 256, "head_width": 128, "mask_width": 32, "mask_convs": 2,
    "rcnn_options": {"pre_nms_train": 4000, "post_nms_train": 1000, "pre_nms_test": 4000, "post_nms_test": 1000},
    "max_instances": 160, "max_detections": 150, "score_threshold": 0.05, "val_split": 0.12, "batch_size": 2,
    "epochs": 24, "eval_every": 4, "learning_rate": 3e-3, "warmup_epochs": 1.0,
    "augment": "flip,vflip,brightness=0.1,contrast=0.1", "seed": 0,
}
#: the recipe measured first (2026-12-07, recipes/instance-segmentation.md): P3, anchors from the boxes
#: (16.6, 32.6, 72.7 px), 150 proposals at test time, 100 detections (``--recipe first``)
MASK_RCNN_FIRST: dict[str, object] = {
    **MASK_RCNN_RECIPE, "rcnn_level": "P3", "anchor_sizes": [], "rpn_batch": 256, "roi_batch": 128,
    "rcnn_options": {"pre_nms_train": 2000, "post_nms_train": 600, "pre_nms_test": 1000, "post_nms_test": 150},
    "max_instances": 150, "max_detections": 100, "score_threshold": 0.5, "epochs": 30, "eval_every": 5,
    "augment": "flip,brightness=0.1,contrast=0.1",
}
HOLDOUT = 5


def split_coco(coco: dict, names: set[str]) -> tuple[dict, dict]:
    """(images not in ``names``, images in ``names``) of a COCO dict, annotations following."""
    parts = []
    for inside in (False, True):
        images = [im for im in coco["images"] if (im["file_name"] in names) == inside]
        ids = {im["id"] for im in images}
        parts.append({**coco, "images": images, "annotations": [a for a in coco["annotations"] if a["image_id"] in ids]})
    return parts[0], parts[1]


def score_model(model_path: Path, test_json: Path, images: Path, sweep: bool = False) -> dict[str, object]:
    """Watershed and connected-component instances of the test slices, mask AP at 100 and 1000
    detections; with ``sweep``, also the watershed's mask AP/AP50 for other elevations and
    interior thresholds (a sensitivity table, not a choice: the defaults are not tuned on it)."""
    import numpy as np

    from foveal.data.files import decode_file
    from foveal.instance.unet_watershed import POST_DEFAULTS, _ap
    from foveal.instance.watershed import connected_instances, instances_to_results, watershed_instances
    from foveal.models import load_model

    model, card = load_model(model_path)
    gt = json.loads(test_json.read_text())
    found: dict[str, list] = {"watershed": [], "baseline_connected_components": []}
    started = time.perf_counter()
    all_probs = []
    for im in gt["images"]:
        image = decode_file(images / im["file_name"], card.input_shape[-1]).astype(np.float32)
        probs = np.asarray(model.predict_on_batch(image[None]))[0]
        all_probs.append(probs)
        for name, fn in (("watershed", watershed_instances), ("baseline_connected_components", connected_instances)):
            options = POST_DEFAULTS if name == "watershed" else {"min_area": POST_DEFAULTS["min_area"]}
            labels, scores = fn(probs, **options)
            found[name] += instances_to_results(labels, scores, im["id"], gt["categories"][0]["id"])
    seconds = (time.perf_counter() - started) / len(gt["images"])
    out: dict[str, object] = {"test_images": len(gt["images"]), "ground_truth_instances": len(gt["annotations"]),
                              "seconds_per_image": round(seconds, 2), "post_processing": POST_DEFAULTS}
    for limit in (100, 1000):
        out[f"max_dets_{limit}"] = {name: {k: v for k, v in _ap(gt, results, (1, 10, limit)).items() if k != "stats"}
                                    for name, results in found.items()}
    if sweep:
        rows = []
        for elevation in ("interior", "boundary", "distance"):
            for threshold in (0.3, 0.5, 0.7):
                options = {**POST_DEFAULTS, "elevation": elevation, "interior_threshold": threshold}
                results = []
                for im, probs in zip(gt["images"], all_probs):
                    labels, scores = watershed_instances(probs, **options)
                    results += instances_to_results(labels, scores, im["id"], gt["categories"][0]["id"])
                ap = _ap(gt, results, (1, 10, 100))
                rows.append({"elevation": elevation, "interior_threshold": threshold,
                             **{k: round(ap[k], 4) for k in ("mask_ap", "mask_ap50")},
                             "predicted_instances": len(results)})
        out["sweep"] = rows
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, help="ISBI train folder (image/ + label/)")
    parser.add_argument("--route", choices=("instance", "segment", "mask-rcnn"), default="instance",
                        help="U-Net + watershed through foveal instance train (default) or foveal segment train, "
                        "or Mask R-CNN on the same files (scored by the instance task only)")
    parser.add_argument("--recipe", choices=("current", "first"), default="current",
                        help="--route mask-rcnn: the current recipe (default) or the first one measured")
    parser.add_argument("--seconds", type=float, default=780, help="training budget in seconds (default: 780)")
    parser.add_argument("--epochs", type=int, help="override the recipe's epoch count")
    parser.add_argument("--output", help="work folder (default: a new temporary folder, kept)")
    parser.add_argument("--run", help="score this existing run folder (its cells/ beside it) instead of training")
    parser.add_argument("--sweep", action="store_true", help="also score other elevations and interior thresholds")
    args = parser.parse_args()

    from foveal.instance.cells import write_cell_instances
    from foveal.instance.label_maps import write_coco

    load_before = os.getloadavg()
    started = time.perf_counter()
    report: dict[str, object] = {"route": args.route}
    work = Path(args.run).parent if args.run else Path(args.output or tempfile.mkdtemp(prefix="isbi-inst-"))
    cells = work / "cells"
    if not args.run:
        manifest = write_cell_instances(args.data, cells, boundary_width=2, overwrite=True)
        report["cells"] = {k: manifest[k] for k in ("images", "instances", "boundary_width")}
    coco = json.loads((cells / "annotations" / "instances.json").read_text())
    test_names = {im["file_name"] for im in coco["images"][-HOLDOUT:]}
    train_json, test_json = cells / "annotations" / "instances_train.json", cells / "annotations" / "instances_test.json"
    for part, path in zip(split_coco(coco, test_names), (train_json, test_json)):
        write_coco(part, path)
    if args.run:
        run_dir = Path(args.run)
    else:
        with contextlib.redirect_stdout(sys.stderr):
            if args.route == "segment":
                from foveal.segmentation.train import SegmentConfig, train_segmenter

                options = {**SEGMENT_RECIPE, "data": str(cells), "time_budget": args.seconds}
                options["epochs"] = args.epochs or options["epochs"]
                result = train_segmenter(SegmentConfig(**options, output=str(work), name="isbi-cells-segment",
                                                       progress=False))
            else:
                from foveal.instance.config import InstanceConfig
                from foveal.tasks import run_train

                recipe = INSTANCE_RECIPE if args.route != "mask-rcnn" else (
                    MASK_RCNN_FIRST if args.recipe == "first" else MASK_RCNN_RECIPE)
                options = {**recipe, "data": str(train_json), "test_data": str(test_json),
                           "images": str(cells / "images"), "time_budget": args.seconds}
                options["epochs"] = args.epochs or options["epochs"]
                result = run_train("instance", InstanceConfig(**options, output=str(work), name=f"isbi-cells-{args.route}",
                                                             progress=False))
        run_dir = result.run_dir
        metrics = result.metrics or {}
        report |= {"train_options": {k: v for k, v in options.items() if k not in ("data", "test_data", "images")},
                   "train_seconds": round(sum(result.history.get("epoch_seconds", [])), 1),
                   "epochs": len(result.history.get("loss", []))}
        if args.route != "segment":
            report["instance_task_test_scores"] = {
                "mask": {k: metrics["mask"][k] for k in ("AP", "AP50", "AP75")},
                "box": {k: metrics["box"][k] for k in ("AP", "AP50")}, "num_images": metrics.get("num_images")}
    if args.route == "mask-rcnn":
        report["run_dir"] = str(run_dir)
    else:
        with contextlib.redirect_stdout(sys.stderr):
            report |= {"run_dir": str(run_dir), **score_model(run_dir / "best.keras", test_json, cells / "images",
                                                                    args.sweep)}
    report |= {"wall_seconds": round(time.perf_counter() - started, 1),
               "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": sys.version.split()[0],
                           "load_average_before": [round(v, 2) for v in load_before],
                           "load_average_after": [round(v, 2) for v in os.getloadavg()]}}
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
