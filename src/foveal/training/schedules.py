"""Learning-rate schedules keyed on the optimizer's step count (so resuming keeps them).

Step, exponential and cosine come from Keras, with an optional linear warm-up; one-cycle (Smith &
Topin, "Super-Convergence", 2017) and airbench's triangle (Jordan, arXiv:2404.00498) are written
here. Plateau is a callback (:class:`~foveal.training.callbacks.ResumablePlateau`).
"""

from __future__ import annotations

import math
from typing import Any

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="foveal")
class OneCycle(keras.optimizers.schedules.LearningRateSchedule):
    """One-cycle learning rate over ``total_steps``: linear from ``peak / div_factor`` to ``peak``
    over ``pct_start`` of them, then cosine annealing to ``peak / final_div_factor``.

    Example:
        >>> s = OneCycle(0.1, total_steps=100)
        >>> round(float(s(30)), 4)
        0.1
    """

    def __init__(self, peak: float, total_steps: int, pct_start: float = 0.3,
                 div_factor: float = 25.0, final_div_factor: float = 1e4) -> None:
        self.peak, self.total_steps, self.pct_start = float(peak), int(total_steps), float(pct_start)
        self.div_factor, self.final_div_factor = float(div_factor), float(final_div_factor)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        up = max(1.0, self.pct_start * self.total_steps)
        down = max(1.0, self.total_steps - up)
        start, end = self.peak / self.div_factor, self.peak / self.final_div_factor
        warm = start + (self.peak - start) * ops.minimum(step / up, 1.0)
        t = ops.clip((step - up) / down, 0.0, 1.0)
        anneal = end + (self.peak - end) * 0.5 * (1.0 + ops.cos(math.pi * t))
        return ops.where(step < up, warm, anneal)

    def get_config(self) -> dict[str, Any]:
        return dict(peak=self.peak, total_steps=self.total_steps, pct_start=self.pct_start,
                    div_factor=self.div_factor, final_div_factor=self.final_div_factor)


@keras.saving.register_keras_serializable(package="foveal")
class Triangle(keras.optimizers.schedules.LearningRateSchedule):
    """Piecewise-linear learning rate: ``start`` x peak at step 0, the peak at ``peak_at`` of
    ``total_steps``, ``end`` x peak at the last step (held after it); the defaults are airbench94's.

    Example:
        >>> s = Triangle(1.0, total_steps=100)
        >>> [round(float(s(t)), 4) for t in (0, 23, 100)]
        [0.2, 1.0, 0.07]
    """

    def __init__(self, peak: float, total_steps: int, start: float = 0.2, end: float = 0.07,
                 peak_at: float = 0.23) -> None:
        self.peak, self.total_steps = float(peak), int(total_steps)
        self.start, self.end, self.peak_at = float(start), float(end), float(peak_at)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        top = float(max(1, int(self.peak_at * self.total_steps)))
        down = float(max(1.0, self.total_steps - top))
        rise = self.start + (1.0 - self.start) * ops.minimum(step / top, 1.0)
        fall = 1.0 + (self.end - 1.0) * ops.clip((step - top) / down, 0.0, 1.0)
        return self.peak * ops.where(step < top, rise, fall)

    def get_config(self) -> dict[str, Any]:
        return dict(peak=self.peak, total_steps=self.total_steps, start=self.start, end=self.end,
                    peak_at=self.peak_at)


@keras.saving.register_keras_serializable(package="foveal")
class Warmup(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up from 0 to ``after(warmup_steps)`` over ``warmup_steps``, then ``after``."""

    def __init__(self, after: keras.optimizers.schedules.LearningRateSchedule, warmup_steps: int) -> None:
        self.after, self.warmup_steps = after, int(warmup_steps)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        target = self.after(ops.maximum(step - self.warmup_steps, 0.0))
        frac = ops.minimum((step + 1.0) / float(max(1, self.warmup_steps)), 1.0)
        return ops.where(step < self.warmup_steps, target * frac, target)

    def get_config(self) -> dict[str, Any]:
        return {"after": keras.saving.serialize_keras_object(self.after), "warmup_steps": self.warmup_steps}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "Warmup":
        return cls(keras.saving.deserialize_keras_object(config["after"]), config["warmup_steps"])


def make_schedule(name: str, *, learning_rate: float, steps_per_epoch: int, epochs: int, warmup_epochs: float = 0.0,
                  step_epochs: int = 10, gamma: float = 0.1, min_learning_rate: float = 0.0):
    """A float (constant, plateau) or a ``LearningRateSchedule`` for the optimizer."""
    total = max(1, steps_per_epoch * epochs)
    warmup = int(round(warmup_epochs * steps_per_epoch))
    S = keras.optimizers.schedules
    if name in ("constant", "plateau"):
        schedule: Any = learning_rate
    elif name == "one-cycle":
        return OneCycle(learning_rate, total)
    elif name == "triangle":
        return Triangle(learning_rate, total)
    elif name == "step":
        drops = range(step_epochs, epochs, step_epochs)
        # PiecewiseConstantDecay switches *after* a boundary; the optimizer asks with the 0-based
        # step, so the first step of epoch d (step d * steps_per_epoch) must be past it.
        boundaries = [d * steps_per_epoch - 1 for d in drops]
        values = [learning_rate * gamma**i for i in range(len(boundaries) + 1)]
        schedule = S.PiecewiseConstantDecay(boundaries, values) if boundaries else learning_rate
    elif name == "exponential":
        schedule = S.ExponentialDecay(learning_rate, decay_steps=steps_per_epoch, decay_rate=gamma)
    elif name == "cosine":
        schedule = S.CosineDecay(learning_rate, max(1, total - warmup), alpha=min_learning_rate / learning_rate)
    else:
        raise ValueError(f"unknown schedule {name!r}")
    if warmup and name != "plateau":
        if not isinstance(schedule, S.LearningRateSchedule):
            schedule = S.PiecewiseConstantDecay([total], [learning_rate, learning_rate])
        return Warmup(schedule, warmup)
    return schedule


@keras.saving.register_keras_serializable(package="foveal")
class BiasScaledSGD(keras.optimizers.SGD):
    """SGD whose learning rate is ``bias_lr_scale`` times larger for normalisation shifts (``beta``),
    as in Jordan's airbench (arXiv:2404.00498).

    Example:
        >>> opt = BiasScaledSGD(0.1, momentum=0.9, bias_lr_scale=64.0)
        >>> opt.get_config()["bias_lr_scale"]
        64.0
    """

    def __init__(self, *args: Any, bias_lr_scale: float = 1.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.bias_lr_scale = float(bias_lr_scale)
        self._scaled_keys: set[Any] = set()

    def build(self, variables) -> None:
        if not self.built:
            self._scaled_keys = {self._var_key(v) for v in variables if v.path.rsplit("/", 1)[-1] == "beta"}
        super().build(variables)

    def update_step(self, gradient, variable, learning_rate):
        if self._var_key(variable) in self._scaled_keys:
            learning_rate = learning_rate * self.bias_lr_scale
        return super().update_step(gradient, variable, learning_rate)

    def get_config(self) -> dict[str, Any]:
        return super().get_config() | {"bias_lr_scale": self.bias_lr_scale}


def make_optimizer(name: str, learning_rate, *, momentum: float = 0.9, nesterov: bool = False,
                   weight_decay: float | None = None, bias_lr_scale: float = 1.0) -> keras.optimizers.Optimizer:
    """The optimizer ``name`` with ``learning_rate`` (a float or a schedule)."""
    O = keras.optimizers
    wd = {} if weight_decay is None else {"weight_decay": weight_decay}
    if name == "sgd":
        if bias_lr_scale != 1.0:
            return BiasScaledSGD(learning_rate, momentum=momentum, nesterov=nesterov, bias_lr_scale=bias_lr_scale, **wd)
        return O.SGD(learning_rate, momentum=momentum, nesterov=nesterov, **wd)
    if name == "adam":
        return O.Adam(learning_rate, **wd)
    if name == "adamw":
        return O.AdamW(learning_rate, **({"weight_decay": 0.004} | wd))
    if name == "nadam":
        return O.Nadam(learning_rate, **wd)
    if name == "rmsprop":
        return O.RMSprop(learning_rate, momentum=momentum, **wd)
    raise ValueError(f"unknown optimizer {name!r}")
