"""``foveal segment instances evaluate|predict``: a U-Net trained on watershed targets as an
instance segmenter (see :mod:`foveal.instance.unet_watershed`)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from foveal.cli.task_commands import print_result

EPILOG_EVALUATE = """examples:
  # ISBI cells: targets and ground truth, a U-Net on the targets, then mask AP on the 5 held-out slices
  foveal datasets cells --data ../shared/datasets/isbi-membrane/train --output cells/
  foveal segment train --data cells/ --holdout 5 --model unet --model-options width=16,depth=4,batch_norm=true
  foveal segment instances evaluate runs/RUN/best.keras --data cells/ --split test
  foveal segment instances evaluate runs/RUN/best.keras --data cells/annotations/instances.json --max-dets 1 10 1000
  foveal segment instances evaluate runs/RUN/best.keras --data cells/ --split test --elevation distance \\
      --interior-threshold 0.6 --output eval/
  # several classes: a segmenter of background, interior:disc, interior:square, boundary on COCO categories
  foveal segment instances evaluate runs/RUN/best.keras --data shapes/annotations/instances_test.json
"""

EPILOG_PREDICT = """examples:
  foveal segment instances predict runs/RUN/best.keras ../shared/datasets/isbi-membrane/test --output cells-pred/
  foveal segment instances predict runs/RUN/best.keras slice.png --format json
"""


def _post(args: argparse.Namespace) -> dict[str, Any]:
    return {"interior_threshold": args.interior_threshold, "foreground_threshold": args.foreground_threshold,
            "elevation": args.elevation, "min_marker_area": args.min_marker_area, "min_area": args.min_area,
            "score": args.score}


def _evaluate(args: argparse.Namespace, _: dict[str, Any]) -> int:
    from foveal.instance.unet_watershed import evaluate_watershed, format_metrics

    metrics = evaluate_watershed(args.model, args.data, split=args.split, images=args.images, output=args.output,
                                 tta=args.tta, max_dets=args.max_dets, baseline=args.baseline,
                                 report_images=args.report_images, **_post(args))
    return print_result(args, metrics, format_metrics,
                        wrote=lambda out: f"{out / 'metrics.json'}, results.json, report.html, instances/ and overlays/")


def _predict(args: argparse.Namespace, _: dict[str, Any]) -> int:
    from foveal.cli.task_commands import report_skipped
    from foveal.instance.unet_watershed import format_rows, predict_watershed

    rows = predict_watershed(args.model, args.images, output=args.output, tta=args.tta,
                             skip_invalid=args.skip_invalid, **_post(args))
    print(json.dumps(rows) if args.format == "json" else format_rows(rows))
    if args.output:
        print(f"wrote {Path(args.output) / 'instances'}, overlays/ and predictions.json", file=sys.stderr)
    report_skipped(rows)
    return 0


def _add_post_options(parser: argparse.ArgumentParser) -> None:
    from foveal.instance.unet_watershed import POST_DEFAULTS as D
    from foveal.instance.watershed import ELEVATIONS, SCORES

    g = parser.add_argument_group("watershed")
    g.add_argument("--interior-threshold", type=float, default=D["interior_threshold"],
                   help=f"markers: regions where P(interior) exceeds this (default: {D['interior_threshold']})")
    g.add_argument("--foreground-threshold", type=float, default=D["foreground_threshold"],
                   help=f"flood pixels whose P(background) is below this (default: {D['foreground_threshold']})")
    g.add_argument("--elevation", choices=ELEVATIONS, default=D["elevation"],
                   help="the surface flooded: 1 - P(interior) (default), P(boundary), or -distance to background")
    g.add_argument("--min-marker-area", type=int, default=D["min_marker_area"],
                   help=f"drop smaller markers (default: {D['min_marker_area']} px)")
    g.add_argument("--min-area", type=int, default=D["min_area"],
                   help=f"drop smaller instances (default: {D['min_area']} px)")
    g.add_argument("--score", choices=SCORES, default=D["score"],
                   help="instance score: mean P(interior) (default) or mean foreground probability")
    parser.add_argument("--tta", nargs="?", const="flips", default="none", choices=("none", "flips", "d4"),
                        help="average the class probabilities of flipped views (a bare --tta: flips)")


def add_instance_actions(actions: argparse._SubParsersAction) -> None:
    """Add ``instances`` (with ``evaluate`` and ``predict``) to the ``foveal segment`` actions."""
    i = actions.add_parser("instances", help="U-Net + watershed: instances from a segmenter trained on "
                           "background/interior/boundary targets", allow_abbrev=False,
                           description="Use a segmenter trained on 3-class watershed targets (foveal datasets cells, "
                           "foveal datasets instances targets) as an instance segmenter: markers from P(interior), "
                           "marker watershed, one instance per region, scored with COCO mask AP.")
    modes = i.add_subparsers(dest="instance_action", metavar="MODE", required=True)
    raw = argparse.RawDescriptionHelpFormatter
    e = modes.add_parser("evaluate", help="COCO mask AP/AP50 against instance ground truth, with the "
                         "connected-components baseline", epilog=EPILOG_EVALUATE, formatter_class=raw,
                         allow_abbrev=False)
    e.add_argument("model", help="a .keras segmenter with classes background, interior, boundary (or "
                   "background, interior:NAME for each object class, boundary)")
    e.add_argument("--data", required=True, help="instance folder (images/ + instances/; one class) or a COCO "
                   "instances .json (one category, or the model's classes: interior:NAME is the category NAME; "
                   "mask AP is the mean over the classes)")
    e.add_argument("--split", default="all", choices=("all", "train", "val", "test"),
                   help="all images (default), or that split of the training run (its config.yaml beside the model; "
                   "--data is the folder it trained on)")
    e.add_argument("--images", metavar="DIR", help="image folder of a COCO --data file (default: found beside it)")
    e.add_argument("--output", metavar="DIR", help="write metrics.json, results.json (COCO, RLE), report.html (box "
                   "and mask AP, drawn examples), instances/ and overlays/ here")
    e.add_argument("--report-images", type=int, default=12, metavar="N",
                   help="images drawn in report.html (default: 12)")
    e.add_argument("--max-dets", type=int, nargs="+", default=[1, 10, 100], metavar="N",
                   help="detections kept per image (AP at the largest; default: 1 10 100, COCO's)")
    e.add_argument("--baseline", action=argparse.BooleanOptionalAction, default=True,
                   help="also score connected components of the foreground (default: on)")
    e.add_argument("--json", action="store_true", help="print the metrics as JSON")
    _add_post_options(e)
    e.set_defaults(func=_evaluate)

    p = modes.add_parser("predict", help="instance label maps, overlays and RLE masks for images",
                         epilog=EPILOG_PREDICT, formatter_class=raw, allow_abbrev=False)
    p.add_argument("model", help="a .keras segmenter with classes background, interior, boundary (or "
                   "background, interior:NAME for each object class, boundary)")
    p.add_argument("images", nargs="+", help="image files and/or folders (searched recursively)")
    p.add_argument("--output", metavar="DIR", help="write instances/NAME.png (label maps), overlays/ and "
                   "predictions.json here")
    p.add_argument("--format", choices=("table", "json"), default="table", help="what to print (default: table)")
    p.add_argument("--skip-invalid", action="store_true", help="report unreadable images and go on")
    _add_post_options(p)
    p.set_defaults(func=_predict)


__all__ = ["add_instance_actions"]
