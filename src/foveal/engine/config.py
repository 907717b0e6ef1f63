"""``RunConfig``: the options every task's training run has (the engine reads only these); a
task's config subclasses it with its own fields and may redeclare one to change its default.

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
from foveal.errors import require_all

Optimizer = Literal["sgd", "adam", "adamw", "nadam", "rmsprop"]
Schedule = Literal["constant", "step", "exponential", "cosine", "one-cycle", "triangle"]
MixedPrecision = Literal["none", "bfloat16", "float16"]
JitCompile = Literal["auto", "on", "off"]
Distribute = Literal["none", "mirrored", "multi-worker"]
LrScaling = Literal["none", "linear", "sqrt"]


@dataclass(kw_only=True)  # keyword-only: a config's own fields keep their positions
class DistributionOptions:
    """The ``--distribute`` options (docs/distributed.md), shared by classification's
    ``TrainConfig`` and every task's :class:`RunConfig`."""

    distribute: Distribute = option(
        "none", "train on several devices or machines: 'mirrored' (every GPU of this machine, "
        "tf.distribute.MirroredStrategy) or 'multi-worker' (one process per machine, "
        "MultiWorkerMirroredStrategy; the cluster from --workers or TF_CONFIG); --batch-size is the "
        "global batch, split across the replicas", group="distribution")
    workers: list[str] | None = option(None, "multi-worker: HOST:PORT of every worker, the same list on "
                                       "each (worker 0 is the chief); else TF_CONFIG is read", group="distribution")
    worker_index: int | None = option(None, "multi-worker: which of --workers this process is (0-based)",
                                      group="distribution")
    worker_timeout: float = option(120.0, "multi-worker: seconds to wait at start-up for every worker to be "
                                   "reachable and to join (0: forever); a worker lost later is detected by "
                                   "TensorFlow's heartbeats within about 10 s", group="distribution")
    collective_timeout: float = option(0.0, "multi-worker: fail when one collective operation (an all-reduce) "
                                       "takes longer than this many seconds (0: no limit). For debugging hangs "
                                       "only: TensorFlow keeps a sleeping thread per operation for that long",
                                       group="distribution")
    devices: list[str] | None = option(None, "mirrored: the devices, e.g. GPU:0 GPU:1 (default: every GPU, "
                                       "else the CPU)", group="distribution")
    lr_scaling: LrScaling = option("none", "scale --learning-rate with the global batch: linear "
                                   "(x batch/reference, Goyal et al. 2017), sqrt (x sqrt(batch/reference)) or "
                                   "none", group="distribution")
    lr_reference_batch: int = option(64, "the batch size --learning-rate was chosen for (--lr-scaling)",
                                     group="distribution")


    def validate_distribution(self) -> None:
        checks = [
            (self.worker_timeout >= 0, "worker_timeout must not be negative"),
            (self.collective_timeout >= 0, "collective_timeout must not be negative"),
            (self.lr_reference_batch >= 1, "lr_reference_batch must be at least 1"),
            (self.distribute == "multi-worker" or (self.workers is None and self.worker_index is None),
             "workers and worker_index are for --distribute multi-worker"),
            (self.distribute == "mirrored" or self.devices is None, "devices is for --distribute mirrored"),
        ]
        require_all(checks)
        if self.workers is not None:
            from foveal.training.distribute import parse_workers

            parse_workers(self.workers, self.worker_index)


@dataclass
class RunConfig(DistributionOptions):
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
        val, test = getattr(self, "val_split", 0.0), getattr(self, "test_split", 0.0)  # tasks that split
        splits = " and ".join(f for f in ("val_split", "test_split") if hasattr(self, f)) or "val_split"
        checks = [
            (0.0 <= val < 1.0 and 0.0 <= test < 1.0, f"{splits} must be in [0, 1)"),
            (val + test < 1.0, "val_split + test_split must be below 1"),
            (self.epochs >= 1 and self.batch_size >= 1, "epochs and batch_size must be at least 1"),
            (self.learning_rate > 0, "learning_rate must be positive"),
            (min(self.warmup_epochs, self.weight_decay, self.time_budget) >= 0,
             "warmup_epochs, weight_decay and time_budget must not be negative"),
            (self.early_stopping >= 0, "early_stopping must not be negative"),
            (0 <= self.freeze_backbone_epochs < self.epochs, "freeze_backbone_epochs must be in [0, epochs)"),
        ]
        require_all(checks)
        self.validate_distribution()
        try:
            hw = getattr(self, "image_hw", None)  # each task's own size option, when it has one
        except (IndexError, TypeError, ValueError):
            hw = None  # a malformed size: the task's own checks name it
        if hw:
            from foveal.memcheck import check_input_batch

            check_input_batch(self.batch_size, hw, getattr(self, "channels", None) or 3)
