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


def build_before_fit(model: keras.Model, element_spec: Any) -> None:
    """Create the optimizer's variables (and, for a functional model, those of its compiled loss
    and metrics) before ``fit``, outside any graph.

    Left to ``fit``, they are created while the train step is first traced: every variable then
    costs a ``tf.function`` of its own, and TensorFlow traces the whole step a second time once
    variables were created (a LeNet-5 fit of two epochs: 2.2 CPU-s, 0.9 built first). Keras builds
    the same way itself under a distribution strategy; the variables, their order and initial
    values, and so the numbers, are the ones the in-trace build makes (tested).

    A model trained by Keras' own ``train_step`` has the gradients of exactly
    ``model.trainable_variables`` applied, the list built for here. A model with a step of its own
    is built only when it says which variables each of its optimizers updates, through a method
    ``build_optimizers(element_spec)`` (a detector with its domain adapter, a GAN's two
    optimizers, a VAE, a domain-adaptation classifier); any other is left to ``fit``.
    ``element_spec``: the training dataset's, ``(x, y)`` or ``(x, y, sample_weight)``."""
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
    compiled loss and metrics (from symbolic tensors of ``element_spec``'s shapes, Keras' own
    build under a strategy) and the optimizer on ``model.trainable_variables``. For a model whose
    step of its own calls ``compute_loss``/``compute_metrics`` on what ``element_spec`` describes
    (give it the ``(x, y)`` those calls see)."""
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
