"""The optimizer every task compiles with: schedule, optimizer, loss scaling, XLA switch (options
a task's config lacks take their defaults).

Example:
    >>> model.compile(optimizer=optimizer_for(cfg, model, steps_per_epoch=100), loss=...)  # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import keras


def optimizer_for(cfg: Any, model: keras.Model, steps_per_epoch: int, *, learning_rate: float | None = None,
                  epochs: int | None = None, zero_decay_default: bool = True) -> keras.optimizers.Optimizer:
    """The optimizer of ``cfg`` with its learning-rate schedule; wrapped for loss scaling when
    ``model`` computes in float16. A ``weight_decay`` of None means the optimizer's default, and so
    does 0 with ``zero_decay_default`` (the task configs'; classification's 0 means none)."""
    from foveal.training.precision import is_mixed, with_loss_scaling
    from foveal.training.schedules import make_optimizer, make_schedule

    decay = getattr(cfg, "weight_decay", None)
    lr = make_schedule(cfg.schedule, learning_rate=cfg.learning_rate if learning_rate is None else learning_rate,
                       steps_per_epoch=steps_per_epoch, epochs=cfg.epochs if epochs is None else epochs,
                       warmup_epochs=getattr(cfg, "warmup_epochs", 0.0),
                       step_epochs=getattr(cfg, "step_epochs", 10), gamma=getattr(cfg, "gamma", 0.1),
                       min_learning_rate=getattr(cfg, "min_learning_rate", 0.0))
    optimizer = make_optimizer(cfg.optimizer, lr, momentum=getattr(cfg, "momentum", 0.9),
                               nesterov=getattr(cfg, "nesterov", False),
                               weight_decay=(decay or None) if zero_decay_default else decay,
                               bias_lr_scale=getattr(cfg, "bias_lr_scale", 1.0))
    if is_mixed(model):
        optimizer = with_loss_scaling(optimizer, cfg.mixed_precision)
    return optimizer


def build_before_fit(model: keras.Model, element_spec: Any) -> None:
    """Create the optimizer's variables (and a functional model's compiled loss and metrics)
    before ``fit``, outside any graph, so that the train step is traced once (docs/architecture.md).

    A model with a ``train_step`` of its own is built only through its ``build_optimizers(element_spec)``."""
    import keras

    optimizer = getattr(model, "optimizer", None)
    if optimizer is None or not model.built:
        return
    if type(model).train_step is not keras.Model.train_step:
        build = getattr(model, "build_optimizers", None)
        if callable(build):
            build(element_spec)
        return
    build_compiled(model, element_spec)


def build_compiled(model: keras.Model, element_spec: Any) -> None:
    """Build what Keras' own ``train_step`` creates on its first trace: a functional model's
    compiled loss and metrics (from ``element_spec``) and the optimizer."""
    try:
        from keras.src.models.functional import Functional
    except ImportError:  # a Keras that moved it: the optimizer alone
        Functional = ()  # noqa: N806
    if isinstance(model, Functional) and callable(getattr(model, "_symbolic_build", None)):
        # a functional model's outputs have one structure in training and not
        try:
            model._symbolic_build(data_batch=element_spec)
        except Exception:  # noqa: BLE001  an input Keras cannot make symbolic: fit builds what is left
            pass
    if not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)


def jit_compile_of(cfg: Any) -> bool | str:
    """``model.compile``'s ``jit_compile`` for ``--jit-compile auto|on|off``."""
    return {"auto": "auto", "on": True, "off": False}[getattr(cfg, "jit_compile", "auto")]
