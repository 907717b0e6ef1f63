"""Networks built from the NumPy layers: a generic stack, the texts' SimpleNetwork, a small CNN.

:class:`Network` chains layers, checks at construction that each layer accepts the previous
one's output, and trains with mini-batch SGD. :class:`SimpleNetwork` is Planche & Andres'
first network (ch. 1): fully connected layers with sigmoid activations, standard-normal
initial values and the L2 loss, with the texts' ``train`` / ``evaluate_accuracy`` API.
:func:`small_cnn` is a LeNet-like convolutional network for 28x28 digits (ch. 3's layers).

Example:
    >>> import numpy as np
    >>> net = SimpleNetwork([4, 3, 2], seed=0)
    >>> net.forward(np.zeros((5, 4))).shape
    (5, 2)
"""

from __future__ import annotations

import time
from typing import Callable, Sequence

import numpy as np

from foveal.scratch.conv import Conv2D
from foveal.scratch.layers import Dense, Flatten, Layer, MaxPool2D, ReLU, Shape, Sigmoid
from foveal.scratch.losses import L2Loss, Loss, SoftmaxCrossEntropy
from foveal.scratch.optim import SGD
from foveal.scratch.shapes import ShapeError

EpochCallback = Callable[[int, dict[str, float]], None]


class Network:
    """A stack of NumPy layers for a per-sample ``input_shape``.

    Args:
        layers: the layers, first to last.
        input_shape: shape of one sample, e.g. ``(28, 28, 1)`` or ``(784,)``.
        loss: the training loss (its output is what :meth:`predict_proba` turns into probabilities).
        dtype: float type of parameters and computations.

    Raises:
        ShapeError: a layer does not accept its input; the message names the layer.
    """

    def __init__(self, layers: Sequence[Layer], input_shape: Shape, loss: Loss, dtype: type = np.float64) -> None:
        self.layers = list(layers)
        self.input_shape = tuple(int(v) for v in input_shape)
        self.loss = loss
        self.dtype = np.dtype(dtype)
        self.shapes = [self.input_shape]
        for index, layer in enumerate(self.layers):
            try:
                self.shapes.append(tuple(layer.output_shape(self.shapes[-1])))
            except ShapeError as exc:
                raise ShapeError(f"layer {index} ({layer.name}): {exc.message}", hint=exc.hint) from None
            layer.cast(self.dtype)

    @property
    def num_classes(self) -> int:
        return self.shapes[-1][-1]

    def count_params(self) -> int:
        return sum(v.size for layer in self.layers for v in layer.params.values())

    def get_weights(self) -> list[np.ndarray]:
        """Copies of all parameters in Keras' order (kernel, bias per layer)."""
        return [v.copy() for layer in self.layers for v in layer.params.values()]

    def set_weights(self, weights: Sequence[np.ndarray]) -> None:
        """Set all parameters from a list in :meth:`get_weights` order (shapes are checked)."""
        slots = [(layer, key) for layer in self.layers for key in layer.params]
        if len(weights) != len(slots):
            raise ShapeError(f"got {len(weights)} weight arrays, the network has {len(slots)}")
        for (layer, key), value in zip(slots, weights):
            if np.shape(value) != layer.params[key].shape:
                raise ShapeError(f"{layer.name} {key}: got shape {np.shape(value)}, expected {layer.params[key].shape}")
            layer.params[key] = np.array(value, dtype=self.dtype)

    def _check_input(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=self.dtype)
        if x.shape[1:] != self.input_shape:
            raise ShapeError(f"input of shape {x.shape} does not match the network's (batch, "
                             f"{', '.join(map(str, self.input_shape))})")
        return x

    def forward(self, x: np.ndarray) -> np.ndarray:
        """The network's output (before the loss) for a batch."""
        x = self._check_input(x)
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def backward(self, dy: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        """Back-propagate ``dL/dy`` from the last layer to the first; returns ``dL/dx``.

        With ``input_grad=False`` (training) the first layer skips ``dL/dx``, which nobody
        uses, when it can (dense and convolution layers); None is returned then.
        """
        for index in range(len(self.layers) - 1, -1, -1):
            layer = self.layers[index]
            if index == 0 and not input_grad and isinstance(layer, (Dense, Conv2D)):
                return layer.backward(dy, input_grad=False)
            dy = layer.backward(dy)
        return dy

    def predict_proba(self, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Class probabilities (softmax of the logits when the loss is fused with softmax)."""
        parts = [self.forward(x[i:i + batch_size]) for i in range(0, len(x), batch_size)]
        out = np.concatenate(parts) if parts else np.zeros((0, self.num_classes), self.dtype)
        return SoftmaxCrossEntropy.probabilities(out) if isinstance(self.loss, SoftmaxCrossEntropy) else out

    def predict(self, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Index of the largest output for every sample."""
        return self.predict_proba(x, batch_size).argmax(axis=-1)

    def evaluate(self, x: np.ndarray, y: np.ndarray, batch_size: int = 256) -> dict[str, float]:
        """Mean loss per sample and accuracy on ``(x, y)`` (labels or one-hot rows)."""
        labels = np.asarray(y) if np.ndim(y) == 1 else np.asarray(y).argmax(axis=-1)
        total, correct = 0.0, 0
        for i in range(0, len(x), batch_size):
            out = self.forward(x[i:i + batch_size])
            total += self.loss.forward(out, labels[i:i + batch_size]) * len(out)
            correct += int((out.argmax(axis=-1) == labels[i:i + batch_size]).sum())
        return {"loss": total / max(len(x), 1), "accuracy": correct / max(len(x), 1)}

    def train_step(self, x: np.ndarray, y: np.ndarray, optimizer: SGD) -> tuple[float, int]:
        """One forward, backward and update on a batch; returns (loss, correct predictions)."""
        out = self.forward(x)
        value = self.loss.forward(out, y)
        self.backward(self.loss.backward(), input_grad=False)
        optimizer.step(self.layers)
        labels = y if np.ndim(y) == 1 else np.asarray(y).argmax(axis=-1)
        return value, int((out.argmax(axis=-1) == labels).sum())

    def fit(self, x: np.ndarray, y: np.ndarray, *, epochs: int, batch_size: int, optimizer: SGD,
            validation: tuple[np.ndarray, np.ndarray] | None = None, shuffle: bool = True, seed: int = 0,
            on_epoch_end: EpochCallback | None = None) -> dict[str, list[float]]:
        """Mini-batch training; the last incomplete batch is dropped, as in the texts.

        Returns the per-epoch history: ``loss`` and ``accuracy`` (means over the epoch's
        batches, measured before each update, as Keras reports them), ``val_loss`` and
        ``val_accuracy`` when ``validation`` is given, and ``epoch_seconds``.
        """
        steps = len(x) // batch_size
        if steps == 0:
            raise ShapeError(f"{len(x)} training samples are fewer than one batch of {batch_size}")
        history: dict[str, list[float]] = {}
        for epoch in range(epochs):
            order = epoch_order(len(x), epoch, seed) if shuffle else np.arange(len(x))
            start, total, correct = time.perf_counter(), 0.0, 0
            for step in range(steps):
                idx = order[step * batch_size:(step + 1) * batch_size]
                value, hits = self.train_step(x[idx], y[idx], optimizer)
                total, correct = total + value, correct + hits
            row = {"loss": total / steps, "accuracy": correct / (steps * batch_size),
                   "epoch_seconds": time.perf_counter() - start}
            if validation is not None:
                scores = self.evaluate(*validation)
                row.update(val_loss=scores["loss"], val_accuracy=scores["accuracy"])
            for key, value in row.items():
                history.setdefault(key, []).append(value)
            if on_epoch_end is not None:
                on_epoch_end(epoch, row)
        return history


def epoch_order(n: int, epoch: int, seed: int) -> np.ndarray:
    """The sample order of ``epoch``: a permutation that depends only on (seed, epoch)."""
    return np.random.default_rng([seed, epoch]).permutation(n)


class SimpleNetwork(Network):
    """The texts' fully connected network: sigmoid layers, standard-normal init, L2 loss.

    Args:
        sizes: layer sizes from the input to the output, e.g. ``[784, 64, 32, 10]``.
        seed: seed of the initial values.
        dtype: float type.

    Training follows the texts: batches in the data's order (no shuffling), the last partial
    batch dropped, plain SGD with the gradient of the L2 loss summed over the batch.
    """

    def __init__(self, sizes: Sequence[int], seed: int = 42, dtype: type = np.float64) -> None:
        if len(sizes) < 2 or any(int(s) < 1 for s in sizes):
            raise ShapeError(f"sizes must list at least an input and an output size, all positive; got {list(sizes)}")
        rng = np.random.default_rng(seed)
        layers: list[Layer] = []
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            layers += [Dense(fan_in, fan_out, init="normal", rng=rng), Sigmoid()]
        super().__init__(layers, (int(sizes[0]),), L2Loss(reduction="sum"), dtype)
        self.sizes = [int(s) for s in sizes]

    def _flat(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x).reshape(len(x), -1)

    def predict(self, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
        return super().predict(self._flat(x), batch_size)

    def evaluate_accuracy(self, x_val: np.ndarray, y_val: np.ndarray) -> float:
        """Fraction of ``x_val`` whose largest output is the label (labels or one-hot rows)."""
        labels = np.asarray(y_val) if np.ndim(y_val) == 1 else np.asarray(y_val).argmax(axis=-1)
        return float(np.mean(self.predict(x_val) == labels))

    def train(self, x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray,
              batch_size: int = 32, num_epochs: int = 5, learning_rate: float = 5e-3,
              on_epoch_end: EpochCallback | None = None) -> tuple[list[float], list[float]]:
        """Train as the texts do and return ``(losses, accuracies)``, one value per epoch.

        ``losses`` are the mean training L2 loss per sample, ``accuracies`` the accuracy on
        ``(x_val, y_val)`` after each epoch.
        """
        self.history = self.fit(self._flat(x_train), np.asarray(y_train), epochs=num_epochs,
                                batch_size=batch_size, optimizer=SGD(learning_rate),
                                validation=(self._flat(x_val), np.asarray(y_val)), shuffle=False,
                                on_epoch_end=on_epoch_end)
        return self.history["loss"], self.history["val_accuracy"]


def small_cnn(input_shape: Shape = (28, 28, 1), num_classes: int = 10, *, filters: Sequence[int] = (8, 16),
              kernel_size: int = 5, hidden: int = 0, method: str = "im2col", seed: int = 42,
              dtype: type = np.float64) -> Network:
    """A LeNet-like CNN of NumPy layers, trained with softmax cross-entropy.

    ``[Conv(k x k, 'same') -> ReLU -> MaxPool 2x2] per entry of filters -> Flatten ->
    [Dense(hidden) -> ReLU] -> Dense(num_classes)`` (logits; softmax lives in the loss).
    On 28x28 inputs with the defaults: 28 -> 14 -> 7, 11,274 parameters.
    """
    rng = np.random.default_rng(seed)
    layers: list[Layer] = []
    channels = int(input_shape[-1])
    for n in filters:
        layers += [Conv2D(channels, n, kernel_size, padding="same", method=method, rng=rng), ReLU(), MaxPool2D(2)]
        channels = n
    layers.append(Flatten())
    probe = Network(layers, input_shape, SoftmaxCrossEntropy(), dtype)  # checks shapes, gives the flat size
    width = probe.shapes[-1][0]
    if hidden:
        layers += [Dense(width, hidden, rng=rng), ReLU()]
        width = hidden
    layers.append(Dense(width, num_classes, rng=rng))
    return Network(layers, input_shape, SoftmaxCrossEntropy(), dtype)
