"""Mask R-CNN on the generated shapes: mask AP50 within a training budget (target: >= 0.9 in 10 minutes).

Writes the shapes dataset (``foveal datasets synth shapes``: 300 train / 50 val / 100 test
images of 128x128, seed 0), trains ``foveal instance train`` (Mask R-CNN on ResNet-18 width 16,
the options in :data:`RECIPE`) for ``--seconds`` of wall-clock time (the engine's time budget;
the validation mask AP50 picks ``best.keras``), and scores the best checkpoint on the 100 test
images with COCO's box AP and mask AP.

Baseline, in the same invocation and on the same detections: each detected box filled as its
own mask (a "box-shaped mask"), scored the same way, so the number says what the mask head
adds over the detector alone.

Prints one JSON document with the load average before and after (the machine is shared; every
time here depends on it).

``--compare-fpn`` trains twice in one invocation with the same budget, data and seed: the
recipe's single feature map (the baseline) and the feature pyramid (``--fpn``, with
:data:`FPN_RECIPE`), and reports box AP / AP_small and mask AP of both on the test images;
``--runs`` names any of :data:`VARIANTS` instead (e.g. ``fpn_before``: the pyramid with one anchor
size per level; ``fpn_locations``: its RPN box loss divided by the anchor locations); ``--radius``
draws smaller shapes (more COCO "small" objects, area < 32^2). Each run also reports how well its
anchors fit the training boxes (the median best anchor IoU per box; boxes without an anchor above
the RPN's 0.7).

    .venv/bin/python benchmarks/mask_rcnn_shapes.py --seconds 600 > mask-rcnn-shapes.json
    .venv/bin/python benchmarks/mask_rcnn_shapes.py --seconds 60 --counts 40 10 10   # a smoke run
    for s in 0 1 2; do .venv/bin/python benchmarks/mask_rcnn_shapes.py --seed $s --workdir /tmp/shapes; done
    nice -n 5 .venv/bin/python benchmarks/mask_rcnn_shapes.py --compare-fpn --seconds 480 --radius 0.04 0.2
    nice -n 5 .venv/bin/python benchmarks/mask_rcnn_shapes.py --runs fpn_before fpn --seconds 6000 --radius 0.04 0.2
    # a schedule longer than one sitting: stop it (any signal), then continue and score it
    .venv/bin/python benchmarks/mask_rcnn_shapes.py --runs fpn --epochs 44 --workdir /tmp/w \
        --resume /tmp/w/runs/shapes-fpn-...
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

#: the training options (on top of InstanceConfig's defaults)
RECIPE: dict[str, Any] = {
    "image_size": [128], "rcnn_level": "P3", "backbone": "resnet18", "backbone_options": {"width": 16},
    "anchor_ratios": [0.5, 1.0, 2.0], "rpn_batch": 128, "roi_batch": 64, "head_width": 128, "mask_width": 32,
    "mask_convs": 2, "rcnn_options": {"pre_nms_train": 600, "post_nms_train": 300, "pre_nms_test": 300,
                                      "post_nms_test": 100},
    "batch_size": 8, "learning_rate": 3e-3, "warmup_epochs": 1.0, "augment": "flip,brightness=0.1,contrast=0.1",
    "eval_every": 4, "score_threshold": 0.5, "max_instances": 10, "max_detections": 20,
}


#: what ``--fpn`` changes: the pyramid on P2..P5 (64 channels for this narrow backbone) with its
#: defaults: RetinaNet's anchors (4 x stride per level P2..P6, 16 ... 256, times 2^0, 2^(1/3),
#: 2^(2/3)) and the RPN box term divided by the sampled anchors
FPN_RECIPE: dict[str, Any] = {"fpn": True, "fpn_width": 64}


def _rpn_box_norm(norm: str) -> dict[str, Any]:
    return {"rcnn_options": {**RECIPE["rcnn_options"], "rpn_box_norm": norm}}


def _roi_canonical(value: float | str) -> dict[str, Any]:
    return {"rcnn_options": {**RECIPE["rcnn_options"], "roi_canonical": value}}


#: the variants ``--runs`` can name, on top of RECIPE. ``fpn_sampled`` is ``fpn`` with its RPN
#: normalisation spelt out (the name of the 2026-12-07 runs, made before it was the default);
#: ``fpn_locations``: the new anchors, the box term divided by the anchor locations (Faster
#: R-CNN's N_reg); ``fpn_before``: the first FPN measured (one anchor size per level, 2 x stride:
#: 8 ... 128, N_reg the locations); ``single_sampled``: the single map with the FPN's default
#: normalisation (the box term divided by the sampled anchors); ``fpn_narrow``: the pyramid at
#: width 32 instead of 64; ``fpn_scaled``: the RoI level rule's canonical side scaled to the
#: input (``roi_canonical=scaled``: 224 x 128 / 800 = 35.84 pixels pooled from P4, instead of 224);
#: ``fpn_canonical56``: half-way (56: boxes from 28 to 56 pixels on P3, smaller ones on P2)
VARIANTS: dict[str, dict[str, Any]] = {
    "single_map": {},
    "single_sampled": _rpn_box_norm("sampled"),
    "fpn": FPN_RECIPE,
    "fpn_narrow": FPN_RECIPE | {"fpn_width": 32},
    "fpn_sampled": FPN_RECIPE | _rpn_box_norm("sampled"),
    "fpn_locations": FPN_RECIPE | _rpn_box_norm("locations"),
    "fpn_scaled": FPN_RECIPE | _roi_canonical("scaled"),
    "fpn_canonical56": FPN_RECIPE | _roi_canonical(56.0),
    "fpn_before": FPN_RECIPE | _rpn_box_norm("locations") | {"anchor_sizes": [8.0, 16.0, 32.0, 64.0, 128.0],
                                                               "anchor_scales": [1.0]},
}


def log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def box_mask_baseline(data: Any, found: list) -> dict[str, float]:
    """Mask AP of the same detections with each box filled as its mask."""
    import numpy as np

    from foveal.instance.masks import encode_rle
    from foveal.instance.scoring import ImageInstances, score_instances

    boxed = []
    for d, (w, h) in zip(found, data.image_sizes):
        rles = []
        for x0, y0, x1, y1 in d.boxes:
            mask = np.zeros((int(h), int(w)), np.uint8)
            mask[int(round(y0)):int(round(y1)), int(round(x0)):int(round(x1))] = 1
            rles.append(encode_rle(mask))
        boxed.append(ImageInstances(d.boxes, d.scores, d.classes, d.threshold, rles))
    return score_instances(data, boxed)["mask"]


def train_and_score(args: argparse.Namespace, data_dir: Path, work: Path, recipe: dict[str, Any],
                    tag: str) -> dict[str, Any]:
    """One training run of ``recipe`` within the budget, scored on the test split."""
    from foveal.instance.config import InstanceConfig
    from foveal.instance.data import load_instance_splits
    from foveal.instance.predict import predict_dataset
    from foveal.instance.scoring import score_instances
    from foveal.models import load_model
    from foveal.tasks import run_train

    started = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):  # the run's progress lines; stdout carries the JSON only
        if args.resume:  # the run folder's own config (recipe, seed, epochs) from its last finished epoch
            result = run_train("instance", resume=args.resume)
        else:
            cfg = InstanceConfig(data=str(data_dir), epochs=args.epochs, time_budget=args.seconds,
                                 output=str(work / "runs"), name=f"shapes-{tag}-{int(time.time())}", progress=False,
                                 seed=args.seed, **recipe)
            result = run_train("instance", cfg)
    wall = time.perf_counter() - started
    history = result.history
    model, card = load_model(result.best_model)
    test = load_instance_splits(str(data_dir), val_split=0, test_split=0)["test"]
    started_eval = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):
        found = predict_dataset(model, card, test)
        metrics = score_instances(test, found)
        eval_seconds = time.perf_counter() - started_eval
        baseline = box_mask_baseline(test, found)
    return {
        "recipe": recipe, "epochs_trained": len(history.get("loss", [])),
        "training_seconds": round(sum(history.get("epoch_seconds", [])), 1), "run_wall_seconds": round(wall, 1),
        "parameters": int(model.count_params()),
        "val_mask_ap50_history": history.get("val_mask_ap50"),
        "test": {"mask": metrics["mask"], "box": metrics["box"], "images": metrics["num_images"],
                 "instances": metrics["num_instances"], "eval_seconds": round(eval_seconds, 1)},
        "baseline_box_shaped_masks": {"mask_AP": baseline["AP"], "mask_AP50": baseline["AP50"],
                                      "mask_AP75": baseline["AP75"]},
        "run_dir": str(result.run_dir), "_model": model,
    }


def anchor_fit(data_dir: Path, model: Any) -> dict[str, Any]:
    """How the trained model's anchors fit the training boxes (128x128 images): per box, the
    best IoU of any anchor (:func:`foveal.ops.rcnn.best_anchor_iou`)."""
    import numpy as np

    from foveal.instance.data import load_instance_splits
    from foveal.ops.rcnn import best_anchor_iou

    train = load_instance_splits(str(data_dir), val_split=0, test_split=0)["train"]
    boxes = np.concatenate([np.asarray(b, np.float32).reshape(-1, 4) for b in train.boxes])
    best = best_anchor_iou(model.anchors_for_image((128, 128)), boxes)
    levels = {}
    if model.fpn_levels:  # the level each training box's RoI is pooled from
        from foveal.layers.roi import pyramid_levels

        assigned = pyramid_levels(boxes, min_level=model.fpn_levels[0], max_level=model.fpn_levels[-1],
                                  canonical_size=float(model.rcnn.roi_canonical)).numpy()
        levels = {"roi_canonical": round(float(model.rcnn.roi_canonical), 2),
                  "roi_levels_of_training_boxes": {f"P{k}": int((assigned == k).sum()) for k in model.fpn_levels}}
    return {**levels, "anchors": int(model.anchors_for_image((128, 128)).shape[0]),
            "anchor_sizes": model.rcnn.anchor_sizes,
            "anchor_scales": model.rcnn.anchor_scales, "boxes": int(len(boxes)),
            "median_best_iou": round(float(np.median(best)), 3),
            "boxes_without_anchor_above_0.7": round(float(np.mean(best <= 0.7)), 3)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=600.0, help="training budget (default: 600)")
    parser.add_argument("--epochs", type=int, default=22, help="epochs of the schedule (the budget may stop first)")
    parser.add_argument("--counts", type=int, nargs=3, default=[300, 50, 100], help="train val test images")
    parser.add_argument("--radius", type=float, nargs=2, default=[0.08, 0.2],
                        help="shapes' circumradius range, a fraction of the side (default: 0.08 0.2)")
    parser.add_argument("--seed", type=int, default=0, help="the training seed (default: 0)")
    parser.add_argument("--data-seed", type=int, default=0,
                        help="the shapes dataset's seed (default: 0; kept apart from --seed so that runs of "
                             "several training seeds score the same images)")
    parser.add_argument("--fpn", action="store_true", help="train with the feature pyramid only")
    parser.add_argument("--compare-fpn", action="store_true",
                        help="train the single-map recipe and the FPN one, same budget, side by side")
    parser.add_argument("--runs", nargs="+", choices=sorted(VARIANTS),
                        help="the variants to train, in order (default: single_map; see VARIANTS)")
    parser.add_argument("--workdir", help="keep the data and run here (default: a temporary folder)")
    parser.add_argument("--resume", help="continue this run folder (of an interrupted run: a longer schedule in two "
                                         "pieces) from its last finished epoch, then score it; give the same --runs "
                                         "(one), --workdir and data options")
    args = parser.parse_args()
    if args.resume and len(args.runs or []) != 1:
        parser.error("--resume continues one run: name its variant with --runs")

    from foveal.data.synth.shapes import make_shapes

    load_before = os.getloadavg()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="mask-rcnn-shapes-"))
    data_dir = work / "shapes"
    if not data_dir.exists():
        make_shapes(data_dir, counts=tuple(args.counts), size=(128, 128), radius=tuple(args.radius), seed=args.data_seed)
    names = args.runs or (["single_map", "fpn"] if args.compare_fpn else ["fpn"] if args.fpn else ["single_map"])
    variants = [(name, RECIPE | VARIANTS[name]) for name in names]
    runs = {}
    for tag, recipe in variants:
        load = os.getloadavg()
        runs[tag] = train_and_score(args, data_dir, work, recipe, tag)
        runs[tag]["anchor_fit"] = anchor_fit(data_dir, runs[tag].pop("_model"))
        runs[tag]["loadavg_before"] = [round(v, 2) for v in load]
        runs[tag]["loadavg_after"] = [round(v, 2) for v in os.getloadavg()]
        test = runs[tag]["test"]
        log(f"{tag}: box AP {test['box']['AP']:.4f} APs {test['box']['APs']:.4f}, mask AP50 {test['mask']['AP50']:.4f}")
    report = {
        "benchmark": "mask_rcnn_shapes", "target": "test mask AP50 >= 0.9 within 600 s of training",
        "data": {"counts": dict(zip(("train", "val", "test"), args.counts)), "size": [128, 128], "seed": args.data_seed,
                 "radius": list(args.radius)},
        "training_seed": args.seed,
        "budget_seconds": args.seconds, "schedule_epochs": args.epochs,
        **(runs[variants[0][0]] if len(runs) == 1 else {"runs": runs}),
        "target_met": {tag: bool(run["test"]["mask"]["AP50"] >= 0.9) for tag, run in runs.items()},
        "loadavg_before": [round(v, 2) for v in load_before], "loadavg_after": [round(v, 2) for v in os.getloadavg()],
        "cpus": os.cpu_count(),
    }
    for tag in runs:
        if tag != "single_map" and "single_map" in runs:
            report[f"{tag}_minus_single_map"] = {
                f"{kind}_{key}": round(runs[tag]["test"][kind][key] - runs["single_map"]["test"][kind][key], 4)
                for kind in ("box", "mask") for key in ("AP", "AP50", "APs", "APm")}
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
