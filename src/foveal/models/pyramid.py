"""Feature pyramids measured from a built backbone, not named by hand.

A detection or segmentation head needs the backbone's feature maps by *stride*: level ``Pk``
is a map whose pixels step ``2**k`` input pixels (keras-hub's ``pyramid_outputs``, timm's
``feature_info``). foveal reads them off the built graph, so they stay right for every
option (stem, width, number of blocks) and every future architecture:

1. **Candidates are the graph's cut tensors**: the tensors every path from the input to the
   output passes through (a block's output, never a branch inside it). A residual unit's
   output is one; its convolutions are not, since the shortcut bypasses them.
2. **Each candidate's stride is measured**: the graph is run symbolically at two input sizes
   ``H`` and ``H + 256`` and the stride is ``256 / (h2 - h1)``. The difference cancels the
   borders that unpadded convolutions trim (LeNet's 32x32 input ends at 5x5 after two
   stride-2 poolings: ``32 / 5`` suggests 6.4, the difference gives 4).
3. **A level is the last cut tensor at its stride** (``position="last"``: the map as the
   network leaves that resolution, the deepest features it has there), or the first one
   (``position="first"``: the map as it enters it, e.g. VGG's pooling outputs that FCN taps).

Only power-of-two strides become levels; zero-padding outputs are skipped (they are
border-extended copies of their input).

Example:
    >>> from foveal.models import build_model
    >>> model = build_model("resnet18", input_shape=(64, 64, 3), include_top=False, width=16)
    >>> {level: t.shape[1] for level, t in feature_pyramid(model).items()}
    {'P2': 16, 'P3': 8, 'P4': 4, 'P5': 2}
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import keras

from foveal.errors import ModelError

#: Difference between the two probe input sizes; a multiple of every stride up to 256, so
#: the rounding of each strided layer cancels exactly.
PROBE_STEP = 256
#: Probe size for a model whose input height/width is not fixed and no size is given.
DEFAULT_PROBE = 224
POSITIONS = ("last", "first")


@dataclass(frozen=True)
class PyramidLevel:
    """One measured level of a feature pyramid.

    Attributes:
        name: ``"P{k}"`` with ``2**k == stride``.
        stride: input pixels per feature-map pixel (measured).
        tensor: the feature map in the model's graph.
        layer: name of the layer that produces it (for messages and reports).
    """

    name: str
    stride: int
    tensor: Any
    layer: str


def _producer(tensor) -> tuple[Any, Any]:
    """(operation, node) that produced ``tensor`` in its functional graph."""
    operation, node_index, _ = tensor._keras_history
    return operation, operation._inbound_nodes[node_index]


def _topological_tensors(model: keras.Model) -> tuple[list[Any], dict[int, list[Any]]]:
    """The model's tensors (input first, outputs last) and each tensor's parent tensors."""
    inputs = {id(t) for t in model.inputs}
    parents: dict[int, list[Any]] = {}
    order: list[Any] = []
    seen: set[int] = set()
    # Iterative depth-first post-order: deep networks exceed Python's recursion limit.
    stack: list[tuple[Any, bool]] = [(t, False) for t in reversed(model.outputs)]
    while stack:
        tensor, expanded = stack.pop()
        key = id(tensor)
        if expanded:
            if key not in seen:
                seen.add(key)
                order.append(tensor)
            continue
        if key in seen:
            continue
        if key in inputs:
            parents[key] = []
        else:
            _, node = _producer(tensor)
            parents[key] = list(node.input_tensors)
        stack.append((tensor, True))
        stack.extend((p, False) for p in reversed(parents[key]) if id(p) not in seen)
    return order, parents


def _cut_tensors(order: list[Any], parents: dict[int, list[Any]]) -> list[Any]:
    """The tensors every input-to-output path passes through, in graph order.

    In a topological order, a tensor is on every path exactly when no edge jumps over it
    (an edge from before it to after it would be a path around it).
    """
    position = {id(t): i for i, t in enumerate(order)}
    reach = list(range(len(order)))  # farthest position an edge from i leads to
    for j, tensor in enumerate(order):
        for parent in parents[id(tensor)]:
            i = position[id(parent)]
            reach[i] = max(reach[i], j)
    cuts, farthest = [], 0
    for i, tensor in enumerate(order):
        if farthest <= i:
            cuts.append(tensor)
        farthest = max(farthest, reach[i])
    return cuts


def _spatial_sizes(model: keras.Model, order: list[Any], tensors: list[Any],
                   size: tuple[int, int]) -> list[tuple[int, int]]:
    """Height and width of each of ``tensors`` for a ``size`` input, computed symbolically.

    The graph is replayed layer by layer with ``compute_output_spec``: ``keras.Model`` and
    ``keras.Function`` refuse an input of another size than the one they were built for.
    """
    source = model.inputs[0]
    specs = {id(source): keras.KerasTensor((1, size[0], size[1], source.shape[-1]), dtype=source.dtype)}
    try:
        for tensor in order:
            if id(tensor) in specs:
                continue
            operation, node = _producer(tensor)
            args, kwargs = node.arguments.fill_in(specs)
            outputs = keras.tree.flatten(operation.compute_output_spec(*args, **kwargs))
            for reference, spec in zip(node.outputs, outputs):
                specs[id(reference)] = spec
    except (ValueError, TypeError) as exc:
        raise ModelError(f"cannot measure the feature maps of {model.name!r} at input {size[0]}x{size[1]}: {exc}",
                         hint="give a larger input_size; a graph with layers tied to one input size "
                              "(Flatten, Reshape) cannot be measured") from None
    return [(int(specs[id(t)].shape[1]), int(specs[id(t)].shape[2])) for t in tensors]


def pyramid_levels(
    model: keras.Model, *, position: str = "last", input_size: tuple[int, int] | None = None,
) -> list[PyramidLevel]:
    """Every power-of-two stride level of ``model``'s graph, finest first.

    Args:
        model: a functional model with one image input (e.g. a headless
            :func:`~foveal.models.build_model`).
        position: ``"last"`` (the deepest map at each stride) or ``"first"`` (the earliest).
        input_size: (height, width) to measure at when the model's input size is not fixed
            (default 224x224); ignored otherwise.

    Returns:
        One :class:`PyramidLevel` per stride ``2**k``, ``k >= 0``, strides strictly increasing.

    Raises:
        ModelError: not a single-image-input functional model, or too small an input to
            measure at.
    """
    if position not in POSITIONS:
        raise ValueError(f"position must be one of {POSITIONS}, got {position!r}")
    if len(model.inputs) != 1 or len(model.inputs[0].shape) != 4:
        raise ModelError(f"model {model.name!r} is not a one-image-input model; its inputs are "
                         f"{[tuple(t.shape) for t in model.inputs]}")
    order, parents = _topological_tensors(model)
    input_id = id(model.inputs[0])
    candidates = [
        t for t in _cut_tensors(order, parents)
        if id(t) != input_id and len(t.shape) == 4
        and not isinstance(_producer(t)[0], keras.layers.ZeroPadding2D)
    ]
    if not candidates:
        return []
    fixed = tuple(model.inputs[0].shape[1:3])
    first = fixed if None not in fixed else tuple(int(d) for d in (input_size or (DEFAULT_PROBE, DEFAULT_PROBE)))
    # Both sizes symbolically, even for a fixed input: a layer may leave its static shape unknown.
    sizes_a = _spatial_sizes(model, order, candidates, first)
    sizes_b = _spatial_sizes(model, order, candidates, (first[0] + PROBE_STEP, first[1] + PROBE_STEP))
    by_stride: dict[int, Any] = {}
    for tensor, (ha, wa), (hb, wb) in zip(candidates, sizes_a, sizes_b):
        dh, dw = hb - ha, wb - wa
        if dh <= 0 or dh != dw or PROBE_STEP % dh:
            continue  # no spatial extent (pooled away) or not one integer stride both ways
        stride = PROBE_STEP // dh
        if stride & (stride - 1):
            continue  # not a power of two: no pyramid level
        if position == "last" or stride not in by_stride:
            by_stride[stride] = tensor
    return [
        PyramidLevel(f"P{stride.bit_length() - 1}", stride, tensor, _producer(tensor)[0].name)
        for stride, tensor in sorted(by_stride.items())
    ]


def level_stride(level: str) -> int:
    """The stride of pyramid level ``"Pk"``: ``2**k``.

    Example:
        >>> level_stride("P3")
        8
    """
    if not (level[:1] == "P" and level[1:].isdigit()):
        raise ValueError(f"a pyramid level is 'P' and a number, got {level!r}")
    return 2 ** int(level[1:])


def feature_pyramid(
    model: keras.Model,
    *,
    min_level: int = 2,
    max_level: int | None = None,
    position: str = "last",
    input_size: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """The backbone's feature maps keyed ``"P2"``, ``"P3"``... by measured stride.

    Args:
        model: a functional model with one image input, usually built with
            ``include_top=False``.
        min_level, max_level: the levels to keep (``Pk`` has stride ``2**k``; None: no limit).
        position: ``"last"`` or ``"first"`` map at each stride (see the module docstring).
        input_size: measuring size for a model whose input size is not fixed.

    Returns:
        ``{"P2": tensor, ...}`` finest first; tensors of ``model``'s own graph, so a head built
        on them shares the backbone's layers. Levels the backbone does not reach are absent.

    Example:
        >>> from foveal.models import build_model
        >>> base = build_model("resnet18", input_shape=(64, 64, 3), include_top=False, stem="cifar", width=16)
        >>> sorted(feature_pyramid(base, min_level=0))
        ['P0', 'P1', 'P2', 'P3']
    """
    levels = pyramid_levels(model, position=position, input_size=input_size)
    return {
        level.name: level.tensor for level in levels
        if level.stride >= 2**min_level and (max_level is None or level.stride <= 2**max_level)
    }


__all__ = ["DEFAULT_PROBE", "PROBE_STEP", "PyramidLevel", "feature_pyramid", "level_stride", "pyramid_levels"]
