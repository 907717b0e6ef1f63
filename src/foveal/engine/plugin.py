"""The hooks a task gives the run engine.

A task (localize, detect, segment, ...) subclasses :class:`TaskPlugin` and fills in what only it
knows: how its data is read and split, how its model is built and compiled (the model owns its
loss and decoding through Keras hooks), its input pipelines, the facts its model card carries,
extra callbacks (e.g. a validation mAP) and how the best weights are scored and reported.
Everything else (run folder, ``config.yaml``, resume, seeds, early stopping, checkpoints, time
budget, TensorBoard, mixed precision, the frozen-backbone phase) is the engine's
(:mod:`foveal.engine.run`), so a feature added there serves every task.

The design follows Ultralytics' ``BaseTrainer`` (one loop, per-task hooks) and keras-hub's
``Task`` (the model owns loss and post-processing; Keras' ``fit`` is the only loop).

Example:
    >>> class MyTask(TaskPlugin):  # doctest: +SKIP
    ...     name, config_class = "mytask", MyConfig
    ...     def load_data(self, cfg): ...
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # Keras and TensorFlow wait until a run starts, so `foveal --help` stays fast
    import keras

    from foveal.models import ModelCard


@dataclass
class RunData:
    """A task's training data: its parts (any readers' objects) and class names.

    Attributes:
        train, val, test: the splits (``val``/``test`` may be None).
        class_names: output index -> class name.
        extra: whatever else the task derived from the data (anchors, channels, weights ...).
    """

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


class TaskPlugin:
    """Base of a task's hooks; see the module docstring. Subclasses set ``name`` and
    ``config_class`` and implement the hooks that raise ``NotImplementedError``."""

    name: str = ""
    config_class: type = object
    #: what ``--data`` takes, for the error when it is missing
    data_help: str = "a dataset path"

    # ------------------------------------------------------------------------------ set-up
    def check(self, cfg: Any) -> None:
        """Fail fast on unknown names or impossible options, before any data is read."""

    def load_data(self, cfg: Any) -> RunData:
        raise NotImplementedError

    def steps_per_epoch(self, cfg: Any, data: RunData) -> int:
        return max(1, math.ceil(len(data.train) / cfg.batch_size))

    def build(self, cfg: Any, data: RunData, run_dir: Path) -> keras.Model:
        """A new model (not compiled: the engine calls :meth:`compile`)."""
        raise NotImplementedError

    def compile(self, cfg: Any, model: keras.Model, data: RunData, steps_per_epoch: int) -> None:
        raise NotImplementedError

    def restore(self, cfg: Any, data: RunData, model: keras.Model, card: ModelCard) -> None:
        """Take back what a resumed run derived from its data the first time (e.g. anchors)."""

    def card(self, cfg: Any, data: RunData, model: keras.Model, run_dir: Path) -> ModelCard:
        raise NotImplementedError

    def describe(self, cfg: Any, data: RunData, model: keras.Model) -> list[str]:
        return [f"data: {cfg.data} ({len(data.class_names)} class(es); {data.sizes()})",
                f"model: {getattr(cfg, 'model', '?')}, input {model.input_shape[1:]}, "
                f"{model.count_params():,} parameters"]

    # ---------------------------------------------------------------------------- training
    def pipelines(self, cfg: Any, data: RunData, *, seed: int) -> tuple[Any, Any | None]:
        """(train dataset, validation dataset or None); ``seed`` already differs per resume."""
        raise NotImplementedError

    def data_errors(self, cfg: Any):
        """A context that turns decoding errors met during ``fit`` into a DataError naming the data."""
        from foveal.data.decode import decode_errors_as_data_errors

        return decode_errors_as_data_errors(cfg.data)

    def fit_steps(self, cfg: Any, data: RunData) -> int | None:
        """``steps_per_epoch`` for ``fit`` when the training dataset repeats (else None)."""
        return None

    def monitor(self, cfg: Any, data: RunData) -> str:
        """The metric that picks ``best.keras`` (before the no-validation fallback)."""
        return cfg.monitor

    def monitor_without_validation(self, monitor: str) -> str:
        """What replaces a ``val_*`` monitor when there is no validation data: the same metric on
        the training batches (override when the task computes it on validation data only)."""
        return monitor[4:]

    def callbacks(self, cfg: Any, model: keras.Model, card: ModelCard, data: RunData,
                  history: dict[str, list[float]]) -> list[Any]:
        """Task callbacks that add to the epoch logs; they run before the checkpoint."""
        return []

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


__all__ = ["RunData", "TaskPlugin"]
