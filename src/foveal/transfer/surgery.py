"""Model surgery on flat functional models: cut, pop, graft a new classifier.

Every function returns a new ``keras.Model`` over the same input tensor, so the ``image``
input and the ``preprocess`` layer stay first and the graph stays flat. The new model shares
its layers (and so its weights) with the old one, as Keras does when a model is built from
another's tensors; clone first (``keras.models.clone_model``) for an independent copy.

The *base* of a classifier is everything up to its last feature map (the last layer with a
4-D output); the *head* is what follows (pooling or flatten, dense layers, the classifier).
Planche & Andres, *Hands-On Computer Vision with TensorFlow 2*, Packt 2019, ch. 4 ("model
surgery") describes the operations.

Example:
    >>> from foveal.models import build_model
    >>> model = build_model("lenet5", num_classes=10)
    >>> features = cut(model, "s4")
    >>> new = graft_head(features, 3, pooling="flatten")
    >>> [layer.name for layer in new.layers[-3:]], new.output_shape
    (['head_flatten', 'logits', 'probabilities'], (None, 3))
"""

from __future__ import annotations

import keras
from keras import layers

from foveal.errors import ModelError

POOLINGS = ("avg", "max", "flatten")


def _rank(tensor) -> int:
    return len(tensor.shape)


def base_output_layer(model: keras.Model) -> keras.layers.Layer:
    """The last layer (in graph order) whose output is a feature map (batch, H, W, C)."""
    last = None
    for layer in model.layers[1:]:
        output = layer.output
        if not isinstance(output, (list, tuple)) and _rank(output) == 4:
            last = layer
    if last is None:
        raise ModelError(f"model {model.name!r} has no layer with a 4-D (feature map) output")
    return last


def split_index(model: keras.Model) -> int:
    """Index in ``model.layers`` of the first head layer (``len(layers)`` when there is no head)."""
    boundary = base_output_layer(model)
    return [layer.name for layer in model.layers].index(boundary.name) + 1


def base_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """The feature extractor: every layer up to and including :func:`base_output_layer`."""
    return list(model.layers[: split_index(model)])


def head_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """The layers after the last feature map (pooling/flatten, dense layers, classifier)."""
    return list(model.layers[split_index(model):])


def cut(model: keras.Model, layer_name: str, *, name: str | None = None) -> keras.Model:
    """A model from ``model``'s input to the output of layer ``layer_name``.

    Raises:
        ModelError: no layer has that name (the message lists close names).
    """
    try:
        layer = model.get_layer(layer_name)
    except ValueError:
        import difflib

        names = [layer.name for layer in model.layers]
        close = difflib.get_close_matches(layer_name, names, n=3, cutoff=0.5)
        raise ModelError(f"model {model.name!r} has no layer {layer_name!r}",
                         hint=f"did you mean {', '.join(close)}?" if close else
                         "list the layers with model.summary()") from None
    return keras.Model(model.inputs, layer.output, name=name or f"{model.name}_to_{layer_name}")


def pop(model: keras.Model, n: int = 1) -> keras.Model:
    """``model`` without its last ``n`` layers (in graph order): cut at the layer before them.

    Example:
        >>> from foveal.models import build_model
        >>> pop(build_model("lenet5", num_classes=10), 2).layers[-1].name
        'f6'
    """
    keep = len(model.layers) - n
    if n < 1 or keep < 2:  # the input layer alone is no model
        raise ModelError(f"cannot pop {n} layer(s) from {model.name!r}, which has {len(model.layers)}")
    return cut(model, model.layers[keep - 1].name, name=model.name)


def _unique(name: str, taken: set[str]) -> str:
    candidate, i = name, 1
    while candidate in taken:
        candidate = f"{name}_{i}"
        i += 1
    taken.add(candidate)
    return candidate


def head_tensors(x, num_classes: int, *, dropout: float = 0.0, pooling: str = "avg", hidden: tuple[int, ...] = (),
                 taken: set[str] | None = None):
    """Pool a feature map (``avg``/``max``/``flatten``; vectors pass as they are), optional
    hidden ReLU layers and dropout, then ``logits`` and a float32 ``probabilities`` softmax."""
    if num_classes < 2:
        raise ModelError(f"num_classes must be at least 2, got {num_classes}")
    if pooling not in POOLINGS:
        raise ModelError(f"pooling must be one of {', '.join(POOLINGS)}, got {pooling!r}")
    taken = set() if taken is None else taken
    if _rank(x) == 4:
        pool = {"avg": layers.GlobalAveragePooling2D, "max": layers.GlobalMaxPooling2D,
                "flatten": layers.Flatten}[pooling]
        x = pool(name=_unique(f"head_{'flatten' if pooling == 'flatten' else pooling + '_pool'}", taken))(x)
    elif _rank(x) != 2:
        x = layers.Flatten(name=_unique("head_flatten", taken))(x)
    for i, units in enumerate(hidden, start=1):
        x = layers.Dense(units, activation="relu", kernel_initializer="he_normal",
                         name=_unique(f"head_dense{i}", taken))(x)
        if dropout:
            x = layers.Dropout(dropout, name=_unique(f"head_dense{i}_dropout", taken))(x)
    if dropout:
        x = layers.Dropout(dropout, name=_unique("head_dropout", taken))(x)
    x = layers.Dense(num_classes, name=_unique("logits", taken))(x)
    return layers.Activation("softmax", dtype="float32", name=_unique("probabilities", taken))(x)


def graft_head(base: keras.Model, num_classes: int, *, dropout: float = 0.0, pooling: str = "avg",
               hidden: tuple[int, ...] = (), name: str | None = None) -> keras.Model:
    """``base`` (ending in a feature map or vector) plus a new classifier.

    Args:
        base: e.g. from :func:`cut` or ``build_pretrained(..., include_top=False)``.
        num_classes: outputs of the new softmax.
        dropout: rate before each new dense layer (0: none).
        pooling: ``avg`` (global average), ``max`` or ``flatten`` for a 4-D feature map.
        hidden: sizes of hidden ReLU layers between pooling and the classifier.

    Returns:
        A model whose last layers are named like foveal's own (``logits``,
        ``probabilities``, the softmax computed in float32).
    """
    taken = {layer.name for layer in base.layers}
    outputs = head_tensors(base.output, num_classes, dropout=dropout, pooling=pooling, hidden=hidden, taken=taken)
    return keras.Model(base.inputs, outputs, name=name or base.name)


__all__ = ["POOLINGS", "base_layers", "base_output_layer", "cut", "graft_head", "head_layers", "head_tensors",
           "pop", "split_index"]
