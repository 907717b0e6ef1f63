"""The optimizer every task compiles with: schedule, optimizer, loss scaling, XLA switch.

Task configs share the names of these options (``optimizer``, ``learning_rate``, ``schedule``,
``warmup_epochs``, ``weight_decay``, ``mixed_precision``, ``jit_compile``, ...); options a task
does not have take their defaults, so one function serves every task.

Example:
    >>> model.compile(optimizer=optimizer_for(cfg, model, steps_per_epoch=100), loss=...)  # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import keras


def optimizer_for(cfg: Any, model: keras.Model, steps_per_epoch: int, *, learning_rate: float | None = None,
                  epochs: int | None = None) -> keras.optimizers.Optimizer:
    """The optimizer of ``cfg`` with its learning-rate schedule; wrapped for loss scaling when
    ``model`` computes in float16."""
    from foveal.training.precision import is_mixed, with_loss_scaling
    from foveal.training.schedules import make_optimizer, make_schedule

    lr = make_schedule(cfg.schedule, learning_rate=cfg.learning_rate if learning_rate is None else learning_rate,
                       steps_per_epoch=steps_per_epoch, epochs=cfg.epochs if epochs is None else epochs,
                       warmup_epochs=getattr(cfg, "warmup_epochs", 0.0),
                       step_epochs=getattr(cfg, "step_epochs", 10), gamma=getattr(cfg, "gamma", 0.1),
                       min_learning_rate=getattr(cfg, "min_learning_rate", 0.0))
    optimizer = make_optimizer(cfg.optimizer, lr, momentum=getattr(cfg, "momentum", 0.9),
                               nesterov=getattr(cfg, "nesterov", False),
                               weight_decay=getattr(cfg, "weight_decay", None) or None,
                               bias_lr_scale=getattr(cfg, "bias_lr_scale", 1.0))
    if is_mixed(model):
        optimizer = with_loss_scaling(optimizer, cfg.mixed_precision)
    return optimizer


def jit_compile_of(cfg: Any) -> bool | str:
    """``model.compile``'s ``jit_compile`` for ``--jit-compile auto|on|off``."""
    return {"auto": "auto", "on": True, "off": False}[getattr(cfg, "jit_compile", "auto")]


__all__ = ["jit_compile_of", "optimizer_for"]
