"""``RunConfig``: the options every task's training run has, in one place.

A task's config subclasses it and adds its own fields beside its code (``DetectConfig`` in
:mod:`foveal.detection.config`, ...); it may redeclare a field to change its default or help.
The engine (:mod:`foveal.engine.run`) reads only these shared options, so a run feature added
here (a time budget, mixed precision, ...) is an option of every task at once.

Example:
    >>> from dataclasses import dataclass
    >>> @dataclass
    ... class MyConfig(RunConfig):
    ...     anchors: int = option(5, "anchor boxes")
    >>> MyConfig(data="boxes.json").epochs
    10
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from foveal.configtools import option
from foveal.errors import ConfigError

Optimizer = Literal["sgd", "adam", "adamw", "nadam", "rmsprop"]
Schedule = Literal["constant", "step", "exponential", "cosine", "one-cycle"]
MixedPrecision = Literal["none", "bfloat16", "float16"]
JitCompile = Literal["auto", "on", "off"]


@dataclass
class RunConfig:
    """Options shared by every task (see ``foveal TASK train --help``)."""

    # data
    data: str | None = option(None, "the training data (required)", group="data")
    cache: Literal["auto", "memory", "none"] = option("auto", "cache decoded images in memory ('auto': when "
                                                       "under 1 GiB)", group="data")
    skip_invalid: bool = option(False, "skip images with bad annotations or files (counted) instead of stopping",
                                group="data")

    # training
    epochs: int = option(10, "number of epochs", group="training")
    batch_size: int = option(16, "images per step", group="training")
    optimizer: Optimizer = option("adam", "optimizer", group="training")
    learning_rate: float = option(1e-3, "peak learning rate", group="training")
    schedule: Schedule = option("cosine", "learning-rate schedule", group="training")
    warmup_epochs: float = option(0.0, "linear warm-up epochs", group="training")
    weight_decay: float = option(0.0, "decoupled weight decay (adamw)", group="training")
    early_stopping: int = option(0, "stop after this many epochs without improvement of --monitor and restore "
                                 "the best weights (0: off)", group="training")
    monitor: str = option("val_loss", "metric that picks best.keras (and early stopping)", group="training")
    freeze_backbone_epochs: int = option(0, "epochs trained first with the backbone frozen (only the task's "
                                         "head learns; useful with pretrained backbone weights)", group="training")
    time_budget: float = option(0.0, "stop training after this many seconds and score the best weights "
                                "(0: no limit)", group="training")
    mixed_precision: MixedPrecision = option("none", "compute in bfloat16 (CPUs with AVX-512 BF16/AMX, recent "
                                             "GPUs) or float16 (GPUs); weights and checkpoints stay float32",
                                             group="training")
    jit_compile: JitCompile = option("auto", "XLA compilation of the train step: auto (Keras decides), on, off",
                                     group="training")
    seed: int = option(42, "random seed for splits, shuffling, augmentation and initialisation", group="training")
    deterministic: bool = option(True, "make runs repeatable on CPU (TensorFlow op determinism)", group="training")

    # outputs
    output: str = option("runs", "folder that receives the run folder", group="output")
    name: str | None = option(None, "run folder name (default: TASK-MODEL-DATA-TIMESTAMP)", group="output")
    tensorboard: bool = option(False, "write TensorBoard logs to RUN/tensorboard", group="output")
    progress: bool = option(True, "show progress bars", group="output")

    def validate_run(self) -> None:
        """Check the shared options' ranges (task configs call this from ``validate``); a missing
        ``data`` is the engine's to refuse, when a run starts."""
        checks = [
            (self.epochs >= 1 and self.batch_size >= 1, "epochs and batch_size must be at least 1"),
            (self.learning_rate > 0, "learning_rate must be positive"),
            (min(self.warmup_epochs, self.weight_decay, self.time_budget) >= 0,
             "warmup_epochs, weight_decay and time_budget must not be negative"),
            (self.early_stopping >= 0, "early_stopping must not be negative"),
            (0 <= self.freeze_backbone_epochs < self.epochs, "freeze_backbone_epochs must be in [0, epochs)"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        try:
            hw = getattr(self, "image_hw", None)  # each task's own size option, when it has one
        except (IndexError, TypeError, ValueError):
            hw = None  # a malformed size: the task's own checks name it
        if hw:
            from foveal.memcheck import check_input_batch

            check_input_batch(self.batch_size, hw, getattr(self, "channels", None) or 3)


__all__ = ["JitCompile", "MixedPrecision", "Optimizer", "RunConfig", "Schedule"]
