"""ResNet v1 with basic residual units, built from a stage table.

He, Zhang, Ren, Sun, "Deep Residual Learning for Image Recognition", CVPR 2016. Each variant
is a row of :data:`RESNET_STAGES` (units per stage); a unit is conv3x3-BN-ReLU-conv3x3-BN
added to a shortcut, then ReLU. The shortcut is the identity, or a strided 1x1 convolution with
batch norm where the shape changes (the paper's option B). Convolutions carry no bias since
batch norm follows each one. With ImageNet settings (224x224x3, 1000 classes) ResNet-18 has
11,689,512 trainable parameters and ResNet-34 21,797,672, as in the paper's implementations.

``stem="cifar"`` replaces the 7x7/2 convolution and max pool with one 3x3/1 convolution, the
usual choice for 32x32 inputs, where the ImageNet stem would leave a 1x1 map after stage 4.
"""

from __future__ import annotations

from keras import layers

from foveal.models.classification.lenet import classifier_output
from foveal.models.registry import MODELS

RESNET_STAGES: dict[str, tuple[int, ...]] = {
    "resnet18": (2, 2, 2, 2),
    "resnet34": (3, 4, 6, 3),
}


def _conv_bn(x, filters: int, kernel: int, strides: int, name: str, relu: bool):
    x = layers.Conv2D(
        filters, kernel, strides=strides, padding="same", use_bias=False,
        kernel_initializer="he_normal", name=f"{name}_conv",
    )(x)
    x = layers.BatchNormalization(epsilon=1e-5, name=f"{name}_bn")(x)
    return layers.Activation("relu", name=f"{name}_relu")(x) if relu else x


def basic_residual_unit(x, filters: int, strides: int, name: str):
    """Two 3x3 convolutions plus a shortcut (projected when the shape changes)."""
    shortcut = x
    if strides != 1 or x.shape[-1] != filters:
        shortcut = _conv_bn(x, filters, 1, strides, f"{name}_proj", relu=False)
    y = _conv_bn(x, filters, 3, strides, f"{name}_a", relu=True)
    y = _conv_bn(y, filters, 3, 1, f"{name}_b", relu=False)
    y = layers.Add(name=f"{name}_add")([shortcut, y])
    return layers.Activation("relu", name=f"{name}_out")(y)


def resnet_body(
    x,
    stages: tuple[int, ...],
    *,
    num_classes: int,
    include_top: bool,
    width: int = 64,
    stem: str = "imagenet",
    dropout: float = 0.0,
):
    """ResNet v1 body: stem, stages of basic units (stride 2 from stage 2 on), GAP, softmax."""
    if stem == "imagenet":
        x = _conv_bn(x, width, 7, 2, "stem", relu=True)
        x = layers.MaxPooling2D(3, strides=2, padding="same", name="stem_pool")(x)
    elif stem == "cifar":
        x = _conv_bn(x, width, 3, 1, "stem", relu=True)
    else:
        raise ValueError(f"stem must be 'imagenet' or 'cifar', got {stem!r}")
    for stage, units in enumerate(stages):
        filters = width * 2**stage
        for unit in range(units):
            strides = 2 if (unit == 0 and stage > 0) else 1
            x = basic_residual_unit(x, filters, strides, name=f"stage{stage + 1}_unit{unit + 1}")
    if not include_top:
        return x
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    if dropout:
        x = layers.Dropout(dropout, name="gap_dropout")(x)
    return classifier_output(x, num_classes)


def _register(name: str, stages: tuple[int, ...]) -> None:
    depth = name.removeprefix("resnet")

    @MODELS.register(
        name,
        input_shape=(224, 224, 3),
        preprocessing="rescale",
        paper="He et al., Deep Residual Learning for Image Recognition, CVPR 2016",
        description=f"ResNet-{depth} v1, basic units {list(stages)}",
    )
    def builder(
        x, *, num_classes: int, include_top: bool = True, width: int = 64, stem: str = "imagenet",
        dropout: float = 0.0,
    ):
        return resnet_body(
            x, stages, num_classes=num_classes, include_top=include_top, width=width, stem=stem,
            dropout=dropout,
        )

    builder.__name__ = name
    builder.__doc__ = f"ResNet-{depth} (stage table {list(stages)}); options: width, stem, dropout."


for _name, _stages in RESNET_STAGES.items():
    _register(_name, _stages)
