"""``foveal adapt train|evaluate|predict``: the command line of domain adaptation.

``train`` is the engine's (every option of :class:`~foveal.adaptation.config.AdaptConfig`);
``evaluate`` and ``predict`` take an adaptation model (``best.keras``) or the plain
``classifier.keras`` of a run and work as the classifier's commands do.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from foveal.cli import task_commands as tc

EPILOG_TRAIN = """examples:
  # MNIST -> MNIST-M-style digits (made by `foveal datasets synth mnist-m`), DANN with its baseline
  foveal adapt train --source ../shared/datasets/mnist --target data/mnist-m --channels 3 \\
      --image-size 28 --model lenet5 --method dann --epochs 10
  foveal adapt train --source mnist/ --target mnist-m/ --channels 3 --method coral --adapt-weight 10
  foveal adapt train --source mnist/ --target mnist-m/ --channels 3 --target-labels 10   # a few target labels
  foveal adapt train --source photos/ --target unlabelled_photos/ --model resnet18 --image-size 64
  foveal adapt train --resume runs/adapt-lenet5-mnist-20261206-210000
then: foveal predict RUN/classifier.keras image.png   (a plain classifier: export and serve take it too)
"""

EPILOG_EVALUATE = """examples:
  foveal adapt evaluate runs/RUN/best.keras --data data/mnist-m --output eval/
  foveal evaluate runs/RUN/classifier.keras --data data/mnist-m      # the same scores
"""

EPILOG_PREDICT = """examples:
  foveal adapt predict runs/RUN/best.keras digit.png more_digits/ --top-k 3
"""


def _predict(args: argparse.Namespace, _: dict[str, Any]) -> int:
    from foveal import predict as p
    from foveal.models.io import load_model

    model, card = load_model(args.model)
    rows = p.predict(model, card, args.images, top_k=args.top_k, skip_invalid=args.skip_invalid)
    text = {"table": p.format_table, "csv": p.to_csv, "json": p.to_json}[args.format](rows)
    if args.output:
        from foveal.utils_io import atomic_write_text, ensure_output_dir

        out = ensure_output_dir(args.output) / "predictions.csv"
        atomic_write_text(out, p.to_csv(rows))
        print(f"wrote {out}", file=sys.stderr)
    print(text)
    tc.report_skipped(rows)
    return 0


def add_adapt_command(subparsers: argparse._SubParsersAction) -> None:
    """Add ``adapt`` with its ``train``, ``evaluate`` and ``predict`` actions to ``subparsers``."""
    actions = tc.add_task_command(
        subparsers, "adapt", help="domain adaptation: a classifier for unlabelled target images (DANN, CORAL, MMD)",
        description="Train a classifier on labelled source images that works on another domain (target) with "
        "no or few labels: DANN (gradient reversal), CORAL or MMD on any zoo classifier, with a source-only "
        "baseline trained in the same run.",
        train_help="adapt a classifier from --source to --target and write a run folder with a report",
        train_description="Train a domain-adapted classifier and, in the same run, its source-only baseline.",
        train_epilog=EPILOG_TRAIN)
    e = tc.add_mode(actions, "evaluate", "adapt", help="accuracy and per-class report of an adapted classifier",
                    epilog=EPILOG_EVALUATE, batch_size=256)
    tc.add_evaluate_options(e, data_help="dataset spec (e.g. the target's class folder)",
                            output_help="write metrics.json, confusion_matrix.png and report.html here")
    e.add_argument("--split", default="test", help="dataset part: test (default), val or train")
    e.add_argument("--top-k", type=int, default=5, help="k of the top-k accuracy (default: 5)")
    p = tc.add_mode(actions, "predict", "adapt", help="top-k labels for image files or folders", epilog=EPILOG_PREDICT)
    tc.add_predict_options(p, output_help="write predictions.csv here")
    p.add_argument("--top-k", type=int, default=5, help="labels per image (default: 5)")
    # an adapted model is scored as any classifier: the classifier command's handler, without test-time flips
    from foveal.cli.main import _evaluate as evaluate_classifier

    e.set_defaults(func=evaluate_classifier, tta="none")
    p.set_defaults(func=_predict)


__all__ = ["add_adapt_command"]
