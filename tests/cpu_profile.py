"""Opt-in CPU-time profile of the test suite (for keeping the default tier under its 5-minute goal).

Wall time on a shared machine says little; CPU seconds of the test process (every thread, TensorFlow's
included) do not depend on the load. Set ``FOVEAL_CPU_PROFILE=DIR`` and each pytest process (each
xdist worker) writes ``DIR/cpu-<worker>.jsonl``: one line per test phase (setup, call, teardown) and
one per fixture setup, with its CPU seconds (``time.process_time``) and wall seconds. Summarise with
``python tools/cpu_profile_report.py DIR``. Without the variable nothing is recorded.

The same measurements order the files for ``pytest -n 2`` (:func:`order_by_cost`): the costliest
file first, so that the two workers finish together instead of one running the last heavy file
alone (``tools/cpu_profile_report.py DIR --write-costs tests/cpu_costs.json`` refreshes the table).

Example::

    FOVEAL_CPU_PROFILE=/tmp/prof python -m pytest -n 2 -q
    python tools/cpu_profile_report.py /tmp/prof --top 20
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

_DIR = os.environ.get("FOVEAL_CPU_PROFILE")
COSTS = Path(__file__).with_name("cpu_costs.json")
UNKNOWN_FILE_COST = 10.0  # a file the table lacks (a new one) goes early: it may be heavy, and a light one early costs nothing


def order_by_cost(items: list) -> None:
    """Reorder ``items`` in place, file by file, costliest file first (by ``tests/cpu_costs.json``:
    CPU seconds per test file of the default tier; a file it lacks counts
    :data:`UNKNOWN_FILE_COST`); the tests of a file keep their order. Longest-first is what keeps
    two workers that each take a whole file at a time (``--dist loadfile``) finishing together."""
    try:
        costs = json.loads(COSTS.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    first = {}
    for index, item in enumerate(items):
        first.setdefault(item.nodeid.split("::")[0], index)
    items.sort(key=lambda item: (-float(costs.get(item.nodeid.split("::")[0], UNKNOWN_FILE_COST)),
                                 first[item.nodeid.split("::")[0]]))
_out = None


def _write(record: dict) -> None:
    global _out
    if _out is None:
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        Path(_DIR).mkdir(parents=True, exist_ok=True)
        _out = open(Path(_DIR) / f"cpu-{worker}.jsonl", "a", buffering=1)  # noqa: SIM115 (open for the session)
    record["worker"] = os.environ.get("PYTEST_XDIST_WORKER", "main")
    _out.write(json.dumps(record) + "\n")


def _timed(kind: str, name: str):
    cpu0, wall0 = time.process_time(), time.perf_counter()
    outcome = yield
    _write({"kind": kind, "name": name, "cpu": time.process_time() - cpu0, "wall": time.perf_counter() - wall0,
            "end": time.time()})
    return outcome


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item):
    yield from _timed("setup", item.nodeid)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    yield from _timed("call", item.nodeid)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item):
    yield from _timed("teardown", item.nodeid)


@pytest.hookimpl(hookwrapper=True)
def pytest_fixture_setup(fixturedef, request):
    where = request.node.nodeid if fixturedef.scope == "function" else (
        f"{fixturedef.baseid or '<root>'}")
    yield from _timed(f"fixture:{fixturedef.scope}", f"{where}::{fixturedef.argname}")


def pytest_runtest_logreport(report):
    """Failures are recorded too (``-q`` output cut short by a time limit does not name them)."""
    if report.failed:
        _write({"kind": "failed", "name": report.nodeid, "when": report.when, "cpu": 0.0, "wall": 0.0,
                "end": time.time()})
