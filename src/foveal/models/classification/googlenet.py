"""GoogLeNet (Inception v1) from the paper's Table 1, with its two auxiliary classifiers.

Szegedy, Liu, Jia, Sermanet, Reed, Anguelov, Erhan, Vanhoucke, Rabinovich, "Going Deeper with
Convolutions", CVPR 2015. On a 224x224x3 input:

================  ========================================  ===========
stage             layers                                    output
================  ========================================  ===========
stem              conv 7x7/2 (64), max pool 3x3/2, LRN      56x56x64
                  conv 1x1 (64), conv 3x3 (192), LRN,       28x28x192
                  max pool 3x3/2
inception 3a, 3b  then max pool 3x3/2                      14x14x480
inception 4a-4e   max pool 3x3/2 after 4e                   7x7x832
inception 5a, 5b                                            7x7x1024
head              global average pool, dropout 0.4,         classes
                  linear, softmax
================  ========================================  ===========

The filters of the nine modules are :data:`GOOGLENET_MODULES`. There is no batch
normalisation (the paper predates it); every convolution has a bias and a ReLU. The main
network has 6,998,552 parameters with 1000 classes (see :func:`googlenet_parameters`;
torchvision's 6,624,904 is a batch-normalised variant with bias-free convolutions and 3x3
kernels in the "5x5" branch). The LRN layers of the paper's figure 3 use the reference Caffe
model's values (n = 5, k = 1, alpha = 1e-4 / 5 in this project's per-element convention).

Auxiliary classifiers (section 5), on the outputs of 4a and 4d: average pool 5x5/3, conv 1x1
(128) + ReLU, dense 1024 + ReLU, dropout 0.7, linear, softmax. They add 3,188,840 and
3,190,888 parameters for 1000 classes. During training their losses count with weight 0.3
each; at inference they are absent (see :mod:`foveal.models.auxiliary`).
``aux_classifiers=False`` builds the network without them.

The input is expected on the pixel scale minus the mean (``caffe``), as in the reference Caffe
model, so that the LRN constants act as there.
"""

from __future__ import annotations

from keras import layers

from foveal.layers.inception import InceptionModule
from foveal.layers.lrn import LocalResponseNormalization
from foveal.models.auxiliary import WithAuxiliary
from foveal.models.classification.alexnet import scaled
from foveal.models.registry import MODELS

#: Table 1: (name, #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj), in network order.
GOOGLENET_MODULES: tuple[tuple[str, int, int, int, int, int, int], ...] = (
    ("3a", 64, 96, 128, 16, 32, 32),
    ("3b", 128, 128, 192, 32, 96, 64),
    ("4a", 192, 96, 208, 16, 48, 64),
    ("4b", 160, 112, 224, 24, 64, 64),
    ("4c", 128, 128, 256, 24, 64, 64),
    ("4d", 112, 144, 288, 32, 64, 64),
    ("4e", 256, 160, 320, 32, 128, 128),
    ("5a", 256, 160, 320, 32, 128, 128),
    ("5b", 384, 192, 384, 48, 128, 128),
)
#: Modules followed by a 3x3/2 max pool, and modules feeding an auxiliary classifier.
POOL_AFTER = ("3b", "4e")
AUX_AFTER = ("4a", "4d")
LRN_CAFFE = dict(depth_radius=2, bias=1.0, alpha=1e-4 / 5, beta=0.75)


def _conv(x, filters: int, kernel: int, name: str, strides: int = 1):
    return layers.Conv2D(filters, kernel, strides=strides, padding="same", activation="relu", name=name)(x)


def auxiliary_classifier(x, num_classes: int, name: str, width: float = 1.0, dropout: float = 0.7):
    """The paper's side classifier: avg pool 5x5/3, conv 1x1 128, dense 1024, dropout, softmax."""
    x = layers.AveragePooling2D(5, strides=3, name=f"{name}_pool")(x)
    x = _conv(x, scaled(128, width), 1, f"{name}_conv")
    x = layers.Flatten(name=f"{name}_flatten")(x)
    x = layers.Dense(scaled(1024, width), activation="relu", name=f"{name}_fc")(x)
    if dropout:
        x = layers.Dropout(dropout, name=f"{name}_dropout")(x)
    x = layers.Dense(num_classes, name=f"{name}_logits")(x)
    return layers.Activation("softmax", dtype="float32", name=f"{name}_probabilities")(x)


@MODELS.register(
    "googlenet",
    input_shape=(224, 224, 3),
    preprocessing="caffe",
    paper="Szegedy et al., Going Deeper with Convolutions, CVPR 2015",
    description="GoogLeNet / Inception v1 (Table 1), auxiliary classifiers weighted 0.3 in training",
    smoke={"input_shape": (64, 64, 3), "options": {"width": 1 / 16}},
)
def googlenet(
    x,
    *,
    num_classes: int,
    include_top: bool = True,
    width: float = 1.0,
    dropout: float = 0.4,
    aux_classifiers: bool = True,
    aux_weight: float = 0.3,
    aux_dropout: float = 0.7,
):
    """GoogLeNet body on a preprocessed input ``x``.

    Args:
        width: multiplier of every layer's filters and units (1.0 is the paper's).
        dropout: rate before the main classifier (0.4 in the paper).
        aux_classifiers: add the two training-only side classifiers after 4a and 4d.
        aux_weight: weight of each side classifier's loss (0.3 in the paper).
        aux_dropout: dropout rate in the side classifiers (0.7 in the paper).

    Returns:
        The class probabilities; with side classifiers, a
        :class:`~foveal.models.auxiliary.WithAuxiliary` that ``build_model`` turns into an
        :class:`~foveal.models.auxiliary.AuxiliaryClassifierModel`. With
        ``include_top=False``, the output of inception 5b.

    Example:
        >>> from foveal.models import build_model
        >>> model = build_model("googlenet", num_classes=1000, aux_classifiers=False)
        >>> model.count_params()
        6998552
    """
    x = _conv(x, scaled(64, width), 7, "conv1", strides=2)
    x = layers.MaxPooling2D(3, strides=2, padding="same", name="pool1")(x)
    x = LocalResponseNormalization(**LRN_CAFFE, name="norm1")(x)
    x = _conv(x, scaled(64, width), 1, "conv2_reduce")
    x = _conv(x, scaled(192, width), 3, "conv2")
    x = LocalResponseNormalization(**LRN_CAFFE, name="norm2")(x)
    x = layers.MaxPooling2D(3, strides=2, padding="same", name="pool2")(x)
    aux = []
    for name, *filters in GOOGLENET_MODULES:
        x = InceptionModule(*(scaled(f, width) for f in filters), name=f"inception_{name}")(x)
        if include_top and aux_classifiers and name in AUX_AFTER:
            aux.append(auxiliary_classifier(x, num_classes, f"aux{len(aux) + 1}", width, aux_dropout))
        if name in POOL_AFTER:
            x = layers.MaxPooling2D(3, strides=2, padding="same", name=f"pool_{name}")(x)
    if not include_top:
        return x
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if dropout:
        x = layers.Dropout(dropout, name="dropout")(x)
    x = layers.Dense(num_classes, name="logits")(x)
    main = layers.Activation("softmax", dtype="float32", name="probabilities")(x)
    return WithAuxiliary(main, tuple(aux), aux_weight) if aux else main


def googlenet_parameters(num_classes: int = 1000, aux_classifiers: bool = False) -> int:
    """GoogLeNet's parameter count computed from the layer table (weights plus biases).

    Example:
        >>> googlenet_parameters(1000), googlenet_parameters(1000, aux_classifiers=True)
        (6998552, 13378280)
    """

    def conv(k: int, cin: int, cout: int) -> int:
        return k * k * cin * cout + cout

    total = conv(7, 3, 64) + conv(1, 64, 64) + conv(3, 64, 192)
    channels = 192
    for name, f1, r3, f3, r5, f5, proj in GOOGLENET_MODULES:
        total += conv(1, channels, f1) + conv(1, channels, r3) + conv(3, r3, f3)
        total += conv(1, channels, r5) + conv(5, r5, f5) + conv(1, channels, proj)
        channels = f1 + f3 + f5 + proj
        if aux_classifiers and name in AUX_AFTER:  # 14x14 -> 4x4 after the 5x5/3 pool
            total += conv(1, channels, 128) + (4 * 4 * 128 + 1) * 1024 + (1024 + 1) * num_classes
    return total + (channels + 1) * num_classes


__all__ = ["AUX_AFTER", "GOOGLENET_MODULES", "POOL_AFTER", "auxiliary_classifier", "googlenet", "googlenet_parameters"]
