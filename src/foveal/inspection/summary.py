"""Per-layer summary of a Keras model: output shape, parameters and FLOPs per image.

Counting conventions (all numbers are per image, i.e. for batch size 1):

* A multiply-add counts as **2 FLOPs**; ``multiplications`` reports the multiplies (the
  multiply-adds of convolutions and dense layers, plus the scalings of normalisations). A
  bias adds 1 FLOP per output element. These are the conventions of TensorFlow's profiler
  (``tf.compat.v1.profiler``), which the tests check against.
* Conv (1D/2D/3D): ``2 * out_positions * prod(kernel) * C_in / groups * C_out`` (+ bias).
  DepthwiseConv: ``2 * out_positions * prod(kernel) * C_in * multiplier``. SeparableConv:
  its depthwise part plus a 1x1 convolution. ConvTranspose: every input element is scattered
  into ``prod(kernel) * C_out`` outputs. Dense: ``2 * positions * inputs * units``.
* BatchNormalization (inference: a fixed affine map): 2 per element. Layer/Group
  normalisation (statistics per image): 8 per element.
* Pooling: one operation per window element per output (max: comparisons, average:
  additions); global pooling: one per input element.
* Add, Subtract, Maximum, Minimum, Multiply: ``(n_inputs - 1)`` per output element
  (Average adds one division); Concatenate: 0.
* Activation functions (``Activation``, ``ReLU``, softmax, activations fused into a Conv or
  Dense layer) count **0**: they are cheap next to the layers above, and the profiler does not
  count ReLU either. Reshaping, padding, dropout and (inactive) augmentation layers count 0.
* Preprocessing layers (``Rescaling``, ``Normalization``, foveal's ``Preprocess``): their
  per-element arithmetic (1 or 2 per element).
* Embedding: 0 (a table lookup). Dot: one multiply-add per output element and reduced position.
* foveal's layers: ``SqueezeExcite`` (mean, two dense layers, rescale), ``DepthwiseMaxPool``
  (1 per input element), ``LocalResponseNormalization`` (``2 * depth_radius + 5`` per element);
  the video layers ``Standardize`` (2 per element), ``TemporalDeltas`` (difference, absolute
  value and, with a mask, two mask products: 4 per input element), ``FrameMask`` (1 comparison per
  pixel) and ``ZeroPadded`` (1 product per element).
* Recurrent layers over ``T`` steps of ``d`` inputs and ``u`` units, every step counted in full
  (the loop runs the recurrent product at the first step too, on the zero initial state; the
  profiler counts the same on an unrolled graph): LSTM ``T * (8u(d + u) + 4u + 4u + 4u)`` (the two
  products, their sum, the bias, ``c = f*c + i*g`` and ``h = o*tanh(c)``); GRU ``T * (6u(d + u)
  + 3u + 3u or 6u + 5u)`` (one bias, or two with ``reset_after``; the reset product and the
  update ``z*h + (1 - z)*h~``); SimpleRNN ``T * (2u(d + u) + u + u)``. ConvLSTM: the LSTM's
  count with each product a "same" convolution at every output position. ``Bidirectional``: both
  directions. ``TimeDistributed``: ``T`` times the wrapped layer (or nested model) on one step.
* Bare Keras operations in a functional graph (a ``Masking`` layer's mask: ``NotEqual``, ``Any``):
  a comparison or a reduction counts 1 per input element, a cast or reshape 0.

Nested models (a functional or Sequential model used as a layer) are expanded: their row
holds the sums of their layers, which follow one level deeper with ``outer/inner`` names. Any
other layer with sublayers is one row: its parameters are its weights, its FLOPs the sum of the
rules above applied to each sublayer at the input shape Keras built it with. A layer with no
rule gets 0 FLOPs and ``flops_counted=False``, and the totals say how many such rows there are.
A layer called several times (a shared layer) has one row per call; its parameters are counted
on the first call only, so the totals equal ``model.count_params()``.

Example:
    >>> from foveal.models import build_model
    >>> rows = summarize(build_model("lenet5"))
    >>> totals(rows)["parameters"]
    61706
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterator, Sequence

import keras
import numpy as np

from foveal.errors import ModelError

Shape = tuple[int, ...]

FLOPS_CONVENTION = (
    "FLOPs per image: multiply-add = 2 FLOPs, bias = 1 per output; activations count 0; "
    "BN 2 per element; pooling 1 per window element"
)


@dataclass
class LayerInfo:
    """One call of one layer in the model graph.

    Attributes:
        name: layer name; ``outer/inner`` inside a nested model.
        class_name: the layer's class, e.g. ``Conv2D``.
        output_shape: shape of the output without the batch axis (a list of shapes for a
            layer with several outputs).
        trainable_params, non_trainable_params: weight counts (0 on a shared layer's later calls).
        flops: floating-point operations per image (see the module docstring).
        multiplications: multiplications per image (a conv's multiply-adds).
        output_elements: numbers in the output(s) per image.
        inbound: names of the layers feeding this call.
        depth: 0 at the top level, +1 inside each nested model.
        call: 0 for a layer's first call in the graph, 1 for the second, ...
        is_container: a nested model whose layers follow as rows of depth + 1.
        flops_counted: False when no FLOP rule knows this layer (its FLOPs are 0 here).
    """

    name: str
    class_name: str
    output_shape: Shape | list[Shape]
    trainable_params: int
    non_trainable_params: int
    flops: int
    multiplications: int
    output_elements: int
    inbound: list[str] = field(default_factory=list)
    depth: int = 0
    call: int = 0
    is_container: bool = False
    flops_counted: bool = True

    @property
    def params(self) -> int:
        return self.trainable_params + self.non_trainable_params

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        shape = self.output_shape
        data["output_shape"] = [list(s) for s in shape] if isinstance(shape, list) else list(shape)
        data["params"] = self.params
        return data


# --------------------------------------------------------------------------- graph walking


@dataclass
class GraphCall:
    """One node of a functional graph: a layer applied to some tensors."""

    layer: keras.layers.Layer
    inputs: list[Any]  # KerasTensors
    outputs: list[Any]
    parents: list[str]
    call: int


def is_nested_model(layer: Any) -> bool:
    """True for a functional or Sequential model used as a layer (its graph is expanded)."""
    return isinstance(layer, keras.Model) and _graph_owner(layer) is not None


def _graph_owner(model: keras.Model) -> keras.Model | None:
    """The functional model holding ``model``'s graph (a built Sequential keeps one inside)."""
    if hasattr(model, "_nodes_by_depth"):
        return model
    inner = getattr(model, "_functional", None)  # keras.Sequential once built
    return inner if inner is not None and hasattr(inner, "_nodes_by_depth") else None


def graph_calls(model: keras.Model) -> list[GraphCall]:
    """The layer calls of a functional/Sequential model in topological order (inputs first).

    Keras 3 keeps the graph in ``_nodes_by_depth`` (depth 0 = outputs); it is the structure
    ``model.summary()`` reads too, and the only one that lists every call of a shared layer.
    """
    owner = _graph_owner(model)
    if owner is None:
        raise ModelError(
            f"model {model.name!r} has no layer graph to inspect",
            hint="inspect a functional or built Sequential model (subclassed models have no graph)",
        )
    calls: list[GraphCall] = []
    seen_calls: dict[int, int] = {}
    for depth in sorted(owner._nodes_by_depth, reverse=True):
        for node in owner._nodes_by_depth[depth]:
            layer = node.operation
            index = seen_calls.get(id(layer), 0)
            seen_calls[id(layer)] = index + 1
            calls.append(GraphCall(
                layer=layer,
                inputs=list(node.input_tensors),
                outputs=list(node.outputs),
                parents=[p.operation.name for p in node.parent_nodes],
                call=index,
            ))
    return calls


def nested_inputs(model: keras.Model) -> list[Any]:
    """The input tensors of a nested model's own graph."""
    return list(_graph_owner(model).inputs)  # type: ignore[union-attr]


def nested_outputs(model: keras.Model) -> list[Any]:
    """The output tensors of a nested model's own graph."""
    return list(_graph_owner(model).outputs)  # type: ignore[union-attr]


def with_input_shape(model: keras.Model, input_shape: Sequence[int]) -> keras.Model:
    """A copy of ``model`` rebuilt on an input of ``input_shape`` (H, W, C), for counting.

    The copy has fresh weights; only shapes and weight counts are meant to be read from it.
    """
    shape = tuple(int(d) for d in input_shape)
    current = tuple(model.inputs[0].shape[1:]) if getattr(model, "inputs", None) else None
    if current == shape:
        return model
    try:
        new_input = keras.Input(shape=shape, name=model.inputs[0].name)
        # a model whose input structure is a list (e.g. the detector) wants the same structure
        return keras.models.clone_model(model, input_tensors=[new_input] if isinstance(model.input, list) else new_input)
    except Exception as exc:  # Keras raises ValueError or TypeError for incompatible shapes
        raise ModelError(
            f"model {model.name!r} cannot be rebuilt for input shape {shape}: {str(exc)[:200]}",
            hint="models ending in Flatten + Dense only accept the input size they were built for",
        ) from None


def require_known_input(model: keras.Model, input_shape: Sequence[int] | None) -> keras.Model:
    """``model`` itself, or rebuilt for ``input_shape``; refuse unknown spatial sizes."""
    if input_shape is not None:
        model = with_input_shape(model, input_shape)
    if not getattr(model, "inputs", None):
        raise ModelError(f"model {model.name!r} is not built", hint="call it on an input or build it first")
    for tensor in model.inputs:
        if any(d is None for d in tensor.shape[1:]):
            raise ModelError(
                f"model {model.name!r} accepts inputs of any size {tuple(tensor.shape[1:])}; "
                "sizes, FLOPs and memory need a fixed one",
                hint="pass input_shape=(height, width, channels) (CLI: --input-shape H W C)",
            )
    return model


# --------------------------------------------------------------------------- FLOP rules


def _shape(tensor: Any) -> Shape:
    return tuple(int(d) if d is not None else -1 for d in tensor.shape[1:])


def _elements(shape: Shape) -> int:
    return int(np.prod(shape, dtype=np.int64)) if shape else 1


def _channel_axis(layer: Any) -> int:
    return 0 if getattr(layer, "data_format", "channels_last") == "channels_first" else -1


def _spatial(layer: Any, shape: Shape) -> Shape:
    return shape[1:] if _channel_axis(layer) == 0 else shape[:-1]


def _bias(layer: Any, out: Shape) -> int:
    return _elements(out) if getattr(layer, "use_bias", False) else 0


def _conv(layer, ins, outs):
    cin = ins[0][_channel_axis(layer)]
    macs = _elements(_spatial(layer, outs[0])) * int(np.prod(layer.kernel_size)) * cin // layer.groups * layer.filters
    return 2 * macs + _bias(layer, outs[0]), macs


def _depthwise(layer, ins, outs):
    macs = _elements(outs[0]) * int(np.prod(layer.kernel_size))
    return 2 * macs + _bias(layer, outs[0]), macs


def _separable(layer, ins, outs):
    positions = _elements(_spatial(layer, outs[0]))
    mid = ins[0][_channel_axis(layer)] * layer.depth_multiplier
    macs = positions * mid * int(np.prod(layer.kernel_size)) + positions * mid * layer.filters
    return 2 * macs + _bias(layer, outs[0]), macs


def _conv_transpose(layer, ins, outs):
    cin = ins[0][_channel_axis(layer)]
    groups = getattr(layer, "groups", 1) or 1
    macs = _elements(_spatial(layer, ins[0])) * cin // groups * int(np.prod(layer.kernel_size)) * layer.filters
    return 2 * macs + _bias(layer, outs[0]), macs


def _dense(layer, ins, outs):
    macs = _elements(ins[0]) * layer.units
    return 2 * macs + _bias(layer, outs[0]), macs


def _per_element(flops: int, mults: int) -> Callable:
    def rule(layer, ins, outs):
        n = sum(_elements(s) for s in outs)
        return flops * n, mults * n
    return rule


def _pool(layer, ins, outs):
    window = int(np.prod(layer.pool_size))
    n = _elements(outs[0])
    return window * n, n if "Average" in type(layer).__name__ else 0


def _global_pool(layer, ins, outs):
    return _elements(ins[0]), _elements(outs[0]) if "Average" in type(layer).__name__ else 0


def _merge(mult: bool, extra_divide: bool = False) -> Callable:
    def rule(layer, ins, outs):
        n = _elements(outs[0])
        flops = (len(ins) - 1) * n + (n if extra_divide else 0)
        return flops, ((len(ins) - 1) * n if mult else 0) + (n if extra_divide else 0)
    return rule


def _upsampling(layer, ins, outs):
    if getattr(layer, "interpolation", "nearest") == "nearest":
        return 0, 0
    n = _elements(outs[0])
    return 8 * n, 4 * n  # bilinear: 4 weighted taps per output


_PREPROCESS_OPS = {"none": (0, 0), "rescale": (1, 1), "caffe": (1, 0), "tf": (2, 1), "torch": (2, 1),
                   "standardize": (2, 1)}


def _preprocess(layer, ins, outs):
    flops, mults = _PREPROCESS_OPS.get(getattr(layer, "mode", "standardize"), (2, 1))
    return _per_element(flops, mults)(layer, ins, outs)


def _squeeze_excite(layer, ins, outs):
    """foveal's SqueezeExcite: spatial mean, two small dense layers, per-channel rescale."""
    n, channels = _elements(ins[0]), ins[0][-1]
    units = int(layer.squeeze_kernel.shape[-1])
    macs = 2 * channels * units
    return n + 2 * macs + units + channels + n, macs + n


def _channel_pool(layer, ins, outs):
    """foveal's DepthwiseMaxPool: one comparison per input element."""
    return _elements(ins[0]), 0


def _dot(layer, ins, outs):
    """``Dot``: one multiply-add per output element and reduced position (``axes`` of the first input)."""
    axes = layer.axes if isinstance(layer.axes, int) else layer.axes[0]
    axis = axes - 1 if axes > 0 else axes  # shapes here have no batch axis
    macs = _elements(outs[0]) * int(ins[0][axis])
    return 2 * macs, macs


def _recurrent_rule(gates: int) -> Callable:
    """LSTM (4 gates), GRU (3), SimpleRNN (1) over ``T`` steps (see the module docstring)."""
    def rule(layer, ins, outs):
        steps, d = ins[0][0], ins[0][-1]
        u = int(layer.units) if hasattr(layer, "units") else int(layer.cell.units)
        macs = steps * gates * u * (d + u)
        bias = gates * u * (2 if getattr(layer, "reset_after", False) else 1) if getattr(layer, "use_bias", True) else 0
        sums = gates * u  # the input product plus the recurrent product, per gate unit
        extra = {4: 4 * u, 3: 5 * u, 1: 0}[gates]  # the state update (products, sums, 1 - z)
        mults = {4: 3 * u, 3: 3 * u, 1: 0}[gates]
        return 2 * macs + steps * (sums + bias + extra), macs + steps * mults
    return rule


def _conv_lstm(layer, ins, outs):
    """ConvLSTM: the LSTM count with the products as convolutions (input: the layer's strides;
    state: stride 1, "same") at every output position, over ``T`` steps."""
    steps, cin = ins[0][0], ins[0][_channel_axis(layer)]
    out = outs[0][1:] if getattr(layer, "return_sequences", False) else outs[0]
    positions = _elements(_spatial(layer, out))
    f, k = int(layer.filters), int(np.prod(layer.kernel_size))
    macs = steps * positions * k * 4 * f * (cin + f)
    per_step = positions * 4 * f * (2 if layer.use_bias else 1) + positions * 4 * f  # sums, bias; state update
    return 2 * macs + steps * per_step, macs + steps * positions * 3 * f


def _bidirectional(layer, ins, outs):
    total = [0, 0]
    for direction in (layer.forward_layer, layer.backward_layer):
        flops, mults, _ = layer_flops(direction, ins, outs)
        total = [total[0] + flops, total[1] + mults]
    return total[0], total[1]


def _time_distributed(layer, ins, outs):
    """``T`` times the wrapped layer on one step (a nested model: its whole count)."""
    inner, steps = layer.layer, ins[0][0]
    if is_nested_model(inner):
        t = totals(_summarize_graph(inner, prefix="", depth=0))
        if t["layers_without_flop_rule"]:
            raise _NoRule
        return steps * t["flops"], steps * t["multiplications"]
    flops, mults, ok = layer_flops(inner, [s[1:] for s in ins[:1]], [s[1:] for s in outs])
    if not ok:
        raise _NoRule
    return steps * flops, steps * mults


class _NoRule(Exception):
    """A rule that found a part it cannot count (the row is then marked not counted)."""


def _temporal_deltas(layer, ins, outs):
    n = _elements(ins[0])
    return (4 if len(ins) > 1 else 2) * n, (2 if len(ins) > 1 else 0) * n


def _first_input_elements(flops: int, mults: int) -> Callable:
    def rule(layer, ins, outs):
        n = _elements(ins[0])
        return flops * n, mults * n
    return rule


def _lrn(layer, ins, outs):
    """Local response normalisation: square, window sum, scale, shift, power, divide."""
    n = _elements(outs[0])
    return (2 * int(layer.depth_radius) + 5) * n, 3 * n


_ZERO = {
    "InputLayer", "Activation", "ReLU", "LeakyReLU", "PReLU", "ELU", "Softmax", "Dropout",
    "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianNoise", "GaussianDropout",
    "AlphaDropout", "Flatten", "Reshape", "Permute", "RepeatVector", "Identity", "Concatenate",
    "ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D", "Cropping1D", "Cropping2D", "Cropping3D",
    "RandomFlip", "RandomRotation", "RandomZoom", "RandomTranslation", "RandomContrast",
    "RandomBrightness", "ActivityRegularization", "Masking",
}

FLOP_RULES: dict[str, Callable] = {
    **{name: lambda layer, ins, outs: (0, 0) for name in _ZERO},
    **{f"Conv{d}D": _conv for d in (1, 2, 3)},
    **{f"DepthwiseConv{d}D": _depthwise for d in (1, 2)},
    **{f"SeparableConv{d}D": _separable for d in (1, 2)},
    **{f"Conv{d}DTranspose": _conv_transpose for d in (1, 2, 3)},
    "Dense": _dense,
    "BatchNormalization": _per_element(2, 1),
    "LayerNormalization": _per_element(8, 3),
    "GroupNormalization": _per_element(8, 3),
    **{f"{kind}Pooling{d}D": _pool for kind in ("Max", "Average") for d in (1, 2, 3)},
    **{f"Global{kind}Pooling{d}D": _global_pool for kind in ("Max", "Average") for d in (1, 2, 3)},
    "Add": _merge(False), "Subtract": _merge(False), "Maximum": _merge(False),
    "Minimum": _merge(False), "Multiply": _merge(True), "Average": _merge(False, extra_divide=True),
    **{f"UpSampling{d}D": _upsampling for d in (1, 2, 3)},
    "Rescaling": _per_element(2, 1),
    "Normalization": _per_element(2, 1),
    "Preprocess": _preprocess,
    "SqueezeExcite": _squeeze_excite,
    "DepthwiseMaxPool": _channel_pool,
    "LocalResponseNormalization": _lrn,
    "Embedding": lambda layer, ins, outs: (0, 0),  # a table lookup (a gather), no arithmetic
    "Dot": _dot,
    "LSTM": _recurrent_rule(4), "GRU": _recurrent_rule(3), "SimpleRNN": _recurrent_rule(1),
    **{f"ConvLSTM{d}D": _conv_lstm for d in (1, 2, 3)},
    "Bidirectional": _bidirectional,
    "TimeDistributed": _time_distributed,
    # foveal's video layers (foveal.video.models, foveal.video.endtoend)
    "Standardize": _per_element(2, 1),
    "TemporalDeltas": _temporal_deltas,
    "FrameMask": _first_input_elements(1, 0),
    "ZeroPadded": _first_input_elements(1, 1),
    # bare Keras operations of a functional graph (a Masking layer's mask)
    **{name: _first_input_elements(1, 0) for name in ("NotEqual", "Equal", "Greater", "GreaterEqual", "Less",
                                                      "LessEqual", "Any", "All", "LogicalAnd", "LogicalOr")},
    **{name: lambda layer, ins, outs: (0, 0) for name in ("Cast", "ExpandDims", "Squeeze", "Reshape")},
}
"""Layer class name -> ``rule(layer, input_shapes, output_shapes) -> (flops, multiplications)``.

Shapes exclude the batch axis. A subclass of a listed layer uses its base class's rule.
"""


def _rule_for(layer: Any) -> Callable | None:
    for cls in type(layer).__mro__:
        if cls.__name__ in FLOP_RULES:
            return FLOP_RULES[cls.__name__]
    return None


def layer_flops(layer: Any, input_shapes: list[Shape], output_shapes: list[Shape]) -> tuple[int, int, bool]:
    """``(flops, multiplications, counted)`` of one call of ``layer`` (shapes without batch)."""
    if any(d < 0 for s in [*input_shapes, *output_shapes] for d in s):
        return 0, 0, False
    rule = _rule_for(layer)
    if rule is not None:
        try:
            flops, mults = rule(layer, input_shapes, output_shapes)
        except _NoRule:
            return 0, 0, False
        return int(flops), int(mults), True
    if not isinstance(layer, keras.layers.Layer):  # a bare operation without a rule
        return 0, 0, False
    return _sublayer_flops(layer)


def _sublayer_flops(layer: Any) -> tuple[int, int, bool]:
    """Sum the rules over a custom layer's sublayers at the shapes Keras built them with."""
    sublayers = layer._flatten_layers(include_self=False, recursive=False)
    if not sublayers:
        return 0, 0, False
    flops = mults = 0
    for sub in sublayers:
        shapes = list((getattr(sub, "_build_shapes_dict", None) or {}).values())
        if len(shapes) != 1 or shapes[0] is None:
            return flops, mults, False
        try:
            in_shape = tuple(shapes[0])
            out_shape = tuple(sub.compute_output_shape(in_shape))
            stripped = [_strip(in_shape)], [_strip(out_shape)]
        except Exception:  # layers without compute_output_shape (or with several outputs) raise many kinds
            return flops, mults, False
        f, m, ok = layer_flops(sub, *stripped)
        flops, mults = flops + f, mults + m
        if not ok:
            return flops, mults, False
    return flops, mults, True


def _strip(shape: tuple) -> Shape:
    return tuple(int(d) if d is not None else -1 for d in shape[1:])


# --------------------------------------------------------------------------- summary


def _weight_count(weights: Sequence[Any]) -> int:
    return int(sum(int(np.prod(w.shape)) for w in weights))


def summarize(model: keras.Model, input_shape: Sequence[int] | None = None) -> list[LayerInfo]:
    """One :class:`LayerInfo` per layer call, in graph order (inputs first).

    Args:
        model: a functional or built Sequential Keras model (any foveal model, any
            ``keras.applications`` model).
        input_shape: (H, W, C) to count at; required when the model accepts any size. The
            model is then rebuilt (fresh weights) on that input.

    Returns:
        The rows; use :func:`totals` for the sums and :func:`format_summary` to print them.

    Raises:
        ModelError: the model has no graph, or no fixed input size and none was given.

    Example:
        >>> import keras
        >>> inputs = keras.Input((150, 100, 3))
        >>> model = keras.Model(inputs, keras.layers.Conv2D(200, 5, padding="same")(inputs))
        >>> conv = summarize(model)[1]
        >>> conv.params, conv.multiplications
        (15200, 225000000)
    """
    model = require_known_input(model, input_shape)
    return _summarize_graph(model, prefix="", depth=0)


def _summarize_graph(model: keras.Model, prefix: str, depth: int) -> list[LayerInfo]:
    rows: list[LayerInfo] = []
    for call in graph_calls(model):
        layer = call.layer
        if depth > 0 and isinstance(layer, keras.layers.InputLayer):
            continue  # the nested model's input is the outer tensor, already a row
        in_shapes = [_shape(t) for t in call.inputs]
        out_shapes = [_shape(t) for t in call.outputs]
        first = call.call == 0
        name = prefix + layer.name
        row = LayerInfo(
            name=name,
            class_name=type(layer).__name__,
            output_shape=out_shapes[0] if len(out_shapes) == 1 else out_shapes,
            # a bare Keras operation in the graph (e.g. a Masking layer's mask) has no weights
            trainable_params=_weight_count(getattr(layer, "trainable_weights", ())) if first else 0,
            non_trainable_params=_weight_count(getattr(layer, "non_trainable_weights", ())) if first else 0,
            flops=0,
            multiplications=0,
            output_elements=sum(_elements(s) for s in out_shapes),
            inbound=[prefix + p for p in call.parents],
            depth=depth,
            call=call.call,
        )
        if is_nested_model(layer):
            children = _summarize_graph(layer, prefix=f"{name}/", depth=depth + 1)
            if not first:  # a reused sub-model: its weights were counted on the first call
                for child in children:
                    child.trainable_params = child.non_trainable_params = 0
            direct = [c for c in children if c.depth == depth + 1]
            row.is_container = True
            row.flops = sum(c.flops for c in direct)
            row.multiplications = sum(c.multiplications for c in direct)
            row.flops_counted = all(c.flops_counted for c in direct)
            rows.append(row)
            rows.extend(children)
            continue
        row.flops, row.multiplications, row.flops_counted = layer_flops(layer, in_shapes, out_shapes)
        rows.append(row)
    return rows


def totals(rows: Sequence[LayerInfo]) -> dict[str, Any]:
    """Sums over the top-level rows (nested models already hold their layers' sums)."""
    top = [r for r in rows if r.depth == 0]
    leaves = [r for r in rows if not r.is_container]
    trainable = sum(r.trainable_params for r in top)
    non_trainable = sum(r.non_trainable_params for r in top)
    return {
        "parameters": trainable + non_trainable,
        "trainable_parameters": trainable,
        "non_trainable_parameters": non_trainable,
        "flops": sum(r.flops for r in top),
        "multiplications": sum(r.multiplications for r in top),
        "layers": len(leaves),
        "layers_without_flop_rule": sorted({r.class_name for r in leaves if not r.flops_counted}),
    }


# --------------------------------------------------------------------------- text table


def human(value: float, unit: str = "") -> str:
    """``1234567`` -> ``1.23M``: three significant digits with a K/M/G/T suffix."""
    for suffix, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{suffix}{unit}"
    return f"{value:.3g}{unit}" if isinstance(value, float) and not float(value).is_integer() else f"{int(value)}{unit}"


def _shape_text(shape: Shape | list[Shape]) -> str:
    def one(s: Shape) -> str:
        return "(" + ", ".join("?" if d < 0 else str(d) for d in s) + ")"
    return ", ".join(one(s) for s in shape) if isinstance(shape, list) else one(shape)


def format_summary(
    rows: Sequence[LayerInfo],
    receptive_fields: Sequence[Any] | None = None,
    max_name: int = 36,
) -> str:
    """A terminal table: layer, class, output shape, parameters, FLOPs (and receptive field).

    Args:
        rows: from :func:`summarize`.
        receptive_fields: optional rows of :func:`~foveal.inspection.receptive_fields` for the
            same model, in the same order; adds "RF" (size) and "jump" (stride) columns.
        max_name: layer names longer than this are shortened from the left.
    """
    header = ["layer", "class", "output shape", "params", "FLOPs"]
    if receptive_fields is not None:
        header += ["RF", "jump"]
    table: list[list[str]] = []
    for i, row in enumerate(rows):
        name = "  " * row.depth + row.name.rsplit("/", 1)[-1] if row.depth else row.name
        if len(name) > max_name:
            name = "..." + name[-(max_name - 3):]
        flops = human(row.flops) + ("" if row.flops_counted else "?")
        cells = [name, row.class_name, _shape_text(row.output_shape), f"{row.params:,}", flops]
        if receptive_fields is not None:
            cells += _rf_cells(receptive_fields[i])
        table.append(cells)
    widths = [max(len(h), *(len(r[c]) for r in table)) if table else len(h) for c, h in enumerate(header)]
    right = {3, 4, 5, 6}

    def line(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    out = [line(header), line(["-" * w for w in widths])]
    out += [line(r) for r in table]
    t = totals(rows)
    out.append(line(["-" * w for w in widths]))
    out.append(
        f"parameters: {t['parameters']:,} (trainable {t['trainable_parameters']:,}, "
        f"non-trainable {t['non_trainable_parameters']:,})"
    )
    out.append(f"FLOPs per image: {human(t['flops'])} ({t['flops']:,}); "
               f"multiplications: {human(t['multiplications'])}")
    if t["layers_without_flop_rule"]:
        out.append(f"not counted (no FLOP rule, marked ?): {', '.join(t['layers_without_flop_rule'])}")
    out.append(f"({FLOPS_CONVENTION})")
    return "\n".join(out)


def _rf_cells(rf: Any) -> list[str]:
    if rf.receptive_field is None:
        return ["whole", "-"]

    def pair(v: Sequence[float]) -> str:
        vals = [f"{x:g}" for x in v]
        return vals[0] if len(set(vals)) == 1 else "x".join(vals)

    return [pair(rf.receptive_field), pair(rf.jump)]


def iter_leaves(rows: Sequence[LayerInfo]) -> Iterator[LayerInfo]:
    """Rows that are real layers (not the summary rows of nested models)."""
    return (r for r in rows if not r.is_container)


__all__ = [
    "FLOPS_CONVENTION", "FLOP_RULES", "GraphCall", "LayerInfo", "format_summary", "graph_calls", "human",
    "is_nested_model", "iter_leaves", "layer_flops", "require_known_input", "summarize", "totals",
    "with_input_shape",
]
