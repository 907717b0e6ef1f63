"""The run engine: one training loop for every task plugin.

:func:`train_task` turns a :class:`~foveal.engine.plugin.TaskPlugin` and its options into a run
folder, the same for every task:

```
runs/NAME/
  config.yaml   resolved options (what --resume reads)
  history.csv   one row per epoch: losses, metrics, learning_rate, epoch_seconds
  best.keras    best weights by --monitor; last.keras: the last finished epoch with optimizer state
  state.json    epoch counter, callback state, best value, task
  metrics.json  the task's scores of the best weights on the test split (else validation)
  report.html   the task's report
  tensorboard/  with --tensorboard
```

What the engine gives every task: resume after SIGINT/SIGTERM/SIGKILL (from the last finished
epoch, shuffles not replayed), seeds and op determinism, early stopping with the best weights
restored, a wall-clock time budget, TensorBoard, mixed precision (float32 checkpoints),
``--jit-compile``, and a first phase with the backbone frozen.

Example:
    >>> from foveal.detection.task import DetectTask
    >>> result = train_task(DetectTask(), DetectConfig(epochs=2))  # doctest: +SKIP
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from foveal import configtools
from foveal.engine.plugin import RunData, TaskPlugin
from foveal.errors import ConfigError, TrainingInterrupted
from foveal.training.runs import TrainResult, mark, resolve_run, say, set_determinism, weights_of
from foveal.utils_io import atomic_write_text

if TYPE_CHECKING:
    import keras

    from foveal.models import ModelCard


def train_task(plugin: TaskPlugin, config: Any | None = None, *, resume: str | Path | None = None,
               callbacks: list[Any] | None = None, **overrides: Any) -> TrainResult:
    """Train ``plugin``'s model with ``config`` (or continue the run folder ``resume``).

    Args:
        plugin: the task's hooks.
        config: the options (default: the task config class's defaults).
        resume: a run folder to continue from its last finished epoch; its ``config.yaml`` is
            used, with ``overrides`` (e.g. ``epochs=80``) on top.
        callbacks: extra Keras callbacks for ``fit`` (setting ``model.stop_training`` ends the
            run early, as finished).
        **overrides: options that replace those of ``config``.

    Returns:
        A :class:`~foveal.training.runs.TrainResult`: ``interrupted`` is True when a signal
        stopped the run; ``metrics`` holds the scores of the best weights.
    """
    from foveal.memcheck import check_training_memory
    from foveal.models import load_model
    from foveal.training.precision import dtype_policy, mixed_copy

    if resume is None and not overrides.get("data", getattr(config, "data", None)):
        raise ConfigError(f"foveal {plugin.name} train needs --data", hint=f"pass --data with {plugin.data_help}")
    cfg, run_dir, state = resolve_run(plugin.config_class, config, resume, overrides, name_prefix=plugin.name)
    plugin.check(cfg)
    set_determinism(cfg.seed, cfg.deterministic)
    data = plugin.load_data(cfg)
    steps = plugin.steps_per_epoch(cfg, data)
    start_epoch = 0
    mixed = getattr(cfg, "mixed_precision", "none")
    if state is not None:
        model, saved_card = load_model(run_dir / "last.keras", compile=True)
        plugin.restore(cfg, data, model, saved_card)
        start_epoch = int(state["epoch"])
        if mixed != "none":
            model = mixed_copy(model, mixed, lambda m: plugin.compile(cfg, m, data, steps))
        elif getattr(model, "optimizer", None) is None:
            plugin.compile(cfg, model, data, steps)
        say(f"resuming {run_dir} after epoch {start_epoch} of {cfg.epochs}")
    else:
        with dtype_policy(mixed):
            model = plugin.build(cfg, data, run_dir)
        plugin.compile(cfg, model, data, steps)
    check_training_memory(model, cfg.batch_size)  # a clear refusal, not ResourceExhaustedError mid-fit
    run_dir.mkdir(parents=True, exist_ok=True)  # only now: a model that cannot be built leaves no folder
    atomic_write_text(run_dir / "config.yaml", configtools.to_yaml(cfg))
    card = plugin.card(cfg, data, model, run_dir)
    for line in plugin.describe(cfg, data, model):
        say(line)
    say(f"run folder: {run_dir}")

    history: dict[str, list[float]] = {k: list(v) for k, v in (state or {}).get("history", {}).items()}
    if start_epoch < cfg.epochs:
        fit = _Fit(plugin, cfg, data, model, card, run_dir, history, state, steps, list(callbacks or []))
        if fit.run(start_epoch):
            return TrainResult(run_dir, history, None, interrupted=True)
    best = run_dir / "best.keras"
    if best.is_file():
        model.load_weights(best)
    metrics = plugin.finish(cfg, model, card, data, run_dir, history)
    mark(run_dir, "done")
    return TrainResult(run_dir, history, metrics)


def monitor_mode(monitor: str) -> str:
    """``min`` for losses, ``max`` for scores."""
    return "min" if "loss" in monitor else "max"


def verbosity(cfg: Any) -> int:
    """Keras' ``verbose``: a live bar on a terminal, one line per epoch in a log, none without progress."""
    return (1 if sys.stdout.isatty() else 2) if getattr(cfg, "progress", True) else 0


def resume_command(task: str, run_dir: Path) -> str:
    return f"foveal {'' if task == 'classify' else task + ' '}train --resume {run_dir}"


class _Fit:
    """One run's ``fit`` calls with the engine's callbacks (and the frozen-backbone phase)."""

    def __init__(self, plugin: TaskPlugin, cfg: Any, data: RunData, model: keras.Model, card: ModelCard,
                 run_dir: Path, history: dict[str, list[float]], state: dict[str, Any] | None, steps: int,
                 extra: list[Any]) -> None:
        self.plugin, self.cfg, self.data, self.model, self.card = plugin, cfg, data, model, card
        self.run_dir, self.history, self.state, self.steps, self.extra = run_dir, history, state, steps, extra

    def run(self, start_epoch: int) -> bool:
        """Train from ``start_epoch`` to ``cfg.epochs``; True if a signal interrupted it."""
        from foveal.training import callbacks as cb
        from foveal.training.budget import TimeBudget

        cfg, plugin, model = self.cfg, self.plugin, self.model
        spent = float(sum(self.history.get("epoch_seconds", [])))
        budget_s = float(getattr(cfg, "time_budget", 0.0) or 0.0)
        if budget_s and spent >= budget_s:
            say(f"time budget of {budget_s:.0f} s already spent; scoring best.keras")
            return False
        train_ds, val_ds = plugin.pipelines(cfg, self.data, seed=cfg.seed + start_epoch)
        budget = TimeBudget(budget_s, spent=spent)
        callbacks, guard = self._callbacks(has_val=val_ds is not None, budget=budget)
        fit_args = dict(validation_data=val_ds, callbacks=callbacks, verbose=verbosity(cfg),
                        steps_per_epoch=plugin.fit_steps(cfg, self.data))
        started = time.perf_counter()
        try:
            with guard, plugin.data_errors(cfg):
                first = start_epoch
                frozen_epochs = min(plugin.frozen_epochs(cfg), cfg.epochs)
                if frozen_epochs > start_epoch:
                    count = plugin.set_backbone_trainable(model, False)
                    say(f"phase 1: backbone frozen ({count} layer(s)) for {frozen_epochs} epoch(s)")
                    plugin.compile(cfg, model, self.data, self.steps)
                    model.fit(train_ds, epochs=frozen_epochs, initial_epoch=first, **fit_args)
                    first = frozen_epochs
                    plugin.set_backbone_trainable(model, True)
                    plugin.compile(cfg, model, self.data, self.steps)
                    say("phase 2: the whole model trains")
                if not budget.exhausted and not model.stop_training and first < cfg.epochs:
                    model.fit(train_ds, epochs=cfg.epochs, initial_epoch=first, **fit_args)
        except TrainingInterrupted as exc:
            done = (cb.read_state(self.run_dir) or {}).get("epoch", 0)
            mark(self.run_dir, "interrupted")
            say(f"\ninterrupted by signal {exc.signum} after {done} finished epoch(s); "
                f"continue with: {resume_command(plugin.name, self.run_dir)}")
            return True
        if budget.exhausted:
            say(f"time budget of {budget_s:.0f} s reached after {len(self.history.get('loss', []))} epoch(s)")
        mark(self.run_dir, "trained", train_seconds=time.perf_counter() - started,
             time_budget_reached=budget.exhausted)
        return False

    def _callbacks(self, *, has_val: bool, budget: Any) -> tuple[list[Any], Any]:

        from foveal.models import save_model
        from foveal.training import callbacks as cb
        from foveal.training.precision import float32_for_saving

        cfg, plugin, model, run_dir = self.cfg, self.plugin, self.model, self.run_dir
        monitor = plugin.monitor(cfg, self.data)
        if not has_val and monitor.startswith("val_"):
            monitor = plugin.monitor_without_validation(monitor)
        mode = monitor_mode(monitor)
        restored = (self.state or {}).get("callbacks", {})
        stateful: dict[str, Any] = {}
        if getattr(cfg, "early_stopping", 0):
            stateful["early_stopping"] = cb.ResumableEarlyStopping(
                restored=restored.get("early_stopping"), monitor=monitor, mode=mode, patience=cfg.early_stopping,
                restore_best_weights=True,
                best_weights_loader=(lambda: weights_of(run_dir / "best.keras", model)) if self.state else None)
        if getattr(cfg, "schedule", None) == "plateau":
            stateful["plateau"] = cb.ResumablePlateau(
                restored=restored.get("plateau"), monitor=monitor, mode=mode, factor=cfg.gamma,
                patience=cfg.plateau_patience, min_lr=cfg.min_learning_rate)
        callbacks: list[Any] = plugin.callbacks(cfg, model, self.card, self.data, self.history)
        callbacks += list(stateful.values())
        callbacks.append(budget)
        card = self.card
        callbacks.append(cb.RunCheckpoint(run_dir, lambda m, p: save_model(float32_for_saving(m), p, card),
                                          monitor=monitor, mode=mode, history=self.history,
                                          best=(self.state or {}).get("best"), stateful=stateful,
                                          extra_state={"task": plugin.name}))
        if getattr(cfg, "tensorboard", False):
            callbacks.append(cb.tensorboard_callback(run_dir))
        callbacks += self.extra
        guard = cb.InterruptGuard()
        callbacks.append(guard)
        return callbacks, guard


__all__ = ["monitor_mode", "resume_command", "train_task", "verbosity"]
