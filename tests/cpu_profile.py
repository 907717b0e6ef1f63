"""Opt-in CPU-time profile of the test suite (for keeping the default tier under its 5-minute goal).

Wall time on a shared machine says little; CPU seconds of the test process (every thread, TensorFlow's
included) do not depend on the load. Set ``FOVEAL_CPU_PROFILE=DIR`` and each pytest process (each
xdist worker) writes ``DIR/cpu-<worker>.jsonl``: one line per test phase (setup, call, teardown) and
one per fixture setup, with its CPU seconds (``time.process_time``) and wall seconds. Summarise with
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
