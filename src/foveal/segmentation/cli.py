"""``foveal segment train|evaluate|predict|instances``: the command line of semantic segmentation.

:func:`add_segment_command` adds the ``segment`` command to the ``foveal`` parser's
subcommands; each action calls one public function of :mod:`foveal.segmentation`.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from foveal.cli import task_commands as tc

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

def _evaluate(args: argparse.Namespace, _: dict[str, Any]) -> int:
    from foveal.segmentation.train import evaluate_segmenter, format_metrics

    metrics = evaluate_segmenter(args.model, args.data, split=args.split, output=args.output, crf=args.crf,
                                 skip_invalid=args.skip_invalid, report_images=args.report_images,
                                 overlay=args.overlay, tta=args.tta, mask_png=args.mask_png, images=args.images,
                                 class_map=args.class_map)
    return tc.print_result(args, metrics, format_metrics,
                           wrote=lambda out: f"{out / 'report.html'}, metrics.json, masks/ and overlays/")


def _predict(args: argparse.Namespace, _: dict[str, Any]) -> int:
    from foveal.models.io import load_model
    from foveal.segmentation import predict as p

    model, card = load_model(args.model)
    rows = p.predict_masks(model, card, args.images, output=args.output, overlay=args.overlay, crf=args.crf,
                           skip_invalid=args.skip_invalid, tta=args.tta, mask_png=args.mask_png)
    formats = {"csv": lambda r: p.to_csv(r, card.class_names), "json": lambda r: json.dumps(r, indent=1),
               "table": p.format_table}
    return tc.print_rows(args, rows, formats,
                         wrote=lambda out: f"{sum('mask' in r for r in rows)} mask(s) to {out / 'masks'}"
                         + (f", overlays to {out / 'overlays'}" if args.overlay else "")
                         + f" and {out / 'predictions.csv'}")


def _add_mask_options(parser: argparse.ArgumentParser) -> None:
    """--overlay, --crf, --tta and --mask-png, shared by evaluate and predict."""
    from foveal.segmentation.predict import MASK_PNGS, TTA_VIEWS

    parser.add_argument("--overlay", action=argparse.BooleanOptionalAction, default=True,
                        help="write overlays next to the masks (default: on)")
    parser.add_argument("--crf", action="store_true", help="refine with a dense CRF (needs pydensecrf2)")
    parser.add_argument("--tta", nargs="?", const="flips", default="none", choices=tuple(TTA_VIEWS),
                        help="test-time augmentation: average the class probabilities of flipped views, mapped "
                        "back: flips (4 views, the default of a bare --tta), d4 (8: flips, quarter turns, "
                        "transposes) or none (default); costs 4x or 8x the time")
    parser.add_argument("--mask-png", choices=MASK_PNGS, default="auto",
                        help="predicted masks as gray PNGs or palette-mode (indexed, coloured in viewers) PNGs; "
                        "the pixel value is the class index either way; auto (default): like the training masks")


def add_segment_command(subparsers: argparse._SubParsersAction) -> None:
    """Add ``segment`` with its ``train``, ``evaluate`` and ``predict`` actions to ``subparsers``."""
    actions = tc.add_task_command(
        subparsers, "segment", help="semantic segmentation: a class for every pixel (U-Net, FCN-8s/16s/32s)",
        description="Train, evaluate and use semantic segmentation models on folders of images and masks.",
        train_help="train a segmenter and write a run folder with a report",
        train_description="Train a segmentation model on a folder of images/ + masks/ (or ISBI's image/ + "
        "label/), or a COCO instances .json.", train_epilog=EPILOG_TRAIN)

    e = tc.add_mode(actions, "evaluate", "segment", help="pixel accuracy, per-class IoU and Dice of a segmenter",
                    epilog=EPILOG_EVALUATE)
    tc.add_evaluate_options(e, data_help="folder of images/ + masks/ (or image/ + label/), or a COCO instances "
                            ".json (polygons or RLE)", output_help="write metrics.json, report.html, masks/ and "
                            "overlays/ here")
    e.add_argument("--images", metavar="DIR", help="image folder of a COCO --data file (default: found beside it)")
    e.add_argument("--split", default="all", choices=("all", "train", "val", "test"),
                   help="all pairs (default), or that split of the training run (its config.yaml beside the model)")
    e.add_argument("--report-images", type=int, default=6, help="images shown in the report (default: 6)")
    _add_mask_options(e)

    p = tc.add_mode(actions, "predict", "segment", help="per-pixel classes for image files or folders: index PNGs "
                    "and overlays", epilog=EPILOG_PREDICT)
    tc.add_predict_options(p, output_help="write masks/NAME.png (pixel value = class index), overlays/NAME.png and "
                           "predictions.csv here")
    _add_mask_options(p)
    e.set_defaults(func=_evaluate)
    p.set_defaults(func=_predict)
    from foveal.instance.watershed_cli import add_instance_actions

    add_instance_actions(actions)  # `foveal segment instances evaluate|predict`: U-Net + watershed
