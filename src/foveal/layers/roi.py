"""Region-of-interest pooling: fixed-size features for boxes of any size (two-stage detectors).

Both layers take ``[features, rois]``: a feature map ``[B, Hf, Wf, C]`` and boxes ``[B, R, 4]``
as corners ``(x_min, y_min, x_max, y_max)`` in pixels of the model input, and return
``[B, R, P, P, C]``. ``stride`` is how many input pixels one feature cell spans, so feature
cell ``(i, j)`` covers input pixels ``[j * stride, (j + 1) * stride)`` horizontally.

* :class:`RoIMaxPool` (Girshick, "Fast R-CNN", ICCV 2015, sec. 2.1; the texts' figure): the box
  is snapped to whole cells (``floor(x_min / stride)`` to ``ceil(x_max / stride)``, at least
  one), its ``h x w`` cells split into ``P x P`` bins whose edges are rounded up
  (bin ``i`` spans rows ``ceil(i h / P)`` to ``ceil((i + 1) h / P)``: a 5 x 4 region pooled to
  2 x 2 gets bins of 3 x 2 and 2 x 2 cells, as in the texts' example), and each bin keeps its maximum.
* :class:`RoIAlign` (He, Gkioxari, Dollár & Girshick, "Mask R-CNN", ICCV 2017, sec. 3): no
  snapping; each of the ``P x P`` bins averages ``sampling_ratio**2`` bilinear samples at
  regularly spaced points. It is ``tf.image.crop_and_resize`` on a ``(sP) x (sP)`` grid whose
  corners are moved half a sample inwards, so its points are exactly the bins' sample points,
  then an average pool. Box coordinates map to the feature map with the half-cell offset of
  Detectron2's ``aligned=True`` (a cell's value sits at its centre). Sample points outside the
  map read 0 (``crop_and_resize``'s extrapolation).

Both are checked against NumPy references in ``tests/layers/test_roi.py``.

Example:
    >>> import numpy as np
    >>> features = np.arange(16, dtype=np.float32).reshape(1, 4, 4, 1)
    >>> rois = np.array([[[0, 0, 4, 4]]], np.float32)
    >>> RoIMaxPool(2, stride=1)([features, rois])[0, 0, :, :, 0].numpy().tolist()
    [[5.0, 7.0], [13.0, 15.0]]
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf


def _snap_to_cells(flat, stride: float, fh, fw):
    """RoIs ``[N, 4]`` (x1, y1, x2, y2 in pixels) as whole cells ``c0, r0, c1, r1`` of a map of
    ``fh x fw`` cells of ``stride`` pixels: inside the map, at least one cell each way."""
    c0 = tf.clip_by_value(tf.cast(tf.floor(flat[:, 0] / float(stride)), tf.int32), 0, fw - 1)
    r0 = tf.clip_by_value(tf.cast(tf.floor(flat[:, 1] / float(stride)), tf.int32), 0, fh - 1)
    c1 = tf.clip_by_value(tf.cast(tf.math.ceil(flat[:, 2] / float(stride)), tf.int32), c0 + 1, fw)
    r1 = tf.clip_by_value(tf.cast(tf.math.ceil(flat[:, 3] / float(stride)), tf.int32), r0 + 1, fh)
    return c0, r0, c1, r1


def _flat(features, rois):
    """(feature map, rois ``[B*R, 4]``, image index of each, B, R)."""
    shape = tf.shape(rois)
    batch, count = shape[0], shape[1]
    flat = tf.reshape(tf.cast(rois, tf.float32), [-1, 4])
    index = tf.repeat(tf.range(batch), count)
    return tf.cast(features, tf.float32), flat, index, batch, count


def roi_align(features, rois, *, pool_size: int = 7, stride: float = 16.0, sampling_ratio: int = 2) -> tf.Tensor:
    """RoI Align of ``rois [B, R, 4]`` (input pixels) on ``features [B, Hf, Wf, C]`` -> ``[B, R, P, P, C]``."""
    features, flat, index, batch, count = _flat(features, rois)
    crops = _align_boxes(features, flat, index, pool_size, stride, sampling_ratio)
    return tf.reshape(crops, tf.concat([[batch, count, pool_size, pool_size], tf.shape(features)[3:]], 0))


def _align_boxes(features, flat, index, pool_size: int, stride: float, sampling_ratio: int = 2) -> tf.Tensor:
    """RoI Align of boxes ``[N, 4]`` (input pixels) of images ``index [N]`` -> ``[N, P, P, C]``."""
    fh = tf.cast(tf.shape(features)[1], tf.float32)
    fw = tf.cast(tf.shape(features)[2], tf.float32)
    n = int(pool_size) * int(sampling_ratio)
    # feature coordinates with the half-cell offset; then half a sample inwards on each side
    x0, y0, x1, y1 = (flat[:, i] / float(stride) - 0.5 for i in range(4))
    dx, dy = (x1 - x0) / (2.0 * n), (y1 - y0) / (2.0 * n)
    boxes = tf.stack([(y0 + dy) / tf.maximum(fh - 1.0, 1.0), (x0 + dx) / tf.maximum(fw - 1.0, 1.0),
                      (y1 - dy) / tf.maximum(fh - 1.0, 1.0), (x1 - dx) / tf.maximum(fw - 1.0, 1.0)], axis=-1)
    crops = tf.image.crop_and_resize(features, boxes, index, [n, n], method="bilinear", extrapolation_value=0.0)
    if sampling_ratio > 1:
        crops = tf.nn.avg_pool2d(crops, sampling_ratio, sampling_ratio, "VALID")
    return crops


def _bin_edges(start, extent, pool_size: int):
    """Bin ``i`` of a region of ``extent`` cells starting at ``start``: rows/columns
    ``[start + ceil(i extent / P), start + ceil((i + 1) extent / P))``, at least one each."""
    i = tf.cast(tf.range(pool_size), tf.float32)[None]
    extent_f = tf.cast(extent, tf.float32)[:, None]
    lo = tf.math.ceil(i * extent_f / pool_size)
    lo = tf.minimum(lo, extent_f - 1.0)
    hi = tf.maximum(tf.math.ceil((i + 1.0) * extent_f / pool_size), lo + 1.0)
    start = tf.cast(start, tf.int32)[:, None]
    return start + tf.cast(lo, tf.int32), start + tf.cast(hi, tf.int32)  # [N, P] each


def _running_max(first, step, span):
    """``max(step(0), ..., step(span - 1))`` (``first = step(0)``) in a ``tf.while_loop``."""

    def body(t, acc):
        return t + 1, tf.maximum(acc, step(t))

    return tf.while_loop(lambda t, acc: t < span, body, (tf.constant(1), first))[1]


def _running_argmax(first, step, span):
    """As :func:`_running_max` where ``step(t)`` is ``(values, *where)``: the maximum and the
    ``where`` tensors of the step it came from, the earliest on ties (as ``tf.maximum``'s
    gradient, which goes to its first argument where both are equal)."""

    def body(t, best):
        new = step(t)
        take = new[0] > best[0]
        return t + 1, tuple(tf.where(take, n, b) for n, b in zip(new, best))

    return tf.while_loop(lambda t, best: t < span, body, (tf.constant(1), tuple(first)))[1]


def _max_pool_cells(features, index, row_lo, row_hi, col_lo, col_hi, *, argmax: bool = False):
    """The pooled bins ``[N, P, P, C]`` of ``features [B, Hf, Wf, C]`` (float32), with, if
    ``argmax``, the row and the column ``[N, P, P, C]`` each maximum was read from."""
    image = tf.broadcast_to(index[:, None], tf.shape(row_lo))  # [N, P]
    row_span, col_span = tf.reduce_max(row_hi - row_lo), tf.reduce_max(col_hi - col_lo)

    def rows_of(t):  # [N, P]: row lo + t of each row bin (its last row once past it)
        return tf.minimum(row_lo + t, row_hi - 1)

    def rows_at(t):  # [N, P, Wf, C]
        return tf.gather_nd(features, tf.stack([image, rows_of(t)], axis=-1))

    def cols_of(t):  # [N, P]: column lo + t of each column bin
        return tf.minimum(col_lo + t, col_hi - 1)

    def gather_cols(x, t):  # [N, P, Wf, C] -> [N, P, P, C]
        return tf.gather(x, cols_of(t), axis=2, batch_dims=1)

    if not argmax:
        by_rows = _running_max(rows_at(0), rows_at, row_span)
        return _running_max(gather_cols(by_rows, 0), lambda t: gather_cols(by_rows, t), col_span)

    def rows_step(t):
        values = rows_at(t)
        return values, tf.broadcast_to(rows_of(t)[:, :, None, None], tf.shape(values))

    by_rows, which_row = _running_argmax(rows_step(0), rows_step, row_span)

    def cols_step(t):
        values = gather_cols(by_rows, t)
        return values, gather_cols(which_row, t), tf.broadcast_to(cols_of(t)[:, None, :, None], tf.shape(values))

    return _running_argmax(cols_step(0), cols_step, col_span)


def _max_pool_gradient(features, index, bins, upstream):
    """The gradient of the pooled bins w.r.t. ``features``: each bin's upstream gradient added to
    the one cell its maximum came from (the cell ``tf.maximum``'s autodiff would pick), by one
    ``unsorted_segment_sum`` over the flattened map instead of the autodiff of every gather step."""
    _, rows, cols = _max_pool_cells(features, index, *bins, argmax=True)
    shape = tf.shape(features, out_type=tf.int64)
    channel = tf.range(shape[3])[None, None, None, :]
    image = tf.cast(index, tf.int64)[:, None, None, None]
    cell = ((image * shape[1] + tf.cast(rows, tf.int64)) * shape[2] + tf.cast(cols, tf.int64)) * shape[3] + channel
    total = tf.reduce_prod(shape)
    flat = tf.math.unsorted_segment_sum(tf.reshape(upstream, [-1]), tf.reshape(cell, [-1]), total)
    return tf.reshape(flat, shape)


def roi_max_pool(features, rois, *, pool_size: int = 7, stride: float = 16.0) -> tf.Tensor:
    """RoI max pooling of ``rois [B, R, 4]`` (input pixels) on ``features [B, Hf, Wf, C]`` -> ``[B, R, P, P, C]``.

    Vectorised over the RoIs and separable: the maximum over a bin's rows is taken first, for
    every RoI and row bin at once (``[B*R, P, Wf, C]``), then over the bin's columns. Bins hold
    different numbers of cells, so each pass steps ``t = 0 .. S-1`` (``S`` the largest bin side)
    and reads cell ``min(lo + t, hi - 1)`` of every bin: a bin smaller than ``S`` re-reads its
    last cell, which leaves its maximum unchanged. Exact for the integer bins defined above.

    The gradient (Fast R-CNN, sec. 2.3: each output's gradient goes to the input cell that was
    its maximum) is a custom one: the pass is re-run keeping the row and column of each maximum,
    then one segment sum scatters the upstream gradient there. It equals TensorFlow's autodiff
    of the passes above, ties included, without differentiating ``S`` gathers of ``[B*R, P, Wf,
    C]``. The RoIs get no gradient (their snapping to cells is piecewise constant).
    """
    features, flat, index, batch, count = _flat(features, rois)
    pooled = _max_pool_boxes(features, flat, index, pool_size, stride)
    return tf.reshape(pooled, tf.concat([[batch, count, pool_size, pool_size], tf.shape(features)[3:]], 0))


def _max_pool_boxes(features, flat, index, pool_size: int, stride: float) -> tf.Tensor:
    """RoI max pooling of boxes ``[N, 4]`` (input pixels) of images ``index [N]`` -> ``[N, P, P, C]``."""
    fh, fw = tf.shape(features)[1], tf.shape(features)[2]
    c0, r0, c1, r1 = _snap_to_cells(flat, stride, fh, fw)
    bins = (*_bin_edges(r0, r1 - r0, pool_size), *_bin_edges(c0, c1 - c0, pool_size))

    @tf.custom_gradient
    def pool(fmap):
        pooled = _max_pool_cells(fmap, index, *bins)
        return pooled, lambda upstream: _max_pool_gradient(fmap, index, bins, upstream)

    return pool(features)


def pyramid_levels(rois, *, min_level: int = 2, max_level: int = 5, canonical_size: float = 224.0,
                   canonical_level: int = 4) -> tf.Tensor:
    """The FPN level each RoI is pooled from (Lin et al., "Feature Pyramid Networks for Object
    Detection", CVPR 2017, eq. 1): ``k = floor(k0 + log2(sqrt(w h) / c))``, ``k0 = 4``, clipped
    to ``[min_level, max_level]``. ``rois [..., 4]`` are corners in input pixels; int32 ``[...]``.

    ``canonical_size`` ``c`` is the box side pooled from ``P_k0``: the paper's 224 (ImageNet's
    image side, for ~800-pixel inputs); a smaller one sends boxes to coarser levels (e.g.
    ``224 x 128 / 800`` for 128-pixel images, Faster R-CNN's ``roi_canonical="scaled"``).

    Example:
        >>> pyramid_levels([[0, 0, 20, 20], [0, 0, 224, 224]]).numpy().tolist()
        [2, 4]
        >>> pyramid_levels([[0, 0, 20, 20], [0, 0, 40, 40]], canonical_size=35.84).numpy().tolist()
        [3, 4]
    """
    rois = tf.cast(rois, tf.float32)
    area = tf.maximum(rois[..., 2] - rois[..., 0], 0.0) * tf.maximum(rois[..., 3] - rois[..., 1], 0.0)
    scale = tf.sqrt(tf.maximum(area, 1e-12))
    k = tf.floor(float(canonical_level) + tf.math.log(scale / float(canonical_size)) / tf.math.log(2.0))
    return tf.cast(tf.clip_by_value(k, float(min_level), float(max_level)), tf.int32)


def pyramid_roi_pool(features, rois, *, levels, pool_size: int = 7, kind: str = "align",
                     sampling_ratio: int = 2, canonical_size: float = 224.0) -> tf.Tensor:
    """RoI pooling from a feature pyramid: each RoI is pooled from the level
    :func:`pyramid_levels` assigns it (Lin et al. 2017, sec. 4.2).

    Args:
        features: one map ``[B, Hl, Wl, C]`` per level, finest first (level ``l`` has stride ``2**l``).
        rois: ``[B, R, 4]`` corners in input pixels.
        levels: the levels of ``features`` (e.g. ``[2, 3, 4, 5]``), consecutive.
        kind: ``align`` (RoI Align) or ``max`` (RoI max pooling).
        canonical_size: the box side pooled from ``P4`` (:func:`pyramid_levels`; the paper's 224).

    Returns:
        ``[B, R, P, P, C]``: the RoIs of each level pooled together, then put back in their order.
    """
    levels = [int(v) for v in levels]
    _, flat, index, batch, count = _flat(features[0], rois)
    assigned = pyramid_levels(flat, min_level=levels[0], max_level=levels[-1], canonical_size=canonical_size)
    rows, pooled = [], []
    for level, fmap in zip(levels, features):
        where = tf.cast(tf.where(tf.equal(assigned, level))[:, 0], tf.int32)
        boxes, images = tf.gather(flat, where), tf.gather(index, where)
        fmap = tf.cast(fmap, tf.float32)
        if kind == "align":
            pooled.append(_align_boxes(fmap, boxes, images, pool_size, 2.0**level, sampling_ratio))
        else:
            pooled.append(_max_pool_boxes(fmap, boxes, images, pool_size, 2.0**level))
        rows.append(where)
    channels = tf.shape(features[0])[3:]
    together = tf.scatter_nd(tf.concat(rows, 0)[:, None], tf.concat(pooled, 0),
                             tf.concat([[batch * count, pool_size, pool_size], channels], 0))
    return tf.reshape(together, tf.concat([[batch, count, pool_size, pool_size], channels], 0))


class _RoIPoolBase(keras.layers.Layer):
    def __init__(self, pool_size: int = 7, stride: float = 16.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if int(pool_size) < 1 or float(stride) <= 0:
            raise ValueError(f"{type(self).__name__} needs pool_size >= 1 and stride > 0, got {pool_size}, {stride}")
        self.pool_size = int(pool_size)
        self.stride = float(stride)

    def compute_output_shape(self, input_shape):
        features, rois = input_shape
        return (features[0], rois[1], self.pool_size, self.pool_size, features[-1])

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "pool_size": self.pool_size, "stride": self.stride}


@keras.saving.register_keras_serializable(package="foveal")
class RoIAlign(_RoIPoolBase):
    """RoI Align (bilinear samples, averaged per bin); see the module docstring.

    Args:
        pool_size: output side ``P``.
        stride: input pixels per feature cell.
        sampling_ratio: samples per bin along each side (2: four samples per bin).
    """

    def __init__(self, pool_size: int = 7, stride: float = 16.0, sampling_ratio: int = 2, **kwargs: Any) -> None:
        super().__init__(pool_size, stride, **kwargs)
        self.sampling_ratio = int(sampling_ratio)

    def call(self, inputs):
        features, rois = inputs
        return roi_align(features, rois, pool_size=self.pool_size, stride=self.stride,
                         sampling_ratio=self.sampling_ratio)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "sampling_ratio": self.sampling_ratio}


@keras.saving.register_keras_serializable(package="foveal")
class RoIMaxPool(_RoIPoolBase):
    """RoI max pooling (Fast R-CNN; the texts' figure); see the module docstring.

    Args:
        pool_size: output side ``P``.
        stride: input pixels per feature cell.
    """

    def call(self, inputs):
        features, rois = inputs
        return roi_max_pool(features, rois, pool_size=self.pool_size, stride=self.stride)


@keras.saving.register_keras_serializable(package="foveal")
class PyramidRoIPool(keras.layers.Layer):
    """RoI Align or RoI max pooling from an FPN's levels, each RoI from the level its size picks
    (:func:`pyramid_roi_pool`). Takes ``[P_min, ..., P_max, rois]``.

    Args:
        pool_size: output side ``P``.
        levels: the pyramid levels given, finest first (``[2, 3, 4, 5]``: strides 4 to 32).
        kind: ``align`` or ``max``.
        sampling_ratio: RoI Align's samples per bin side.
        canonical_size: the box side pooled from ``P4`` (the FPN paper's 224; layers saved
            before it existed load with 224).

    Example:
        >>> import numpy as np
        >>> maps = [np.full((1, 512 // 2**k, 512 // 2**k, 2), k, np.float32) for k in (2, 3, 4, 5)]
        >>> rois = np.array([[[4, 4, 12, 12], [0, 0, 224, 224], [0, 0, 512, 512]]], np.float32)
        >>> PyramidRoIPool(2, levels=[2, 3, 4, 5])([*maps, rois])[0, :, 0, 0, 0].numpy().tolist()
        [2.0, 4.0, 5.0]
    """

    def __init__(self, pool_size: int = 7, levels=(2, 3, 4, 5), kind: str = "align", sampling_ratio: int = 2,
                 canonical_size: float = 224.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        levels = [int(v) for v in levels]
        if int(pool_size) < 1 or not levels or levels != list(range(levels[0], levels[0] + len(levels))):
            raise ValueError(f"PyramidRoIPool needs pool_size >= 1 and consecutive levels, got {pool_size}, {levels}")
        if kind not in ("align", "max"):
            raise ValueError(f"PyramidRoIPool kind must be align or max, got {kind!r}")
        if not float(canonical_size) > 0:
            raise ValueError(f"PyramidRoIPool canonical_size must be positive, got {canonical_size}")
        self.pool_size, self.levels, self.kind = int(pool_size), levels, str(kind)
        self.sampling_ratio = int(sampling_ratio)
        self.canonical_size = float(canonical_size)

    def call(self, inputs):
        *features, rois = inputs
        return pyramid_roi_pool(features, rois, levels=self.levels, pool_size=self.pool_size, kind=self.kind,
                                sampling_ratio=self.sampling_ratio, canonical_size=self.canonical_size)

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], input_shape[-1][1], self.pool_size, self.pool_size, input_shape[0][-1])

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "pool_size": self.pool_size, "levels": self.levels, "kind": self.kind,
                "sampling_ratio": self.sampling_ratio, "canonical_size": self.canonical_size}


__all__ = ["PyramidRoIPool", "RoIAlign", "RoIMaxPool", "pyramid_levels", "pyramid_roi_pool", "roi_align",
           "roi_max_pool"]
