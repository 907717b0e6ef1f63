"""coco-mini's persons (or other classes) as instances: Mask R-CNN and U-Net + watershed; prints JSON.

1. ``foveal datasets instances select``' function (:func:`foveal.instance.label_maps.select_classes`)
   cuts ``instances_train2017.json`` and ``instances_val2017.json`` down to ``--classes``
   (default ``person``, the class with the most instances: 167 in 36 of the 80 training
   images, 117 in 39 of the 79 val images); every image stays, so the images without a person
   are negatives, and the crowd regions of the class stay (ignored by training and scoring).
2. One model (``--model``) is trained by the instance task (``foveal instance train``) on the
   training file (10% of its images validate and pick ``best.keras`` by mask AP50) for at most
   ``--seconds`` of training, at 256x256 (images stretched), from scratch or from
   ``--backbone-weights`` (Mask R-CNN only: a ``foveal train`` classifier of the same backbone,
   e.g. ResNet-18 width 16 on CIFAR-10).
3. The instance task scores ``best.keras`` on the val2017 file (the test set): COCO mask and box
   AP, AP50, AP75 (pycocotools' rules, at most 100 detections per image). The two models are
   each other's baseline: run both (same split, same image size, same seconds) and compare.

Run from the repository root (nice it on a shared machine)::

    nice -n 5 .venv/bin/python benchmarks/coco_mini_instances.py --data ../shared/datasets/coco-mini \
        --model mask-rcnn --seconds 900 > coco-person-mask-rcnn.json
    nice -n 5 .venv/bin/python benchmarks/coco_mini_instances.py --data ../shared/datasets/coco-mini \
        --model unet-watershed --seconds 900 > coco-person-unet.json
    .venv/bin/python benchmarks/coco_mini_instances.py --data ../shared/datasets/coco-mini --seconds 30 --epochs 1  # smoke
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

#: common to both models: the split, the size, the schedule
COMMON: dict[str, object] = {
    "image_size": [256], "val_split": 0.1, "batch_size": 4, "epochs": 16, "eval_every": 4, "schedule": "cosine",
    "max_detections": 100, "seed": 0,
}
#: the recipe's first coco-mini Mask R-CNN (P3, ResNet-18 width 16, small heads, anchors from the boxes)
MASK_RCNN: dict[str, object] = {
    "model": "mask-rcnn", "rcnn_level": "P3", "backbone": "resnet18", "backbone_options": {"width": 16},
    "head_width": 128, "mask_width": 32, "mask_convs": 2, "rpn_batch": 128, "roi_batch": 64, "max_instances": 30,
    "score_threshold": 0.05, "learning_rate": 3e-3, "warmup_epochs": 1.0, "augment": "flip,brightness=0.1,contrast=0.1",
}
#: the ISBI recipe's U-Net (width 16, depth 4, batch norm) on background / interior / boundary of 2 px
UNET_WATERSHED: dict[str, object] = {
    "model": "unet-watershed", "unet_options": {"width": 16, "depth": 4, "batch_norm": True}, "boundary_width": 2,
    "unet_augment": "flips", "learning_rate": 2e-3,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, help="coco-mini root (annotations/, train2017/, val2017/)")
    parser.add_argument("--classes", nargs="+", default=["person"], help="categories to keep (default: person)")
    parser.add_argument("--model", choices=("mask-rcnn", "unet-watershed"), default="mask-rcnn")
    parser.add_argument("--seconds", type=float, default=900, help="training budget in seconds (default: 900)")
    parser.add_argument("--epochs", type=int, help="override the epoch count (default: 16)")
    parser.add_argument("--eval-every", type=int, help="validation mask AP50 every N epochs (default: 4)")
    parser.add_argument("--backbone-weights", help="Mask R-CNN: a .keras classifier of the same backbone")
    parser.add_argument("--output", help="work folder (default: a new temporary folder, kept)")
    args = parser.parse_args()

    from foveal.instance.config import InstanceConfig
    from foveal.instance.label_maps import select_classes, write_coco
    from foveal.tasks import run_train

    load_before = os.getloadavg()
    started = time.perf_counter()
    work = Path(args.output or tempfile.mkdtemp(prefix="coco-mini-inst-"))
    files = {}
    report: dict[str, object] = {"model": args.model, "classes": args.classes, "selected": {}}
    for split in ("train", "val"):
        coco = select_classes(Path(args.data) / "annotations" / f"instances_{split}2017.json", args.classes)
        files[split] = write_coco(coco, work / f"instances_{split}2017.json")
        report["selected"][split] = {k: v for k, v in coco["info"]["selected"].items() if k != "source"}  # type: ignore[index]
    options = {**COMMON, **(MASK_RCNN if args.model == "mask-rcnn" else UNET_WATERSHED),
               "data": str(files["train"]), "test_data": str(files["val"]), "time_budget": args.seconds}
    options["epochs"] = args.epochs or options["epochs"]
    options["eval_every"] = args.eval_every or options["eval_every"]
    if args.backbone_weights:
        options["backbone_weights"] = args.backbone_weights
    name = f"coco-{'-'.join(args.classes)}-{args.model}" + ("-pretrained" if args.backbone_weights else "")
    with contextlib.redirect_stdout(sys.stderr):
        result = run_train("instance", InstanceConfig(**options, output=str(work), name=name, progress=False))
    metrics = result.metrics or {}
    history = result.history
    report |= {
        "train_options": {k: v for k, v in options.items() if k not in ("data", "test_data")},
        "train_seconds": round(sum(history.get("epoch_seconds", [])), 1), "epochs": len(history.get("loss", [])),
        "loss_first_last": [round(float(history["loss"][0]), 4), round(float(history["loss"][-1]), 4)]
        if history.get("loss") else None,
        "val_mask_ap50": [round(float(v), 4) for v in history.get("val_mask_ap50", [])],
        "test": {"mask": {k: metrics["mask"][k] for k in ("AP", "AP50", "AP75")},
                 "box": {k: metrics["box"][k] for k in ("AP", "AP50", "AP75")},
                 "num_images": metrics.get("num_images")},
        "run_dir": str(result.run_dir), "wall_seconds": round(time.perf_counter() - started, 1),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": sys.version.split()[0],
                    "load_average_before": [round(v, 2) for v in load_before],
                    "load_average_after": [round(v, 2) for v in os.getloadavg()]},
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
