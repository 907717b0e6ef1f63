"""``foveal train``: from a :class:`TrainConfig` to a run folder with models and a report.

Classification is a plugin of the run engine
(:class:`~foveal.classification.task.ClassifyTask` on :func:`foveal.engine.run.train_task`):
the run folder, resume, checkpoints, phases, mixed precision, distribution and the time budget
are the engine's, the same for every task. A run folder holds ``config.yaml`` (the resolved
options), ``history.csv`` (with a ``phase`` column), ``best.keras`` and ``last.keras``
(self-describing model files), ``state.json`` (what ``--resume`` needs, with the ``phase`` and
the epoch it started at), ``metrics.json`` (test metrics), ``report.html`` and ``tensorboard/``.

Transfer learning (``--weights``, ``--freeze``, ``--fine-tune``): phase 1 trains ``epochs``
epochs with the ``freeze`` layers frozen (on cached bottleneck features of the frozen base with
``--bottleneck``); phase 2 unfreezes the ``fine_tune`` layers, recompiles with the lower
learning rate and trains ``fine_tune_epochs`` more. ``--recipe`` fills the options not given
explicitly before anything else, so ``config.yaml`` holds the final values.

Example:
    >>> from foveal.config import TrainConfig
    >>> result = train(TrainConfig(data="digits", model="lenet5", epochs=2, output="/tmp/runs"))  # doctest: +SKIP
    >>> result.metrics["accuracy"] > 0.5  # doctest: +SKIP
    True
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import keras

from foveal.classification.task import ClassifyTask, compile_classifier, input_shape_for, prepare_data
from foveal.config import TrainConfig
from foveal.engine.run import train_task
from foveal.training import callbacks as cb  # noqa: F401  (tests patch its InterruptGuard through here)
from foveal.training.runs import TrainResult, set_determinism, weights_of  # noqa: F401  (re-exported)

_compile = compile_classifier  # the name tests and notebooks have used


def train(config: TrainConfig | None = None, *, resume: str | Path | None = None,
          callbacks: list[keras.callbacks.Callback] | None = None, **overrides: Any) -> TrainResult:
    """Train a classifier and write a run folder; see the module docstring.

    Args:
        config: the options (defaults to :class:`TrainConfig`'s).
        resume: a run folder to continue from its last finished epoch; its ``config.yaml``
            is used, with ``overrides`` (e.g. ``epochs=20`` to train longer) on top.
        callbacks: extra Keras callbacks for every ``fit`` (e.g. a benchmark's per-epoch test
            evaluation; setting ``model.stop_training`` ends the phase early, as finished).
        **overrides: options that replace those of ``config``.

    Returns:
        A :class:`TrainResult`; ``interrupted`` is True when a signal stopped the run. On a
        multi-worker run's non-chief workers, ``metrics`` is None (the chief scores).

    Raises:
        FovealError: for user errors, including a worker that cannot be reached at start-up
            or is lost during training (``--distribute multi-worker``).
    """
    return train_task(ClassifyTask(), config, resume=resume, callbacks=callbacks, **overrides)


__all__ = ["TrainResult", "input_shape_for", "prepare_data", "replace", "train"]
