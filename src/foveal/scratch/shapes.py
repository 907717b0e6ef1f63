"""Output sizes, padding amounts and parameter counts of convolution and pooling layers.

The formulas are those of Planche & Andres, ch. 3: a ``k x k`` window sliding with stride
``s`` over an input of height ``H`` zero-padded by ``p`` on each side gives
``H_o = (H - k + 2p) / s + 1`` positions, and a convolution with ``N`` filters over ``D`` input
channels has ``N (D k^2 + 1)`` trainable values. Dilation ``d`` spreads the kernel taps, so the
window spans ``k_eff = d (k - 1) + 1`` pixels. ``"same"`` padding follows TensorFlow: the output
is ``ceil(H / s)`` and the padding (possibly one more at the bottom/right) is whatever that needs.

Invalid combinations raise :class:`ShapeError` with the formula's numbers in one line.

Example:
    >>> output_size(28, 5, stride=1, padding=0)
    24
    >>> conv_param_count(filters=32, channels=3, kernel_size=3)
    896
"""

from __future__ import annotations

import math

from foveal.errors import ModelError

Padding = str | int


class ShapeError(ModelError):
    """An input whose shape does not fit a from-scratch layer (the message gives the numbers)."""


def effective_kernel(kernel: int, dilation: int = 1) -> int:
    """Span in pixels of a ``kernel``-tap window whose taps are ``dilation`` pixels apart."""
    return dilation * (kernel - 1) + 1


def check_padding(padding: Padding, where: str) -> None:
    """Refuse a padding that is not ``"valid"``, ``"same"`` or a non-negative integer."""
    if isinstance(padding, bool) or not (padding in ("valid", "same") or (isinstance(padding, int) and padding >= 0)):
        raise ShapeError(f"{where}: padding must be 'valid', 'same' or an integer >= 0, got {padding!r}")


def pad_amounts(size: int, kernel: int, stride: int, padding: Padding, dilation: int = 1) -> tuple[int, int]:
    """Zeros added (before, after) along one axis, following TensorFlow's rule for ``"same"``."""
    if padding == "valid":
        return 0, 0
    if padding == "same":
        out = math.ceil(size / stride)
        total = max((out - 1) * stride + effective_kernel(kernel, dilation) - size, 0)
        return total // 2, total - total // 2
    return int(padding), int(padding)


def output_size(size: int, kernel: int, stride: int = 1, padding: Padding = "valid", dilation: int = 1,
                *, axis: str = "height", where: str = "layer") -> int:
    """``(H - k + 2p) / s + 1`` along one axis, checked.

    Args:
        size: input size ``H`` along the axis.
        kernel: window size ``k`` (taps).
        stride: step ``s`` between windows.
        padding: ``"valid"`` (p = 0), ``"same"`` (TensorFlow's rule) or an integer ``p``.
        dilation: spacing of the taps; the window spans ``d (k - 1) + 1`` pixels.
        axis, where: named in error messages.

    Returns:
        The output size.

    Raises:
        ShapeError: the window is larger than the padded input, or (valid or integer padding)
            the division by the stride is not exact.
    """
    check_padding(padding, where)
    if padding == "same":
        return math.ceil(size / stride)
    p = 0 if padding == "valid" else int(padding)
    k = effective_kernel(kernel, dilation)
    span = f"{k} (dilation {dilation})" if dilation != 1 else f"{k}"
    if size + 2 * p < k:
        raise ShapeError(f"{where}: kernel {span} is larger than the padded input {axis} "
                         f"{size} + 2*{p} = {size + 2 * p}",
                         hint="use a smaller kernel, more padding, or padding='same'")
    numerator = size - k + 2 * p
    if numerator % stride:
        raise ShapeError(f"{where}: output {axis} (H - k + 2p)/s + 1 = ({size} - {k} + 2*{p})/{stride} + 1 = "
                         f"{numerator / stride + 1:g} is not an integer",
                         hint="change the stride or the padding so the windows tile the input exactly, "
                         "or use padding='same'")
    return numerator // stride + 1


def conv_param_count(filters: int, channels: int, kernel_size: int | tuple[int, int], use_bias: bool = True) -> int:
    """``N (D k^2 + 1)``: trainable values of a convolution with ``N`` filters over ``D`` channels."""
    kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
    return filters * (channels * kh * kw + (1 if use_bias else 0))
