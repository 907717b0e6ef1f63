"""AlexNet, single-tower: five convolutions with LRN and overlapping pooling, three dense layers.

Krizhevsky, Sutskever, Hinton, "ImageNet Classification with Deep Convolutional Neural
Networks", NeurIPS 2012, section 3 and figure 2. The paper split the network over two GPUs
(conv2, conv4 and conv5 then saw only their own GPU's half of the maps); this is the usual
single-tower form, with every convolution seeing all the maps of the layer below.

======  =====================================  ==============  ===========
layer   operation                              output (227^2)  parameters
======  =====================================  ==============  ===========
conv1   96 x 11x11 /4, ReLU, LRN               55x55x96        34,944
pool1   max 3x3 /2 (overlapping)               27x27x96
conv2   256 x 5x5 (pad 2), ReLU, LRN           27x27x256       614,656
pool2   max 3x3 /2                             13x13x256
conv3   384 x 3x3 (pad 1), ReLU                13x13x384       885,120
conv4   384 x 3x3 (pad 1), ReLU                13x13x384       1,327,488
conv5   256 x 3x3 (pad 1), ReLU                13x13x256       884,992
pool5   max 3x3 /2                             6x6x256
fc6     4096, ReLU, dropout 0.5                4096            37,752,832
fc7     4096, ReLU, dropout 0.5                4096            16,781,312
logits  classes (the paper's fc8), softmax     1000            4,097,000
======  =====================================  ==============  ===========

Total with 1000 classes: 62,378,344 parameters. LRN (section 3.3): depth radius 2 (n = 5),
k = 2, alpha = 1e-4, beta = 0.75, after the ReLU of conv1 and conv2, before pooling.

Input size: the paper says 224x224, but an 11x11 stride-4 "valid" convolution only gives its
55x55 maps from 227x227, so 227 is the default. (torchvision pads 224 by 2 instead, which
gives the same maps; here a 224 input simply gives 54x54, then 6x6 is 5x5 and fc6 shrinks.)

Initialisation as in section 5: kernels from N(0, 0.01), biases 1 in conv2, conv4, conv5, fc6
and fc7 (so their ReLUs start with positive inputs) and 0 elsewhere. With that small-weight
start, inputs stay on the pixel scale with the mean subtracted (``caffe`` preprocessing, the
closest to the paper's mean-image subtraction), the activation scale the LRN constants
were chosen for. This start is slow for the first epochs; ``init="he"`` (He-normal kernels,
zero biases) is the modern alternative. ``width`` scales every layer's size for small
experiments.
"""

from __future__ import annotations

import keras
from keras import layers

from foveal.layers.lrn import LocalResponseNormalization
from foveal.models.registry import MODELS

#: (name, filters, kernel, stride, LRN after it, max pool after it); "same" padding but conv1.
ALEXNET_CONVS: tuple[tuple[str, int, int, int, bool, bool], ...] = (
    ("conv1", 96, 11, 4, True, True),
    ("conv2", 256, 5, 1, True, True),
    ("conv3", 384, 3, 1, False, False),
    ("conv4", 384, 3, 1, False, False),
    ("conv5", 256, 3, 1, False, True),
)
ALEXNET_DENSE: tuple[int, ...] = (4096, 4096)
LRN_PAPER = dict(depth_radius=2, bias=2.0, alpha=1e-4, beta=0.75)
#: Layers whose biases start at 1 (section 5); the others start at 0.
BIAS_ONE = frozenset({"conv2", "conv4", "conv5", "fc6", "fc7"})


def _init(name: str, init: str) -> dict[str, keras.initializers.Initializer | str]:
    if init == "he":
        return {"kernel_initializer": "he_normal", "bias_initializer": "zeros"}
    if init != "paper":
        raise ValueError(f"init must be 'paper' or 'he', got {init!r}")
    bias = 1.0 if name in BIAS_ONE else 0.0
    return {
        "kernel_initializer": keras.initializers.RandomNormal(0.0, 0.01),
        "bias_initializer": keras.initializers.Constant(bias),
    }


def scaled(n: int, width: float) -> int:
    """``n * width`` rounded, at least 1."""
    return max(1, int(round(n * width)))


@MODELS.register(
    "alexnet",
    input_shape=(227, 227, 3),
    preprocessing="caffe",
    paper="Krizhevsky, Sutskever, Hinton, ImageNet Classification with Deep Convolutional "
          "Neural Networks, NeurIPS 2012",
    description="AlexNet, single tower: 5 conv (LRN, overlapping pooling), 2x FC 4096, dropout",
    smoke={"input_shape": (99, 99, 3), "options": {"width": 1 / 16}},  # 99: the smallest side whose pool5 is 2x2
)
def alexnet(
    x, *, num_classes: int, include_top: bool = True, width: float = 1.0, dropout: float = 0.5, init: str = "paper"
):
    """AlexNet body (single tower) on a preprocessed input ``x``.

    Args:
        width: multiplier of every layer's filters and units (1.0 is the paper's).
        dropout: rate after fc6 and fc7 (0.5 in the paper).
        init: ``paper`` (N(0, 0.01) kernels, some biases 1) or ``he`` (He-normal, zero biases).

    Example:
        >>> from foveal.models import build_model
        >>> build_model("alexnet", num_classes=1000).count_params()
        62378344
    """
    for name, filters, kernel, stride, lrn, pool in ALEXNET_CONVS:
        x = layers.Conv2D(
            scaled(filters, width), kernel, strides=stride, padding="valid" if stride > 1 else "same",
            activation="relu", name=name, **_init(name, init),
        )(x)
        if lrn:
            x = LocalResponseNormalization(**LRN_PAPER, name=name.replace("conv", "norm"))(x)
        if pool:
            x = layers.MaxPooling2D(3, strides=2, name=name.replace("conv", "pool"))(x)
    if not include_top:
        return x
    x = layers.Flatten(name="flatten")(x)
    for index, units in enumerate(ALEXNET_DENSE, start=6):
        name = f"fc{index}"
        x = layers.Dense(scaled(units, width), activation="relu", name=name, **_init(name, init))(x)
        if dropout:
            x = layers.Dropout(dropout, name=f"{name}_dropout")(x)
    x = layers.Dense(num_classes, name="logits", **_init("fc8", init))(x)
    return layers.Activation("softmax", dtype="float32", name="probabilities")(x)


__all__ = ["ALEXNET_CONVS", "ALEXNET_DENSE", "BIAS_ONE", "LRN_PAPER", "alexnet", "scaled"]
