"""Instance masks: RoI-aligned mask targets (TensorFlow), pasting masks into images and RLE (NumPy).

He, Gkioxari, Dollár & Girshick, "Mask R-CNN", ICCV 2017, sec. 3: a RoI's mask target is the
intersection of the RoI and its ground-truth mask, resampled to ``m x m`` (28); at inference
the ``m x m`` mask predicted for a box is resized to the box's size in the image and binarised
at 0.5. Both resamplings here use pixel centres: output cell ``i`` of a box ``[x0, x1)`` sits at
``x0 + (i + 0.5) (x1 - x0) / m`` (continuous pixel coordinates, pixel ``j`` centred at
``j + 0.5``), the same convention as :class:`foveal.layers.roi.RoIAlign`, so a target and a
pasted prediction line up with the image to a fraction of a pixel.

Ground-truth masks travel through the input pipeline **in their boxes' frames**
(:func:`box_mask`): each instance's mask resampled to ``MASK_GRID x MASK_GRID`` cells spanning
its box, as 0..255 coverage. A crowded image then costs ``instances x 64 x 64`` bytes instead of
``instances x height x width`` (ISBI's ~115 cells on 512 x 512 slices: 0.5 MB instead of 30 MB
per image), and :func:`mask_targets` cuts each RoI's ``m x m`` target from the mask of its
ground-truth box (``gt_boxes``). Scaling, moving, cropping and flipping an image leave a mask in
its box's frame unchanged, up to a crop of the frame where the box is clipped
(:func:`reframe_box_masks`).

RLE encoding and decoding are pycocotools' (``pycocotools.mask``): COCO's own, compressed,
with ``counts`` written as text for JSON.

Example:
    >>> import numpy as np
    >>> pasted = paste_masks(np.ones((1, 28, 28), np.float32), np.array([[2.0, 1.0, 6.0, 3.0]]), 4, 8)
    >>> pasted[0].astype(int).tolist()
    [[0, 0, 0, 0, 0, 0, 0, 0], [0, 0, 1, 1, 1, 1, 0, 0], [0, 0, 1, 1, 1, 1, 0, 0], [0, 0, 0, 0, 0, 0, 0, 0]]
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: side of the ground-truth masks in their boxes' frames (twice the mask head's 28 x 28 targets)
MASK_GRID = 64


def box_mask(mask: np.ndarray, box: Any, size: int = MASK_GRID) -> np.ndarray:
    """uint8 ``[size, size]`` coverage (0..255) of a 2-D 0/1 ``mask`` in the frame of ``box``
    (``x0, y0, x1, y1`` pixel corners): cell ``i`` samples the mask bilinearly at pixel
    coordinate ``x0 + (i + 0.5) (x1 - x0) / size`` (pixel ``j`` centred at ``j + 0.5``; the
    image's edge pixels extend outwards)."""
    mask = np.asarray(mask, np.float32)
    h, w = mask.shape
    x0, y0, x1, y1 = (float(v) for v in box)

    def axis(lo: float, hi: float, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        p = np.clip(lo + (np.arange(size) + 0.5) * (hi - lo) / size - 0.5, 0.0, n - 1.0)
        first = np.floor(p).astype(np.int64)
        return first, np.minimum(first + 1, n - 1), (p - first).astype(np.float32)

    ya, yb, fy = axis(y0, y1, h)
    xa, xb, fx = axis(x0, x1, w)
    top = mask[np.ix_(ya, xa)] * (1 - fx) + mask[np.ix_(ya, xb)] * fx
    bottom = mask[np.ix_(yb, xa)] * (1 - fx) + mask[np.ix_(yb, xb)] * fx
    return np.rint((top * (1 - fy)[:, None] + bottom * fy[:, None]) * 255.0).astype(np.uint8)


def reframe_box_masks(masks, frames):
    """Masks ``[K, S, S]`` (box frames, any numeric dtype) resampled to the sub-frames ``frames
    [K, 4]`` (``x0, y0, x1, y1`` as fractions of each old frame; ``[0, 0, 1, 1]`` is the same
    frame, read back exactly); outside the old frame reads 0 (TensorFlow)."""
    import tensorflow as tf

    # the centre-to-centre map of foveal.data.box_augment.sample_window, one frame per mask
    masks = tf.cast(masks, tf.float32)
    count, side = tf.shape(masks)[0], tf.cast(tf.shape(masks)[1], tf.float32)
    frames = tf.reshape(tf.cast(frames, tf.float32), [-1, 4])
    first = tf.stack([frames[:, 1], frames[:, 0]], -1) * side + 0.5 / side * tf.stack(
        [frames[:, 3] - frames[:, 1], frames[:, 2] - frames[:, 0]], -1) * side - 0.5
    last = first + (side - 1.0) / side * tf.stack([frames[:, 3] - frames[:, 1], frames[:, 2] - frames[:, 0]], -1) * side
    norm = tf.concat([first, last], -1) / tf.maximum(side - 1.0, 1.0)  # y0, x0, y1, x1
    out = tf.image.crop_and_resize(masks[..., None], norm, tf.range(count), tf.shape(masks)[1:3],
                                   method="bilinear", extrapolation_value=0.0)
    return out[..., 0]


def _box_mask_targets(gt_masks, gt_boxes, rois, gt_index, size: int):
    """:func:`mask_targets` of masks in their boxes' frames (see the module docstring)."""
    import tensorflow as tf

    masks = tf.cast(gt_masks, tf.float32) / 255.0  # [B, M, S, S] coverage
    shape = tf.shape(masks)
    batch, count, side = shape[0], shape[1], shape[2]
    # one empty cell around each frame: a sample within half a cell of the box edge blends with 0
    padded = tf.pad(tf.reshape(masks, [batch * count, side, side, 1]), [[0, 0], [1, 1], [1, 1], [0, 0]])
    s = tf.cast(side, tf.float32)
    rois = tf.cast(rois, tf.float32)
    r = tf.shape(rois)[1]
    gt = tf.gather(tf.cast(gt_boxes, tf.float32), tf.cast(gt_index, tf.int32), batch_dims=1)  # [B, R, 4]
    rois, gt = tf.reshape(rois, [-1, 4]), tf.reshape(gt, [-1, 4])
    n = float(size)

    def cells(lo, hi, g0, g1):  # the first and last RoI sample, as padded-cell indices of the frame
        extent = tf.maximum(g1 - g0, 1e-6)
        first = lo + 0.5 * (hi - lo) / n
        last = lo + (n - 0.5) * (hi - lo) / n
        return (first - g0) / extent * s + 0.5, (last - g0) / extent * s + 0.5

    y_first, y_last = cells(rois[:, 1], rois[:, 3], gt[:, 1], gt[:, 3])
    x_first, x_last = cells(rois[:, 0], rois[:, 2], gt[:, 0], gt[:, 2])
    norm = tf.stack([y_first, x_first, y_last, x_last], -1) / (s + 1.0)
    index = tf.reshape(tf.range(batch)[:, None] * count + tf.cast(gt_index, tf.int32), [-1])
    crops = tf.image.crop_and_resize(padded, norm, index, [size, size], method="bilinear", extrapolation_value=0.0)
    return tf.reshape(tf.cast(crops[..., 0] >= 0.5, tf.float32), [batch, r, size, size])


def mask_targets(gt_masks, rois, gt_index, size: int = 28, gt_boxes=None):
    """Binary ``size x size`` targets of ``rois`` cut from their ground-truth masks (TensorFlow).

    Args:
        gt_masks: ``[B, H, W, M]`` masks (0/1, any dtype) at the model input's resolution; or,
            with ``gt_boxes``, ``[B, M, S, S]`` masks in their boxes' frames (0..255 coverage,
            :func:`box_mask`), what the instance pipeline gives.
        rois: ``[B, R, 4]`` corners in input pixels.
        gt_index: ``[B, R]`` the mask (of ``M``) each RoI learns.
        size: the side ``m`` of the targets.
        gt_boxes: ``[B, M, 4]`` the ground-truth boxes in input pixels (the masks' frames).

    Returns:
        float32 ``[B, R, size, size]`` of 0 and 1 (bilinear samples at the cells' centres, >= 0.5).
    """
    import tensorflow as tf

    if gt_boxes is not None:
        return _box_mask_targets(gt_masks, gt_boxes, rois, gt_index, size)

    masks = tf.cast(gt_masks, tf.float32)
    shape = tf.shape(masks)
    batch, height, width, count = shape[0], shape[1], shape[2], shape[3]
    flat = tf.reshape(tf.transpose(masks, [0, 3, 1, 2]), [batch * count, height, width, 1])
    rois = tf.cast(rois, tf.float32)
    r = tf.shape(rois)[1]
    index = tf.reshape(tf.range(batch)[:, None] * count + tf.cast(gt_index, tf.int32), [-1])
    boxes = tf.reshape(rois, [-1, 4])
    h, w = tf.cast(height, tf.float32), tf.cast(width, tf.float32)
    x0, y0, x1, y1 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    n = float(size)
    # crop_and_resize samples row i at b0 (H-1) + i (b1-b0)(H-1)/(n-1): choose b0, b1 so that
    # rows 0 and n-1 fall on the first and last cell centres (pixel index = coordinate - 0.5).
    first_y, last_y = y0 + 0.5 * (y1 - y0) / n - 0.5, y0 + (n - 0.5) * (y1 - y0) / n - 0.5
    first_x, last_x = x0 + 0.5 * (x1 - x0) / n - 0.5, x0 + (n - 0.5) * (x1 - x0) / n - 0.5
    dy, dx = tf.maximum(h - 1.0, 1.0), tf.maximum(w - 1.0, 1.0)
    norm = tf.stack([first_y / dy, first_x / dx, last_y / dy, last_x / dx], axis=-1)
    crops = tf.image.crop_and_resize(flat, norm, index, [size, size], method="bilinear", extrapolation_value=0.0)
    return tf.reshape(tf.cast(crops[..., 0] >= 0.5, tf.float32), [batch, r, size, size])


def _weights(start: float, end: float, pixels: np.ndarray, size: int) -> np.ndarray:
    """``[len(pixels), size]`` linear-interpolation weights of mask cells at pixel centres."""
    u = (pixels + 0.5 - start) / max(end - start, 1e-6) * size - 0.5
    u = np.clip(u, 0.0, size - 1.0)
    lo = np.floor(u).astype(np.int64)
    hi = np.minimum(lo + 1, size - 1)
    frac = u - lo
    weights = np.zeros((len(pixels), size), np.float32)
    rows = np.arange(len(pixels))
    np.add.at(weights, (rows, lo), 1.0 - frac)
    np.add.at(weights, (rows, hi), frac)
    return weights


def paste_masks(masks: np.ndarray, boxes: np.ndarray, height: int, width: int,
                threshold: float = 0.5) -> np.ndarray:
    """Paste ``m x m`` mask probabilities into a ``height`` x ``width`` image (Mask R-CNN, sec. 3).

    Each mask is resized bilinearly to its box (pixels whose centre lies inside the box) and
    binarised at ``threshold``; everything outside the box is 0.

    Args:
        masks: ``[D, m, m]`` probabilities.
        boxes: ``[D, 4]`` corners in the image's pixels.
        height, width: the image's size.

    Returns:
        bool ``[D, height, width]``.
    """
    masks = np.asarray(masks, np.float32)
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    out = np.zeros((len(boxes), int(height), int(width)), bool)
    size = masks.shape[-1] if masks.ndim == 3 else 0
    for k, (x0, y0, x1, y1) in enumerate(boxes):
        c0, c1 = max(int(np.ceil(x0 - 0.5)), 0), min(int(np.ceil(x1 - 0.5)), int(width))
        r0, r1 = max(int(np.ceil(y0 - 0.5)), 0), min(int(np.ceil(y1 - 0.5)), int(height))
        if c1 <= c0 or r1 <= r0:
            continue
        wy = _weights(y0, y1, np.arange(r0, r1, dtype=np.float64), size)
        wx = _weights(x0, x1, np.arange(c0, c1, dtype=np.float64), size)
        out[k, r0:r1, c0:c1] = (wy @ masks[k] @ wx.T) >= threshold
    return out


def encode_rle(mask: np.ndarray) -> dict[str, Any]:
    """COCO's compressed RLE of a 2-D mask, ``counts`` as text for JSON
    (:func:`foveal.evaluation.detection.mask_to_rle`, pycocotools' encoder)."""
    from foveal.evaluation.detection import mask_to_rle

    return mask_to_rle(mask)


def decode_rle(rle: dict[str, Any]) -> np.ndarray:
    """bool ``[H, W]`` of a compressed or uncompressed COCO RLE (pycocotools)."""
    from pycocotools import mask as mask_utils

    if isinstance(rle.get("counts"), list):
        rle = mask_utils.frPyObjects(rle, *rle["size"])
    elif isinstance(rle.get("counts"), str):
        rle = {"size": rle["size"], "counts": rle["counts"].encode("ascii")}
    return mask_utils.decode(rle).astype(bool)


def mask_box(mask: np.ndarray) -> np.ndarray | None:
    """The tight corner box ``[x0, y0, x1, y1]`` (pixel edges) of a 2-D mask, None when empty."""
    ys, xs = np.nonzero(mask)
    if not len(xs):
        return None
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float32)


__all__ = ["MASK_GRID", "box_mask", "decode_rle", "encode_rle", "mask_box", "mask_targets", "paste_masks",
           "reframe_box_masks"]
