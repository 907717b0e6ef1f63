"""Summarise a CPU profile of the test suite written by ``tests/cpu_profile.py``.

Prints the total CPU seconds per worker (the default tier's idle wall time on 2 cores is about the
larger of the two), the top tests (setup + call + teardown), the top fixtures and the top files.

Example::

    FOVEAL_CPU_PROFILE=/tmp/prof python -m pytest -n 2 -q
    python tools/cpu_profile_report.py /tmp/prof --top 20
    python tools/cpu_profile_report.py /tmp/prof --compare /tmp/prof-before
    python tools/cpu_profile_report.py /tmp/prof --write-costs costs.json  # CPU-s per test file

``estimated idle wall`` replays the files, costliest first, on two workers that each take the next
file when free (a lower bound: it ignores the two workers slowing each other), plus each worker's
start-up (importing TensorFlow and collecting, measured separately: ``--startup``).
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path


def load(folder: Path) -> list[dict]:
    """Every record of every ``cpu-*.jsonl`` in ``folder``."""
    records = []
    for path in sorted(folder.glob("cpu-*.jsonl")):
        for line in path.read_text().splitlines():
            if line.strip():
                records.append(json.loads(line))
    return records


def merged(folders: list[Path]) -> list[dict]:
    """The records of ``folders``; a test file measured in several keeps the last folder's records
    (e.g. a partial run's profile completed by a later one)."""
    by_file: dict[str, list[dict]] = {}
    for folder in folders:
        fresh: dict[str, list[dict]] = defaultdict(list)
        for r in load(folder):
            fresh[r["name"].split("::")[0]].append(r)
        by_file.update(fresh)
    return [r for records in by_file.values() for r in records]


def summarise(records: list[dict]) -> dict:
    tests: dict[str, float] = defaultdict(float)
    files: dict[str, float] = defaultdict(float)
    fixtures: dict[str, float] = defaultdict(float)
    workers: dict[str, float] = defaultdict(float)
    wall: dict[str, float] = defaultdict(float)
    children: dict[str, float] = defaultdict(float)
    startup: dict[str, tuple[float, float]] = {}
    for r in records:
        if r["kind"] == "failed":
            print(f"FAILED ({r['when']}): {r['name']}")
            continue
        if r["kind"] == "startup":
            startup[r["worker"]] = (r["cpu"], r["wall"])
            continue
        if r["kind"].startswith("fixture:"):
            fixtures[r["name"]] += r["cpu"]
            continue
        tests[r["name"]] += r["cpu"]
        files[r["name"].split("::")[0]] += r["cpu"]
        workers[r["worker"]] += r["cpu"]
        wall[r["worker"]] += r["wall"]
        if r.get("children"):
            children[r["name"]] += r["children"]
    return {"tests": tests, "files": files, "fixtures": fixtures, "workers": workers, "wall": wall,
            "children": children, "startup": startup}


def makespan(files: dict[str, float], workers: int) -> float:
    """When the last of ``workers`` finishes if each takes the next file, costliest first, when free."""
    loads = [0.0] * workers
    for cpu in sorted(files.values(), reverse=True):
        loads[loads.index(min(loads))] += cpu
    return max(loads)


def _top(d: dict[str, float], n: int, before: dict[str, float] | None = None) -> list[str]:
    rows = []
    for name, cpu in sorted(d.items(), key=lambda kv: -kv[1])[:n]:
        extra = f"  (before {before.get(name, 0.0):7.1f})" if before is not None else ""
        rows.append(f"{cpu:7.1f}{extra}  {name}")
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path, nargs="+",
                        help="profile folder(s); a test measured in several counts from the last one")
    parser.add_argument("--top", type=int, default=20)
    parser.add_argument("--compare", type=Path, help="an earlier profile's folder: its numbers beside")
    parser.add_argument("--write-costs", type=Path, help="write CPU-s per test file (JSON) here")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--startup", type=float, default=25.0,
                        help="seconds a worker spends before its first test (imports, collection)")
    args = parser.parse_args(argv)
    s = summarise(merged(args.folder))
    b = summarise(load(args.compare)) if args.compare else None
    n_tests = len(s["tests"])
    total = sum(s["workers"].values())
    print(f"{n_tests} tests, {total:.0f} CPU-s in all")
    for w in sorted(s["workers"]):
        cpu, wall = s["startup"].get(w, (float("nan"), float("nan")))
        print(f"  worker {w}: {s['workers'][w]:.0f} CPU-s, {s['wall'][w]:.0f} s wall in tests; "
              f"start-up to the end of collection {cpu:.1f} CPU-s, {wall:.1f} s wall")
    if s["children"]:
        print(f"  subprocesses the tests waited for: {sum(s['children'].values()):.0f} CPU-s (not in the totals)")
    if b:
        print(f"before: {len(b['tests'])} tests, {sum(b['workers'].values()):.0f} CPU-s")
    print(f"estimated idle wall on {args.workers} cores: {makespan(s['files'], args.workers) + args.startup:.0f} s "
          f"(longest-first replay of {len(s['files'])} files + {args.startup:.0f} s start-up)")
    for key in ("tests", "fixtures", "files", "children"):
        if not s[key]:
            continue
        print(f"\ntop {args.top} {key} (CPU-s):")
        print("\n".join(_top(s[key], args.top, b[key] if b else None)))
    if args.write_costs:
        table = {name: round(cpu, 1) for name, cpu in sorted(s["files"].items())}
        args.write_costs.write_text(json.dumps(table, indent=0) + "\n", encoding="utf-8")
        print(f"wrote {len(table)} file costs to {args.write_costs}")


if __name__ == "__main__":
    main()
