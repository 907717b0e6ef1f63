"""The Fashion-MNIST CNN of Géron, *Hands-On Machine Learning* (2nd ed.), chapter 14.

A 64-filter 7x7 convolution, then two blocks of two 3x3 convolutions (128 then 256 filters),
each block preceded by 2x2 max pooling, a last pooling, and a dense head 128 -> 64 -> classes
with dropout 0.5; "same" padding and He-normal initialisation throughout. On 28x28x1 input
with 10 classes it has 1,413,834 parameters; the book reports over 92% test accuracy on
Fashion-MNIST after 10 epochs with Nadam.
"""

from __future__ import annotations

from keras import layers

from foveal.models.classification.lenet import classifier_output
from foveal.models.registry import MODELS


@MODELS.register(
    "geron_cnn",
    input_shape=(28, 28, 1),
    preprocessing="rescale",
    paper="Géron, Hands-On Machine Learning with Scikit-Learn, Keras & TensorFlow, 2nd ed., ch. 14",
    description="the texts' Fashion-MNIST CNN (64-7x7, 2x128, 2x256, dense 128/64)",
    smoke={"input_shape": (28, 28, 1), "options": {"width": 16}},
)
def geron_cnn(
    x,
    *,
    num_classes: int,
    include_top: bool = True,
    dropout: float = 0.5,
    batch_norm: bool = False,
    width: int = 64,
):
    """The book's CNN body on a preprocessed input ``x``.

    Args:
        dropout: rate after each hidden dense layer (the book uses 0.5).
        batch_norm: add batch normalisation after each convolution (not in the book).
        width: filters of the first convolution; the blocks use 2x and 4x this.

    Example:
        >>> from foveal.models import build_model
        >>> build_model("geron_cnn", num_classes=10).count_params()
        1413834
    """

    def conv(x, filters: int, kernel: int, name: str):
        x = layers.Conv2D(
            filters, kernel, padding="same", kernel_initializer="he_normal",
            activation=None if batch_norm else "relu", use_bias=not batch_norm, name=name,
        )(x)
        if batch_norm:
            x = layers.BatchNormalization(name=f"{name}_bn")(x)
            x = layers.Activation("relu", name=f"{name}_relu")(x)
        return x

    x = conv(x, width, 7, "conv1")
    x = layers.MaxPooling2D(2, name="pool1")(x)
    for block, filters in enumerate((2 * width, 4 * width), start=2):
        x = conv(x, filters, 3, f"conv{block}a")
        x = conv(x, filters, 3, f"conv{block}b")
        x = layers.MaxPooling2D(2, name=f"pool{block}")(x)
    if not include_top:
        return x
    x = layers.Flatten(name="flatten")(x)
    for units in (128, 64):
        x = layers.Dense(units, activation="relu", kernel_initializer="he_normal", name=f"fc{units}")(x)
        if dropout:
            x = layers.Dropout(dropout, name=f"fc{units}_dropout")(x)
    return classifier_output(x, num_classes)
