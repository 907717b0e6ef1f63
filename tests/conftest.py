"""Shared fixtures: quiet TensorFlow, a fresh Keras session per test, small real datasets."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Under xdist (`make test`: two workers on two cores) each worker computes on one intra-op thread:
# two workers each spinning up a thread per core made TensorFlow's pools wait on each other. Measured
# 2026-12-07 on the default tier, boosted: 533 -> 507 CPU-s in the tests, 314 -> 306 s of their wall
# time. TensorFlow reads it when its runtime starts (_frozen_imports below makes sure that happens),
# then it is removed: the tests' own subprocesses (the oneDNN crash reproduction) keep the default.
_ONE_INTRA_OP_THREAD = bool(os.environ.get("PYTEST_XDIST_WORKER")) and "TF_NUM_INTRAOP_THREADS" not in os.environ
if _ONE_INTRA_OP_THREAD:
    os.environ["TF_NUM_INTRAOP_THREADS"] = "1"

import numpy as np
import pytest

if os.environ.get("FOVEAL_CPU_PROFILE"):  # opt-in per-test CPU seconds; see tests/cpu_profile.py
    from cpu_profile import (  # noqa: F401
        pytest_collection_finish,
        pytest_fixture_setup,
        pytest_runtest_call,
        pytest_runtest_logreport,
        pytest_runtest_setup,
        pytest_runtest_teardown,
    )


SHARED_DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"


def _shared_reason(path: Path) -> str:
    return f"needs ../shared/datasets/{path.relative_to(SHARED_DATASETS).as_posix()}, which is absent here"


def requires_shared(*parts: str) -> pytest.MarkDecorator:
    """Skip marker for a test that reads ``../shared/datasets/<parts>``: skipped, with the path, when absent.

    Use it as ``@requires_shared("raccoon")``, after ``from conftest import requires_shared``."""
    path = SHARED_DATASETS.joinpath(*parts)
    return pytest.mark.skipif(not path.exists(), reason=_shared_reason(path))


def shared_dataset(*parts: str) -> Path:
    """The path ``../shared/datasets/<parts>``; skips the calling test (or fixture) with a message when absent."""
    path = SHARED_DATASETS.joinpath(*parts)
    if not path.exists():
        pytest.skip(_shared_reason(path))
    return path


@pytest.hookimpl(wrapper=True)
def pytest_collection(session):
    """Collect with the cyclic garbage collector off: collection imports TensorFlow, Keras and every test
    module, and the full collections that their allocations set off (8 per worker) each walk the
    hundreds of thousands of objects already imported, about 1 CPU-s per worker (measured 2026-12-07);
    what collection leaves is frozen once by ``_frozen_imports`` below."""
    import gc

    gc.disable()
    try:
        return (yield)
    finally:
        gc.enable()


@pytest.fixture(scope="session", autouse=True)
def _frozen_imports():
    """Move the objects of TensorFlow and Keras (some 360,000, alive until exit) out of the
    collector's sight, once per worker: a full ``gc.collect()`` walks every tracked object, which
    made each test's ``clear_session`` below cost about 0.5 s (minutes over the suite)."""
    import gc

    import keras  # noqa: F401
    import tensorflow

    if _ONE_INTRA_OP_THREAD:
        tensorflow.constant(0.0)  # starts the runtime (if collection did not), which reads the thread count
        os.environ.pop("TF_NUM_INTRAOP_THREADS", None)
    gc.collect()
    gc.freeze()
    yield
    gc.unfreeze()


@pytest.fixture(autouse=True)
def _fresh_keras_session(_frozen_imports):
    yield
    import keras

    keras.backend.clear_session()  # layer-name counters and global state reset; gc.collect() of the test's garbage


_FULL_COLLECT_AFTER_BYTES = 1 << 30  # RSS growth since the last full collection that calls for another
_rss_at_full_collect = 0


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):  # not Linux: count objects instead (about 1 kB each)
        import gc

        return gc.get_freeze_count() * 1024


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """After each test (its fixtures released), collect its garbage and freeze what survives.

    Each ``clear_session`` above runs a full ``gc.collect()``, which walks every object not frozen;
    what tests leave alive (imported modules, caches, module-scoped fixtures, TensorFlow's function
    registry) grew to hundreds of thousands of objects over a worker's session, and the walk from
    about 0.01 s per test to 0.4 s (a quarter of the default tier's CPU time). Frozen, the survivors
    are skipped, so a test's collection walks only what that test made. A frozen cycle that dies
    later (a module fixture's model) is not collected while frozen, so at the end of a file, once
    the process has grown by 1 GiB since the last time, everything is unfrozen and collected once.
    """
    import gc

    global _rss_at_full_collect
    yield
    gc.collect()
    last_of_file = nextitem is None or nextitem.path != item.path
    if last_of_file and _rss_bytes() > _rss_at_full_collect + _FULL_COLLECT_AFTER_BYTES:
        gc.unfreeze()
        gc.collect()
        _rss_at_full_collect = _rss_bytes()
    gc.freeze()


def write_digits_folder(root: Path, per_class: int = 30, classes: int = 10, size: int = 16) -> Path:
    """Write scikit-learn's real digits as PNG files in ``root/<digit>/NNN.png`` and return root."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.round(digits.images * 255 / 16).astype(np.uint8)
    for cls in range(classes):
        folder = root / str(cls)
        folder.mkdir(parents=True, exist_ok=True)
        for i, idx in enumerate(np.flatnonzero(digits.target == cls)[:per_class]):
            Image.fromarray(images[idx]).resize((size, size), Image.NEAREST).save(folder / f"{i:03d}.png")
    return root


@pytest.fixture(scope="session")
def digits_folder(tmp_path_factory) -> Path:
    """A 300-image, 10-class folder dataset of real handwritten digits."""
    return write_digits_folder(tmp_path_factory.mktemp("digits_folder"))
