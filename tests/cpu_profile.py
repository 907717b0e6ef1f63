"""Opt-in CPU-time profile of the test suite (for keeping the default tier under its 5-minute goal).

Wall time on a shared machine says little; CPU seconds of the test process (every thread, TensorFlow's
included) do not depend on the load. Set ``FOVEAL_CPU_PROFILE=DIR`` and each pytest process (each
xdist worker) writes ``DIR/cpu-<worker>.jsonl``: one line per test phase (setup, call, teardown) and
one per fixture setup, with its CPU seconds (``time.process_time``), the CPU seconds of the subprocesses it
waited for (``children``: a CLI run in a new Python, a server) and wall seconds, and one ``startup`` line per
process when its collection ends (CPU and wall seconds since the process started: TensorFlow's import,
the test modules' imports, assertion rewriting). Summarise with
``python tools/cpu_profile_report.py DIR``. Without the variable nothing is recorded.

The files are NOT reordered by these costs: sending the costliest files out first (tried
2026-12-07) made the idle default tier slower, 487-500 s against 395 s in xdist's own order (the
two heaviest training files at once on 2 cores: 910 against 714 CPU-s, TensorFlow's thread pools
spinning against each other).

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


_out = None


def _write(record: dict) -> None:
    global _out
    if _out is None:
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        Path(_DIR).mkdir(parents=True, exist_ok=True)
        _out = open(Path(_DIR) / f"cpu-{worker}.jsonl", "a", buffering=1)  # noqa: SIM115 (open for the session)
    record["worker"] = os.environ.get("PYTEST_XDIST_WORKER", "main")
    _out.write(json.dumps(record) + "\n")


def _children_cpu() -> float:
    t = os.times()
    return t.children_user + t.children_system


def _timed(kind: str, name: str):
    cpu0, child0, wall0 = time.process_time(), _children_cpu(), time.perf_counter()
    outcome = yield
    _write({"kind": kind, "name": name, "cpu": time.process_time() - cpu0, "children": _children_cpu() - child0,
            "wall": time.perf_counter() - wall0, "end": time.time()})
    return outcome


def _process_age() -> float:
    """Wall seconds since this process started (Linux: /proc; elsewhere 0)."""
    try:
        with open("/proc/self/stat") as f:
            start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        return uptime - start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


def pytest_collection_finish(session):
    _write({"kind": "startup", "name": "<collection>", "cpu": time.process_time(), "children": _children_cpu(),
            "wall": _process_age(), "end": time.time()})


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
