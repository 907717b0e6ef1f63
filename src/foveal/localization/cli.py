"""``foveal localize train|evaluate|predict``: the command line of classification + localization.

:func:`add_localize_command` adds the ``localize`` command to the ``foveal`` parser's
subcommands; each action calls one public function of :mod:`foveal.localization`. Handlers
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
  foveal localize train                           # raccoon boxes, resnet18 (width 16) at 128x128
  foveal localize train --data ../shared/datasets/raccoon --epochs 60 --augment flip,crop=0.7
  foveal localize train --data boxes.csv --model geron_cnn --image-size 96 --test-split 0.2
  foveal localize train --config loc.yaml --epochs 80
  foveal localize train --resume runs/localize-resnet18-raccoon-20261123-101500
"""

EPILOG_PREDICT = """examples:
  foveal localize predict runs/RUN/best.keras photo.jpg more_photos/ --output boxed/
  foveal localize predict runs/RUN/best.keras photo.jpg --format json
"""

_NOT_OPTIONS = {"command", "func", "config", "resume", "verbose", "action", "localize_action"}


def _train(args: argparse.Namespace, overrides: dict[str, Any]) -> int:
    from foveal import configtools
    from foveal.localization.train import LocalizeConfig, train_localizer

    # Options are suppressed unless given, so what is in ``args`` is what the user typed.
    given = {k: v for k, v in vars(args).items() if k not in _NOT_OPTIONS} | dict(overrides)
    if args.resume:
        result = train_localizer(resume=args.resume, **given)
    else:
        result = train_localizer(configtools.resolve(LocalizeConfig, args.config, given))
    return 130 if result.interrupted else 0


def _evaluate(args: argparse.Namespace, _: dict[str, Any]) -> int:
    from foveal.localization.train import evaluate_localizer, format_metrics

    metrics = evaluate_localizer(args.model, args.data, split=args.split, batch_size=args.batch_size,
                                 output=args.output, skip_invalid=args.skip_invalid, class_map=args.class_map)
    print(json.dumps(metrics, indent=1) if args.json else format_metrics(metrics))
    if args.output:
        print(f"wrote {Path(args.output) / 'report.html'}", file=sys.stderr)
    return 0


def _predict(args: argparse.Namespace, _: dict[str, Any]) -> int:
    from foveal.localization import predict as p
    from foveal.models.io import load_model

    model, card = load_model(args.model)
    rows = p.predict_boxes(model, card, args.images, batch_size=args.batch_size, output=args.output,
                           skip_invalid=args.skip_invalid)
    text = {"table": p.format_table, "csv": p.to_csv, "json": p.to_json}[args.format](rows)
    print(text)
    if args.output:
        print(f"wrote {len(rows)} image(s), predictions.csv and predictions.json to {args.output}", file=sys.stderr)
    skipped = sum("error" in r for r in rows)
    if skipped:
        print(f"skipped {skipped} unreadable file(s)", file=sys.stderr)
    return 0


def add_localize_command(subparsers: argparse._SubParsersAction) -> None:
    """Add ``localize`` with its ``train``, ``evaluate`` and ``predict`` actions to ``subparsers``."""
    from foveal import configtools
    from foveal.data.boxes import FORMATS_HELP
    from foveal.localization.train import LocalizeConfig

    fmt = argparse.RawDescriptionHelpFormatter
    loc = subparsers.add_parser(
        "localize", help="classification with localization: one class and one box per image",
        description="Train, evaluate and use localizers: a backbone with a class head and a box head "
        "(Géron, ch. 14).", allow_abbrev=False)
    actions = loc.add_subparsers(dest="localize_action", metavar="ACTION", required=True)

    t = actions.add_parser(
        "train", help="train a localizer and write a run folder with a report", allow_abbrev=False,
        description="Train a localizer on box annotations. Every option can also be a key of the "
        "--config YAML file; options given here override the file.", epilog=EPILOG_TRAIN, formatter_class=fmt)
    t.add_argument("--config", metavar="FILE.yaml", help="YAML file with any of the options below")
    t.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run from its last finished epoch")
    configtools.add_arguments(t, LocalizeConfig)
    t.set_defaults(func=_train)

    e = actions.add_parser("evaluate", help="mean IoU and class accuracy of a localizer on box annotations",
                           allow_abbrev=False)
    e.add_argument("model", help="a .keras model file written by `foveal localize train`")
    e.add_argument("--data", required=True, help=FORMATS_HELP)
    e.add_argument("--split", default="test", help="part to score: test, val or train (default: test)")
    e.add_argument("--batch-size", type=int, default=32, help="images per batch (default: 32)")
    e.add_argument("--output", metavar="DIR", help="write metrics.json and report.html here")
    e.add_argument("--class-map", metavar="MAP", help="dataset class -> model class pairs (0=zero,1=one,...), a "
                   "YAML/JSON file of them, or 'order'; default: classes are matched by name")
    e.add_argument("--json", action="store_true", help="print the metrics as JSON")
    e.add_argument("--skip-invalid", action="store_true", help="skip images with bad annotations or files")
    e.set_defaults(func=_evaluate)

    p = actions.add_parser("predict", help="class, score and box for image files or folders",
                           allow_abbrev=False, epilog=EPILOG_PREDICT, formatter_class=fmt)
    p.add_argument("model", help="a .keras model file written by `foveal localize train`")
    p.add_argument("images", nargs="+", help="image files and/or folders (searched recursively)")
    p.add_argument("--output", metavar="DIR", help="write each image with its box drawn, predictions.csv "
                   "and predictions.json here")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table",
                   help="what to print (default: table)")
    p.add_argument("--batch-size", type=int, default=16, help="images per batch (default: 16)")
    p.add_argument("--skip-invalid", action="store_true", help="report unreadable images and go on")
    p.set_defaults(func=_predict)


__all__ = ["add_localize_command"]
