"""The two-phase transfer-learning recipe: train a new head on a frozen base, then fine-tune.

Phase 1 trains with the layers of ``freeze`` frozen (typically ``base``: only the new
classifier learns, so its random start cannot wreck the pretrained features). Phase 2
unfreezes the ``fine_tune`` layers (e.g. the last block, or ``all``), recompiles with a lower
learning rate (default: a tenth) and trains on. Géron, *Hands-On Machine Learning*, 2nd ed.,
ch. 14 (Xception on tf_flowers) and Planche & Andres, *Hands-On Computer Vision with
TensorFlow 2*, ch. 4 describe it.

:class:`Phases` is the plan (from a :class:`~foveal.config.TrainConfig` or by hand);
:func:`two_phase_fit` runs it on ``tf.data`` datasets for notebook use, while ``foveal train``
runs it with checkpoints, resume and reports.

Example:
    >>> plan = Phases(freeze="base", fine_tune="all", epochs=3, fine_tune_epochs=5, learning_rate=1e-3)
    >>> plan.learning_rate_of(2)
    0.0001
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import keras

from foveal.transfer.freeze import freeze as freeze_layers
from foveal.transfer.freeze import unfreeze


@dataclass(frozen=True)
class Phases:
    """A two-phase training plan.

    Attributes:
        freeze: spec of the layers frozen in phase 1 (None: nothing frozen).
        fine_tune: spec of the layers unfrozen for phase 2 (None: ``all``).
        epochs: phase-1 epochs.
        fine_tune_epochs: phase-2 epochs (0: no phase 2).
        learning_rate: phase-1 peak learning rate.
        fine_tune_learning_rate: phase-2 peak rate (None: ``learning_rate / 10``).
        freeze_batchnorm: keep batch-norm layers frozen (inference mode) in phase 2.
    """

    freeze: str | None = None
    fine_tune: str | None = None
    epochs: int = 1
    fine_tune_epochs: int = 0
    learning_rate: float = 1e-3
    fine_tune_learning_rate: float | None = None
    freeze_batchnorm: bool = False

    @classmethod
    def from_config(cls, cfg: Any) -> "Phases":
        freeze = cfg.freeze if cfg.freeze is not None else ("base" if getattr(cfg, "bottleneck", False) else None)
        return cls(freeze=freeze, fine_tune=cfg.fine_tune, epochs=cfg.epochs,
                   fine_tune_epochs=cfg.fine_tune_epochs, learning_rate=cfg.learning_rate,
                   fine_tune_learning_rate=cfg.fine_tune_learning_rate, freeze_batchnorm=cfg.freeze_batchnorm)

    @property
    def two_phase(self) -> bool:
        return self.fine_tune_epochs > 0

    def learning_rate_of(self, phase: int) -> float:
        if phase == 1:
            return self.learning_rate
        return self.fine_tune_learning_rate if self.fine_tune_learning_rate is not None else self.learning_rate / 10

    def apply(self, model: keras.Model, phase: int) -> None:
        """Set the trainable flags of ``phase`` (1 or 2) from scratch; recompile afterwards."""
        unfreeze(model, "all")
        if self.freeze:
            freeze_layers(model, self.freeze)
        if phase == 2:
            unfreeze(model, self.fine_tune or "all", batch_norm=not self.freeze_batchnorm)

    def describe(self) -> str:
        text = f"phase 1: {self.epochs} epoch(s)" + (f" with {self.freeze!r} frozen" if self.freeze else "")
        if self.two_phase:
            text += (f"; phase 2: {self.fine_tune_epochs} epoch(s) with {self.fine_tune or 'all'!r} unfrozen "
                     f"at learning rate {self.learning_rate_of(2):g}")
        return text


def two_phase_fit(
    model: keras.Model,
    train: Any,
    validation: Any = None,
    *,
    phases: Phases,
    compile: Callable[[keras.Model, float], None] | None = None,
    callbacks: list[keras.callbacks.Callback] | None = None,
    verbose: int = 0,
) -> dict[str, list[float]]:
    """Run both phases with ``fit`` and return one history (with a ``phase`` entry per epoch).

    Args:
        model: a classifier (e.g. from :func:`~foveal.transfer.pretrained.build_pretrained`).
        train, validation: datasets of (images, one-hot labels), as ``make_pipeline`` gives.
        phases: the plan.
        compile: ``compile(model, learning_rate)``; default Adam with categorical
            cross-entropy and accuracy. Called at the start of each phase, since trainable
            flags only take effect in a freshly compiled model.

    Example:
        >>> history = two_phase_fit(model, train_ds, val_ds, phases=Phases(  # doctest: +SKIP
        ...     freeze="base", fine_tune="block5*", epochs=3, fine_tune_epochs=3))
    """
    compile = compile or _default_compile
    history: dict[str, list[float]] = {}
    done = 0
    for phase in (1, 2) if phases.two_phase else (1,):
        phases.apply(model, phase)
        compile(model, phases.learning_rate_of(phase))
        end = done + (phases.epochs if phase == 1 else phases.fine_tune_epochs)
        result = model.fit(train, validation_data=validation, epochs=end, initial_epoch=done,
                           callbacks=callbacks, verbose=verbose)
        for key, values in result.history.items():
            history.setdefault(key, []).extend(float(v) for v in values)
        history.setdefault("phase", []).extend([float(phase)] * len(next(iter(result.history.values()), [])))
        done = len(history["phase"])
    return history


def _default_compile(model: keras.Model, learning_rate: float) -> None:
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="categorical_crossentropy",
                  metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")])


__all__ = ["Phases", "two_phase_fit"]
