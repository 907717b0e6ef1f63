"""The ``foveal`` command line: a thin shell over the library's public functions."""

from __future__ import annotations

import argparse
import functools
import json
import logging
import sys
from pathlib import Path
from typing import Any, Sequence

from foveal import __version__
from foveal.cli import task_commands as tc
from foveal.cli.grammar import route
from foveal.cli.quiet import import_tensorflow_quietly
from foveal.cli.task_commands import print_result, report_skipped
from foveal.errors import FovealError

EPILOG_TRAIN = """examples:
  foveal train                                   # LeNet-5 on scikit-learn's digits
  foveal train --data ../shared/datasets/fashion-mnist --model geron_cnn --optimizer nadam
  foveal train --data photos/ --model resnet18 --image-size 64 --augment standard
  foveal train --config run.yaml --epochs 20     # YAML file, command line overrides it
  foveal train --data photos/ --extra-data rendered/ --extra-ratio 0.3   # 30% of each epoch from rendered/
  foveal train --resume runs/geron_cnn-fashion-mnist-20261123-101500
  foveal train --task localize --data ../shared/datasets/raccoon   # same as `foveal localize train`

other tasks: --task localize|segment|detect hands the remaining options to
`foveal localize|segment|detect train` (see `foveal TASK train --help` for their options).
"""


def _evaluate(args: argparse.Namespace, _: dict[str, Any]) -> int:
    from foveal.evaluation.classification import format_metrics_table
    from foveal.evaluation.run import evaluate

    metrics = evaluate(args.model, args.data, split=args.split, batch_size=args.batch_size,
                       top_k=args.top_k, output=args.output, skip_invalid=args.skip_invalid, tta=args.tta,
                       class_map=args.class_map)
    return print_result(args, metrics, format_metrics_table, wrote=lambda out: f"{out / 'report.html'}")


def _predict(args: argparse.Namespace, _: dict[str, Any]) -> int:
    from foveal import predict as p
    from foveal.models.io import load_model
    from foveal.utils_io import atomic_write_text

    model, card = load_model(args.model)
    rows = p.predict(model, card, args.images, top_k=args.top_k, skip_invalid=args.skip_invalid)
    fmt = args.format or (Path(args.output).suffix.lstrip(".") if args.output else "table")
    if fmt not in ("table", "csv", "json"):
        raise FovealError(f"unknown output format {fmt!r}", hint="use --format table, csv or json")
    text = {"table": p.format_table, "csv": p.to_csv, "json": p.to_json}[fmt](rows)
    if args.output:
        atomic_write_text(args.output, text)
        print(p.format_table(rows))
        print(f"wrote {args.output}", file=sys.stderr)
    else:
        print(text)
    report_skipped(rows)
    return 0


def _models(args: argparse.Namespace, _: dict[str, Any]) -> int:
    from foveal.models.catalog import describe_models, format_models

    rows = describe_models(num_classes=args.num_classes, build=args.build)
    return print_result(args, rows, format_models)


def _datasets_inspect(args: argparse.Namespace, _: dict[str, Any]) -> int:
    from foveal.video.decode import is_video_folder

    if is_video_folder(args.path):  # class subfolders of clips: the video report
        from foveal.video.inspect import format_video_inspection, inspect_video_folder

        report = inspect_video_folder(args.path, full=not args.quick)
        print(json.dumps(report, indent=1) if args.json else format_video_inspection(report))
        return 0
    from foveal.data.inspect import format_inspection, inspect_dataset

    report = inspect_dataset(args.path, full=not args.quick)
    return print_result(args, report, format_inspection)


def _datasets_convert(args: argparse.Namespace, _: dict[str, Any]) -> int:
    from foveal.data.readers import convert_to_tfrecord

    written = convert_to_tfrecord(args.path, args.output, shards=args.shards, skip_invalid=args.skip_invalid)
    for name, files in written.items():
        print(f"{name}: {', '.join(map(str, files))}")
    return 0


#: the commands each package adds (``module:function(subparsers)``), imported when the parser is built
_COMMANDS = ("foveal.export.cli:add_export_commands", "foveal.serve.cli:add_serve_command",
             "foveal.inspection.cli:add_inspect_command", "foveal.localization.cli:add_localize_command",
             "foveal.detection.cli:add_detect_command", "foveal.segmentation.cli:add_segment_command",
             "foveal.instance.cli:add_instance_command", "foveal.enhancement.cli:add_enhance_command",
             "foveal.generative.cli:add_generate_command", "foveal.video.cli:add_video_command",
             "foveal.adaptation.cli:add_adapt_command", "foveal.shrink.cli:add_prune_command",
             "foveal.scratch.cli:add_scratch_command")


def build_parser() -> argparse.ArgumentParser:
    from foveal import configtools
    from foveal.config import TrainConfig
    from foveal.tasks import TASKS, load_ref

    parser = argparse.ArgumentParser(
        prog="foveal", description="Train, evaluate, inspect and use convolutional image classifiers.",
        allow_abbrev=False)
    parser.add_argument("--version", action="version", version=f"foveal {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="show debug logging and tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    # Abbreviations would let a misspelt option (--epoch) pass silently as another one.
    sub.add_parser = functools.partial(sub.add_parser, allow_abbrev=False)  # type: ignore[method-assign]
    fmt = argparse.RawDescriptionHelpFormatter

    t = sub.add_parser("train", help="train a classifier and write a run folder with a report",
                       description="Train a classifier. Every option can also be a key of the --config "
                       "YAML file; options given here override the file.", epilog=EPILOG_TRAIN, formatter_class=fmt)
    t.add_argument("--config", metavar="FILE.yaml", help="YAML file with any of the options below")
    t.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run from its last finished epoch")
    # `foveal train --task X ARGS` is `foveal X train ARGS` (foveal.cli.grammar): each task keeps its options.
    t.add_argument("--task", choices=list(TASKS), default="classify",
                   help="what to train: classify (default, the options below), or another task whose "
                   "options are those of `foveal TASK train`")
    configtools.add_arguments(t, TrainConfig)
    t.set_defaults(func=tc.train_command)

    e = tc.add_mode(sub, "evaluate", "classify", batch_size=64,
                    help="accuracy, top-k, per-class report and confusion matrix of a model")
    tc.add_evaluate_options(e, data_help="dataset spec (folder, IDX/CIFAR folder, .npz, .tfrecord, digits)",
                            output_help="write metrics.json, confusion_matrix.png and report.html here")
    e.add_argument("--split", default="test", help="dataset part to use: test, val or train (default: test)")
    e.add_argument("--top-k", type=int, default=5, help="k of the top-k accuracy (default: 5)")
    e.add_argument("--tta", choices=("none", "flip", "flip-shift"), default="none",
                   help="test-time augmentation: average the predictions over the mirror image (flip) "
                   "and one-pixel shifts of both (flip-shift); for models trained with such augmentation")
    e.set_defaults(func=_evaluate)

    p = tc.add_mode(sub, "predict", "classify", help="top-k labels with probabilities for image files or folders")
    p.add_argument("--top-k", type=int, default=5, help="labels per image (default: 5)")
    p.add_argument("--output", metavar="FILE", help="write the predictions to FILE (.csv or .json)")
    p.add_argument("--format", choices=("table", "csv", "json"), help="output format (default: from --output, else table)")
    p.add_argument("--skip-invalid", action="store_true", help="report unreadable images and go on")
    p.set_defaults(func=_predict)

    m = sub.add_parser("models", help="list the architectures with parameters and input size")
    m.add_argument("--num-classes", type=int, help="classes to count parameters for (default: 1000 for "
                   "ImageNet-sized models, 10 for the small ones); other values build each model")
    m.add_argument("--build", action="store_true", help="build every model to count (slow) instead of "
                   "reading the verified reference table")
    m.add_argument("--json", action="store_true", help="print JSON")
    m.set_defaults(func=_models)

    d = sub.add_parser("datasets", help="inspect, convert or generate datasets")
    dsub = d.add_subparsers(dest="action", metavar="ACTION", required=True)
    dsub.add_parser = functools.partial(dsub.add_parser, allow_abbrev=False)  # type: ignore[method-assign]
    di = dsub.add_parser("inspect", help="counts per class, image sizes and problems found")
    di.add_argument("path", help="dataset spec (folder, IDX/CIFAR folder, .npz, .tfrecord, digits), or a folder of "
                    "class subfolders of video clips")
    di.add_argument("--quick", action="store_true", help="check file headers only, do not decode every image")
    di.add_argument("--json", action="store_true", help="print JSON")
    di.set_defaults(func=_datasets_inspect)
    dc = dsub.add_parser("convert", help="write any dataset as TFRecord files of tf.train.Example")
    dc.add_argument("path", help="dataset spec to read")
    dc.add_argument("--output", required=True, metavar="DIR", help="folder for the .tfrecord files and classes.txt")
    dc.add_argument("--shards", type=int, default=1, help="files per split (default: 1)")
    dc.add_argument("--skip-invalid", action="store_true", help="leave out unreadable images")
    dc.set_defaults(func=_datasets_convert)
    from foveal.data.boxes import cli as boxes_cli

    cb_ = dsub.add_parser("convert-boxes", help="convert a box dataset between COCO, Pascal VOC and YOLO")
    boxes_cli.add_convert_arguments(cb_)
    cb_.set_defaults(func=lambda args, _: boxes_cli.convert_command(args))
    vb = dsub.add_parser("validate-boxes", help="report degenerate, outside, unknown-class and missing boxes/images")
    boxes_cli.add_validate_arguments(vb)
    vb.set_defaults(func=lambda args, _: boxes_cli.validate_command(args))
    for ref in ("foveal.data.synth.cli:add_synth_command", "foveal.instance.data_cli:add_instance_data_commands"):
        load_ref(ref)(dsub)
    for ref in _COMMANDS:
        load_ref(ref)(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``foveal`` command."""
    parser = build_parser()
    raw = list(sys.argv[1:] if argv is None else argv)
    verbose = raw[:1] in (["-v"], ["--verbose"])
    try:
        args = parser.parse_args(route(raw, quiet=not verbose))
        verbose = args.verbose
        logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING, format="%(levelname)s: %(message)s")
        if not verbose:
            import_tensorflow_quietly()
        return args.func(args, {})  # a handler(args, overrides) -> exit status
    except FovealError as exc:
        if verbose:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
