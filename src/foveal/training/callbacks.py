"""Callbacks that make a run survive interruption: checkpoints, signals, resumable counters."""

from __future__ import annotations

import csv
import io
import json
import math
import shutil
import signal
import time
from pathlib import Path
from typing import Any, Callable

import keras
import numpy as np

from foveal.errors import TrainingInterrupted
from foveal.utils_io import atomic_path, atomic_write_text

STATE_FILE = "state.json"


def read_state(run_dir: Path) -> dict[str, Any] | None:
    path = Path(run_dir) / STATE_FILE
    return json.loads(path.read_text()) if path.is_file() else None


class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    """EarlyStopping whose ``wait``/``best`` survive a resume (best weights come from best.keras)."""

    def __init__(self, restored: dict[str, Any] | None = None, best_weights_loader: Callable[[], list] | None = None, **kw: Any):
        super().__init__(**kw)
        self._restored = restored or {}
        self._best_weights_loader = best_weights_loader

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        if self._restored:
            self.wait = int(self._restored.get("wait", 0))
            best = self._restored.get("best")
            self.best = self.best if best is None else float(best)
            self.best_epoch = int(self._restored.get("best_epoch", 0))
            if self.restore_best_weights and self._best_weights_loader is not None:
                self.best_weights = self._best_weights_loader()

    def state(self) -> dict[str, Any]:
        best = None if self.best is None or not np.isfinite(self.best) else float(self.best)
        return {"wait": int(self.wait), "best": best, "best_epoch": int(self.best_epoch)}


class ResumablePlateau(keras.callbacks.ReduceLROnPlateau):
    """ReduceLROnPlateau whose counters survive a resume (the rate itself is in the optimizer)."""

    def __init__(self, restored: dict[str, Any] | None = None, **kw: Any):
        super().__init__(**kw)
        self._restored = restored or {}

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        if self._restored:
            self.wait = int(self._restored.get("wait", 0))
            self.cooldown_counter = int(self._restored.get("cooldown_counter", 0))
            if self._restored.get("best") is not None:
                self.best = float(self._restored["best"])

    def state(self) -> dict[str, Any]:
        best = float(self.best) if np.isfinite(self.best) else None
        return {"wait": int(self.wait), "cooldown_counter": int(self.cooldown_counter), "best": best}


class RunCheckpoint(keras.callbacks.Callback):
    """After each finished epoch write, atomically, ``last.keras`` (by ``save(model, path)``),
    ``best.keras`` when ``monitor`` improves, ``state.json`` and ``history.csv``."""

    def __init__(self, run_dir: Path, save: Callable[[keras.Model, Path], Any], *, monitor: str,
                 mode: str, history: dict[str, list[float]], best: float | None,
                 stateful: dict[str, Any], extra_state: dict[str, Any], history_phase: bool = False):
        super().__init__()
        self.run_dir, self.save, self.monitor, self.mode = Path(run_dir), save, monitor, mode
        self.history, self.best, self.stateful, self.extra_state = history, best, stateful, extra_state
        self.history_phase = history_phase
        self.epoch_start = time.perf_counter()

    def _improved(self, value: float) -> bool:
        if value is None or not math.isfinite(value):
            return False
        if self.best is None:
            return True
        return value < self.best if self.mode == "min" else value > self.best

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        if self.history_phase:
            logs["phase"] = self.extra_state["phase"]
        logs["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        logs["epoch_seconds"] = time.perf_counter() - self.epoch_start
        for key, value in logs.items():
            self.history.setdefault(key, []).append(float(value))
        value = logs.get(self.monitor)
        improved = self._improved(value)
        if improved:
            self.best = float(value)
        # the model files before state.json: if we die in between, state.json still points at a
        # consistent older epoch and the newer weights are simply redone.
        last = self.run_dir / "last.keras"
        self.save(self.model, last)
        if improved:  # the same model and card: a copy of last.keras's bytes, not a second serialization
            with atomic_path(self.run_dir / "best.keras") as tmp:
                shutil.copyfile(last, tmp)
        state = {"epoch": epoch + 1,  # epochs completed
                 "best": self.best, "monitor": self.monitor, "history": self.history,
                 "callbacks": {k: cb.state() for k, cb in self.stateful.items()}, "status": "running",
                 **self.extra_state}
        atomic_write_text(self.run_dir / STATE_FILE, json.dumps(state, indent=1))
        atomic_write_text(self.run_dir / "history.csv", history_csv(self.history))


def history_csv(history: dict[str, list[float]]) -> str:
    """History as CSV text with an ``epoch`` column (1-based)."""
    keys = list(history)
    n = max((len(v) for v in history.values()), default=0)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["epoch", *keys])
    for i in range(n):
        writer.writerow([i + 1, *(f"{history[k][i]:.6g}" if i < len(history[k]) else "" for k in keys)])
    return out.getvalue()


class EpochSeeds(keras.callbacks.Callback):
    """Reseed the model's random layers (dropout, noise ...) from ``(seed, epoch)`` at the start
    of every epoch, so that a resumed run draws the masks an uninterrupted one would.

    Example:
        >>> model.fit(ds, epochs=3, callbacks=[EpochSeeds(42)])  # doctest: +SKIP
    """

    def __init__(self, seed: int) -> None:
        super().__init__()
        self.seed = int(seed)

    def on_epoch_begin(self, epoch, logs=None):
        generators = [g for layer in self.model._flatten_layers(include_self=True)
                      for g in getattr(layer, "_seed_generators", [])]
        for index, generator in enumerate(generators):
            mixed = (self.seed * 1_000_003 + int(epoch) * 7_919 + index * 104_729 + 1) % 2_147_483_647
            generator.state.assign(np.array([mixed, 0], dtype=generator.state.dtype))


class InterruptGuard(keras.callbacks.Callback):
    """Catch SIGINT/SIGTERM during ``fit`` (a context manager, also passed in ``callbacks``) and
    stop at the next batch boundary; a second signal gives up at once."""

    def __init__(self) -> None:
        super().__init__()
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def _handler(self, signum, frame):
        if self.signum is not None:  # second signal: give up at once
            signal.signal(signum, self._previous.get(signum, signal.SIG_DFL))
            raise KeyboardInterrupt
        self.signum = signum

    def __enter__(self) -> "InterruptGuard":
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[sig] = signal.signal(sig, self._handler)
            except ValueError:  # not the main thread: leave signals alone
                pass
        return self

    def __exit__(self, *exc) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)

    def _check(self, *args: Any, **kwargs: Any) -> None:
        if self.signum is not None:
            raise TrainingInterrupted(self.signum)

    on_train_batch_end = on_test_batch_end = on_epoch_begin = _check


def _as_scalars(logs: dict[str, Any] | None) -> dict[str, Any] | None:
    """Logs with one-element arrays made plain floats (distributed steps return shape (1,))."""
    if logs is None:
        return None
    return {k: float(np.asarray(v).reshape(-1)[0]) if np.size(v) == 1 else v for k, v in logs.items()}


class ScalarTensorBoard(keras.callbacks.TensorBoard):
    """Keras' TensorBoard callback, fed scalar logs (``--distribute`` gives them a batch axis)."""

    def on_train_batch_end(self, batch, logs=None):
        super().on_train_batch_end(batch, _as_scalars(logs))

    def on_test_end(self, logs=None):
        super().on_test_end(_as_scalars(logs))

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, _as_scalars(logs))


def tensorboard_callback(run_dir: Path) -> ScalarTensorBoard:
    """The run's TensorBoard logger, writing to ``RUN/tensorboard`` (no graph: it is large and slow)."""
    return ScalarTensorBoard(log_dir=str(Path(run_dir) / "tensorboard"), write_graph=False)
