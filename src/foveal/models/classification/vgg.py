"""VGG-11/13/16/19 from one configuration table, with an optional fully convolutional form.

Simonyan, Zisserman, "Very Deep Convolutional Networks for Large-Scale Image Recognition",
ICLR 2015, Table 1, configurations A (11 layers), B (13), D (16) and E (19): five blocks of
3x3 "same" convolutions with ReLU, each followed by a 2x2/2 max pool, then dense layers of
4096, 4096 (each with dropout 0.5) and a softmax. Filters per block: 64, 128, 256, 512, 512.

Parameters with 224x224x3 inputs and 1000 classes (the same layout as keras.applications and
torchvision): VGG-11 132,863,336; VGG-13 133,047,848; VGG-16 138,357,544; VGG-19 143,667,240.
Layer names follow keras.applications (``block3_conv2``, ``block3_pool``, ``fc1``, ``fc2``) up to
the classifier, which is ``logits`` + ``probabilities`` as everywhere in foveal.

Fully convolutional form (section 3.2 of the paper, used for dense evaluation): the first dense
layer becomes a 7x7 convolution with 4096 filters and the next two 1x1 convolutions, so the
network takes images larger than 224 and returns a map of class probabilities (one vector per
32-pixel step). The weights are the same numbers, reshaped: ``fully_convolutional=True`` builds
that form directly, and :func:`dense_to_convolutional` converts a trained dense model.
"""

from __future__ import annotations

import keras
from keras import layers

from foveal.errors import ModelError
from foveal.models.classification.alexnet import scaled
from foveal.models.registry import MODELS

#: Convolutions per block for each configuration of Table 1.
VGG_CONFIGS: dict[str, tuple[int, ...]] = {
    "vgg11": (1, 1, 2, 2, 2),  # A
    "vgg13": (2, 2, 2, 2, 2),  # B
    "vgg16": (2, 2, 3, 3, 3),  # D
    "vgg19": (2, 2, 4, 4, 4),  # E
}
VGG_FILTERS: tuple[int, ...] = (64, 128, 256, 512, 512)
VGG_DENSE: tuple[int, ...] = (4096, 4096)
_PAPER_CONFIG = {"vgg11": "A", "vgg13": "B", "vgg16": "D", "vgg19": "E"}


def vgg_body(
    x,
    convs: tuple[int, ...],
    *,
    num_classes: int,
    include_top: bool,
    width: float = 1.0,
    dropout: float = 0.5,
    fully_convolutional: bool = False,
):
    """VGG body: blocks of 3x3 convolutions and max pools, then the classifier."""
    for block, (count, filters) in enumerate(zip(convs, VGG_FILTERS), start=1):
        for i in range(1, count + 1):
            x = layers.Conv2D(
                scaled(filters, width), 3, padding="same", activation="relu", name=f"block{block}_conv{i}"
            )(x)
        x = layers.MaxPooling2D(2, strides=2, name=f"block{block}_pool")(x)
    if not include_top:
        return x
    if fully_convolutional:
        return _convolutional_top(x, num_classes, width, dropout)
    x = layers.Flatten(name="flatten")(x)
    for index, units in enumerate(VGG_DENSE, start=1):
        x = layers.Dense(scaled(units, width), activation="relu", name=f"fc{index}")(x)
        if dropout:
            x = layers.Dropout(dropout, name=f"fc{index}_dropout")(x)
    x = layers.Dense(num_classes, name="logits")(x)
    return layers.Activation("softmax", dtype="float32", name="probabilities")(x)


def _convolutional_top(x, num_classes: int, width: float, dropout: float):
    """The dense layers as convolutions: 7x7 (over the 7x7 map of a 224 input), 1x1, 1x1."""
    for index, units in enumerate(VGG_DENSE, start=1):
        kernel = 7 if index == 1 else 1
        x = layers.Conv2D(scaled(units, width), kernel, activation="relu", name=f"fc{index}")(x)
        if dropout:
            x = layers.Dropout(dropout, name=f"fc{index}_dropout")(x)
    x = layers.Conv2D(num_classes, 1, name="logits")(x)
    return layers.Activation("softmax", dtype="float32", name="probabilities")(x)


def dense_to_convolutional(model: keras.Model) -> keras.Model:
    """The fully convolutional copy of a chain model ending in Flatten -> Dense layers.

    The Dense layer after ``Flatten`` becomes a convolution whose kernel covers the whole
    flattened map (7x7 for VGG at 224), the following Dense layers become 1x1 convolutions,
    and the kernels are reshaped, not retrained: on the original input size the new model
    gives the same probabilities, as a 1x1 map. The input accepts any height and width.

    Args:
        model: a model whose layers form a single chain (VGG, AlexNet, LeNet-5 from foveal).

    Returns:
        A new model with input ``(None, None, channels)`` and output ``(N, h, w, classes)``.

    Raises:
        ModelError: the model is not a chain, or has no Flatten followed by Dense layers.

    Example:
        >>> from foveal.models import build_model
        >>> dense = build_model("vgg11", num_classes=10, width=1 / 16)
        >>> dense_to_convolutional(dense).output_shape
        (None, None, None, 10)
    """
    chain = model.layers
    for previous, layer in zip(chain, chain[1:]):
        if layer.input is not previous.output:
            raise ModelError(f"{model.name}: dense_to_convolutional needs a chain of layers; "
                             f"{layer.name!r} does not simply follow {previous.name!r}")
    flatten = next((i for i, layer in enumerate(chain) if isinstance(layer, layers.Flatten)), None)
    if flatten is None or not any(isinstance(layer, layers.Dense) for layer in chain[flatten:]):
        raise ModelError(f"{model.name}: no Flatten followed by Dense layers to convert")
    map_shape = tuple(chain[flatten].input.shape[1:])
    inputs = keras.Input(shape=(None, None, model.input_shape[-1]), name=chain[0].name)
    x = inputs
    first_dense = True
    for layer in chain[1:]:
        if isinstance(layer, layers.Flatten):
            continue
        if isinstance(layer, layers.Dense):
            kernel, bias = layer.get_weights()
            size = map_shape[:2] if first_dense else (1, 1)
            conv = layers.Conv2D(
                layer.units, size, activation=layer.activation, use_bias=True, name=layer.name,
                kernel_regularizer=layer.kernel_regularizer,
            )
            x = conv(x)
            conv.set_weights([kernel.reshape(*size, -1, layer.units), bias])
            first_dense = False
        else:
            clone = layer.__class__.from_config(layer.get_config())
            x = clone(x)
            clone.set_weights(layer.get_weights())
    return keras.Model(inputs, x, name=f"{model.name}_fcn")


def _register(name: str, convs: tuple[int, ...]) -> None:
    depth = name.removeprefix("vgg")

    @MODELS.register(
        name,
        input_shape=(224, 224, 3),
        preprocessing="caffe",
        paper="Simonyan, Zisserman, Very Deep Convolutional Networks for Large-Scale Image "
              "Recognition, ICLR 2015",
        description=f"VGG-{depth} (configuration {_PAPER_CONFIG[name]}), convs per block {list(convs)}",
        smoke={"input_shape": (64, 64, 3), "options": {"width": 1 / 16}},
    )
    def builder(
        x, *, num_classes: int, include_top: bool = True, width: float = 1.0, dropout: float = 0.5,
        fully_convolutional: bool = False,
    ):
        return vgg_body(
            x, convs, num_classes=num_classes, include_top=include_top, width=width, dropout=dropout,
            fully_convolutional=fully_convolutional,
        )

    builder.__name__ = name
    builder.__doc__ = (
        f"VGG-{depth}, configuration {_PAPER_CONFIG[name]} of Simonyan & Zisserman (ICLR 2015).\n\n"
        "Options: width (filter/unit multiplier), dropout (after fc1 and fc2), fully_convolutional\n"
        "(dense layers as 7x7/1x1 convolutions; the output is a class-probability map)."
    )


for _name, _convs in VGG_CONFIGS.items():
    _register(_name, _convs)


__all__ = ["VGG_CONFIGS", "VGG_DENSE", "VGG_FILTERS", "dense_to_convolutional", "vgg_body"]
