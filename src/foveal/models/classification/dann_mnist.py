"""The small digit network of the DANN paper's MNIST -> MNIST-M experiment.

Ganin et al., "Domain-Adversarial Training of Neural Networks", JMLR 17 (2016), section 5.2.2
and figure 4: a 5x5 convolution with 32 filters, 2x2 max pooling, a 5x5 convolution with 48
filters, 2x2 max pooling (the feature extractor), then the label predictor: dense 100, dense
100, softmax; ReLU throughout, valid padding. On 28x28x3 input with 10 classes it has 128,890
parameters (counted from that table: 2,432 + 38,448 + 76,900 + 10,100 + 1,010). The domain
classifier of the paper (dense 100, then one logit) is :mod:`foveal.adaptation`'s, not part of
this classifier.
"""

from __future__ import annotations

from keras import layers

from foveal.models.classification.lenet import classifier_output
from foveal.models.registry import MODELS


@MODELS.register(
    "dann_mnist",
    input_shape=(28, 28, 3),
    preprocessing="rescale",
    paper="Ganin et al., Domain-Adversarial Training of Neural Networks, JMLR 2016 (MNIST architecture)",
    description="the DANN paper's digit CNN (32-5x5, 48-5x5, dense 100/100)",
    smoke={"input_shape": (28, 28, 3), "options": {}},
    adapt_features="flatten",  # the paper's domain classifier reads the convolutional features
)
def dann_mnist(x, *, num_classes: int, include_top: bool = True, dropout: float = 0.0, width: int = 32,
               batch_norm: bool = False):
    """The paper's network on a preprocessed input ``x``.

    Args:
        dropout: rate after each hidden dense layer (0: none, as in the paper).
        width: filters of the first convolution (the second has 1.5x as many).
        batch_norm: batch normalisation after each convolution and hidden dense layer (not in the
            paper; public re-implementations that beat its MNIST-M figure use it).

    Example:
        >>> from foveal.models import build_model
        >>> build_model("dann_mnist", num_classes=10).count_params()
        128890
    """
    def relu(x, name: str):
        if batch_norm:
            x = layers.BatchNormalization(name=f"{name}_bn")(x)
        return layers.Activation("relu", name=f"{name}_relu")(x)

    x = relu(layers.Conv2D(width, 5, use_bias=not batch_norm, name="conv1")(x), "conv1")
    x = layers.MaxPooling2D(2, name="pool1")(x)
    x = relu(layers.Conv2D(width * 3 // 2, 5, use_bias=not batch_norm, name="conv2")(x), "conv2")
    x = layers.MaxPooling2D(2, name="pool2")(x)
    if not include_top:
        return x
    x = layers.Flatten(name="flatten")(x)
    for i in (1, 2):
        x = relu(layers.Dense(100, use_bias=not batch_norm, name=f"fc{i}")(x), f"fc{i}")
        if dropout:
            x = layers.Dropout(dropout, name=f"fc{i}_dropout")(x)
    return classifier_output(x, num_classes)
