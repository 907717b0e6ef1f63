"""The run engine: one training loop (a run folder, resume, seeds, early stopping, time budget,
mixed precision, ``--distribute``, phases) for every task plugin (docs/architecture.md).

Example:
    >>> from foveal.detection.task import DetectTask
    >>> result = train_task(DetectTask(), DetectConfig(epochs=2))  # doctest: +SKIP
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from foveal import configtools
from foveal.engine.onednn_guard import ConstantBatchPlan, constant_batch_plan, full_batches_only
from foveal.engine.optim import build_before_fit
from foveal.engine.plugin import Phase, RunData, TaskPlugin
from foveal.errors import ConfigError, DataError, TrainingInterrupted
from foveal.training import distribute
from foveal.training.distribute import Distribution
from foveal.training.runs import TrainResult, lower_is_better, mark, resolve_run, say, set_determinism, weights_of
from foveal.utils_io import atomic_write_text

if TYPE_CHECKING:
    import keras

    from foveal.models import ModelCard


def train_task(plugin: TaskPlugin, config: Any | None = None, *, resume: str | Path | None = None,
               callbacks: list[Any] | None = None, **overrides: Any) -> TrainResult:
    """Train ``plugin``'s model with ``config`` (or continue the run folder ``resume``, its
    ``config.yaml`` with ``overrides`` on top) and return a :class:`~foveal.training.runs.TrainResult`."""
    config, overrides = plugin.prepare(config, overrides, resume)
    if resume is None and not overrides.get("data", getattr(config, "data", None)):
        raise ConfigError(f"foveal {plugin.name} train needs --data", hint=f"pass --data with {plugin.data_help}")
    prefix = plugin.name if plugin.run_name_prefix is None else plugin.run_name_prefix
    cfg, public_dir, state = resolve_run(plugin.config_class, config, resume, overrides, name_prefix=prefix)
    if cfg.distribute != "none" and not plugin.supports_distribution:
        raise ConfigError(f"foveal {plugin.name} train cannot --distribute yet",
                          hint="train on one process (leave out --distribute)")
    # A multi-worker strategy must exist before any other TensorFlow work in the process.
    dist = distribute.start(cfg.distribute, workers=cfg.workers, worker_index=cfg.worker_index,
                            timeout=cfg.worker_timeout, collective_timeout=cfg.collective_timeout,
                            devices=cfg.devices, say=say)
    try:
        dist.check_same_options(asdict(cfg))
        return _train(plugin, cfg, public_dir, state, dist, list(callbacks or []))
    finally:
        dist.cleanup()


def _train(plugin: TaskPlugin, cfg: Any, public_dir: Path, state: dict[str, Any] | None, dist: Distribution,
           extra: list[Any]) -> TrainResult:
    from foveal.memcheck import check_training_memory
    from foveal.models import load_model
    from foveal.training.precision import dtype_policy, mixed_copy

    (plugin.check if state is None else plugin.check_resumed)(cfg)
    set_determinism(cfg.seed, cfg.deterministic)
    data = plugin.load_data(cfg)
    if dist.active:
        if cfg.batch_size < dist.num_replicas:
            raise ConfigError(f"--batch-size {cfg.batch_size} is smaller than the {dist.num_replicas} replicas",
                              hint="the batch size is the global batch: give every replica at least one image")
        steps = distribute.batch_layout(len(data.train), cfg.batch_size, dist.num_replicas).steps
        if steps < 1:
            raise DataError(f"{cfg.data}: {len(data.train)} training image(s) cannot fill one step of "
                            f"{dist.num_replicas} replicas")
    else:
        steps = plugin.steps_per_epoch(cfg, data)
    saved_cfg, cfg = cfg, _scaled(plugin, cfg, dist)
    plan = plugin.phases(cfg)
    total = sum(p.epochs for p in plan)
    start_epoch, phase_no, phase_start = 0, 1, 0
    mixed = cfg.mixed_precision
    run_dir = dist.private_run_dir(public_dir)  # workers other than the chief write a private copy
    constant = None
    if state is not None:
        start_epoch = int(state["epoch"])
        phase_no, phase_start = _phase_at(plan, state, start_epoch)
        import foveal.training.schedules  # noqa: F401  the saved optimizer's schedules (Warmup ...) must be registered
        with dist.scope():
            model, saved_card = load_model(run_dir / "last.keras", compile=True)
            plugin.restore(cfg, data, model, saved_card)
            constant = _constant_batches(plugin, cfg, data, model, dist)
            steps = constant.steps if constant else steps
            current = _phase_cfg(cfg, next((p for p in plan if p.number == phase_no), plan[0]))
            if mixed != "none":
                model = mixed_copy(model, mixed, lambda m: plugin.compile(current, m, data, steps))
            elif getattr(model, "optimizer", None) is None:
                plugin.compile(current, model, data, steps)
        say(f"resuming {public_dir} after epoch {start_epoch} of {total}"
            + (f" (phase {phase_no})" if len(plan) > 1 else ""))
    else:
        with dist.scope(), dtype_policy(mixed):
            model = plugin.build(cfg, data, run_dir)
        constant = _constant_batches(plugin, cfg, data, model, dist)
        steps = constant.steps if constant else steps
    plugin.ready(cfg, data, model)
    check_training_memory(model, cfg.batch_size)  # a clear refusal, not ResourceExhaustedError mid-fit
    run_dir.mkdir(parents=True, exist_ok=True)  # only now: a model that cannot be built leaves no folder
    # The cluster is per launch, not part of the run: a resume names it again.
    atomic_write_text(run_dir / "config.yaml", configtools.to_yaml(replace(saved_cfg, workers=None, worker_index=None)))
    card = plugin.card(cfg, data, model, run_dir)
    if dist.active:
        card.training["distribute"] = {"strategy": cfg.distribute, "replicas": dist.num_replicas,
                                       "workers": dist.num_workers, "global_batch": cfg.batch_size}
    if cfg.learning_rate != saved_cfg.learning_rate:
        card.training["learning_rate"] = cfg.learning_rate
    if constant:
        card.training["constant_batches"] = constant.record()
    for line in plugin.describe(cfg, data, model):
        say(line)
    if constant:
        say(constant.message())
    say(f"run folder: {public_dir}")
    if dist.active:
        say(dist.describe(cfg.batch_size))
        if not dist.is_chief:
            say(f"worker {dist.worker_index} writes no run folder (the chief does); it keeps a private copy "
                f"in {run_dir} until the end")

    history: dict[str, list[float]] = {k: list(v) for k, v in (state or {}).get("history", {}).items()}
    run = Run(plugin, cfg, data, model, card, run_dir, history, steps, extra, dist, constant)
    if start_epoch < total or phase_no < plan[-1].number:
        if run.train(plan, start_epoch, phase_no, phase_start, state):
            _record_facts(run_dir, data, constant, None)
            return TrainResult(public_dir, history, None, interrupted=True)
    if not dist.is_chief:
        say(f"worker {dist.worker_index} done; the chief scores the model and writes the report")
        return TrainResult(public_dir, history, None)
    best = run_dir / "best.keras"
    if dist.active:  # score with a plain copy: evaluation under the strategy would need every worker
        model = load_model(best if best.is_file() else run_dir / "last.keras")[0]
    elif best.is_file():
        model.load_weights(best)
    metrics = plugin.finish(saved_cfg, model, card, data, run_dir, history)
    mark(run_dir, "done")
    _record_facts(run_dir, data, constant, metrics)
    return TrainResult(run_dir, history, metrics)


def _constant_batches(plugin: TaskPlugin, cfg: Any, data: RunData, model: keras.Model,
                      dist: Distribution) -> ConstantBatchPlan | None:
    """The oneDNN guard's plan: on one process, when an epoch is one pass over the training images."""
    if dist.active or plugin.fit_steps(cfg, data) is not None:
        return None
    return constant_batch_plan(model, examples=plugin.epoch_examples(cfg, data), batch_size=cfg.batch_size)


_SHOWN_UNDECODABLE = 5


def _record_facts(run_dir: Path, data: RunData, plan: ConstantBatchPlan | None,
                  metrics: dict[str, Any] | None) -> None:
    """Say and record in ``state.json`` and the metrics the files ``--skip-invalid`` left out
    mid-run (earlier sessions included) and the oneDNN guard's plan."""
    from foveal.data.decode import UNDECODABLE
    from foveal.training import callbacks as cb

    state = cb.read_state(run_dir)
    state_facts: dict[str, Any] = {}
    metric_facts: dict[str, Any] = {}
    names = dict.fromkeys((state or {}).get(UNDECODABLE, []))
    for part in (data.train, data.val, data.test):
        names.update(dict.fromkeys((getattr(part, "info", None) or {}).get(UNDECODABLE, [])))
    if names:
        found = list(names)
        shown = ", ".join(found[:_SHOWN_UNDECODABLE]) + (f" (and {len(found) - _SHOWN_UNDECODABLE} more)"
                                                          if len(found) > _SHOWN_UNDECODABLE else "")
        say(f"skipped {len(found)} file(s) that could not be decoded (--skip-invalid): {shown}")
        state_facts[UNDECODABLE], metric_facts["undecodable_images"] = found, len(found)
    if plan is not None:
        state_facts["constant_batches"] = metric_facts["constant_batches"] = plan.record()
    if state and state_facts:
        mark(run_dir, state.get("status", "done"), **state_facts)
    if metrics is not None and metric_facts:
        metrics.update(metric_facts)
        path = run_dir / "metrics.json"
        if path.is_file():
            atomic_write_text(path, json.dumps(json.loads(path.read_text()) | metric_facts, indent=1))


def _phase_at(plan: list[Phase], state: dict[str, Any], epoch: int) -> tuple[int, int]:
    """(phase, the epoch it started at) of a saved run (older run folders: found from ``epoch``)."""
    if "phase" in state:
        return int(state["phase"]), int(state.get("phase_start", 0))
    begin = 0
    for phase in plan[:-1]:
        if epoch < begin + phase.epochs:
            return phase.number, begin
        begin += phase.epochs
    return plan[-1].number, begin


def _phase_cfg(cfg: Any, phase: Phase) -> Any:
    """The options ``phase`` compiles with: its own learning rate and schedule length."""
    changes = {k: v for k, v in (("learning_rate", phase.learning_rate), ("epochs", phase.schedule_epochs))
               if v is not None}
    return replace(cfg, **changes) if changes else cfg


def _scaled(plugin: TaskPlugin, cfg: Any, dist: Distribution) -> Any:
    """``cfg`` with the learning rates of ``--lr-scaling`` (saying what was done when it matters)."""
    how, reference = cfg.lr_scaling, cfg.lr_reference_batch
    if how == "none" and not dist.active:
        return cfg
    say(distribute.scale_learning_rate(cfg.learning_rate, cfg.batch_size, reference, how)[1])
    if how == "none":
        return cfg
    return replace(cfg, **{name: distribute.scale_learning_rate(getattr(cfg, name), cfg.batch_size, reference, how)[0]
                           for name in plugin.learning_rate_fields if getattr(cfg, name) is not None})


def verbosity(cfg: Any) -> int:
    """Keras' ``verbose``: a live bar on a terminal, one line per epoch in a log, none without progress."""
    return (1 if sys.stdout.isatty() else 2) if cfg.progress else 0


def resume_command(task: str, run_dir: Path) -> str:
    """The command that continues ``run_dir``, e.g. ``foveal detect train --resume RUN``."""
    from foveal.tasks import TASKS, Task

    row = TASKS.get(task) or Task(task, task, "", None)
    return f"{row.command('train')} --resume {run_dir}"


class Run:
    """One run's phases and their ``fit`` calls with the engine's callbacks."""

    def __init__(self, plugin: TaskPlugin, cfg: Any, data: RunData, model: keras.Model, card: ModelCard,
                 run_dir: Path, history: dict[str, list[float]], steps: int, extra: list[Any],
                 dist: Distribution, constant: ConstantBatchPlan | None = None) -> None:
        self.plugin, self.cfg, self.data, self.model, self.card = plugin, cfg, data, model, card
        self.run_dir, self.history, self.steps, self.extra, self.dist = run_dir, history, steps, extra, dist
        #: the oneDNN guard's plan: training epochs of full batches only (None: as the task makes them)
        self.constant = constant
        self.budget_s = float(cfg.time_budget or 0.0)
        self.budget: Any = None

    @property
    def out_of_time(self) -> bool:
        """True once the time budget is spent (counting earlier sessions of a resumed run)."""
        if not self.budget_s:
            return False
        return (self.budget is not None and self.budget.exhausted) or \
            sum(self.history.get("epoch_seconds", [])) >= self.budget_s

    def seconds(self) -> str:
        return format(self.budget_s, self.plugin.seconds_format)

    def save(self, model: keras.Model, path: Path) -> None:
        """Write ``model`` (a float32 copy of a mixed one, so that it resumes) with the run's card."""
        from foveal.models import save_model
        from foveal.training.precision import float32_for_saving

        save_model(float32_for_saving(model), path, self.card)

    def train(self, plan: list[Phase], start: int, phase_no: int, phase_start: int,
              state: dict[str, Any] | None) -> bool:
        """Train the phases of ``plan`` from epoch ``start`` of phase ``phase_no``; True if a signal
        interrupted it."""
        from foveal.training import callbacks as cb

        if self.out_of_time:
            say(f"time budget of {self.seconds()} s already spent; scoring best.keras")
            return False
        started, fitted = time.perf_counter(), False
        for index, phase in enumerate(plan):
            if phase.number < phase_no:
                continue
            if phase.number > phase_no:  # the previous phase is over: say so in state.json first
                phase_no, phase_start, state = phase.number, start, None
                mark(self.run_dir, phase=phase_no, phase_start=phase_start, callbacks={})
            end = phase_start + phase.epochs
            if start >= end:
                continue
            fresh = start <= phase_start
            restored = None if fresh or state is None else state.get("callbacks", {})
            if phase.title:
                say(phase.title)
            interrupted = self.plugin.fit_phase(self, phase, start, restored)
            if interrupted is None:
                self._prepare(phase, resumed=not fresh)
                interrupted = self._fit(phase, start, end, phase_start, restored)
            fitted = True
            if interrupted:
                return True
            start = int((cb.read_state(self.run_dir) or {}).get("epoch", start))
            if self.out_of_time:
                break
        if self.budget is not None and self.budget.exhausted:
            say(f"time budget of {self.seconds()} s reached after {len(self.history.get('epoch_seconds', []))} epoch(s)")
        if fitted:
            mark(self.run_dir, "trained", train_seconds=time.perf_counter() - started,
                 time_budget_reached=self.out_of_time)
        return False

    def _prepare(self, phase: Phase, *, resumed: bool) -> None:
        """Set the phase's trainable flags and compile, unless a resumed phase's flags are unchanged
        (then its restored optimizer stays)."""
        model = self.model
        before = [v.path for v in model.trainable_variables]
        if phase.trainable is not None:
            phase.trainable(model)
        unchanged = before == [v.path for v in model.trainable_variables]
        if resumed and unchanged and getattr(model, "optimizer", None) is not None:
            return
        if resumed and not unchanged:
            say("the trainable layers differ from the saved run's: the optimizer starts afresh")
        with self.dist.scope():  # the optimizer belongs to the strategy it is created under
            self.plugin.compile(_phase_cfg(self.cfg, phase), model, self.data, self.steps)

    def _fit(self, phase: Phase, start: int, end: int, phase_start: int, restored: dict[str, Any] | None) -> bool:
        cfg, plugin, model = self.cfg, self.plugin, self.model
        loader = (lambda: weights_of(self.run_dir / "best.keras")) if restored is not None else None
        if not self.dist.active:
            # epochs start, start + 1, ... each shuffled by (seed, epoch): a resume replays them
            train_ds, val_ds = plugin.pipelines(cfg, self.data, seed=cfg.seed, start_epoch=start)
            if self.constant is not None:
                train_ds = full_batches_only(train_ds, self.constant.batch_size)
            callbacks = self.callbacks(model, phase, phase_start, has_val=val_ds is not None, restored=restored,
                                       best_weights_loader=loader)
            build_before_fit(model, train_ds.element_spec)  # one trace of the train step, not two
            return self.guarded(callbacks, lambda: model.fit(
                train_ds, validation_data=val_ds, epochs=end, initial_epoch=start, callbacks=callbacks,
                verbose=verbosity(cfg), steps_per_epoch=plugin.fit_steps(cfg, self.data) or self.steps,
                # the task's pipelines shuffle (seeded per epoch); Keras' default True only warns on a Dataset
                **({"shuffle": False} | plugin.fit_kwargs(cfg, self.data))))
        dist = self.dist
        with plugin.data_errors(cfg):  # in-memory data is decoded here, once
            train_b, val_b = plugin.distributed_batches(cfg, self.data, dist, epochs=(start, end))
        callbacks = self.callbacks(model, phase, phase_start, has_val=val_b is not None, restored=restored,
                                   best_weights_loader=loader)

        def fit() -> None:
            with dist.fitting(model, train_b.element_spec):
                model.fit(train_b.dataset, validation_data=val_b.dataset if val_b is not None else None,
                          epochs=end, initial_epoch=start, steps_per_epoch=train_b.steps,
                          validation_steps=val_b.steps if val_b is not None else None, callbacks=callbacks,
                          verbose=verbosity(cfg), shuffle=False)

        return self.guarded(callbacks, fit)

    def callbacks(self, fit_model: keras.Model, phase: Phase, phase_start: int, *, has_val: bool,
                  restored: dict[str, Any] | None, best_weights_loader: Any = None,
                  save: Any = None) -> list[Any]:
        """The callbacks of one ``fit`` of ``fit_model`` (the model, or a part that ``save`` saves
        whole); the last is the signal guard."""
        from foveal.training import callbacks as cb
        from foveal.training.budget import TimeBudget

        cfg, plugin = self.cfg, self.plugin
        monitor = plugin.monitor(cfg, self.data)
        if not has_val and monitor.startswith("val_"):
            monitor = plugin.monitor_without_validation(monitor)
        mode = "min" if lower_is_better(monitor) else "max"  # losses and distances; scores: max
        restored = restored or {}
        stateful: dict[str, Any] = {}
        if cfg.early_stopping:
            stateful["early_stopping"] = cb.ResumableEarlyStopping(
                restored=restored.get("early_stopping"), monitor=monitor, mode=mode, patience=cfg.early_stopping,
                restore_best_weights=True, best_weights_loader=best_weights_loader)
        if cfg.schedule == "plateau":
            stateful["plateau"] = cb.ResumablePlateau(
                restored=restored.get("plateau"), monitor=monitor, mode=mode, factor=cfg.gamma,
                patience=cfg.plateau_patience, min_lr=cfg.min_learning_rate)
        # the model's random layers of epoch e draw from (seed, e), as the data pipelines do
        callbacks: list[Any] = [cb.EpochSeeds(cfg.seed)]
        callbacks += plugin.callbacks(cfg, self.model, self.card, self.data, self.history)
        callbacks += plugin.phase_callbacks(cfg, self.data, phase, self.steps)
        callbacks += list(stateful.values())
        self.budget = TimeBudget(self.budget_s, spent=float(sum(self.history.get("epoch_seconds", []))))
        callbacks.append(self.budget)
        callbacks.append(cb.RunCheckpoint(self.run_dir, save or self.save, monitor=monitor, mode=mode,
                                          history=self.history, best=(cb.read_state(self.run_dir) or {}).get("best"),
                                          stateful=stateful, history_phase=plugin.history_phase,
                                          extra_state={"task": plugin.name, "phase": phase.number,
                                                       "phase_start": phase_start}))
        if cfg.tensorboard:
            callbacks.append(cb.tensorboard_callback(self.run_dir))
        callbacks += self.extra
        callbacks.append(cb.InterruptGuard())
        return callbacks

    def guarded(self, callbacks: list[Any], fit: Any) -> bool:
        """Call ``fit()`` under the signal guard (the last of ``callbacks``); True if a signal stopped it."""
        from foveal.training import callbacks as cb

        try:
            with callbacks[-1], self.plugin.data_errors(self.cfg):
                fit()
        except TrainingInterrupted as exc:
            done = (cb.read_state(self.run_dir) or {}).get("epoch", 0)
            mark(self.run_dir, "interrupted")
            say(f"\ninterrupted by signal {exc.signum} after {done} finished epoch(s); "
                f"continue with: {resume_command(self.plugin.name, self.run_dir)}")
            return True
        return False
