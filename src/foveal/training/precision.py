"""Mixed precision for training: the Keras dtype policy, loss scaling and float32 copies.

Micikevicius et al., "Mixed Precision Training", ICLR 2018.

Example:
    >>> with dtype_policy("bfloat16"):
    ...     pass  # build the model here
    >>> keras.mixed_precision.dtype_policy().name
    'float32'
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import keras

POLICIES = {"none": None, "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}


def policy_name(mixed_precision: str) -> str:
    """The Keras policy behind a ``--mixed-precision`` value ("float32" for none)."""
    if mixed_precision not in POLICIES:
        raise ValueError(f"unknown mixed precision {mixed_precision!r}")
    return POLICIES[mixed_precision] or "float32"


@contextmanager
def dtype_policy(mixed_precision: str) -> Iterator[str]:
    """Set the global dtype policy for ``mixed_precision`` inside the block, then restore the
    previous one (layers keep the policy they were built with)."""
    previous = keras.mixed_precision.dtype_policy()
    name = policy_name(mixed_precision)
    keras.mixed_precision.set_dtype_policy(name)
    try:
        yield name
    finally:
        keras.mixed_precision.set_dtype_policy(previous)


def with_loss_scaling(optimizer: keras.optimizers.Optimizer, mixed_precision: str) -> keras.optimizers.Optimizer:
    """Wrap ``optimizer`` in dynamic loss scaling for float16 (bfloat16 needs none)."""
    if mixed_precision != "float16" or isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        return optimizer
    return keras.optimizers.LossScaleOptimizer(optimizer)


def is_mixed(model: keras.Model) -> bool:
    """True when any layer computes in a dtype other than its variables'."""
    return any(layer.dtype_policy.compute_dtype != layer.dtype_policy.variable_dtype
               for layer in model._flatten_layers(include_self=True, recursive=True))


def with_policy(model: keras.Model, mixed_precision: str) -> keras.Model:
    """A copy of ``model`` (same weights) whose layers but the output ones use the policy of
    ``mixed_precision``."""
    name = policy_name(mixed_precision)
    config = model.get_config()
    # The layers that produce the outputs (the softmax) stay float32 under a mixed policy.
    outputs = {t._keras_history[0].name for t in model.outputs} if name != "float32" else set()
    for layer in config.get("layers", [config]):
        if layer.get("name", layer.get("config", {}).get("name")) not in outputs:
            _set_policy(layer, name)
    copy = model.__class__.from_config(config)
    copy.set_weights(model.get_weights())
    return copy


def as_float32(model: keras.Model) -> keras.Model:
    """``model`` itself when it is float32 throughout, else a float32 copy (for saving)."""
    return with_policy(model, "none") if is_mixed(model) else model


def _set_policy(config, name: str) -> None:
    """Replace every serialized layer dtype policy in a (nested) config by ``name``."""
    if isinstance(config, dict):
        dtype = config.get("dtype")
        if isinstance(dtype, dict) and dtype.get("class_name") in ("DTypePolicy", "FloatDTypePolicy"):
            dtype["config"]["name"] = name
        for value in config.values():
            _set_policy(value, name)
    elif isinstance(config, list):
        for value in config:
            _set_policy(value, name)


def float32_for_saving(model: keras.Model) -> keras.Model:
    """A float32 copy of a mixed-precision model with its optimizer and loss, so that ``last.keras``
    resumes; ``model`` itself when it is float32 throughout."""
    if not is_mixed(model):
        return model
    copy = as_float32(model)
    if getattr(model, "optimizer", None) is not None and getattr(model, "loss", None) is not None:
        optimizer = model.optimizer
        if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
            optimizer = optimizer.inner_optimizer
        copy.compile(optimizer=optimizer, loss=model.loss, metrics=None)
    return copy


def mixed_copy(model: keras.Model, mixed_precision: str, compile_fn) -> keras.Model:
    """A resumed (float32) ``model`` rebuilt under the run's mixed policy, compiled by
    ``compile_fn(model)``, with the saved optimizer state carried over."""
    mixed = with_policy(model, mixed_precision)
    saved = getattr(model, "optimizer", None)
    compile_fn(mixed)
    if saved is not None and saved.built:
        optimizer = mixed.optimizer
        inner = getattr(optimizer, "inner_optimizer", optimizer)
        inner.build(mixed.trainable_variables)
        if len(inner.variables) == len(saved.variables):
            for target, value in zip(inner.variables, saved.variables):
                target.assign(value)
    return mixed
