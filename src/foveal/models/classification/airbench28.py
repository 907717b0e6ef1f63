"""airbench's shape scaled down for 28x28 grayscale images (MNIST, Fashion-MNIST).

Jordan's airbench (arXiv:2404.00498, 2024) trains fast because it spends its multiply-adds at
small resolutions: each conv group is a 3x3 convolution, 2x2 max pooling, batch normalisation
with a trained shift only, an activation, a second 3x3 convolution at the pooled size, batch
normalisation and the activation; a global max pool and a bias-free linear layer with its logits
scaled down end it. ``airbench28`` keeps that shape for 28x28x1 inputs: a 3x3 stem convolution
(``stem`` filters; airbench's 2x2 whitening layer has little to decorrelate in one channel), then
one group per entry of ``widths`` (28 -> 14 -> 7 -> 3 pixels with three groups). The defaults
(stem 24, widths 32 / 64 / 128, ReLU) give 295,520 parameters with 10 classes (294,576 trainable,
the rest batch-norm running statistics) and about 17.8 million multiply-adds per image; without
the stem (``stem=0``, what the ``fast-mnist`` and ``fast-fashion`` recipes train) 288,608
parameters and 12.4 million multiply-adds, 0.54x ``geron_cnn`` at width 32 + batch norm, with no
dense hidden layers.

Example:
    >>> from foveal.models import build_model
    >>> build_model("airbench28", num_classes=10).count_params()
    295520
    >>> build_model("airbench28", num_classes=10, stem=0).count_params()
    288608
"""

from __future__ import annotations

from collections.abc import Sequence

from keras import layers

from foveal.errors import ConfigError
from foveal.layers.fused_norm import FusedBatchNormalization
from foveal.models.classification.airbench import PartialDirac
from foveal.models.registry import MODELS


@MODELS.register(
    "airbench28",
    input_shape=(28, 28, 1),
    preprocessing="rescale",
    paper="after Jordan, 94% on CIFAR-10 in 3.29 Seconds on a Single GPU, arXiv:2404.00498 (2024)",
    description="airbench-shaped CNN for 28x28 grayscale: 3x3 stem, conv groups 32/64/128, max-pool head",
    smoke={"input_shape": (28, 28, 1), "options": {"stem": 8, "widths": [8, 16, 16]}},
)
def airbench28(
    x,
    *,
    num_classes: int,
    include_top: bool = True,
    stem: int = 24,
    widths: Sequence[int] = (32, 64, 128),
    activation: str = "relu",
    logit_scale: float = 1.0 / 9.0,
    bn_momentum: float = 0.6,
    bn_epsilon: float = 1e-5,
    bn_scale: bool = False,
    dirac: bool = True,
    dropout: float = 0.0,
    fused_bn: bool = False,
):
    """The network body on a preprocessed input ``x``.

    Args:
        stem: filters of the first 3x3 convolution at full resolution (0: none).
        widths: filters of each conv group; every group halves the resolution.
        activation: any Keras activation name (``relu`` is cheapest on CPUs; airbench uses ``gelu``).
        logit_scale: factor on the logits before the softmax (airbench: 1/9).
        bn_momentum: Keras batch-norm momentum (airbench: 0.6, a short memory for short runs).
        bn_epsilon: batch-norm epsilon.
        bn_scale: train the batch-norm scale too (airbench fixes it at 1).
        dirac: initialise the group convolutions with :class:`PartialDirac` (airbench) instead of
            Keras' Glorot uniform.
        dropout: rate before the linear layer (0: none).
        fused_bn: batch norm through TensorFlow's fused kernel (:class:`~foveal.layers.fused_norm.
            FusedBatchNormalization`; same arithmetic, fewer element-wise ops under bfloat16).
    """
    widths = [int(w) for w in widths]
    if not widths or min(widths) < 1 or stem < 0:
        raise ConfigError(f"airbench28: widths must be positive filter counts and stem >= 0, got "
                          f"stem={stem}, widths={widths}", hint="e.g. --model-options '{stem: 24, widths: [32, 64, 128]}'")

    def init():
        return PartialDirac() if dirac else "glorot_uniform"

    def bn_act(x, name: str):
        norm = FusedBatchNormalization if fused_bn else layers.BatchNormalization
        x = norm(momentum=bn_momentum, epsilon=bn_epsilon, scale=bn_scale, name=f"{name}_bn")(x)
        return layers.Activation(activation, name=f"{name}_act")(x)

    if stem:
        x = layers.Conv2D(stem, 3, padding="same", use_bias=False, kernel_initializer="he_uniform", name="stem_conv")(x)
        x = bn_act(x, "stem")
    for i, filters in enumerate(widths, start=1):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False, kernel_initializer=init(), name=f"group{i}_conv1")(x)
        x = layers.MaxPooling2D(2, name=f"group{i}_pool")(x)
        x = bn_act(x, f"group{i}_1")
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False, kernel_initializer=init(), name=f"group{i}_conv2")(x)
        x = bn_act(x, f"group{i}_2")
    if not include_top:
        return x
    x = layers.GlobalMaxPooling2D(name="global_max")(x)
    if dropout:
        x = layers.Dropout(dropout, name="dropout")(x)
    x = layers.Dense(num_classes, use_bias=False, name="logits")(x)
    x = layers.Rescaling(logit_scale, name="logit_scale")(x)
    return layers.Activation("softmax", dtype="float32", name="probabilities")(x)


__all__ = ["airbench28"]
