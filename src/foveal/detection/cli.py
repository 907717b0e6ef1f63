"""``foveal detect train|evaluate|score|predict|anchors``: the command line of object detection.

:func:`add_detect_command` adds the ``detect`` command to the ``foveal`` parser's subcommands;
each action calls one public function of :mod:`foveal.detection`. ``foveal train --task detect``
is the same as ``foveal detect train``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from typing import Any

from foveal.cli import task_commands as tc

EPILOG_TRAIN = """examples:
  foveal detect train --data ../shared/datasets/raccoon   # YOLO on resnet18 (width 16), 256x256
  foveal detect train --data ../shared/datasets/raccoon --epochs 80 --multi-scale 224 256 288 320 --time-budget 1800
  foveal detect train --backbone-weights runs/cifar-resnet18/best.keras --freeze-backbone-epochs 5
  foveal detect train --data coco/annotations/instances_train2017.json --scales 3 --anchors 3
  foveal detect train --resume runs/detect-resnet18-raccoon-20261123-101500
  # real raccoons and composited ones (`foveal datasets synth composite`), half of each epoch synthetic
  foveal detect train --data ../shared/datasets/raccoon --extra-data raccoon-synth/annotations/instances_train.json \\
      --extra-ratio 0.5
"""

EPILOG_PREDICT = """examples:
  foveal detect predict runs/RUN/best.keras photo.jpg more_photos/ --output boxed/
  foveal detect predict runs/RUN/best.keras photo.jpg --format json --score-threshold 0.5
"""

def _evaluate(args: argparse.Namespace, _: dict[str, Any]) -> int:
    from foveal.detection.train import evaluate_detector, format_metrics

    with contextlib.redirect_stdout(sys.stderr) if args.json else contextlib.nullcontext():
        metrics = evaluate_detector(args.model, args.data, split=args.split, batch_size=args.batch_size,
                                    output=args.output, skip_invalid=args.skip_invalid,
                                    score_threshold=args.score_threshold, iou_threshold=args.iou_threshold,
                                    ap_score_threshold=args.ap_score_threshold, class_map=args.class_map)
    return tc.print_result(args, metrics, format_metrics, wrote=lambda out: f"{out / 'report.html'} and detections.json")


def _score(args: argparse.Namespace, _: dict[str, Any]) -> int:
    from foveal.detection.results import score_results
    from foveal.detection.train import format_metrics

    metrics = score_results(args.ground_truth, args.results, score_threshold=args.score_threshold)
    return tc.print_result(args, metrics, format_metrics)


def _predict(args: argparse.Namespace, _: dict[str, Any]) -> int:
    from foveal.detection import predict as p
    from foveal.models.io import load_model

    model, card = load_model(args.model)
    p.check_card(card)
    model.set_postprocess(score_threshold=args.score_threshold, iou_threshold=args.iou_threshold)
    rows = p.predict_detections(model, card, args.images, batch_size=args.batch_size, output=args.output,
                                skip_invalid=args.skip_invalid)
    formats = {"table": p.format_table, "csv": p.to_csv, "json": lambda r: json.dumps(r, indent=1)}
    return tc.print_rows(args, rows, formats,
                         wrote=lambda _: f"{len(rows)} image(s), detections.json and detections.csv to {args.output}")


def _anchors(args: argparse.Namespace, _: dict[str, Any]) -> int:
    from foveal.data.boxes import load_boxes
    from foveal.ops.anchors import anchors_for

    parts = load_boxes(args.data, skip_invalid=args.skip_invalid)
    data = parts.get(args.split) or parts["train"]
    width, height = args.image_size[-1], args.image_size[0]
    anchors, mean_iou = anchors_for(data, args.k, (width, height), seed=args.seed)
    result = {"data": args.data, "split": args.split if args.split in parts else "train", "k": args.k,
              "image_size": [height, width], "mean_iou": round(float(mean_iou), 4),
              "anchors_pixels": [[round(float(a), 1), round(float(b), 1)] for a, b in anchors],
              "anchors_normalised": [[round(float(a) / width, 5), round(float(b) / height, 5)] for a, b in anchors]}
    lines = [f"{args.k} anchors (width x height in pixels of a {width}x{height} input), mean best IoU with the "
             f"{data.num_boxes} boxes: {mean_iou:.3f}", *(f"  {a:7.1f} x {b:7.1f}" for a, b in result["anchors_pixels"])]
    return tc.print_result(args, result, lambda _: "\n".join(lines))


def _sliding_window(args: argparse.Namespace, _: dict[str, Any]) -> int:
    from foveal.detection.sliding_window import run_sliding_window
    from foveal.detection.train import format_metrics

    # With --json, stdout carries only the JSON document; progress lines go to stderr.
    with contextlib.redirect_stdout(sys.stderr) if args.json else contextlib.nullcontext():
        metrics = run_sliding_window(args.data, output=args.output, architecture=args.model,
                                     patch_size=args.patch_size, epochs=args.epochs, scales=args.scales,
                                     score_threshold=args.score_threshold, iou_threshold=args.iou_threshold,
                                     split=args.split, seed=args.seed, skip_invalid=args.skip_invalid)
    return tc.print_result(args, metrics, format_metrics)


def add_detect_command(subparsers: argparse._SubParsersAction) -> None:
    """Add ``detect`` with its ``train``, ``evaluate``, ``predict`` and ``anchors`` actions."""
    from foveal.data.boxes import FORMATS_HELP
    from foveal.detection.adapt_run import ADAPT_EXAMPLES
    from foveal.detection.two_stage_run import TWO_STAGE_EXAMPLES

    fmt = argparse.RawDescriptionHelpFormatter
    actions = tc.add_task_command(
        subparsers, "detect", help="object detection: YOLO-style and Faster R-CNN detectors on the zoo's backbones",
        description="Train, evaluate and use object detectors (YOLOv2/v3-style heads or Faster R-CNN on any zoo "
        "backbone), with COCO metrics equal to pycocotools'.", train_help="train a detector and write a run folder with a report",
        train_description="Train a YOLO-style detector (default) or a Faster R-CNN (--detector faster-rcnn) "
        "on box annotations.", train_epilog=EPILOG_TRAIN + TWO_STAGE_EXAMPLES + ADAPT_EXAMPLES)

    e = tc.add_mode(actions, "evaluate", "detect", help="COCO AP table, VOC mAP@0.5 and PR curves of a detector",
                    batch_size=8)
    tc.add_evaluate_options(e, data_help=FORMATS_HELP, output_help="write metrics.json, detections.json and "
                            "report.html here")
    e.add_argument("--split", default="test", help="part to score: test, val or train (default: test)")
    e.add_argument("--score-threshold", type=float, help="display threshold: the precision/recall line and the "
                   "drawn examples use detections scoring at least this (default: the model's)")
    e.add_argument("--ap-score-threshold", type=float, default=0.001, help="AP and mAP are computed on the "
                   "detections scoring at least this, at most 100 per image (default: 0.001, the COCO practice)")
    e.add_argument("--iou-threshold", type=float, help="non-max suppression IoU (default: the model's)")
    e.set_defaults(func=_evaluate)

    sc = actions.add_parser(
        "score", help="COCO AP table and VOC mAP@0.5 of a COCO results file from any detector", allow_abbrev=False,
        description="Score a COCO results file (a JSON list of image_id, category_id, bbox [x, y, w, h], score "
        "records, as written by `foveal detect evaluate --output` or any other detector) against a COCO "
        "instances file, with the numbers `foveal detect evaluate` prints (COCO's equal pycocotools').",
        epilog="example:\n  foveal detect score annotations/instances_val2017.json detections.json",
        formatter_class=fmt)
    sc.add_argument("ground_truth", metavar="GT.json", help="COCO instances file (images, annotations, categories)")
    sc.add_argument("results", metavar="RESULTS.json", help="COCO results file (a list of detections)")
    sc.add_argument("--score-threshold", type=float, default=0.25,
                    help="where the precision/recall line is taken; AP uses every result (default: 0.25)")
    sc.add_argument("--json", action="store_true", help="print the metrics as JSON")
    sc.set_defaults(func=_score)

    p = tc.add_mode(actions, "predict", "detect", help="boxes, classes and scores for image files or folders",
                    epilog=EPILOG_PREDICT, batch_size=8)
    tc.add_predict_options(p, output_help="write each image with its boxes drawn, detections.json (COCO results) "
                           "and detections.csv here")
    p.add_argument("--score-threshold", type=float, help="keep detections scoring at least this (default: the model's)")
    p.add_argument("--iou-threshold", type=float, help="non-max suppression IoU (default: the model's)")
    p.set_defaults(func=_predict)

    a = actions.add_parser("anchors", help="anchor boxes by k-means with the IoU distance (YOLOv2)",
                           allow_abbrev=False)
    a.add_argument("--data", required=True, help=FORMATS_HELP)
    a.add_argument("--k", type=int, default=5, help="number of anchors (default: 5)")
    a.add_argument("--image-size", type=int, nargs="+", default=[416], help="model input SIZE or HEIGHT WIDTH "
                   "(boxes are scaled as the images are stretched to it; default: 416)")
    a.add_argument("--split", default="train", help="which split's boxes (default: train)")
    a.add_argument("--seed", type=int, default=0, help="k-means seed (default: 0)")
    a.add_argument("--json", action="store_true", help="print JSON")
    a.add_argument("--skip-invalid", action="store_true", help="skip images with bad annotations")
    a.set_defaults(func=_anchors)

    s = actions.add_parser(
        "sliding-window", allow_abbrev=False, formatter_class=fmt,
        help="the texts' FCN detector: a patch classifier slid over the image, then NMS",
        description="Train a small patch classifier on the boxes and background squares of the train split, "
        "turn it into a fully convolutional network, scan each image of --split at several scales, "
        "suppress overlaps, and score the detections like `foveal detect evaluate` (Géron, ch. 14).",
        epilog="example:\n  foveal detect sliding-window --data ../shared/datasets/raccoon --output fcn-raccoon/")
    s.add_argument("--data", required=True, help=FORMATS_HELP)
    s.add_argument("--output", required=True, metavar="DIR", help="folder for the classifier, metrics.json, "
                   "detections.json and report.html")
    s.add_argument("--model", default="lenet5", help="patch classifier with a Flatten->Dense head (default: lenet5)")
    s.add_argument("--patch-size", type=int, default=32, help="window side in pixels (default: 32)")
    s.add_argument("--epochs", type=int, default=15, help="patch classifier epochs (default: 15)")
    s.add_argument("--scales", type=float, nargs="+", default=[0.5, 0.25, 0.125],
                   help="image pyramid scales (default: 0.5 0.25 0.125)")
    s.add_argument("--score-threshold", type=float, default=0.5, help="least object probability (default: 0.5)")
    s.add_argument("--iou-threshold", type=float, default=0.3, help="non-max suppression IoU (default: 0.3)")
    s.add_argument("--split", default="test", help="split to scan and score (default: test)")
    s.add_argument("--seed", type=int, default=0, help="seed for patches and training (default: 0)")
    s.add_argument("--json", action="store_true", help="print the metrics as JSON")
    s.add_argument("--skip-invalid", action="store_true", help="skip images with bad annotations or files")
    s.set_defaults(func=_sliding_window)
