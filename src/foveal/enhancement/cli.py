"""``foveal enhance train|evaluate|predict``: the command line of image enhancement.

:func:`add_enhance_command` adds the ``enhance`` command to the ``foveal`` parser; each action
calls one public function of :mod:`foveal.enhancement`.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from foveal.cli.task_commands import add_mode, add_predict_options, add_task_command, print_result, print_rows

EPILOG_TRAIN = """examples:
  # the texts' denoising auto-encoder: MNIST with Gaussian noise of sigma 0.5, whole 28x28 images
  foveal enhance train --data ../shared/datasets/mnist --model denoise --patch-size 28 --epochs 5
  # max-unpooling decoder, several corruptions at once, on your photos (random 64x64 patches)
  foveal enhance train --data photos/ --model denoise --model-options decoder=unpool \\
      --corruption gaussian=0.05-0.2,jpeg=30,blur=0.8 --patch-size 64
  # super-resolution x3 (ESPCN; or sr-upscale, edsr) on COCO images, scored on its val images
  foveal enhance train --data ../shared/datasets/coco-mini/train2017 \\
      --test-data ../shared/datasets/coco-mini/val2017 --model espcn --scale 3 --time-budget 600
  foveal enhance train --resume runs/enhance-espcn-train2017-20261206-210000
"""

EPILOG_EVALUATE = """examples:
  foveal enhance evaluate runs/RUN/best.keras --data ../shared/datasets/coco-mini/val2017 --output eval/
  foveal enhance evaluate runs/RUN/best.keras --data ../shared/datasets/mnist --corruption gaussian=0.3
"""

EPILOG_PREDICT = """examples:
  foveal enhance predict runs/RUN/best.keras photo.jpg more_photos/ --output enhanced/
  foveal enhance predict runs/RUN/best.keras scan.png --output out/ --format json
  # a luma model (trained with --channels 1) on colour photos: Y through the network, colour kept
  foveal enhance predict runs/RUN-Y/best.keras photo.jpg --output out/   # RGB PNGs
  foveal enhance predict runs/RUN-Y/best.keras photo.jpg --output out/ --luma-only   # the luma alone
"""


def _evaluate(args: argparse.Namespace, _: dict[str, Any]) -> int:
    from foveal.enhancement.score import evaluate_enhancer, format_metrics

    metrics = evaluate_enhancer(args.model, args.data, output=args.output, corruption=args.corruption,
                                report_images=args.report_images, skip_invalid=args.skip_invalid,
                                split=args.split, limit=args.limit)
    return print_result(args, metrics, format_metrics,
                        wrote=lambda out: f"{out / 'report.html'}, metrics.json and enhanced/")


def _predict(args: argparse.Namespace, _: dict[str, Any]) -> int:
    from foveal.enhancement import predict as p
    from foveal.models.io import load_model

    model, card = load_model(args.model)
    p.check_card(card)
    rows = p.enhance_files(model, card, args.images, output=args.output, skip_invalid=args.skip_invalid,
                           luma_only=args.luma_only)
    shown = [{k: v for k, v in r.items() if k != "image"} for r in rows]
    if not args.output:
        print("nothing written: pass --output DIR to save the enhanced images", file=sys.stderr)
    formats = {"csv": p.to_csv, "json": lambda r: json.dumps(r, indent=1), "table": p.format_table}
    return print_rows(args, shown, formats,
                      wrote=lambda out: f"{sum('enhanced' in r for r in rows)} image(s) to {out / 'enhanced'} and "
                      f"{out / 'predictions.csv'}")


def add_enhance_command(subparsers: argparse._SubParsersAction) -> None:
    """Add ``enhance`` with its ``train``, ``evaluate`` and ``predict`` actions to ``subparsers``."""
    actions = add_task_command(
        subparsers, "enhance", help="image enhancement: denoising auto-encoders and super-resolution (ESPCN, EDSR)",
        description="Train, evaluate and use image-to-image models: denoising (Gaussian, salt-and-pepper, JPEG, "
        "blur) and super-resolution x2/x3/x4, scored by PSNR and SSIM next to the baseline they must beat.",
        train_help="train an enhancement model and write a run folder with a report",
        train_description="Train a denoising or super-resolution model on random patches of any image folder.",
        train_epilog=EPILOG_TRAIN)

    e = add_mode(actions, "evaluate", "enhance", help="PSNR and SSIM (RGB and Y) of a model and of its baseline",
                 epilog=EPILOG_EVALUATE)
    e.add_argument("--data", required=True, help="reference images: a folder, or a dataset of arrays (its test part)")
    e.add_argument("--output", metavar="DIR", help="write metrics.json, report.html and enhanced/ here")
    e.add_argument("--corruption", help="score under this corruption instead of the training one, e.g. gaussian=0.3")
    e.add_argument("--split", default="test", help="the part of a dataset with several (default: test)")
    e.add_argument("--limit", type=int, help="score only the first N images")
    e.add_argument("--report-images", type=int, default=6, help="before/after strips in the report (default: 6)")
    e.add_argument("--json", action="store_true", help="print the metrics as JSON")
    e.add_argument("--skip-invalid", action="store_true", help="skip (and count) unreadable or too small images")
    e.set_defaults(func=_evaluate)

    p = add_mode(actions, "predict", "enhance", help="enhanced images of image files or folders",
                 epilog=EPILOG_PREDICT)
    add_predict_options(p, output_help="write enhanced/NAME.png and predictions.csv here")
    p.add_argument("--luma-only", action="store_true", help="a 1-channel (luma) model: write colour photos as the "
                   "enhanced luma alone (default: in colour, the chroma upscaled bicubic)")
    p.set_defaults(func=_predict)


__all__ = ["add_enhance_command"]
