"""``foveal instance train|evaluate|predict``: the command line of instance segmentation.

:func:`add_instance_command` adds the ``instance`` command to the ``foveal`` parser; each action
calls one public function of :mod:`foveal.instance`. ``foveal train --task instance`` is the
same as ``foveal instance train``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from typing import Any

from foveal.cli import task_commands as tc

EPILOG_TRAIN = """examples:
  foveal datasets synth shapes --output data/shapes --seed 0
  foveal instance train --data data/shapes --image-size 128 --epochs 20            # Mask R-CNN on resnet18
  foveal instance train --data data/shapes --image-size 128 --fpn   # with an FPN: 9 anchors per cell and level
  foveal instance train --data data/shapes --image-size 128 --fpn --anchor-sizes 8 16 32 64 128 --anchor-scales 1
  foveal instance train --data coco/annotations/instances_train2017.json --images coco/train2017 \\
      --image-size 512 --anchor-sizes 32 64 128 256 --time-budget 3600
  foveal instance train --data my_coco.json --skip-invalid     # leave out (and count) images with bad masks
  # a folder of images/ + instances/ label maps (pixel = instance id), or Pascal VOC's JPEGImages/ +
  # SegmentationObject/ (255 outlines left out; classes from SegmentationClass/ when present): read as
  # `foveal datasets instances to-coco` converts it (Cityscapes values need to-coco --class-encoding cityscapes)
  foveal instance train --data my_cells/ --image-size 256
  foveal instance train --data VOC2012/ --image-size 320
  # U-Net + marker watershed (any number of classes): ISBI cells, the last 5 slices held out
  foveal datasets cells --data ../shared/datasets/isbi-membrane/train --output cells/ --holdout 5
  foveal instance train --model unet-watershed --data cells/annotations/instances_train.json \\
      --test-data cells/annotations/instances_test.json --image-size 512 --channels 1 --crop-size 256 \\
      --unet-augment microscopy --batch-size 4 --epochs 30 --eval-every 5 --learning-rate 0.002
  #   (the marker threshold is chosen on the validation images at the end; fix it with --marker-threshold 0.6)
  foveal instance train --resume runs/instance-mask-rcnn-resnet18-shapes-20261207-001500
"""

EPILOG_EVALUATE = """examples:
  foveal instance evaluate runs/RUN/best.keras --data data/shapes --split test --output eval/
  foveal instance evaluate runs/RUN/best.keras --data val.json --images val_images/ --json
  foveal instance evaluate runs/RUN/best.keras --data my_cells_test/     # images/ + instances/ label maps
"""

EPILOG_PREDICT = """examples:
  foveal instance predict runs/RUN/best.keras photo.png more_photos/ --output drawn/
  foveal instance predict runs/RUN/best.keras data/shapes/test --score-threshold 0.5 --format json
  # export (Mask R-CNN: savedmodel or onnx; U-Net + watershed: any format) with parity and mask AP, then serve
  foveal export runs/RUN/best.keras --format onnx --data data/shapes --split test
  foveal serve runs/RUN/best.onnx      # POST /predict answers instances: box, class, score, mask as COCO RLE
"""


def _evaluate(args: argparse.Namespace, _: dict[str, Any]) -> int:
    from foveal.instance.evaluate import evaluate_instances
    from foveal.instance.scoring import format_metrics

    with contextlib.redirect_stdout(sys.stderr) if args.json else contextlib.nullcontext():
        metrics = evaluate_instances(args.model, args.data, split=args.split, batch_size=args.batch_size,
                                     output=args.output, skip_invalid=args.skip_invalid,
                                     score_threshold=args.score_threshold, images=args.images,
                                     report_images=args.report_images)
    return tc.print_result(args, metrics, format_metrics,
                           wrote=lambda out: f"{out / 'report.html'}, metrics.json and detections.json")


def _predict(args: argparse.Namespace, _: dict[str, Any]) -> int:
    from foveal.instance.predict import format_table, predict_files
    from foveal.instance.scoring import check_card
    from foveal.models.io import load_model

    model, card = load_model(args.model)
    check_card(card)
    rows = predict_files(model, card, args.images, batch_size=args.batch_size, output=args.output,
                         skip_invalid=args.skip_invalid, score_threshold=args.score_threshold,
                         mask_threshold=args.mask_threshold)
    if args.format == "json":
        print(json.dumps(rows, indent=1))
    elif args.format == "csv":
        print("file,class,score,x_min,y_min,x_max,y_max,area")
        for row in rows:
            for d in row.get("instances", []):
                print(",".join([json.dumps(row["file"]), d["class"], str(d["score"]), *map(str, d["box"]),
                                str(d["area"])]))
    else:
        print(format_table(rows))
    if args.output:
        print(f"wrote {sum('drawn' in r for r in rows)} drawn image(s) and instances.json to {args.output}",
              file=sys.stderr)
    tc.report_skipped(rows)
    return 0


def add_instance_command(subparsers: argparse._SubParsersAction) -> None:
    """Add ``instance`` with its ``train``, ``evaluate`` and ``predict`` actions."""
    actions = tc.add_task_command(
        subparsers, "instance", help="instance segmentation: a mask, box and class per object (Mask R-CNN)",
        description="Train, evaluate and use instance segmentation models (Mask R-CNN on any zoo backbone) on "
        "COCO instances (polygons or RLE), scored by COCO box and mask AP.",
        train_help="train an instance segmentation model and write a run folder with a report",
        train_description="Train Mask R-CNN (--model mask-rcnn) or U-Net + watershed (--model "
        "unet-watershed) on COCO instances.", train_epilog=EPILOG_TRAIN)

    e = tc.add_mode(actions, "evaluate", "instance", help="COCO box and mask AP of an instance model",
                    epilog=EPILOG_EVALUATE, batch_size=8)
    tc.add_evaluate_options(e, data_help="COCO instances: a .json file, a folder of *train*/*val*/*test* .json files, or a "
                           "label-map folder (images/ + instances/, or VOC's JPEGImages/ + SegmentationObject/)",
                            output_help="write metrics.json, detections.json (COCO results, RLE masks) and report.html "
                            "here")
    e.add_argument("--images", metavar="DIR", help="image folder of the COCO file (default: found beside it)")
    e.add_argument("--split", default="test", help="part to score: test, val or train (default: test; a single "
                   "file is scored whole)")
    e.add_argument("--score-threshold", type=float, help="display threshold of the drawn examples (default: the "
                   "model's); AP uses every detection scoring >= 0.001")
    e.add_argument("--report-images", type=int, default=12, help="images drawn in the report (default: 12)")
    e.set_defaults(func=_evaluate)

    p = tc.add_mode(actions, "predict", "instance", help="masks, boxes, classes and scores for image files or folders",
                    epilog=EPILOG_PREDICT, batch_size=8)
    tc.add_predict_options(p, output_help="write each image with its masks and boxes drawn, and instances.json "
                           "(COCO, RLE masks) here")
    p.add_argument("--score-threshold", type=float, help="keep instances scoring at least this (default: the "
                   "model's)")
    p.add_argument("--mask-threshold", type=float, help="mask probability cut (default: the model's, 0.5)")
    p.set_defaults(func=_predict)


__all__ = ["add_instance_command"]
