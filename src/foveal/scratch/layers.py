"""NumPy layers with a forward and a backward pass: dense, activations, pooling, flatten.

Every layer works on a batch (the first axis) in channels-last layout, like Keras. ``forward``
keeps what ``backward`` needs; ``backward(dL_dy)`` stores the gradients of the parameters in
``grads`` (same keys as ``params``) and returns ``dL_dx``. Parameter layouts are Keras' (a
dense kernel is ``(inputs, units)``, a conv kernel ``(k_h, k_w, D, N)``), so weights copy
across unchanged (:mod:`foveal.scratch.keras_twin`).

The convolution lives in :mod:`foveal.scratch.conv`.

Example:
    >>> import numpy as np
    >>> layer = Dense(3, 2, rng=np.random.default_rng(0))
    >>> layer.forward(np.ones((4, 3))).shape
    (4, 2)
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from foveal.scratch.shapes import Padding, ShapeError, check_padding, output_size, pad_amounts

Shape = tuple[int, ...]


class Layer:
    """Base class: no parameters, identity shape."""

    name = "layer"

    def __init__(self) -> None:
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}

    def output_shape(self, input_shape: Shape) -> Shape:
        """Per-sample output shape for a per-sample ``input_shape``; raises ShapeError."""
        return tuple(input_shape)

    def forward(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def backward(self, dy: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def cast(self, dtype: np.dtype) -> None:
        """Store the parameters in ``dtype``."""
        for key, value in self.params.items():
            self.params[key] = value.astype(dtype)

    def _expect_rank(self, x: np.ndarray, rank: int, what: str) -> None:
        if x.ndim != rank:
            raise ShapeError(f"{self.name}: expected a batch of {what} ({rank}-D array), got shape {x.shape}",
                             hint="the first axis is the batch; images are (batch, height, width, channels)")


def glorot_uniform(shape: Shape, fan_in: int, fan_out: int, rng: np.random.Generator) -> np.ndarray:
    """Keras' default initialiser: U(-l, l) with ``l = sqrt(6 / (fan_in + fan_out))`` (Glorot 2010)."""
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=shape)


class Dense(Layer):
    """Fully connected layer ``y = x W + b`` (Planche & Andres ch. 1, ``z = x . W + b``).

    Args:
        inputs: features per sample.
        units: neurons.
        init: ``"glorot"`` (Keras' default, zero bias) or ``"normal"`` (standard normal W and b,
            as in the texts' first network).
        rng: random generator for the initial values.
    """

    name = "dense"

    def __init__(self, inputs: int, units: int, *, init: str = "glorot", rng: np.random.Generator | None = None) -> None:
        super().__init__()
        rng = rng if rng is not None else np.random.default_rng()
        self.inputs, self.units = int(inputs), int(units)
        if init == "normal":
            self.params = {"kernel": rng.standard_normal((inputs, units)), "bias": rng.standard_normal(units)}
        elif init == "glorot":
            self.params = {"kernel": glorot_uniform((inputs, units), inputs, units, rng), "bias": np.zeros(units)}
        else:
            raise ShapeError(f"dense: unknown init {init!r}", hint="use 'glorot' or 'normal'")

    def output_shape(self, input_shape: Shape) -> Shape:
        if len(input_shape) != 1 or input_shape[0] != self.inputs:
            raise ShapeError(f"dense: input of shape {tuple(input_shape)} per sample, the layer expects "
                             f"({self.inputs},)", hint="flatten images first (Flatten) or change the layer size")
        return (self.units,)

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._expect_rank(x, 2, "vectors")
        self.output_shape(x.shape[1:])
        self.x = x
        return x @ self.params["kernel"] + self.params["bias"]

    def backward(self, dy: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        """Store the kernel and bias gradients; return ``dL/dx`` (None when ``input_grad`` is False)."""
        self.grads = {"kernel": self.x.T @ dy, "bias": dy.sum(axis=0)}
        return dy @ self.params["kernel"].T if input_grad else None


class Flatten(Layer):
    """``(B, H, W, C) -> (B, H*W*C)`` in row-major order (Keras' ``Flatten`` in channels-last)."""

    name = "flatten"

    def output_shape(self, input_shape: Shape) -> Shape:
        return (int(np.prod(input_shape)),)

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.shape = x.shape
        return x.reshape(len(x), -1)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        return dy.reshape(self.shape)


class ReLU(Layer):
    """``max(x, 0)``; its gradient at 0 is 0, as in TensorFlow."""

    name = "relu"

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.positive = x > 0
        return x * self.positive

    def backward(self, dy: np.ndarray) -> np.ndarray:
        return dy * self.positive


class Sigmoid(Layer):
    """``1 / (1 + e^-x)``; derivative ``y (1 - y)`` from the output."""

    name = "sigmoid"

    def forward(self, x: np.ndarray) -> np.ndarray:
        # exp of a large positive number overflows; split by sign so exp only sees x <= 0.
        e = np.exp(-np.abs(x))
        self.y = np.where(x >= 0, 1 / (1 + e), e / (1 + e))
        return self.y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        return dy * self.y * (1 - self.y)


def softmax(z: np.ndarray) -> np.ndarray:
    """Softmax over the last axis, shifted by the maximum so ``exp`` never overflows."""
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


class Softmax(Layer):
    """Softmax over the last axis; backward is the Jacobian-vector product ``y (dy - <dy, y>)``."""

    name = "softmax"

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.y = softmax(x)
        return self.y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        return self.y * (dy - (dy * self.y).sum(axis=-1, keepdims=True))


class _Pool2D(Layer):
    """Shared window logic of max and average pooling (channels-last, per-channel windows)."""

    def __init__(self, pool_size: int = 2, strides: int | None = None, padding: Padding = "valid") -> None:
        super().__init__()
        check_padding(padding, self.name)
        self.k = int(pool_size)
        self.s = int(strides) if strides is not None else self.k
        self.padding = padding

    def output_shape(self, input_shape: Shape) -> Shape:
        if len(input_shape) != 3:
            raise ShapeError(f"{self.name}: expects (height, width, channels) per sample, got {tuple(input_shape)}")
        h, w, c = input_shape
        return (output_size(h, self.k, self.s, self.padding, axis="height", where=self.name),
                output_size(w, self.k, self.s, self.padding, axis="width", where=self.name), c)

    def _taps(self, x: np.ndarray, fill: float) -> list[np.ndarray]:
        """Views of the padded ``x``, one per window tap (row-major): tap ``t`` of every window."""
        self._expect_rank(x, 4, "images")
        ho, wo, _ = self.output_shape(x.shape[1:])
        self.in_shape, self.out_hw = x.shape, (ho, wo)
        self.pads = (pad_amounts(x.shape[1], self.k, self.s, self.padding),
                     pad_amounts(x.shape[2], self.k, self.s, self.padding))
        xp = np.pad(x, ((0, 0), self.pads[0], self.pads[1], (0, 0)), constant_values=fill)
        return [xp[:, i:i + self.s * (ho - 1) + 1:self.s, j:j + self.s * (wo - 1) + 1:self.s]
                for i in range(self.k) for j in range(self.k)]

    def _scatter(self, tap_grad: Callable[[int], np.ndarray], dtype: np.dtype) -> np.ndarray:
        """Sum each tap's ``(B, H_o, W_o, C)`` gradient back onto the (unpadded) input."""
        b, h, w, c = self.in_shape
        (top, bottom), (left, right) = self.pads
        dxp = np.zeros((b, h + top + bottom, w + left + right, c), dtype=dtype)
        ho, wo = self.out_hw
        for i in range(self.k):
            for j in range(self.k):
                dxp[:, i:i + self.s * (ho - 1) + 1:self.s, j:j + self.s * (wo - 1) + 1:self.s] += \
                    tap_grad(i * self.k + j)
        return dxp[:, top:top + h, left:left + w]


class MaxPool2D(_Pool2D):
    """Maximum over ``k x k`` windows every ``s`` pixels; padding counts as -infinity.

    The gradient goes to the first maximum of each window in row-major order, as TensorFlow's
    CPU kernel does.
    """

    name = "max_pool2d"

    def forward(self, x: np.ndarray) -> np.ndarray:
        taps = self._taps(x, -np.inf)
        best = taps[0].copy()
        self.argmax = np.zeros(best.shape, dtype=np.int8 if len(taps) < 128 else np.int32)
        for t, tap in enumerate(taps[1:], start=1):
            larger = tap > best  # strictly: ties keep the earlier tap
            np.copyto(best, tap, where=larger)
            np.copyto(self.argmax, t, where=larger)
        return best

    def backward(self, dy: np.ndarray) -> np.ndarray:
        return self._scatter(lambda t: dy * (self.argmax == t), dy.dtype)


class AvgPool2D(_Pool2D):
    """Mean over ``k x k`` windows; padded positions are left out of the mean (like Keras' "same")."""

    name = "avg_pool2d"

    def forward(self, x: np.ndarray) -> np.ndarray:
        ones = np.ones((1, *x.shape[1:3], 1), dtype=x.dtype)
        self.count = sum(self._taps(ones, 0.0))
        total = sum(self._taps(x, 0.0))  # last, so in_shape is x's
        return total / self.count

    def backward(self, dy: np.ndarray) -> np.ndarray:
        share = dy / self.count
        return self._scatter(lambda t: share, dy.dtype)
