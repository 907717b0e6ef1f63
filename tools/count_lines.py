"""Count the lines of issue #13's code set at a git revision or in the working tree.

Issue #13 ("one task contract") asks that "the trainers, task packages, configs, CLI,
evaluation runner and predict module together are smaller than today's 11,473 lines even with
export and serving added for three tasks". That number is ``wc -l`` (physical lines, blank lines
and docstrings included) of the ``.py`` files below at commit 9de7df0 (2026-11-23, the last
commit before the issue's work began), where it comes out at exactly 11,473:

* trainers: ``training/`` and, since the issue, its successor ``engine/`` (the one run engine);
* task packages of the four original tasks: ``localization/``, ``detection/``,
  ``segmentation/`` and, since the issue, ``classification/``; files of later tasks that live
  in them are left out (``detection/faster_rcnn.py``, ``two_stage_run.py``,
  ``two_stage_export.py``: two-stage detection, issue #14; ``detection/adapt.py``,
  ``adapt_run.py``: domain adaptation, issue #16; ``training/precise_bn.py``: batch-norm
  recalibration, issue #19);
* configs: ``config.py`` (the task configs live in their packages) and, since the issue, the
  task table ``tasks.py``;
* ``cli/``, the evaluation runner ``evaluation/run.py`` and the predict module ``predict.py``.

The per-task export checks (``*/export_check.py``) and served-page hooks added by the issue sit
inside the task packages and are counted. ``--wide`` also counts what the issue added outside
the set (``export/tasks.py``, ``evaluation/classes.py``), for information.

Example:
    python tools/count_lines.py --rev 9de7df0     # 11473 (the issue's number)
    python tools/count_lines.py                    # the working tree
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GROUPS = {
    "trainers": ["training/", "engine/"],
    "task packages": ["localization/", "detection/", "segmentation/", "classification/"],
    "configs": ["config.py", "tasks.py"],
    "cli": ["cli/"],
    "evaluation runner": ["evaluation/run.py"],
    "predict module": ["predict.py"],
}
WIDE = {"outside the set (--wide)": ["export/tasks.py", "evaluation/classes.py"]}
# later issues' files living in the set's folders (#14 two-stage detection, #16 domain
# adaptation, #19 batch-norm recalibration)
LEFT_OUT = {"detection/faster_rcnn.py", "detection/two_stage_run.py", "detection/two_stage_export.py",
            "detection/adapt.py", "detection/adapt_run.py", "training/precise_bn.py"}
PREFIX = "src/foveal/"


def _files(rev: str | None) -> list[str]:
    cmd = ["git", "ls-tree", "-r", "--name-only", rev, PREFIX] if rev else ["git", "ls-files", PREFIX]
    return subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True).stdout.split()


def _lines(rev: str | None, path: str) -> int:
    if rev is None:
        return len((ROOT / path).read_bytes().splitlines())
    text = subprocess.run(["git", "show", f"{rev}:{path}"], cwd=ROOT, check=True, capture_output=True).stdout
    return len(text.splitlines())


def count(rev: str | None = None, wide: bool = False) -> dict[str, dict[str, int]]:
    """``{group: {file: lines}}`` of the set (see the module docstring) at ``rev`` (None: the tree)."""
    groups = GROUPS | (WIDE if wide else {})
    files = [f for f in _files(rev) if f.endswith(".py") and f[len(PREFIX):] not in LEFT_OUT]
    out: dict[str, dict[str, int]] = {}
    for group, members in groups.items():
        chosen = [f for f in files if any(f[len(PREFIX):] == m or (m.endswith("/") and f[len(PREFIX):].startswith(m))
                                          for m in members)]
        out[group] = {f: _lines(rev, f) for f in chosen}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rev", help="a git revision (default: the working tree)")
    parser.add_argument("--wide", action="store_true", help="also count the issue's additions outside the set")
    parser.add_argument("--files", action="store_true", help="list every file with its count")
    args = parser.parse_args(argv)
    counted = count(args.rev, args.wide)
    total = 0
    for group, files in counted.items():
        n = sum(files.values())
        if group not in WIDE:
            total += n
        print(f"{group:<28} {n:>7,}")
        if args.files:
            for f, lines in sorted(files.items()):
                print(f"    {lines:>6}  {f[len(PREFIX):]}")
    print(f"{'total (the issue set)':<28} {total:>7,}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
