"""Build a registered architecture into a complete, self-describing Keras model."""

from __future__ import annotations

import inspect
from typing import Any

import keras

from foveal.errors import ConfigError, ModelError
from foveal.layers.preprocess import Preprocess
from foveal.models.auxiliary import assemble_model
from foveal.models.registry import MODELS


def build_model(
    name: str,
    *,
    num_classes: int = 10,
    input_shape: tuple[int, int, int] | None = None,
    include_top: bool = True,
    preprocessing: str | None = None,
    preprocessing_stats: tuple[list[float], list[float]] | None = None,
    l1: float = 0.0,
    l2: float = 0.0,
    **options: Any,
) -> keras.Model:
    """Build architecture ``name`` as a functional model that takes raw pixels (0..255).

    Args:
        name: a registered architecture (see ``foveal models``).
        num_classes: size of the softmax output.
        input_shape: (height, width, channels); defaults to the architecture's own.
        include_top: False returns the last feature map instead of class probabilities.
        preprocessing: a :data:`~foveal.layers.preprocess.PREPROCESSING_MODES` entry;
            defaults to the architecture's convention.
        preprocessing_stats: (mean, std) per channel in pixel units, for ``standardize``.
        l1, l2: weight penalties added to every convolution and dense kernel.
        **options: architecture options (e.g. ``dropout``, ``width``, ``stem``).

    Returns:
        An uncompiled ``keras.Model`` named after the architecture.

    Example:
        >>> model = build_model("lenet5", num_classes=10)
        >>> model.input_shape, model.output_shape
        ((None, 32, 32, 1), (None, 10))
    """
    entry = MODELS.get(name)
    shape = tuple(input_shape or entry.meta["input_shape"])
    if len(shape) != 3 or any(d is not None and int(d) <= 0 for d in shape):
        raise ConfigError(f"input_shape must be (height, width, channels), got {shape}")
    if num_classes < 2 and include_top:
        raise ConfigError(f"num_classes must be at least 2, got {num_classes}")
    accepted = inspect.signature(entry.obj).parameters
    unknown = sorted(k for k in options if k not in accepted)
    if unknown:
        allowed = sorted(k for k in accepted if k not in ("x", "num_classes", "include_top"))
        raise ConfigError(
            f"model {name!r} has no option(s) {', '.join(unknown)}",
            hint=f"its options are: {', '.join(allowed) or 'none'}",
        )
    mean, std = preprocessing_stats or (None, None)
    inputs = keras.Input(shape=shape, name="image")
    x = Preprocess(preprocessing or entry.meta.get("preprocessing", "rescale"), mean, std, name="preprocess")(inputs)
    try:
        outputs = entry.obj(x, num_classes=num_classes, include_top=include_top, **options)
    except ValueError as exc:  # e.g. an input too small for the number of poolings
        raise ModelError(f"cannot build {name!r} for input {shape}: {exc}") from None
    model = assemble_model(inputs, outputs, name=name)
    if l1 or l2:
        add_weight_penalty(model, l1=l1, l2=l2)
    return model


def add_weight_penalty(model: keras.Model, *, l1: float = 0.0, l2: float = 0.0) -> None:
    """Add an L1/L2 penalty to every kernel of ``model`` (in place, saved with the model).

    The regularizer is set on the layer (so it is in the saved config) and on the variable
    (so it counts in this session's loss without rebuilding).
    """
    reg = keras.regularizers.L1L2(l1=l1, l2=l2)
    # Recursive: inception modules and auxiliary heads hold kernels of their own.
    for layer in model._flatten_layers(include_self=False, recursive=True):
        for attr in ("kernel", "depthwise_kernel"):
            var = getattr(layer, attr, None)
            if var is not None and hasattr(layer, f"{attr}_regularizer"):
                setattr(layer, f"{attr}_regularizer", reg)
                var.regularizer = reg
