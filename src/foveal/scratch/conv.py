"""2-D convolution in NumPy, two ways: im2col with one matrix product, and the texts' loops.

A convolution layer with ``N`` filters of ``k_h x k_w`` over ``D`` channels computes, for every
output position ``(i, j)`` and filter ``n`` (a cross-correlation, Planche & Andres ch. 3)::

    y[i, j, n] = b[n] + sum_{l, m, d} W[l, m, d, n] * x[i*s + l*dil, j*s + m*dil, d]

``method="loops"`` evaluates exactly that sum, position by position and tap by tap (each term
a batch-by-channels matrix product): slow, but easy to check against the formula.
``method="im2col"`` copies every receptive field into one row of a matrix (*im2col*) so the
whole layer is a single matrix product, and its backward pass is two products plus a
``k_h * k_w``-step scatter (*col2im*); the first layer of a network skips the input gradient. Both give the same numbers (tested against each other and
against ``keras.layers.Conv2D``).

Example:
    >>> import numpy as np
    >>> conv = Conv2D(3, 8, kernel_size=5, padding="same", rng=np.random.default_rng(0))
    >>> conv.forward(np.zeros((2, 28, 28, 3))).shape
    (2, 28, 28, 8)
"""

from __future__ import annotations

import numpy as np

from foveal.scratch.layers import Layer, Shape, glorot_uniform
from foveal.scratch.shapes import Padding, ShapeError, check_padding, output_size, pad_amounts

METHODS = ("im2col", "loops")


def _pair(value: int | tuple[int, int], what: str) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or any(int(v) < 1 for v in pair):
        raise ShapeError(f"conv2d: {what} must be a positive integer or a pair of them, got {value!r}")
    return int(pair[0]), int(pair[1])


class Conv2D(Layer):
    """Trainable 2-D convolution (cross-correlation) with stride, padding and dilation.

    Args:
        channels: input channels ``D``.
        filters: number of filters ``N``.
        kernel_size: ``k`` or ``(k_h, k_w)``.
        stride: ``s`` or ``(s_h, s_w)``.
        padding: ``"valid"``, ``"same"`` (TensorFlow's rule) or zeros ``p`` on each side.
        dilation: spacing of the kernel taps (``d`` or ``(d_h, d_w)``).
        method: ``"im2col"`` (vectorised) or ``"loops"`` (the texts' sum, position by position).
        rng: random generator for Glorot-uniform kernels (biases start at zero, like Keras).

    The kernel has Keras' layout ``(k_h, k_w, D, N)``, so it has ``N (D k_h k_w + 1)`` values.
    """

    name = "conv2d"

    def __init__(self, channels: int, filters: int, kernel_size: int | tuple[int, int] = 3, *,
                 stride: int | tuple[int, int] = 1, padding: Padding = "valid",
                 dilation: int | tuple[int, int] = 1, method: str = "im2col",
                 rng: np.random.Generator | None = None) -> None:
        super().__init__()
        if method not in METHODS:
            raise ShapeError(f"conv2d: unknown method {method!r}", hint=f"use one of {', '.join(METHODS)}")
        check_padding(padding, self.name)
        self.channels, self.filters = int(channels), int(filters)
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.stride = _pair(stride, "stride")
        self.dilation = _pair(dilation, "dilation")
        if max(self.stride) > 1 and max(self.dilation) > 1:
            # TensorFlow refuses this combination too; refusing it keeps the twin exact.
            raise ShapeError("conv2d: stride > 1 together with dilation > 1 is not supported",
                             hint="use stride 1 with dilation, or dilation 1 with stride")
        self.padding, self.method = padding, method
        kh, kw = self.kernel_size
        rng = rng if rng is not None else np.random.default_rng()
        self.params = {
            "kernel": glorot_uniform((kh, kw, channels, filters), kh * kw * channels, kh * kw * filters, rng),
            "bias": np.zeros(filters),
        }

    def output_shape(self, input_shape: Shape) -> Shape:
        if len(input_shape) != 3:
            raise ShapeError(f"conv2d: expects (height, width, channels) per sample, got {tuple(input_shape)}")
        h, w, c = input_shape
        if c != self.channels:
            raise ShapeError(f"conv2d: input has {c} channels, the layer's kernel expects D = {self.channels}",
                             hint="the kernel is (k_h, k_w, D, N): build the layer with the input's channel count")
        return (output_size(h, self.kernel_size[0], self.stride[0], self.padding, self.dilation[0],
                            axis="height", where=self.name),
                output_size(w, self.kernel_size[1], self.stride[1], self.padding, self.dilation[1],
                            axis="width", where=self.name), self.filters)

    def _pad(self, x: np.ndarray) -> np.ndarray:
        self.pads = tuple(pad_amounts(x.shape[1 + a], self.kernel_size[a], self.stride[a], self.padding,
                                      self.dilation[a]) for a in (0, 1))
        return np.pad(x, ((0, 0), self.pads[0], self.pads[1], (0, 0)))

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._expect_rank(x, 4, "images")
        ho, wo, _ = self.output_shape(x.shape[1:])
        self.in_shape, self.out_hw = x.shape, (ho, wo)
        xp = self._pad(x)
        if self.method == "loops":
            self.xp = xp
            return conv2d_loops(xp, self.params["kernel"], self.params["bias"], self.stride, self.dilation, (ho, wo))
        cols = im2col(xp, self.kernel_size, self.stride, self.dilation, (ho, wo))
        self.cols = cols.reshape(-1, cols.shape[-1])
        y = self.cols @ self._kernel_matrix() + self.params["bias"]
        return y.reshape(len(x), ho, wo, self.filters)

    def _kernel_matrix(self) -> np.ndarray:
        """The kernel as a ``(k_h * k_w * D, N)`` matrix, rows in im2col's (row, column, channel) order."""
        return self.params["kernel"].reshape(-1, self.filters)

    def backward(self, dy: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        """Store the kernel and bias gradients; return ``dL/dx`` (None when ``input_grad`` is False)."""
        if self.method == "loops":
            dxp, dkernel = conv2d_loops_backward(self.xp, self.params["kernel"], dy, self.stride, self.dilation)
        else:
            dy2 = dy.reshape(-1, self.filters)
            dkernel = (self.cols.T @ dy2).reshape(self.params["kernel"].shape)
            dxp = None
            if input_grad:
                dcols = (dy2 @ self._kernel_matrix().T).reshape(*dy.shape[:3], *self.kernel_size, self.channels)
                dxp = col2im(dcols, self.pads, self.in_shape, self.stride, self.dilation)
        self.grads = {"kernel": dkernel, "bias": dy.sum(axis=(0, 1, 2))}
        if not input_grad:
            return None
        (top, _), (left, _) = self.pads
        _, h, w, _ = self.in_shape
        return dxp[:, top:top + h, left:left + w]


def _tap(i: int, j: int, out_hw: tuple[int, int], stride: tuple[int, int], dilation: tuple[int, int]) -> tuple:
    """Index of the input pixels that kernel tap ``(i, j)`` meets at every output position."""
    (sh, sw), (dh, dw) = stride, dilation
    return (slice(None), slice(i * dh, i * dh + sh * (out_hw[0] - 1) + 1, sh),
            slice(j * dw, j * dw + sw * (out_hw[1] - 1) + 1, sw))


def im2col(xp: np.ndarray, kernel_size: tuple[int, int], stride: tuple[int, int], dilation: tuple[int, int],
           out_hw: tuple[int, int]) -> np.ndarray:
    """Receptive fields of the padded batch ``xp`` as rows: ``(B, H_o, W_o, k_h * k_w * D)``.

    A row lists its field tap by tap (row, column, then channel): the order of a Keras kernel
    ``(k_h, k_w, D, N)`` reshaped to ``(k_h k_w D, N)``. The matrix is filled one tap at a time
    (``k_h k_w`` strided copies) rather than through a window view, which is faster in NumPy.
    """
    kh, kw = kernel_size
    cols = np.empty((len(xp), *out_hw, kh, kw, xp.shape[-1]), dtype=xp.dtype)
    for i in range(kh):
        for j in range(kw):
            cols[:, :, :, i, j] = xp[_tap(i, j, out_hw, stride, dilation)]
    return cols.reshape(len(xp), *out_hw, -1)


def col2im(dcols: np.ndarray, pads: tuple[tuple[int, int], ...], in_shape: Shape, stride: tuple[int, int],
           dilation: tuple[int, int]) -> np.ndarray:
    """Add ``(B, H_o, W_o, k_h, k_w, D)`` patch gradients back onto the padded input (im2col's adjoint)."""
    b, h, w, c = in_shape
    _, ho, wo, kh, kw, _ = dcols.shape
    dxp = np.zeros((b, h + sum(pads[0]), w + sum(pads[1]), c), dtype=dcols.dtype)
    for i in range(kh):
        for j in range(kw):
            dxp[_tap(i, j, (ho, wo), stride, dilation)] += dcols[:, :, :, i, j]
    return dxp


def conv2d_loops(xp: np.ndarray, kernel: np.ndarray, bias: np.ndarray, stride: tuple[int, int],
                 dilation: tuple[int, int], out_hw: tuple[int, int]) -> np.ndarray:
    """The texts' sum, position by position and tap by tap, on an already padded batch."""
    kh, kw, _, n = kernel.shape
    (sh, sw), (dh, dw) = stride, dilation
    y = np.empty((len(xp), *out_hw, n), dtype=np.result_type(xp, kernel))
    for i in range(out_hw[0]):
        for j in range(out_hw[1]):
            total = np.broadcast_to(bias, (len(xp), n)).copy()
            for l in range(kh):
                for m in range(kw):
                    total += xp[:, i * sh + l * dh, j * sw + m * dw, :] @ kernel[l, m]
            y[:, i, j] = total
    return y


def conv2d_loops_backward(xp: np.ndarray, kernel: np.ndarray, dy: np.ndarray, stride: tuple[int, int],
                          dilation: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Gradients of :func:`conv2d_loops` with respect to the padded input and the kernel."""
    kh, kw, _, _ = kernel.shape
    (sh, sw), (dh, dw) = stride, dilation
    dxp, dkernel = np.zeros_like(xp, dtype=dy.dtype), np.zeros_like(kernel, dtype=dy.dtype)
    for i in range(dy.shape[1]):
        for j in range(dy.shape[2]):
            g = dy[:, i, j]
            for l in range(kh):
                for m in range(kw):
                    r, c = i * sh + l * dh, j * sw + m * dw
                    dkernel[l, m] += xp[:, r, c, :].T @ g
                    dxp[:, r, c, :] += g @ kernel[l, m].T
    return dxp, dkernel
