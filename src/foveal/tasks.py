"""The task table: one row per task, naming as ``"module:attribute"`` strings (imported only when
used, so ``foveal --help`` never loads TensorFlow) its config, engine plugin, the modules that
register its Keras objects, and its modes. Adding a task is its package plus one row here.

Example:
    >>> TASKS["detect"].modes
    ('train', 'evaluate', 'predict', 'export', 'benchmark', 'serve', 'inspect')
    >>> task_of_card_task("segment").title
    'semantic segmentation'
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from foveal.errors import ConfigError, ModelError

#: modes that take a model file as their first argument
MODEL_MODES = ("evaluate", "predict", "export", "benchmark", "serve", "inspect", "prune")
ALL_MODES = ("train", *MODEL_MODES)


def load_ref(ref: str) -> Any:
    """The object a ``"module:attribute"`` string names, imported now."""
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)


@dataclass(frozen=True)
class Task:
    """One row of the task table: ``name`` (the command's task word and the card's ``task``),
    ``config`` and ``plugin`` (``module:Class``), the modules that ``registers`` its Keras objects,
    its ``modes`` and, for each unsupported mode, what to run ``instead``."""

    name: str
    title: str
    config: str
    plugin: str
    registers: tuple[str, ...] = ()
    modes: tuple[str, ...] = ALL_MODES
    instead: tuple[tuple[str, str], ...] = ()

    load = staticmethod(load_ref)

    def config_class(self) -> type:
        return self.load(self.config)

    def register_objects(self) -> None:
        """Import the modules that register this task's layers, losses and models with Keras."""
        for module in self.registers:
            importlib.import_module(module)

    def command(self, mode: str) -> str:
        """The command line of ``mode`` for this task, e.g. ``foveal detect predict``."""
        return f"foveal {mode}" if self.name == "classify" else f"foveal {self.name} {mode}"

    @property
    def a_model(self) -> str:
        """``"an instance model (instance segmentation)"``: the task word with its article."""
        article = "an" if self.name[0] in "aeiou" else "a"
        return f"{article} {self.name} model ({self.title})"


_BOX_MODES = ALL_MODES[:-1]  # all but prune
_NO_PRUNE = (("prune", "magnitude pruning measures classification accuracy; prune the backbone as a "
                       "classifier (foveal prune CLASSIFIER.keras) and train this task on it"),)

_VIDEO_INSTEAD = (("prune", "magnitude pruning fine-tunes a classifier on images; prune the frame classifier the run "
                            "took as --backbone (foveal prune BACKBONE.keras --data IMAGES) and train the video "
                            "model on the pruned one (foveal video train --backbone PRUNED.keras)"),)

_INSTANCE_INSTEAD = (
    ("inspect", "inspect reads single-graph models; an instance model's layers are listed by `foveal instance "
                "train` when it starts"),
    *_NO_PRUNE,
)

TASKS: dict[str, Task] = {t.name: t for t in (
    Task("classify", "image classification", "foveal.config:TrainConfig",
         "foveal.classification.task:ClassifyTask"),
    Task("localize", "classification with localization", "foveal.localization.train:LocalizeConfig",
         "foveal.localization.task:LocalizeTask", ("foveal.localization.model",), _BOX_MODES, _NO_PRUNE),
    Task("detect", "object detection (YOLO, Faster R-CNN)", "foveal.detection.config:DetectConfig",
         "foveal.detection.task:DetectTask", ("foveal.detection.model", "foveal.detection.faster_rcnn"),
         _BOX_MODES, _NO_PRUNE),
    Task("segment", "semantic segmentation", "foveal.segmentation.train:SegmentConfig",
         "foveal.segmentation.task:SegmentTask", ("foveal.segmentation.losses", "foveal.segmentation.metrics"),
         _BOX_MODES, _NO_PRUNE),
    Task("instance", "instance segmentation (Mask R-CNN, U-Net + watershed)", "foveal.instance.config:InstanceConfig",
         "foveal.instance.task:InstanceTask",
         ("foveal.detection.faster_rcnn", "foveal.instance.mask_rcnn", "foveal.segmentation.losses"),
         ("train", "evaluate", "predict", "export", "benchmark", "serve"), _INSTANCE_INSTEAD),
    Task("enhance", "image enhancement (denoising, super-resolution)", "foveal.enhancement.config:EnhanceConfig",
         "foveal.enhancement.task:EnhanceTask", ("foveal.enhancement.models",)),
    Task("generate", "image generation (VAE, GAN, conditional GAN)", "foveal.generative.config:GenerateConfig",
         "foveal.generative.task:GenerateTask", ("foveal.generative.models",)),
    Task("video", "video clip classification", "foveal.video.config:VideoConfig",
         "foveal.video.task:VideoTask", ("foveal.video.models", "foveal.video.endtoend"), _BOX_MODES,
         _VIDEO_INSTEAD),
    Task("adapt", "domain adaptation (DANN, CORAL, MMD)", "foveal.adaptation.config:AdaptConfig",
         "foveal.adaptation.task:AdaptTask", ("foveal.adaptation.model",), ("train", "evaluate", "predict"),
         tuple((mode, "use the run's classifier.keras, the adapted classifier as a plain classifier file "
                      f"(`foveal {mode} RUN/classifier.keras`)") for mode in ("export", "benchmark", "serve",
                                                                               "inspect", "prune"))),
)}


def task_of_card_task(name: str | None) -> Task:
    """The table row of a card's ``task`` field (old cards without one are classifiers)."""
    task = TASKS.get(name or "classify")
    if task is None:
        raise ModelError(f"the model is of task {name!r}, which this foveal does not know "
                         f"(known: {', '.join(TASKS)})", hint="it may come from a newer foveal: upgrade foveal")
    return task


def model_task(path: str | Path) -> tuple[Task, bool]:
    """(task of the model file ``path``, whether it has a foveal card). Reads only the card."""
    from foveal.models.io import read_card

    card = read_card(path)
    return task_of_card_task(card.task if card is not None else None), card is not None


def check_mode(task: Task, mode: str, path: str | Path) -> None:
    """Refuse ``mode`` on a model of ``task`` that does not support it, saying what to run instead."""
    if mode in task.modes:
        return
    why = dict(task.instead).get(mode, f"{mode} does not apply to {task.title} models")
    raise ConfigError(f"{path} is {task.a_model}: `foveal {mode}` is not available for it",
                      hint=why)


def run_train(task_name: str, config: Any | None = None, **kwargs: Any):
    """Train a task from the Python API: ``run_train("detect", DetectConfig(data=...))``."""
    task = TASKS.get(task_name)
    if task is None:
        raise ConfigError(f"unknown task {task_name!r}", hint=f"tasks: {', '.join(TASKS)}")
    from foveal.engine.run import train_task

    return train_task(task.load(task.plugin)(), config, **kwargs)


def trainer(task_name: str, name: str, what: str) -> Callable[..., Any]:
    """A task package's public training function: :func:`foveal.engine.run.train_task` with the
    task's plugin.

    Example:
        >>> train_localizer = trainer("localize", "train_localizer", "a localizer")
        >>> train_localizer.__name__
        'train_localizer'
    """

    def train(config: Any | None = None, *, resume: str | Path | None = None, callbacks: list[Any] | None = None,
              **overrides: Any) -> Any:
        return run_train(task_name, config, resume=resume, callbacks=callbacks, **overrides)

    train.__name__ = train.__qualname__ = name
    train.__doc__ = (f"Train {what} and write a run folder; returns a TrainResult.\n\n"
                     f"``config`` defaults to {TASKS[task_name].config.split(':')[1]}'s defaults; ``resume`` is a "
                     "run folder to continue (``overrides`` such as ``epochs`` on top); ``callbacks`` are extra "
                     "Keras callbacks. See :func:`foveal.engine.run.train_task`.")
    return train
