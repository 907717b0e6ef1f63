"""Theoretical receptive field, jump (effective stride) and start of every layer of a model.

The geometry is propagated along the functional graph from the input, per spatial axis, with
the recurrence of Araujo, Norris and Sim, "Computing Receptive Fields of Convolutional Neural
Networks", Distill 2019 (also Planche & Andres, *Hands-On Computer Vision with TensorFlow 2*,
ch. 3)::

    k_eff = d * (k - 1) + 1              (dilation d)
    R_l = R_{l-1} + (k_eff - 1) * J_{l-1}
    J_l = J_{l-1} * s_l
    start_l = start_{l-1} + ((k_eff - 1) / 2 - pad_left) * J_{l-1}

``R`` is the side of the input window one output unit sees, ``J`` the distance in input pixels
between two neighbouring output units, and ``start`` the input coordinate of the centre of the
first output unit's window (coordinate 0 is the centre of the top-left input pixel; with
"same" padding it depends on the input size, which is read from the graph).

Rules: convolutions and pooling use the formulas above. Transposed convolutions and
upsampling divide the jump by the stride (an output sees ``ceil(k/s)`` input positions;
nearest upsampling sees one, bilinear two). Zero padding and cropping shift ``start``.
Merge layers (Add, Concatenate, Multiply, ...) take the largest ``R`` and ``J`` of their
inputs; inputs without spatial extent (a squeeze-excitation gate of shape 1x1xC, for
example) only rescale and are ignored. Global pooling, Flatten, Reshape and Dense on flat
vectors see the **whole input** (``receptive_field`` is None). Any other layer keeps the
geometry when it keeps the spatial size; if it changes it, it is taken as a resampling (the
jump scales with the size ratio). A custom layer with convolution or pooling sublayers (an
inception module, say) widens the field by its widest sublayer window, which is exact for
parallel branches and an underestimate for a chain inside one layer. Nested models are
expanded like in :func:`~foveal.inspection.summarize`, and the rows come in the same order.

Video (a time axis first: ``(T, H, W, C)`` has the axes time, height, width): ``TimeDistributed``
applies its layer or nested model to each frame (window 1 in time; a per-frame network ending in
global pooling sees the whole frame, so the whole input); ``ConvLSTM`` widens the spatial window
by ``k - 1`` at each of the ``T - 1`` state convolutions its last state went through (stride 1, "same") after its
input convolution, and without ``return_sequences`` its output has no time axis; ``LSTM``/``GRU``
outputs without a time axis see the whole input.

Example:
    >>> import keras
    >>> x = keras.Input((224, 224, 3))
    >>> y = keras.layers.Conv2D(8, 7, strides=2, padding="same")(x)
    >>> y = keras.layers.MaxPooling2D(3, strides=2, padding="same")(y)
    >>> receptive_fields(keras.Model(x, y))[-1][1:3]
    ((11, 11), (4, 4))
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, NamedTuple, Sequence

import keras

from foveal.inspection.summary import (
    graph_calls,
    is_nested_model,
    nested_inputs,
    nested_outputs,
    require_known_input,
)

Pair = tuple[float, ...]


class ReceptiveField(NamedTuple):
    """Geometry of one layer call's output, per spatial axis (height, width).

    ``receptive_field``, ``jump`` and ``start`` are None when the output sees the whole input.
    """

    layer_name: str
    receptive_field: tuple[int, ...] | None
    jump: Pair | None
    start: Pair | None

    @property
    def whole_input(self) -> bool:
        return self.receptive_field is None

    def to_dict(self) -> dict[str, Any]:
        if self.whole_input:
            return {"layer": self.layer_name, "receptive_field": "whole input", "jump": None, "start": None}
        return {"layer": self.layer_name, "receptive_field": list(self.receptive_field),  # type: ignore[arg-type]
                "jump": list(self.jump), "start": list(self.start)}  # type: ignore[arg-type]


@dataclass(frozen=True)
class _Geo:
    """Geometry of one tensor; ``r`` None means the whole input."""

    r: Pair | None
    j: Pair | None
    start: Pair | None
    size: tuple[int | None, ...]  # spatial size of the tensor itself

    @property
    def whole(self) -> bool:
        return self.r is None


def _spatial_size(tensor: Any, data_format: str = "channels_last") -> tuple[int | None, ...]:
    shape = tuple(tensor.shape[1:])
    if len(shape) < 2:
        return ()
    return shape[1:] if data_format == "channels_first" else shape[:-1]


def _tuple(value: Any, rank: int) -> tuple[int, ...]:
    if isinstance(value, int):
        return (value,) * rank
    return tuple(int(v) for v in value)


def _same_pad_left(n: int | None, k: int, s: int) -> float | None:
    if n is None:
        return None
    total = max((math.ceil(n / s) - 1) * s + k - n, 0)
    return total // 2


def _window(geo: _Geo, kernel: Sequence[int], strides: Sequence[int], dilation: Sequence[int],
            padding: str, out_size: tuple[int | None, ...]) -> _Geo:
    r, j, st = [], [], []
    for axis, (k, s, d) in enumerate(zip(kernel, strides, dilation)):
        k_eff = d * (k - 1) + 1
        r.append(geo.r[axis] + (k_eff - 1) * geo.j[axis])  # type: ignore[index]
        j.append(geo.j[axis] * s)  # type: ignore[index]
        if padding == "valid":
            pad = 0.0
        elif padding == "causal":
            pad = k_eff - 1
        else:
            pad = _same_pad_left(geo.size[axis] if axis < len(geo.size) else None, k_eff, s)
        start = None if pad is None or geo.start is None or geo.start[axis] is None else \
            geo.start[axis] + ((k_eff - 1) / 2 - pad) * geo.j[axis]  # type: ignore[index]
        st.append(start)
    return _Geo(tuple(r), tuple(j), tuple(st), out_size)


def _transpose(geo: _Geo, kernel, strides, dilation, padding, out_size) -> _Geo:
    r, j, st = [], [], []
    for axis, (k, s, d) in enumerate(zip(kernel, strides, dilation)):
        k_eff = d * (k - 1) + 1
        r.append(geo.r[axis] + (math.ceil(k_eff / s) - 1) * geo.j[axis])  # type: ignore[index]
        j_out = geo.j[axis] / s  # type: ignore[index]
        j.append(j_out)
        pad = 0 if padding == "valid" else max(k_eff - s, 0) // 2
        start = None if geo.start is None or geo.start[axis] is None else \
            geo.start[axis] + (pad - (k_eff - 1) / 2) * j_out
        st.append(start)
    return _Geo(tuple(r), tuple(j), tuple(st), out_size)


def _shift(geo: _Geo, offsets: Sequence[int], out_size) -> _Geo:
    start = None if geo.start is None else tuple(
        None if s is None else s + o * jj for s, o, jj in zip(geo.start, offsets, geo.j))  # type: ignore[arg-type]
    return _Geo(geo.r, geo.j, start, out_size)


def _resample(geo: _Geo, out_size, extra_taps: int = 0) -> _Geo:
    """A layer mapping size n to size m: jump * n / m, R grows by ``extra_taps`` input steps."""
    j = []
    for axis, jj in enumerate(geo.j):  # type: ignore[arg-type]
        n = geo.size[axis] if axis < len(geo.size) else None
        m = out_size[axis] if axis < len(out_size) else None
        j.append(jj * n / m if n and m else jj)
    r = tuple(rr + extra_taps * jj for rr, jj in zip(geo.r, geo.j))  # type: ignore[arg-type]
    return _Geo(r, tuple(j), geo.start, out_size)


_WHOLE_CLASSES = ("GlobalAveragePooling", "GlobalMaxPooling", "Flatten", "Reshape")


def _class_names(layer: Any) -> list[str]:
    return [c.__name__ for c in type(layer).__mro__]


def _propagate(layer: Any, ins: list[_Geo | None], in_tensors: list[Any], out_tensor: Any) -> _Geo:
    data_format = getattr(layer, "data_format", "channels_last") or "channels_last"
    out_size = _spatial_size(out_tensor, data_format)
    names = _class_names(layer)
    if not in_tensors:  # an input layer
        rank = len(out_size)
        return _Geo((1,) * rank, (1,) * rank, (0.0,) * rank, out_size)
    data = [(g, t) for g, t in zip(ins, in_tensors) if "bool" not in str(t.dtype)]  # a mask input is no data
    ins, in_tensors = [g for g, _ in data], [t for _, t in data]
    known = [g for g in ins if g is not None and not g.whole]
    if not known or len(out_size) == 0 or any(n.startswith(_WHOLE_CLASSES) for n in names):
        return _Geo(None, None, None, out_size)
    if len(in_tensors) > 1:  # a merge: the widest spatial input decides
        spatial = [g for g in known if any((d or 2) > 1 for d in g.size)] or known
        best = max(spatial, key=lambda g: max(g.r))  # type: ignore[arg-type]
        j = tuple(max(vals) for vals in zip(*(g.j for g in spatial)))  # type: ignore[misc]
        return _Geo(best.r, j, best.start, out_size)
    spatial = known
    geo = spatial[0]
    rank = len(geo.r)  # type: ignore[arg-type]
    if "TimeDistributed" in names:
        return _time_distributed(layer, geo, out_size)
    if any(n.startswith("ConvLSTM") for n in names):
        return _conv_lstm(layer, geo, out_size)
    if hasattr(layer, "kernel_size") and hasattr(layer, "strides"):
        args = (_tuple(layer.kernel_size, rank), _tuple(layer.strides, rank),
                _tuple(getattr(layer, "dilation_rate", 1), rank), layer.padding, out_size)
        return _transpose(geo, *args) if any("Transpose" in n for n in names) else _window(geo, *args)
    if hasattr(layer, "pool_size") and hasattr(layer, "strides"):  # not a channel pooling
        strides = layer.strides if layer.strides is not None else layer.pool_size
        return _window(geo, _tuple(layer.pool_size, rank), _tuple(strides, rank), (1,) * rank,
                       layer.padding, out_size)
    if any(n.startswith("ZeroPadding") for n in names):
        return _shift(geo, [-p[0] for p in _pairs(layer.padding, rank)], out_size)
    if any(n.startswith("Cropping") for n in names):
        return _shift(geo, [c[0] for c in _pairs(layer.cropping, rank)], out_size)
    if any(n.startswith("UpSampling") for n in names):
        taps = 0 if getattr(layer, "interpolation", "nearest") == "nearest" else 1
        return _resample(geo, out_size, extra_taps=taps)
    widest = _widest_sublayer_window(layer, rank)
    if widest is not None:  # a block layer (e.g. an inception module): its widest window
        geo = _Geo(tuple(r + (k - 1) * j for r, k, j in zip(geo.r, widest, geo.j)),  # type: ignore[arg-type]
                   geo.j, geo.start, geo.size)
    if tuple(out_size) == tuple(geo.size):
        return _Geo(geo.r, geo.j, geo.start, out_size)
    return _resample(geo, out_size)


def _time_distributed(layer: Any, geo: _Geo, out_size) -> _Geo:
    """A layer or nested model applied to every frame: time window 1, the per-frame geometry."""
    inner, rank = layer.layer, len(geo.r)  # type: ignore[arg-type]
    if len(out_size) != rank:  # each frame reduced (e.g. a CNN ending in global pooling)
        return _Geo(None, None, None, out_size)
    if (hasattr(inner, "kernel_size") and hasattr(inner, "strides")) or hasattr(inner, "pool_size"):
        k = getattr(inner, "kernel_size", None) or inner.pool_size
        s = getattr(inner, "strides", None) or k
        return _window(geo, (1, *_tuple(k, rank - 1)), (1, *_tuple(s, rank - 1)),
                       (1, *_tuple(getattr(inner, "dilation_rate", 1), rank - 1)), inner.padding, out_size)
    if is_nested_model(inner):
        last = receptive_fields(inner)[-1]
        if last.whole_input:
            return _Geo(None, None, None, out_size)
        r = (geo.r[0], *(rr + (ri - 1) * jj for rr, ri, jj in zip(geo.r[1:], last.receptive_field, geo.j[1:])))
        j = (geo.j[0], *(jj * ji for jj, ji in zip(geo.j[1:], last.jump)))  # type: ignore[index]
        start = None if geo.start is None else (geo.start[0], *(
            None if s0 is None or si is None else s0 + si * jj
            for s0, si, jj in zip(geo.start[1:], last.start, geo.j[1:])))  # type: ignore[arg-type,index]
        return _Geo(r, j, start, out_size)  # type: ignore[arg-type]
    return _Geo(geo.r, geo.j, geo.start, out_size) if tuple(out_size) == tuple(geo.size) else _resample(geo, out_size)


def _conv_lstm(layer: Any, geo: _Geo, out_size) -> _Geo:
    """ConvLSTM over ``(T, spatial...)``: the input convolution, then ``T`` state convolutions."""
    rank = len(geo.r) - 1  # type: ignore[arg-type]
    steps = geo.size[0] or 1
    spatial_out = tuple(out_size[1:]) if getattr(layer, "return_sequences", False) else tuple(out_size)
    frame = _Geo(geo.r[1:], geo.j[1:], None if geo.start is None else geo.start[1:], geo.size[1:])  # type: ignore[index]
    frame = _window(frame, _tuple(layer.kernel_size, rank), _tuple(layer.strides, rank),
                    _tuple(layer.dilation_rate, rank), layer.padding, spatial_out)
    k = _tuple(layer.kernel_size, rank)
    r = tuple(rr + (steps - 1) * (kk - 1) * jj for rr, kk, jj in zip(frame.r, k, frame.j))  # type: ignore[arg-type]
    if not getattr(layer, "return_sequences", False):
        return _Geo(r, frame.j, frame.start, spatial_out)
    t_r = geo.r[0] + (steps - 1) * geo.j[0]  # type: ignore[index]  # the last step: every step before it
    start = None if frame.start is None or geo.start is None else (geo.start[0], *frame.start)
    return _Geo((t_r, *r), (geo.j[0], *frame.j), start, tuple(out_size))  # type: ignore[index]


def _widest_sublayer_window(layer: Any, rank: int) -> tuple[int, ...] | None:
    """Largest effective kernel, per axis, among a custom layer's spatial sublayers."""
    if isinstance(layer, keras.Model) or not isinstance(layer, keras.layers.Layer):  # or a bare operation
        return None
    windows = []
    for sub in layer._flatten_layers(include_self=False, recursive=True):
        size = getattr(sub, "kernel_size", None)
        if size is None and hasattr(sub, "strides"):
            size = getattr(sub, "pool_size", None)
        if size is None:
            continue
        kernel, dilation = _tuple(size, rank), _tuple(getattr(sub, "dilation_rate", 1), rank)
        if len(kernel) == rank:  # a window of another rank (a per-frame layer of a video layer) is skipped
            windows.append(tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation)))
    return tuple(max(w[axis] for w in windows) for axis in range(rank)) if windows else None


def _pairs(value: Any, rank: int) -> list[tuple[int, int]]:
    if isinstance(value, int):
        return [(value, value)] * rank
    return [(v, v) if isinstance(v, int) else (int(v[0]), int(v[1])) for v in value]


def _clean(values: Pair | None) -> Pair | None:
    if values is None:
        return None
    return tuple(  # type: ignore[misc]
        None if v is None else (int(v) if float(v).is_integer() else float(v)) for v in values)


def receptive_fields(model: keras.Model, input_shape: Sequence[int] | None = None) -> list[ReceptiveField]:
    """Receptive field, jump and start of every layer call, in the order of :func:`summarize`.

    Args:
        model: a functional or built Sequential Keras model.
        input_shape: (H, W, C) to compute at (only ``start`` with "same" padding depends on it);
            needed when the model accepts any size.

    Returns:
        ``(layer_name, receptive_field, jump, start)`` rows; each value is a per-axis tuple
        (height, width), or None for layers that see the whole input.

    Example:
        >>> import keras
        >>> x = keras.Input((32, 32, 1))
        >>> y = keras.layers.Conv2D(4, 3)(keras.layers.Conv2D(4, 3)(x))
        >>> receptive_fields(keras.Model(x, y))[-1].receptive_field
        (5, 5)
    """
    model = require_known_input(model, input_shape)
    rows: list[ReceptiveField] = []
    _walk(model, {}, prefix="", depth=0, rows=rows)
    return rows


def _walk(model: keras.Model, geos: dict[int, _Geo], prefix: str, depth: int, rows: list[ReceptiveField]) -> None:
    for call in graph_calls(model):
        layer = call.layer
        if depth > 0 and isinstance(layer, keras.layers.InputLayer):
            continue
        ins = [geos.get(id(t)) for t in call.inputs]
        name = prefix + layer.name
        if is_nested_model(layer):
            inner: dict[int, _Geo] = dict(geos)
            for outer_t, inner_t in zip(call.inputs, nested_inputs(layer)):
                if id(outer_t) in geos:
                    inner[id(inner_t)] = geos[id(outer_t)]
            children: list[ReceptiveField] = []
            _walk(layer, inner, prefix=f"{name}/", depth=depth + 1, rows=children)
            for outer_t, inner_t in zip(call.outputs, nested_outputs(layer)):
                geos[id(outer_t)] = inner.get(id(inner_t), _Geo(None, None, None, ()))
            rows.append(_row(name, geos[id(call.outputs[0])]))
            rows.extend(children)
            continue
        for out in call.outputs:
            geos[id(out)] = _propagate(layer, ins, call.inputs, out)
        rows.append(_row(name, geos[id(call.outputs[0])]))


def _row(name: str, geo: _Geo) -> ReceptiveField:
    if geo.whole:
        return ReceptiveField(name, None, None, None)
    return ReceptiveField(name, _clean(geo.r), _clean(geo.j), _clean(geo.start))  # type: ignore[arg-type]


__all__ = ["ReceptiveField", "receptive_fields"]
