"""What every task's command (``foveal detect|segment|localize ...``) has in common: the ``train``
action with every option of the task's config, and the arguments of every ``evaluate`` and
``predict`` action. Handlers are ``handler(args, overrides) -> exit status``.

Example:
    >>> actions = add_task_command(subparsers, "detect", help="...", description="...",  # doctest: +SKIP
    ...                            train_help="...", train_epilog=EPILOG_TRAIN)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Callable

#: argparse destinations that are not options of a task's config
NOT_OPTIONS = {"command", "func", "config", "resume", "verbose", "action", "task", "task_action"}


def train_command(args: argparse.Namespace, overrides: dict[str, Any]) -> int:
    """``foveal [TASK] train``: the task's options as typed (with ``--config`` under them), or a resume."""
    from foveal import configtools
    from foveal.tasks import TASKS, run_train

    task = TASKS["classify" if args.command == "train" else args.command]
    # Options are suppressed unless given, so what is in ``args`` is what the user typed.
    given = {k: v for k, v in vars(args).items() if k not in NOT_OPTIONS} | dict(overrides)
    if args.resume:
        result = run_train(task.name, resume=args.resume, **given)
    else:
        result = run_train(task.name, configtools.resolve(task.config_class(), args.config, given))
    return 130 if result.interrupted else 0


def add_task_command(subparsers: argparse._SubParsersAction, task: str, *, help: str, description: str,
                     train_help: str, train_description: str, train_epilog: str) -> argparse._SubParsersAction:
    """Add ``foveal TASK`` with its ``train`` action; returns the actions for the task's others."""
    from foveal import configtools
    from foveal.tasks import TASKS

    command = subparsers.add_parser(task, help=help, description=description, allow_abbrev=False)
    actions = command.add_subparsers(dest="task_action", metavar="ACTION", required=True)
    t = actions.add_parser("train", help=train_help, allow_abbrev=False, epilog=train_epilog,
                           description=train_description + " Every option can also be a key of the --config YAML "
                           "file; options given here override the file.",
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    t.add_argument("--config", metavar="FILE.yaml", help="YAML file with any of the options below")
    t.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run from its last finished epoch")
    configtools.add_arguments(t, TASKS[task].config_class())
    t.set_defaults(func=train_command)
    return actions


def add_mode(actions: argparse._SubParsersAction, mode: str, task: str, *, help: str, epilog: str | None = None,
             batch_size: int | None = None) -> argparse.ArgumentParser:
    """An ``evaluate`` or ``predict`` action with the model argument (and ``--batch-size``)."""
    parser = actions.add_parser(mode, help=help, allow_abbrev=False, epilog=epilog,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    from foveal.tasks import TASKS

    parser.add_argument("model", help=f"a .keras model file written by `{TASKS[task].command('train')}`")
    if mode == "predict":
        parser.add_argument("images", nargs="+", help="image files and/or folders (searched recursively)")
    if batch_size is not None:
        parser.add_argument("--batch-size", type=int, default=batch_size,
                            help=f"images per batch (default: {batch_size})")
    return parser


def add_evaluate_options(parser: argparse.ArgumentParser, *, data_help: str, output_help: str) -> None:
    """``--data``, ``--output``, ``--class-map``, ``--json`` and ``--skip-invalid`` of an evaluate action."""
    parser.add_argument("--data", required=True, help=data_help)
    parser.add_argument("--output", metavar="DIR", help=output_help)
    parser.add_argument("--class-map", metavar="MAP", help="dataset class -> model class pairs (a=b,c=d), a "
                        "YAML/JSON file of them, or 'order'; default: classes are matched by name")
    parser.add_argument("--json", action="store_true", help="print the metrics as JSON")
    parser.add_argument("--skip-invalid", action="store_true", help="skip (and count) bad images or annotations")


def add_predict_options(parser: argparse.ArgumentParser, *, output_help: str) -> None:
    """``--output``, ``--format`` and ``--skip-invalid`` of a predict action."""
    parser.add_argument("--output", metavar="DIR", help=output_help)
    parser.add_argument("--format", choices=("table", "csv", "json"), default="table",
                        help="what to print (default: table)")
    parser.add_argument("--skip-invalid", action="store_true", help="report unreadable images and go on")


def print_result(args: argparse.Namespace, result: Any, formatter: Callable[[Any], str], *,
                 wrote: Callable[[Path], str] | None = None) -> int:
    """Print an ``evaluate`` (or ``score``) result: JSON with ``--json``, else ``formatter(result)``;
    with ``--output``, ``wrote(output folder)`` on stderr. Returns the exit status, 0.

    Example:
        >>> return print_result(args, metrics, format_metrics,  # doctest: +SKIP
        ...                     wrote=lambda out: f"{out / 'report.html'} and metrics.json")
    """
    print(json.dumps(result, indent=1) if args.json else formatter(result))
    if wrote is not None and getattr(args, "output", None):
        print(f"wrote {wrote(Path(args.output))}", file=sys.stderr)
    return 0


def print_rows(args: argparse.Namespace, rows: list[dict[str, Any]], formats: dict[str, Callable[[Any], str]], *,
               wrote: Callable[[Path], str] | None = None) -> int:
    """Print a ``predict`` command's ``rows`` in ``formats[args.format]``, what was written and how
    many files could not be read. Returns the exit status, 0."""
    print(formats[args.format](rows))
    if wrote is not None and args.output:
        print(f"wrote {wrote(Path(args.output))}", file=sys.stderr)
    report_skipped(rows)
    return 0


def report_skipped(rows: list[dict[str, Any]]) -> None:
    """Say on stderr how many files a prediction could not read."""
    skipped = sum("error" in r for r in rows)
    if skipped:
        print(f"skipped {skipped} unreadable file(s)", file=sys.stderr)
