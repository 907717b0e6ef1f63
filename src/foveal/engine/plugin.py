"""The hooks a task gives the run engine: what only the task knows (data, model, compilation,
pipelines, card, callbacks, scoring); the rest of a run is :mod:`foveal.engine.run`'s. After
Ultralytics' ``BaseTrainer`` and keras-hub's ``Task`` (docs/architecture.md).

Example:
    >>> class MyTask(TaskPlugin):  # doctest: +SKIP
    ...     name, config_class = "mytask", MyConfig
    ...     def load_data(self, cfg): ...
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

from foveal.errors import ConfigError
from foveal.training.runs import say

if TYPE_CHECKING:  # Keras and TensorFlow wait until a run starts, so `foveal --help` stays fast
    import keras

    from foveal.models import ModelCard


@dataclass
class RunData:
    """A task's splits (any readers' objects; ``val``/``test`` may be None), class names (by output
    index) and ``extra``: whatever else the task derived from the data (anchors, weights ...)."""

    train: Any
    val: Any | None
    test: Any | None
    class_names: list[str]
    extra: dict[str, Any] = field(default_factory=dict)

    def sizes(self) -> str:
        return ", ".join(f"{k} {len(v)}" for k, v in (("train", self.train), ("val", self.val),
                                                       ("test", self.test)) if v is not None)

    def scored_part(self) -> tuple[str, Any | None]:
        """The part the best weights are scored on: test, else validation."""
        return ("test", self.test) if self.test is not None else ("validation", self.val)


@dataclass(frozen=True)
class Phase:
    """One phase of a run's plan: its own trainable flags (None: leave them), learning rate and
    schedule length (None: the config's) and ``epochs``; ``number`` is stored in ``state.json``."""

    number: int
    epochs: int
    trainable: Callable[[Any], Any] | None = None
    learning_rate: float | None = None
    schedule_epochs: int | None = None
    title: str = ""


class TaskPlugin:
    """Base of a task's hooks; see the module docstring. Subclasses set ``name`` and
    ``config_class`` and implement the hooks that raise ``NotImplementedError``."""

    name: str = ""
    config_class: type = object
    #: what ``--data`` takes, for the error when it is missing
    data_help: str = "a dataset path"
    #: start of generated run-folder names (None: the task's name)
    run_name_prefix: str | None = None
    #: learning-rate options that ``--lr-scaling`` scales with the global batch
    learning_rate_fields: tuple[str, ...] = ("learning_rate",)
    #: record each epoch's phase number in the history (a ``phase`` column)
    history_phase: bool = False
    #: how the time budget's seconds are written in messages
    seconds_format: str = ".0f"

    # ------------------------------------------------------------------------------ set-up
    def prepare(self, config: Any | None, overrides: dict[str, Any],
                resume: str | Path | None) -> tuple[Any | None, dict[str, Any]]:
        """(config, overrides) before the run folder is resolved, e.g. with a recipe filled in."""
        return config, overrides

    def check(self, cfg: Any) -> None:
        """Fail fast on unknown names or impossible options, before any data is read."""

    def check_resumed(self, cfg: Any) -> None:
        """:meth:`check` for a resumed run (whose weights already are in ``last.keras``)."""
        self.check(cfg)

    def load_data(self, cfg: Any) -> RunData:
        raise NotImplementedError

    def epoch_examples(self, cfg: Any, data: RunData) -> int:
        """Training images in one epoch of :meth:`pipelines` (more than ``len(data.train)`` with an
        extra source mixed in); unused when epochs are :meth:`fit_steps` batches of a stream."""
        return len(data.train)

    def steps_per_epoch(self, cfg: Any, data: RunData) -> int:
        return max(1, math.ceil(self.epoch_examples(cfg, data) / cfg.batch_size))

    def build(self, cfg: Any, data: RunData, run_dir: Path) -> keras.Model:
        """A new model (not compiled: the engine calls :meth:`compile`)."""
        raise NotImplementedError

    def compile(self, cfg: Any, model: keras.Model, data: RunData, steps_per_epoch: int) -> None:
        raise NotImplementedError

    def restore(self, cfg: Any, data: RunData, model: keras.Model, card: ModelCard) -> None:
        """Take back what a resumed run derived from its data the first time (e.g. anchors)."""

    def ready(self, cfg: Any, data: RunData, model: keras.Model) -> None:
        """Last checks on the built or resumed model before training (e.g. its memory needs)."""

    def card(self, cfg: Any, data: RunData, model: keras.Model, run_dir: Path) -> ModelCard:
        raise NotImplementedError

    def describe(self, cfg: Any, data: RunData, model: keras.Model) -> list[str]:
        return [f"data: {cfg.data} ({len(data.class_names)} class(es); {data.sizes()})",
                f"model: {getattr(cfg, 'model', '?')}, input {model.input_shape[1:]}, "
                f"{model.count_params():,} parameters"]

    # ---------------------------------------------------------------------------- training
    def pipelines(self, cfg: Any, data: RunData, *, seed: int,
                  start_epoch: int | None = None) -> tuple[Any, Any | None]:
        """(train dataset, validation dataset or None); with ``start_epoch``, the training dataset
        is endless, epoch ``e`` shuffled and augmented from ``(seed, e)`` only
        (:func:`foveal.data.epochs.epoch_stream`)."""
        raise NotImplementedError

    def data_errors(self, cfg: Any):
        """A context that turns decoding errors met during ``fit`` into a DataError naming the data."""
        from foveal.data.decode import decode_errors_as_data_errors

        return decode_errors_as_data_errors(cfg.data)

    def fit_steps(self, cfg: Any, data: RunData) -> int | None:
        """``steps_per_epoch`` of ``fit`` for a stream of batches (None: :meth:`steps_per_epoch`)."""
        return None

    def monitor(self, cfg: Any, data: RunData) -> str:
        """The metric that picks ``best.keras`` (before the no-validation fallback)."""
        return cfg.monitor

    def monitor_without_validation(self, monitor: str) -> str:
        """What replaces a ``val_*`` monitor without validation data: the training metric."""
        return monitor[4:]

    def callbacks(self, cfg: Any, model: keras.Model, card: ModelCard, data: RunData,
                  history: dict[str, list[float]]) -> list[Any]:
        """Task callbacks that add to the epoch logs; they run before the checkpoint."""
        return []

    def fit_kwargs(self, cfg: Any, data: RunData) -> dict[str, Any]:
        """More arguments of ``fit`` on one process (e.g. ``class_weight``)."""
        return {}

    def phase_callbacks(self, cfg: Any, data: RunData, phase: Phase, steps_per_epoch: int) -> list[Any]:
        """Callbacks of one phase only (before the engine's own)."""
        return []

    def phases(self, cfg: Any) -> list[Phase]:
        """The run's plan: by default the backbone frozen for ``frozen_epochs``, then the whole model."""
        frozen = min(self.frozen_epochs(cfg), cfg.epochs)
        if not frozen:
            return [Phase(1, cfg.epochs)]

        def freeze(model: keras.Model) -> None:
            count = self.set_backbone_trainable(model, False)
            say(f"phase 1: backbone frozen ({count} layer(s)) for {frozen} epoch(s)")

        return [Phase(1, frozen, freeze), Phase(2, cfg.epochs - frozen, lambda m: self.set_backbone_trainable(m, True),
                                             title="phase 2: the whole model trains")]

    def fit_phase(self, run: Any, phase: Phase, start_epoch: int, restored: dict[str, Any] | None) -> bool | None:
        """Train ``phase`` the task's own way and return whether a signal interrupted it; None: the
        engine fits the model on :meth:`pipelines`."""
        return None

    supports_distribution: bool = False

    def distributed_batches(self, cfg: Any, data: RunData, dist: Any, *, epochs: tuple[int, int]) -> tuple[Any, Any]:
        """(training, validation or None) :class:`~foveal.training.distribute.Batches` for
        ``--distribute``: by default :meth:`pipelines`' global batches split between the replicas."""
        train, val = self.pipelines(cfg, data, seed=cfg.seed, start_epoch=epochs[0])
        train_b = dist.pipeline_batches(train, count=len(data.train), batch_size=cfg.batch_size,
                                        steps=self.fit_steps(cfg, data))
        val_b = None
        if val is not None and len(data.val) < dist.num_replicas:
            say(f"validation: {len(data.val)} image(s), fewer than the {dist.num_replicas} replicas: "
                "no validation loss (use more validation images)")
        elif val is not None:
            val_b = dist.pipeline_batches(val, count=len(data.val), batch_size=cfg.batch_size)

        say(f"data sharding: {train_b.sharding} (each global batch of {cfg.batch_size} split between the "
            f"{dist.num_replicas} replicas); {train_b.steps} steps per epoch"
            + (f"; a last batch of {train_b.dropped} image(s), fewer than the replicas, is left out"
               if train_b.dropped else ""))
        return train_b, val_b

    def frozen_epochs(self, cfg: Any) -> int:
        """Epochs trained first with the backbone frozen (0: none)."""
        return int(getattr(cfg, "freeze_backbone_epochs", 0) or 0)

    def set_backbone_trainable(self, model: keras.Model, trainable: bool) -> int:
        """Freeze or unfreeze the backbone (every layer with weights outside the task's head)."""
        from foveal.transfer.freeze import set_backbone_trainable

        return set_backbone_trainable(model, trainable, head_prefixes=self.head_prefixes)

    head_prefixes: tuple[str, ...] = ("head_", "neck_", "output_")

    # ---------------------------------------------------------------------------- results
    def finish(self, cfg: Any, model: keras.Model, card: ModelCard, data: RunData, run_dir: Path,
               history: dict[str, list[float]]) -> dict[str, Any] | None:
        """Score the best weights (already loaded) and write metrics and the report."""
        raise NotImplementedError


@contextmanager
def default_options_explained(given: dict[str, Any], default: dict[str, Any], flag: str, name_flag: str,
                              name: str) -> Iterator[None]:
    """A backbone lacking an option of the task's defaults (they suit resnet18) is refused with a
    hint to pass ``FLAG {}``."""
    try:
        yield
    except ConfigError as exc:
        if given != default or "has no option" not in exc.message:
            raise
        raise ConfigError(f"{exc.message} (the default {flag} {default} suit resnet18)",
                          hint=f"pass {flag} {{}} with {name_flag} {name}; {exc.hint}") from None


def training_summary(model: keras.Model, history: dict[str, list[float]]) -> dict[str, Any]:
    """The report-summary rows every task shows after training: parameters, epochs, training time."""
    return {"parameters": f"{model.count_params():,}", "epochs": len(history.get("loss", [])),
            "training time (s)": f"{sum(history.get('epoch_seconds', [])):.1f}"}
