"""LeNet-5 in its modern form: ReLU, max pooling and a softmax output.

LeCun, Bottou, Bengio, Haffner, "Gradient-based learning applied to document recognition",
Proc. IEEE 1998. The layer sizes follow the paper's table (32x32 input, C1 6@28x28 5x5, S2,
C3 16@10x10, S4, C5 120, F6 84, output 10); the modern form swaps tanh for ReLU, the trainable
sub-sampling for max pooling and the RBF output for softmax, as most courses teach it. With
10 classes it has 61,706 parameters (the paper's version has about 60,000).
"""

from __future__ import annotations

from keras import layers

from foveal.models.registry import MODELS


@MODELS.register(
    "lenet5",
    input_shape=(32, 32, 1),
    preprocessing="rescale",
    paper="LeCun et al., Gradient-based learning applied to document recognition, 1998",
    description="LeNet-5, modern form (ReLU, max pool, softmax)",
    smoke={"input_shape": (32, 32, 1), "options": {}},
)
def lenet5(x, *, num_classes: int, include_top: bool = True, batch_norm: bool = False, dropout: float = 0.0):
    """LeNet-5 body on a preprocessed input ``x``.

    Args:
        batch_norm: add batch normalisation after each convolution.
        dropout: dropout rate before the F6 and output layers (0 disables).

    Example:
        >>> from foveal.models import build_model
        >>> build_model("lenet5", num_classes=10).count_params()
        61706
    """
    for i, filters in enumerate((6, 16), start=1):
        x = layers.Conv2D(filters, 5, activation=None if batch_norm else "relu", name=f"c{2 * i - 1}")(x)
        if batch_norm:
            x = layers.BatchNormalization(name=f"c{2 * i - 1}_bn")(x)
            x = layers.Activation("relu", name=f"c{2 * i - 1}_relu")(x)
        x = layers.MaxPooling2D(2, name=f"s{2 * i}")(x)
    if not include_top:
        return x
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(120, activation="relu", name="c5")(x)
    if dropout:
        x = layers.Dropout(dropout, name="c5_dropout")(x)
    x = layers.Dense(84, activation="relu", name="f6")(x)
    if dropout:
        x = layers.Dropout(dropout, name="f6_dropout")(x)
    return classifier_output(x, num_classes)


def classifier_output(x, num_classes: int):
    """The softmax output, kept in float32 so mixed precision never underflows it."""
    x = layers.Dense(num_classes, name="logits")(x)
    return layers.Activation("softmax", dtype="float32", name="probabilities")(x)


__all__ = ["lenet5", "classifier_output"]
