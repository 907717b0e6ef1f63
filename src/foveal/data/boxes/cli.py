"""Command-line entry points for box datasets: ``convert-boxes`` and ``validate-boxes``.

Wired by :mod:`foveal.cli.main` as ``foveal datasets convert-boxes SPEC --to FORMAT --output DIR
[--skip-invalid]`` and ``foveal datasets validate-boxes SPEC``.
"""

from __future__ import annotations

import argparse

from foveal.data.boxes.convert import FORMATS, convert_boxes
from foveal.data.boxes.validate import validate_boxes


def add_convert_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``convert-boxes``."""
    parser.add_argument("spec", help="the box dataset: VOC folder, COCO JSON/folder, YOLO folder or CSV")
    parser.add_argument("--to", required=True, choices=FORMATS, help="the format to write")
    parser.add_argument("--output", required=True, help="the folder to write")
    parser.add_argument("--skip-invalid", action="store_true", help="leave out images with problems")


def convert_command(args: argparse.Namespace) -> int:
    """Run ``convert-boxes``; DataError propagates to the CLI's error printer."""
    out = convert_boxes(args.spec, args.output, to=args.to, skip_invalid=args.skip_invalid)
    print(f"wrote {args.to} dataset to {out}")
    return 0


def add_validate_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``validate-boxes``."""
    parser.add_argument("spec", help="the box dataset to check")


def validate_command(args: argparse.Namespace) -> int:
    """Run ``validate-boxes``: print the report; exit status 1 when problems were found."""
    report = validate_boxes(args.spec)
    print(report.format())
    return 0 if report.ok else 1


__all__ = ["add_convert_arguments", "add_validate_arguments", "convert_command", "validate_command"]
