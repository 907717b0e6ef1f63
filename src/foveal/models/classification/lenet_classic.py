"""LeNet-5 as published: scaled tanh, trainable sub-sampling, the C3 connection table, RBF output.

LeCun, Bottou, Bengio, Haffner, "Gradient-based learning applied to document recognition",
Proceedings of the IEEE, 1998, section II.B and appendix A. Layer by layer (32x32x1 input):

=====  ===========================================================  ==========
layer  what it computes                                             parameters
=====  ===========================================================  ==========
C1     6 maps, 5x5 convolution                                      156
S2     per map: (sum of each 2x2 block) * coefficient + bias        12
C3     16 maps, 5x5 convolution over a subset of S2 (Table I)       1,516
S4     as S2, 16 maps                                               32
C5     120 maps, 5x5 convolution (1x1 output)                       48,120
F6     84 units, fully connected                                    10,164
RBF    one unit per class: squared distance of F6 to its centre     840 (fixed)
=====  ===========================================================  ==========

The 60,000 trainable parameters are the paper's total: its RBF centres are chosen by hand
(+-1 codes) and kept fixed, so by default (``rbf_trainable=False``) they are non-trainable
weights here; ``rbf_trainable=True`` trains them too (60,840 trainable).

Every layer up to F6 squashes its weighted sum with ``f(a) = 1.7159 tanh(2a/3)``
(appendix A), and weights start uniform in ``+-2.4 / fan_in``. Inputs are mapped so the
background (0) is -0.1 and full ink (255) is 1.175, as in the paper (the ``rescale``
preprocessing followed by an affine ``input_scaling`` layer).

Deviations, on purpose:

* Output and loss. The paper trains the RBF distances with its own criterion (eq. 9); here the
  output is ``softmax(-distance)``, so the standard cross-entropy trainer trains it. That loss
  is the paper's criterion without its extra constant "rubbish class" term.
* The paper's centres are bitmaps of stylised characters (7x12 pixels, +-1); with no such
  drawings for arbitrary classes, each centre is a fixed pseudo-random +-1 code (seeded, so
  every build is the same), which keeps the centres well apart as the bitmaps did.
"""

from __future__ import annotations

from typing import Any, Sequence

import keras
import numpy as np
from keras import layers, ops

from foveal.models.registry import MODELS

#: Table I of the paper: for each C3 map, the S2 maps it reads. Maps 0-5 see 3 contiguous
#: maps, 6-11 see 4 contiguous maps, 12-14 see 4 non-contiguous maps and 15 sees all six.
LENET5_C3_TABLE: tuple[tuple[int, ...], ...] = (
    (0, 1, 2), (1, 2, 3), (2, 3, 4), (3, 4, 5), (0, 4, 5), (0, 1, 5),
    (0, 1, 2, 3), (1, 2, 3, 4), (2, 3, 4, 5), (0, 3, 4, 5), (0, 1, 4, 5), (0, 1, 2, 5),
    (0, 1, 3, 4), (1, 2, 4, 5), (0, 2, 3, 5),
    (0, 1, 2, 3, 4, 5),
)

#: The paper's initial weight range is +-PAPER_INIT_FACTOR / fan_in (appendix A).
PAPER_INIT_FACTOR = 2.4


@keras.saving.register_keras_serializable(package="foveal")
def scaled_tanh(x):
    """LeCun's squashing function ``1.7159 * tanh(2x / 3)``: f(1) = 1, f(-1) = -1."""
    return 1.7159 * ops.tanh(x * (2.0 / 3.0))


def _fan_in_uniform(shape, dtype, factor: float, fan_in: Any, seed: Any = None):
    limit = ops.convert_to_tensor(factor / np.asarray(fan_in, dtype="float64"), dtype=dtype)
    return keras.random.uniform(shape, -1.0, 1.0, dtype=dtype, seed=seed) * limit


@keras.saving.register_keras_serializable(package="foveal")
class FanInUniform(keras.initializers.Initializer):
    """Uniform in ``+-factor / fan_in``, fan_in being every axis of the kernel but the last.

    Example:
        >>> float(keras.ops.max(keras.ops.abs(FanInUniform(2.4)((5, 5, 1, 6))))) <= 2.4 / 25
        True
    """

    def __init__(self, factor: float = PAPER_INIT_FACTOR, seed: int | None = None) -> None:
        self.factor = float(factor)
        self.seed = seed

    def __call__(self, shape, dtype=None):
        return _fan_in_uniform(shape, dtype or "float32", self.factor, int(np.prod(shape[:-1])), self.seed)

    def get_config(self) -> dict[str, Any]:
        return {"factor": self.factor, "seed": self.seed}


@keras.saving.register_keras_serializable(package="foveal")
class TrainableSubsampling(keras.layers.Layer):
    """LeNet's S-layers: each map's non-overlapping ``pool_size`` block sums, times one trainable
    coefficient per map, plus one trainable bias per map, then the activation.

    Args:
        pool_size: side of the square blocks (2 in the paper).
        activation: applied to the result (the paper's scaled tanh by default).

    Example:
        >>> layer = TrainableSubsampling(2)
        >>> tuple(layer(keras.ops.ones((1, 28, 28, 6))).shape), layer.count_params()
        ((1, 14, 14, 6), 12)
    """

    def __init__(self, pool_size: int = 2, activation: Any = scaled_tanh, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pool_size = int(pool_size)
        self.activation = keras.activations.get(activation)

    def build(self, input_shape) -> None:
        channels = input_shape[-1]
        area = self.pool_size**2
        self.coefficient = self.add_weight(
            shape=(channels,), name="coefficient",
            initializer=lambda shape, dtype: _fan_in_uniform(shape, dtype, PAPER_INIT_FACTOR, area),
        )
        self.bias = self.add_weight(shape=(channels,), name="bias", initializer="zeros")

    def call(self, inputs):
        p = self.pool_size
        sums = ops.average_pool(inputs, p, strides=p, padding="valid") * float(p * p)
        return self.activation(sums * self.coefficient + self.bias)

    def compute_output_shape(self, input_shape):
        p = self.pool_size
        spatial = [None if d is None else d // p for d in input_shape[1:-1]]
        return (input_shape[0], *spatial, input_shape[-1])

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update({"pool_size": self.pool_size, "activation": keras.activations.serialize(self.activation)})
        return config


@keras.saving.register_keras_serializable(package="foveal")
class ConnectionTableConv2D(keras.layers.Layer):
    """A "valid" convolution in which output map ``j`` reads only the input maps ``table[j]``.

    Only the connected kernels are weights (so the parameter count is the paper's): they are
    stored side by side and scattered into a full, zero-padded kernel at each call.

    Args:
        table: for each output map, the indices of the input maps it is connected to.
        kernel_size: side of the square kernels.
        activation: applied to the output.
        kernel_regularizer: penalty on the connected kernels.

    Example:
        >>> layer = ConnectionTableConv2D(LENET5_C3_TABLE, 5)
        >>> tuple(layer(keras.ops.ones((1, 14, 14, 6))).shape), layer.count_params()
        ((1, 10, 10, 16), 1516)
    """

    def __init__(
        self,
        table: Sequence[Sequence[int]],
        kernel_size: int = 5,
        activation: Any = scaled_tanh,
        kernel_regularizer: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.table = [sorted(int(i) for i in inputs) for inputs in table]
        if not self.table or any(not inputs for inputs in self.table):
            raise ValueError("every output map needs at least one input map")
        self.filters = len(self.table)
        self.kernel_size = int(kernel_size)
        self.activation = keras.activations.get(activation)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)

    def connection_matrix(self, channels: int) -> np.ndarray:
        """Boolean (input maps, output maps) matrix: True where connected."""
        matrix = np.zeros((channels, self.filters), dtype=bool)
        for j, inputs in enumerate(self.table):
            matrix[inputs, j] = True
        return matrix

    def build(self, input_shape) -> None:
        channels = input_shape[-1]
        if channels is None or max(max(inputs) for inputs in self.table) >= channels:
            raise ValueError(f"connection table refers to input maps beyond the {channels} given")
        k = self.kernel_size
        # Column c of the compact kernel is the c-th connection, counted output map by output map.
        fan_in = [k * k * len(inputs) for inputs in self.table for _ in inputs]
        index = np.full((channels, self.filters), len(fan_in), dtype="int32")  # -> the zero column
        column = 0
        for j, inputs in enumerate(self.table):
            for i in inputs:
                index[i, j] = column
                column += 1
        self._gather_index = index.reshape(-1)
        self.kernel = self.add_weight(
            shape=(k, k, len(fan_in)), name="kernel", regularizer=self.kernel_regularizer,
            initializer=lambda shape, dtype: _fan_in_uniform(shape, dtype, PAPER_INIT_FACTOR, fan_in),
        )
        self.bias = self.add_weight(shape=(self.filters,), name="bias", initializer="zeros")

    def full_kernel(self):
        """The (k, k, input maps, output maps) kernel, zero where not connected."""
        k = self.kernel_size
        padded = ops.pad(self.kernel, [(0, 0), (0, 0), (0, 1)])
        full = ops.take(padded, ops.convert_to_tensor(self._gather_index), axis=-1)
        return ops.reshape(full, (k, k, -1, self.filters))

    def call(self, inputs):
        outputs = ops.conv(inputs, self.full_kernel(), strides=1, padding="valid")
        return self.activation(outputs + self.bias)

    def compute_output_shape(self, input_shape):
        k = self.kernel_size
        spatial = [None if d is None else d - k + 1 for d in input_shape[1:-1]]
        return (input_shape[0], *spatial, self.filters)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update({
            "table": [list(inputs) for inputs in self.table],
            "kernel_size": self.kernel_size,
            "activation": keras.activations.serialize(self.activation),
            "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
        })
        return config


@keras.saving.register_keras_serializable(package="foveal")
class EuclideanRBF(keras.layers.Layer):
    """Euclidean radial basis units: ``y_k = sum_j (x_j - centre_jk)^2``, one unit per class.

    Args:
        units: number of RBF units (classes).
        trainable_centres: train the centres (the paper keeps them fixed).
        seed: seed of the initial +-1 centre codes.

    Example:
        >>> rbf = EuclideanRBF(10)
        >>> tuple(rbf(keras.ops.zeros((2, 84))).shape), rbf.count_params()
        ((2, 10), 840)
    """

    def __init__(self, units: int, trainable_centres: bool = False, seed: int = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.units = int(units)
        self.trainable_centres = bool(trainable_centres)
        self.seed = int(seed)

    def build(self, input_shape) -> None:
        dim = input_shape[-1]
        codes = np.random.default_rng(self.seed).choice([-1.0, 1.0], size=(dim, self.units))
        self.centres = self.add_weight(
            shape=(dim, self.units), name="centres", trainable=self.trainable_centres,
            initializer=lambda shape, dtype: ops.convert_to_tensor(codes, dtype=dtype),
        )

    def call(self, inputs):
        differences = ops.expand_dims(inputs, -1) - ops.cast(self.centres, inputs.dtype)
        return ops.sum(ops.square(differences), axis=-2)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update({"units": self.units, "trainable_centres": self.trainable_centres, "seed": self.seed})
        return config


@MODELS.register(
    "lenet5_classic",
    input_shape=(32, 32, 1),
    preprocessing="rescale",
    paper="LeCun et al., Gradient-based learning applied to document recognition, Proc. IEEE 1998",
    description="LeNet-5 as published: scaled tanh, trainable sub-sampling, C3 table, RBF output",
    smoke={"input_shape": (32, 32, 1), "options": {}},
)
def lenet5_classic(x, *, num_classes: int, include_top: bool = True, rbf_trainable: bool = False):
    """LeNet-5 as in the 1998 paper, on a ``rescale``-preprocessed input ``x`` (0..1).

    Args:
        rbf_trainable: train the RBF centres too (the paper keeps them fixed).

    Example:
        >>> from foveal.models import build_model
        >>> model = build_model("lenet5_classic", num_classes=10)
        >>> sum(int(np.prod(w.shape)) for w in model.trainable_weights)
        60000
    """
    init = FanInUniform(PAPER_INIT_FACTOR)
    x = layers.Rescaling(1.275, offset=-0.1, name="input_scaling")(x)  # 0 -> -0.1, 1 -> 1.175
    x = layers.Conv2D(6, 5, activation=scaled_tanh, kernel_initializer=init, name="c1")(x)
    x = TrainableSubsampling(2, name="s2")(x)
    x = ConnectionTableConv2D(LENET5_C3_TABLE, 5, name="c3")(x)
    x = TrainableSubsampling(2, name="s4")(x)
    if not include_top:
        return x
    x = layers.Conv2D(120, 5, activation=scaled_tanh, kernel_initializer=init, name="c5")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(84, activation=scaled_tanh, kernel_initializer=init, name="f6")(x)
    distances = EuclideanRBF(num_classes, trainable_centres=rbf_trainable, name="rbf")(x)
    logits = layers.Rescaling(-1.0, name="logits")(distances)  # nearest centre -> largest logit
    return layers.Activation("softmax", dtype="float32", name="probabilities")(logits)


__all__ = [
    "LENET5_C3_TABLE", "ConnectionTableConv2D", "EuclideanRBF", "FanInUniform", "TrainableSubsampling",
    "lenet5_classic", "scaled_tanh",
]
