"""``foveal localize train|evaluate|predict``: the command line of classification + localization.

:func:`add_localize_command` adds the ``localize`` command to the ``foveal`` parser's
subcommands; each action calls one public function of :mod:`foveal.localization`.
"""

from __future__ import annotations

import argparse
from typing import Any

from foveal.cli import task_commands as tc

EPILOG_TRAIN = """examples:
  foveal localize train --data ../shared/datasets/raccoon  # resnet18 (width 16) at 128x128
  foveal localize train --data ../shared/datasets/raccoon --epochs 60 --augment flip,crop=0.7
  foveal localize train --data boxes.csv --model geron_cnn --image-size 96 --test-split 0.2
  foveal localize train --config loc.yaml --epochs 80
  foveal localize train --resume runs/localize-resnet18-raccoon-20261123-101500
"""

EPILOG_PREDICT = """examples:
  foveal localize predict runs/RUN/best.keras photo.jpg more_photos/ --output boxed/
  foveal localize predict runs/RUN/best.keras photo.jpg --format json
"""



def _evaluate(args: argparse.Namespace, _: dict[str, Any]) -> int:
    from foveal.localization.train import evaluate_localizer, format_metrics

    metrics = evaluate_localizer(args.model, args.data, split=args.split, batch_size=args.batch_size,
                                 output=args.output, skip_invalid=args.skip_invalid, class_map=args.class_map)
    return tc.print_result(args, metrics, format_metrics, wrote=lambda out: f"{out / 'report.html'}")


def _predict(args: argparse.Namespace, _: dict[str, Any]) -> int:
    from foveal.localization import predict as p
    from foveal.models.io import load_model

    model, card = load_model(args.model)
    rows = p.predict_boxes(model, card, args.images, batch_size=args.batch_size, output=args.output,
                           skip_invalid=args.skip_invalid)
    return tc.print_rows(args, rows, {"table": p.format_table, "csv": p.to_csv, "json": p.to_json},
                         wrote=lambda _: f"{len(rows)} image(s), predictions.csv and predictions.json to {args.output}")


def add_localize_command(subparsers: argparse._SubParsersAction) -> None:
    """Add ``localize`` with its ``train``, ``evaluate`` and ``predict`` actions to ``subparsers``."""
    from foveal.data.boxes import FORMATS_HELP

    actions = tc.add_task_command(
        subparsers, "localize", help="classification with localization: one class and one box per image",
        description="Train, evaluate and use localizers: a backbone with a class head and a box head "
        "(Géron, ch. 14).", train_help="train a localizer and write a run folder with a report",
        train_description="Train a localizer on box annotations.", train_epilog=EPILOG_TRAIN)

    e = tc.add_mode(actions, "evaluate", "localize", help="mean IoU and class accuracy of a localizer on box "
                    "annotations", batch_size=32)
    e.add_argument("--split", default="test", help="part to score: test, val or train (default: test)")
    tc.add_evaluate_options(e, data_help=FORMATS_HELP, output_help="write metrics.json and report.html here")
    e.set_defaults(func=_evaluate)

    p = tc.add_mode(actions, "predict", "localize", help="class, score and box for image files or folders",
                    epilog=EPILOG_PREDICT, batch_size=16)
    tc.add_predict_options(p, output_help="write each image with its box drawn, predictions.csv and predictions.json here")
    p.set_defaults(func=_predict)
