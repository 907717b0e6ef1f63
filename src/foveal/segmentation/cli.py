"""``foveal segment train|evaluate|predict``: the command line of semantic segmentation.

:func:`add_segment_command` adds the ``segment`` command to the ``foveal`` parser's
subcommands; each action calls one public function of :mod:`foveal.segmentation`. Handlers
have the signature ``handler(args, overrides) -> exit status``; a
:class:`~foveal.errors.FovealError` they raise is printed by ``foveal``'s ``main``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

EPILOG_TRAIN = """examples:
  # ISBI 2012 membranes: a small U-Net on 256x256 crops, the last 5 images held out for testing
  foveal segment train --data ../shared/datasets/isbi-membrane/train --classes membrane cell \\
      --foreground membrane --holdout 5 --model unet --model-options width=16,depth=4 \\
      --augment microscopy --time-budget 1200
  # FCN-8s on a folder of photos (images/) and index masks (masks/), whole images at 256x256
  foveal segment train --data my_set --model fcn8s --model-options backbone=vgg16,width=0.25 \\
      --image-size 256 --crop-size 0 --class-weights balanced
  foveal segment train --config seg.yaml --epochs 80
  foveal segment train --resume runs/segment-unet-train-20261123-101500
"""

EPILOG_EVALUATE = """examples:
  foveal segment evaluate runs/RUN/best.keras --data my_set_test/ --output eval/
  foveal segment evaluate runs/RUN/best.keras --data ../shared/datasets/isbi-membrane/train --split test
  # test-time augmentation: average the 8 flipped/turned views (d4), or the 4 flips (--tta alone)
  foveal segment evaluate runs/RUN/best.keras --data ../shared/datasets/isbi-membrane/train --split test --tta d4
"""

EPILOG_PREDICT = """examples:
  foveal segment predict runs/RUN/best.keras photo.jpg more_photos/ --output predicted/
  foveal segment predict runs/RUN/best.keras slices/ --output predicted/ --crf --no-overlay
  foveal segment predict runs/RUN/best.keras slices/ --output predicted/ --tta d4 --mask-png indexed
"""

_NOT_OPTIONS = {"command", "func", "config", "resume", "verbose", "action", "segment_action"}


def _train(args: argparse.Namespace, overrides: dict[str, Any]) -> int:
    from foveal import configtools
    from foveal.segmentation.train import SegmentConfig, train_segmenter

    # Options are suppressed unless given, so what is in ``args`` is what the user typed.
    given = {k: v for k, v in vars(args).items() if k not in _NOT_OPTIONS} | dict(overrides)
    if args.resume:
        result = train_segmenter(resume=args.resume, **given)
    else:
        result = train_segmenter(configtools.resolve(SegmentConfig, args.config, given))
    return 130 if result.interrupted else 0


def _evaluate(args: argparse.Namespace, _: dict[str, Any]) -> int:
    from foveal.segmentation.train import evaluate_segmenter, format_metrics

    metrics = evaluate_segmenter(args.model, args.data, split=args.split, output=args.output, crf=args.crf,
                                 skip_invalid=args.skip_invalid, report_images=args.report_images,
                                 overlay=args.overlay, tta=args.tta, mask_png=args.mask_png, images=args.images,
                                 class_map=args.class_map)
    print(json.dumps(metrics, indent=1) if args.json else format_metrics(metrics))
    if args.output:
        print(f"wrote {Path(args.output) / 'report.html'}, metrics.json, masks/ and overlays/", file=sys.stderr)
    return 0


def _predict(args: argparse.Namespace, _: dict[str, Any]) -> int:
    from foveal.models.io import load_model
    from foveal.segmentation import predict as p

    model, card = load_model(args.model)
    p.check_card(card)
    rows = p.predict_masks(model, card, args.images, output=args.output, overlay=args.overlay, crf=args.crf,
                           skip_invalid=args.skip_invalid, tta=args.tta, mask_png=args.mask_png)
    print(p.to_csv(rows, card.class_names) if args.format == "csv" else
          json.dumps(rows, indent=1) if args.format == "json" else p.format_table(rows))
    if args.output:
        print(f"wrote {sum('mask' in r for r in rows)} mask(s) to {Path(args.output) / 'masks'}"
              + (f", overlays to {Path(args.output) / 'overlays'}" if args.overlay else "")
              + f" and {Path(args.output) / 'predictions.csv'}", file=sys.stderr)
    skipped = sum("error" in r for r in rows)
    if skipped:
        print(f"skipped {skipped} unreadable file(s)", file=sys.stderr)
    return 0


def _add_output_options(parser: argparse.ArgumentParser) -> None:
    """--tta and --mask-png, shared by evaluate and predict."""
    from foveal.segmentation.predict import MASK_PNGS, TTA_VIEWS

    parser.add_argument("--tta", nargs="?", const="flips", default="none", choices=tuple(TTA_VIEWS),
                        help="test-time augmentation: average the class probabilities of flipped views, mapped "
                        "back: flips (4 views, the default of a bare --tta), d4 (8: flips, quarter turns, "
                        "transposes) or none (default); costs 4x or 8x the time")
    parser.add_argument("--mask-png", choices=MASK_PNGS, default="auto",
                        help="predicted masks as gray PNGs or palette-mode (indexed, coloured in viewers) PNGs; "
                        "the pixel value is the class index either way; auto (default): like the training masks")


def add_segment_command(subparsers: argparse._SubParsersAction) -> None:
    """Add ``segment`` with its ``train``, ``evaluate`` and ``predict`` actions to ``subparsers``."""
    from foveal import configtools
    from foveal.segmentation.train import SegmentConfig

    fmt = argparse.RawDescriptionHelpFormatter
    seg = subparsers.add_parser(
        "segment", help="semantic segmentation: a class for every pixel (U-Net, FCN-8s/16s/32s)",
        description="Train, evaluate and use semantic segmentation models on folders of images and masks.",
        allow_abbrev=False)
    actions = seg.add_subparsers(dest="segment_action", metavar="ACTION", required=True)

    t = actions.add_parser(
        "train", help="train a segmenter and write a run folder with a report", allow_abbrev=False,
        description="Train a segmentation model on a folder of images/ + masks/ (or ISBI's image/ + label/). "
        "Every option can also be a key of the --config YAML file; options given here override the file.",
        epilog=EPILOG_TRAIN, formatter_class=fmt)
    t.add_argument("--config", metavar="FILE.yaml", help="YAML file with any of the options below")
    t.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run from its last finished epoch")
    configtools.add_arguments(t, SegmentConfig)
    t.set_defaults(func=_train)

    e = actions.add_parser("evaluate", help="pixel accuracy, per-class IoU and Dice of a segmenter",
                           allow_abbrev=False, epilog=EPILOG_EVALUATE, formatter_class=fmt)
    e.add_argument("model", help="a .keras model file written by `foveal segment train`")
    e.add_argument("--data", required=True, help="folder of images/ + masks/ (or image/ + label/), or a COCO "
                   "instances .json (polygons or RLE)")
    e.add_argument("--images", metavar="DIR", help="image folder of a COCO --data file (default: found beside it)")
    e.add_argument("--class-map", metavar="MAP", help="dataset class -> model class pairs (a=b,c=d), a YAML/JSON "
                   "file of them, or 'order', for data that names its classes (COCO, palette.txt); default: by name")
    e.add_argument("--split", default="all", choices=("all", "train", "val", "test"),
                   help="all pairs (default), or that split of the training run (its config.yaml beside the model)")
    e.add_argument("--output", metavar="DIR", help="write metrics.json, report.html, masks/ and overlays/ here")
    e.add_argument("--report-images", type=int, default=6, help="images shown in the report (default: 6)")
    e.add_argument("--crf", action="store_true", help="refine with a dense CRF (needs pydensecrf2)")
    e.add_argument("--overlay", action=argparse.BooleanOptionalAction, default=True,
                   help="write overlays next to the masks (default: on)")
    _add_output_options(e)
    e.add_argument("--json", action="store_true", help="print the metrics as JSON")
    e.add_argument("--skip-invalid", action="store_true", help="skip (and count) bad pairs instead of stopping")
    e.set_defaults(func=_evaluate)

    p = actions.add_parser("predict", help="per-pixel classes for image files or folders: index PNGs and overlays",
                           allow_abbrev=False, epilog=EPILOG_PREDICT, formatter_class=fmt)
    p.add_argument("model", help="a .keras model file written by `foveal segment train`")
    p.add_argument("images", nargs="+", help="image files and/or folders (searched recursively)")
    p.add_argument("--output", metavar="DIR", help="write masks/NAME.png (pixel value = class index), "
                   "overlays/NAME.png and predictions.csv here")
    p.add_argument("--overlay", action=argparse.BooleanOptionalAction, default=True,
                   help="write overlays next to the masks (default: on)")
    p.add_argument("--crf", action="store_true", help="refine with a dense CRF (needs pydensecrf2)")
    _add_output_options(p)
    p.add_argument("--format", choices=("table", "csv", "json"), default="table", help="what to print (default: table)")
    p.add_argument("--skip-invalid", action="store_true", help="report unreadable images and go on")
    p.set_defaults(func=_predict)


__all__ = ["add_segment_command"]
