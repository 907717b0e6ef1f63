"""ResNet v1 and v2, every depth one row of a table.

He, Zhang, Ren, Sun, "Deep Residual Learning for Image Recognition", CVPR 2016 (v1), and
"Identity Mappings in Deep Residual Networks", ECCV 2016 (v2, pre-activation). A variant is a
row of :data:`RESNETS`: units per stage, unit type (basic 3x3-3x3 or bottleneck 1x1-3x3-1x1
with expansion 4), v1 or v2, and a *style* (:data:`STYLES`) that fixes the details the papers
leave open and implementations disagree on:

- ``torchvision``: no convolution biases (batch norm follows), bottleneck stride on the 3x3,
  downsampling in the first unit of a stage. ResNet-18/34 use it: 11,689,512 and 21,797,672
  trainable parameters at 224x224x3 with 1000 classes, as torchvision's; ``resnet50`` with
  ``style="torchvision"`` has torchvision's 25,557,032.
- ``keras``: keras.applications' layout, the default of the bottleneck variants, so the counts
  equal theirs (total ``count_params()`` incl. batch-norm statistics: ResNet50 25,636,712,
  ResNet101 44,707,176, ResNet152 60,419,944, ResNet50V2 25,613,800, ResNet101V2 44,675,560,
  ResNet152V2 60,380,648). In v1 every convolution has a bias and a bottleneck's stride is on
  its first 1x1 convolution (as in the paper); in v2 only the convolutions no batch norm
  follows have a bias, the stride is on the 3x3, and each stage downsamples in its *last*
  unit (the last stage not at all).

``se_ratio=r`` adds a squeeze-and-excitation block to every unit (see :mod:`.senet`).
``stem="cifar"`` replaces the 7x7/2 convolution and max pool with one 3x3/1 convolution, the
usual choice for 32x32 inputs. The feature maps by stride (the last unit output at each
stride, the final BN-ReLU for v2) are measured on the built graph by
:func:`foveal.models.pyramid.feature_pyramid`, so they follow the stem: strides 4-32 with the
ImageNet stem, 1-8 with the CIFAR one.

The residual units live in :mod:`foveal.layers.residual` and are re-exported here.
"""

from __future__ import annotations

from dataclasses import dataclass

from keras import layers

from foveal.errors import ConfigError
from foveal.layers.residual import (
    basic_residual_unit,
    bn_relu,
    bottleneck_residual_unit,
    conv_bn,
    preact_basic_unit,
    preact_bottleneck_unit,
)
from foveal.models.classification.lenet import classifier_output
from foveal.models.registry import MODELS


@dataclass(frozen=True)
class UnitStyle:
    """Implementation details of one ResNet convention.

    Attributes:
        use_bias: convolution biases (v1: all convolutions; v2: those no batch norm follows).
        stride_on: bottleneck v1 only: ``"first"`` (1x1) or ``"middle"`` (3x3) convolution.
        downsample: ``"first"`` or ``"last"`` unit of a stage carries the stride.
        epsilon: batch-norm epsilon.
    """

    use_bias: bool
    stride_on: str
    downsample: str
    epsilon: float


# (style, pre-activation) -> details. torchvision has no v2: its row follows the v2 paper's
# own code (no biases, downsampling in the first unit).
STYLES: dict[tuple[str, bool], UnitStyle] = {
    ("torchvision", False): UnitStyle(use_bias=False, stride_on="middle", downsample="first", epsilon=1e-5),
    ("keras", False): UnitStyle(use_bias=True, stride_on="first", downsample="first", epsilon=1.001e-5),
    ("torchvision", True): UnitStyle(use_bias=False, stride_on="middle", downsample="first", epsilon=1e-5),
    ("keras", True): UnitStyle(use_bias=True, stride_on="middle", downsample="last", epsilon=1.001e-5),
}

UNITS = {
    ("basic", False): basic_residual_unit,
    ("bottleneck", False): bottleneck_residual_unit,
    ("basic", True): preact_basic_unit,
    ("bottleneck", True): preact_bottleneck_unit,
}

V1_PAPER = "He et al., Deep Residual Learning for Image Recognition, CVPR 2016"
V2_PAPER = "He et al., Identity Mappings in Deep Residual Networks, ECCV 2016"


@dataclass(frozen=True)
class ResNetVariant:
    """One row of the ResNet table.

    Attributes:
        stages: residual units per stage.
        block: ``"basic"`` or ``"bottleneck"``.
        preact: True for v2 (pre-activation) units.
        style: default :data:`STYLES` convention.
        se_ratio: default squeeze-and-excitation ratio (0: none).
        preprocessing: default input normalisation.
        paper: citation shown by ``foveal models``.
    """

    stages: tuple[int, ...]
    block: str = "basic"
    preact: bool = False
    style: str = "torchvision"
    se_ratio: int = 0
    preprocessing: str = "rescale"
    paper: str = ""

    @property
    def depth(self) -> int:
        """Weighted layers: convolutions on the main path plus the stem and the classifier."""
        return (2 if self.block == "basic" else 3) * sum(self.stages) + 2


def _v1(stages: tuple[int, ...], block: str, **kw) -> ResNetVariant:
    return ResNetVariant(stages, block, paper=V1_PAPER, **kw)


def _v2(stages: tuple[int, ...], block: str) -> ResNetVariant:
    return ResNetVariant(stages, block, preact=True, style="keras", preprocessing="tf", paper=V2_PAPER)


RESNETS: dict[str, ResNetVariant] = {
    "resnet18": _v1((2, 2, 2, 2), "basic"),
    "resnet34": _v1((3, 4, 6, 3), "basic"),
    "resnet50": _v1((3, 4, 6, 3), "bottleneck", style="keras", preprocessing="caffe"),
    "resnet101": _v1((3, 4, 23, 3), "bottleneck", style="keras", preprocessing="caffe"),
    "resnet152": _v1((3, 8, 36, 3), "bottleneck", style="keras", preprocessing="caffe"),
    "resnet18v2": _v2((2, 2, 2, 2), "basic"),
    "resnet34v2": _v2((3, 4, 6, 3), "basic"),
    "resnet50v2": _v2((3, 4, 6, 3), "bottleneck"),
    "resnet101v2": _v2((3, 4, 23, 3), "bottleneck"),
    "resnet152v2": _v2((3, 8, 36, 3), "bottleneck"),
}

# Units per stage of each registered ResNet (kept for callers of the first version).
RESNET_STAGES: dict[str, tuple[int, ...]] = {name: v.stages for name, v in RESNETS.items()}


def _unit_strides(stage: int, unit: int, units: int, num_stages: int, downsample: str) -> int:
    if downsample == "first":
        return 2 if unit == 0 and stage > 0 else 1
    return 2 if unit == units - 1 and stage < num_stages - 1 else 1


def _stem(x, width: int, stem: str, preact: bool, style: UnitStyle):
    kernel, strides = {"imagenet": (7, 2), "cifar": (3, 1)}.get(stem, (None, None))
    if kernel is None:
        raise ValueError(f"stem must be 'imagenet' or 'cifar', got {stem!r}")
    if preact:  # v2: the first unit's pre-activation normalises the stem output
        x = layers.Conv2D(width, kernel, strides=strides, padding="same", use_bias=style.use_bias,
                          kernel_initializer="he_normal", name="stem_conv")(x)
    else:
        x = conv_bn(x, width, kernel, strides, "stem", relu=True, use_bias=style.use_bias, epsilon=style.epsilon)
    if stem == "imagenet":
        x = layers.MaxPooling2D(3, strides=2, padding="same", name="stem_pool")(x)
    return x


def resnet_body(
    x,
    stages: tuple[int, ...],
    *,
    num_classes: int,
    include_top: bool,
    width: int = 64,
    stem: str = "imagenet",
    dropout: float = 0.0,
    block: str = "basic",
    preact: bool = False,
    style: str = "torchvision",
    se_ratio: int = 0,
):
    """ResNet body: stem, stages of residual units (channels doubling per stage), GAP, softmax.

    Args:
        x: the preprocessed input tensor.
        stages: residual units per stage.
        width: channels of the stem and of the first stage's units (bottleneck: before x4).
        stem: ``"imagenet"`` (7x7/2 conv + 3x3/2 max pool) or ``"cifar"`` (3x3/1 conv).
        dropout: rate before the classifier (0 disables).
        block: ``"basic"`` or ``"bottleneck"``.
        preact: v2 pre-activation units and a final BN-ReLU.
        style: a :data:`STYLES` convention, ``"torchvision"`` or ``"keras"``.
        se_ratio: squeeze-and-excitation ratio in every unit (0: none).

    Example:
        >>> import keras
        >>> y = resnet_body(keras.Input((32, 32, 3)), (1, 1), num_classes=10, include_top=True,
        ...                 width=8, stem="cifar")
        >>> y.shape
        (None, 10)
    """
    unit_style = STYLES.get((style, preact))
    if unit_style is None:
        raise ConfigError(f"style must be 'torchvision' or 'keras', got {style!r}")
    if isinstance(se_ratio, bool) or not isinstance(se_ratio, int) or se_ratio < 0:
        raise ConfigError(f"se_ratio must be a non-negative integer (0 disables), got {se_ratio!r}")
    unit_fn = UNITS.get((block, preact))
    if unit_fn is None:
        raise ConfigError(f"block must be 'basic' or 'bottleneck', got {block!r}")
    options = {"use_bias": unit_style.use_bias, "epsilon": unit_style.epsilon, "se_ratio": se_ratio}
    if block == "bottleneck" and not preact:
        options["stride_on"] = unit_style.stride_on

    x = _stem(x, width, stem, preact, unit_style)
    for stage, units in enumerate(stages):
        filters = width * 2**stage
        for unit in range(units):
            strides = _unit_strides(stage, unit, units, len(stages), unit_style.downsample)
            x = unit_fn(x, filters, strides, f"stage{stage + 1}_unit{unit + 1}", **options)
    if preact:
        x = bn_relu(x, "post", unit_style.epsilon)
    if not include_top:
        return x
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    if dropout:
        x = layers.Dropout(dropout, name="gap_dropout")(x)
    return classifier_output(x, num_classes)


def _description(name: str, variant: ResNetVariant) -> str:
    prefix = "SE-ResNet" if variant.se_ratio else "ResNet"
    version = "v2" if variant.preact else "v1"
    text = f"{prefix}-{variant.depth} {version}, {variant.block} units {list(variant.stages)}"
    if variant.block == "bottleneck" or variant.preact:
        text += f", {variant.style} style"
    return text + (f", SE ratio {variant.se_ratio}" if variant.se_ratio else "")


def _smoke(variant: ResNetVariant) -> dict:
    """The registry's small build. Width 16: TF 2.21's oneDNN corrupts its heap training
    ResNet-18 below 16 channels. Building, saving and loading cost about a second per hundred
    layers at any width, so the fast tier has the two ResNet-18s (v1, v2) and the deeper
    networks, which repeat the same units or their bottleneck form, are in the slow tier."""
    return {"input_shape": (64, 64, 3), "options": {"width": 16}, "slow": sum(variant.stages) > 8}


def register_resnet(name: str, variant: ResNetVariant) -> None:
    """Register ``variant`` as architecture ``name`` with the options width, stem, dropout,
    style and se_ratio (defaults from the row)."""

    @MODELS.register(
        name,
        input_shape=(224, 224, 3),
        preprocessing=variant.preprocessing,
        paper=variant.paper,
        description=_description(name, variant),
        smoke=_smoke(variant),
    )
    def builder(
        x, *, num_classes: int, include_top: bool = True, width: int = 64, stem: str = "imagenet",
        dropout: float = 0.0, style: str = variant.style, se_ratio: int = variant.se_ratio,
    ):
        return resnet_body(
            x, variant.stages, num_classes=num_classes, include_top=include_top, width=width, stem=stem,
            dropout=dropout, block=variant.block, preact=variant.preact, style=style, se_ratio=se_ratio,
        )

    builder.__name__ = name
    builder.__doc__ = (f"{_description(name, variant)}; options: width, stem, dropout, style "
                       f"('torchvision' or 'keras'), se_ratio (0: no SE blocks).")


for _name, _variant in RESNETS.items():
    register_resnet(_name, _variant)

__all__ = [
    "RESNETS", "RESNET_STAGES", "STYLES", "ResNetVariant", "UnitStyle", "basic_residual_unit",
    "bottleneck_residual_unit", "preact_basic_unit", "preact_bottleneck_unit", "register_resnet",
    "resnet_body",
]
