"""Segmentation networks that output per-pixel class probabilities.

* :func:`unet`: Ronneberger, Fischer, Brox, "U-Net: Convolutional Networks for Biomedical Image
  Segmentation", MICCAI 2015 (Fig. 1); ``padding="valid"`` is the paper's unpadded form (572x572
  in, 388x388 out), ``"same"`` (default) keeps the input size.
* :func:`unet_backbone`: a U-Net-style decoder on a foveal backbone's feature pyramid.
* :func:`fcn`: Long, Shelhamer, Darrell, "Fully Convolutional Networks for Semantic
  Segmentation", CVPR 2015, variants 8s/16s/32s; "same" padding instead of the paper's
  100-pixel input padding and crops, so input sides must be multiples of 32.

Every builder returns a ``keras.Model`` on raw pixels (a ``Preprocess`` layer first) ending in a
float32 ``probabilities`` softmax (H, W, num_classes); ``SEGMENTATION_MODELS`` lists them.

Example:
    >>> model = unet((64, 64, 1), num_classes=2, depth=2, width=8)
    >>> model.output_shape
    (None, 64, 64, 2)
"""

from __future__ import annotations

from typing import Any

import keras
from keras import layers

from foveal.errors import ConfigError, ModelError
from foveal.layers.decoder import upsample
from foveal.layers.preprocess import Preprocess
from foveal.registry import Registry

SEGMENTATION_MODELS: Registry = Registry("segmentation model")

#: Backbones on which FCN taps the *first* map at strides 8, 16 and 32 (the paper's pool3, pool4,
#: pool5 on VGG); on the others it taps the last (deepest) one, like the other heads.
FCN_POOL_BACKBONES: frozenset[str] = frozenset({"vgg11", "vgg13", "vgg16", "vgg19"})
#: How many skips each FCN variant fuses and its final upsampling factor.
FCN_VARIANTS: dict[str, tuple[int, int]] = {"32s": (0, 32), "16s": (1, 16), "8s": (2, 8)}


def segmentation_output(x, num_classes: int):
    """1x1 convolution to class scores and a float32 per-pixel softmax."""
    x = layers.Conv2D(num_classes, 1, name="logits")(x)
    return layers.Activation("softmax", dtype="float32", name="probabilities")(x)


def _conv_pair(x, filters: int, padding: str, batch_norm: bool, name: str, bn_momentum: float = 0.99):
    for i in (1, 2):
        x = layers.Conv2D(filters, 3, padding=padding, use_bias=not batch_norm, name=f"{name}_conv{i}")(x)
        if batch_norm:
            x = layers.BatchNormalization(momentum=bn_momentum, name=f"{name}_bn{i}")(x)
        x = layers.Activation("relu", name=f"{name}_relu{i}")(x)
    return x


def _centre_crop_to(skip, target, name: str):
    """Crop ``skip`` to ``target``'s height and width (U-Net's valid-padding skips)."""
    dh = skip.shape[1] - target.shape[1]
    dw = skip.shape[2] - target.shape[2]
    if dh == 0 and dw == 0:
        return skip
    if dh < 0 or dw < 0:
        raise ValueError(f"skip {skip.shape} is smaller than the decoder map {target.shape}")
    return layers.Cropping2D(((dh // 2, dh - dh // 2), (dw // 2, dw - dw // 2)), name=name)(skip)


@SEGMENTATION_MODELS.register(
    "unet", input_shape=(572, 572, 1), preprocessing="rescale",
    paper="Ronneberger, Fischer, Brox, U-Net, MICCAI 2015",
    description="U-Net encoder-decoder with concatenated skips",
)
def unet(
    input_shape: tuple[int, int, int] = (256, 256, 1),
    num_classes: int = 2,
    depth: int = 4,
    width: int = 64,
    padding: str = "same",
    batch_norm: bool = False,
    dropout: float = 0.0,
    preprocessing: str = "rescale",
    bn_momentum: float = 0.9,
    name: str = "unet",
) -> keras.Model:
    """U-Net (Ronneberger et al., MICCAI 2015) on raw pixels.

    Args:
        input_shape: (H, W, C); with ``same`` padding H and W must be multiples of 2**depth.
        depth: number of poolings (4 in the paper).
        width: filters of the first level (64 in the paper); level i has width * 2**i.
        padding: ``same`` (output = input size) or ``valid`` (the paper's unpadded convolutions).
        batch_norm: batch normalisation after each convolution (not in the paper).
        dropout: before the bottleneck's up-convolution (the paper's end of the contracting path).
        bn_momentum: 0.9 rather than Keras' 0.99: the moving variance starts at 1, far above the
            early layers' true variance, and with 0.99 a few hundred steps leave enough of it for
            the inference-mode network to predict a single class.

    Example:
        >>> unet((572, 572, 1), 2, width=4, padding="valid").output_shape   # the paper's Fig. 1
        (None, 388, 388, 2)
    """
    if padding not in ("same", "valid"):
        raise ConfigError(f"padding must be 'same' or 'valid', got {padding!r}")
    h, w = input_shape[:2]
    if padding == "same" and h and w and (h % 2**depth or w % 2**depth):
        raise ModelError(f"unet with depth {depth} needs height and width divisible by {2**depth}, got {h}x{w}")
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = Preprocess(preprocessing, name="preprocess")(inputs)
    skips = []
    for level in range(depth):
        x = _conv_pair(x, width * 2**level, padding, batch_norm, f"down{level + 1}", bn_momentum)
        skips.append(x)
        x = layers.MaxPooling2D(2, name=f"pool{level + 1}")(x)
    x = _conv_pair(x, width * 2**depth, padding, batch_norm, "bottleneck", bn_momentum)
    if dropout:
        x = layers.Dropout(dropout, name="bottleneck_dropout")(x)
    for level in reversed(range(depth)):
        filters = width * 2**level
        x = layers.Conv2DTranspose(filters, 2, strides=2, name=f"upconv{level + 1}")(x)
        skip = skips[level] if padding == "same" else _centre_crop_to(skips[level], x, f"crop{level + 1}")
        x = layers.Concatenate(name=f"concat{level + 1}")([skip, x])
        x = _conv_pair(x, filters, padding, batch_norm, f"up{level + 1}", bn_momentum)
    try:
        return keras.Model(inputs, segmentation_output(x, num_classes), name=name)
    except ValueError as exc:
        raise ModelError(f"cannot build unet for input {input_shape}: {exc}") from None


def valid_unet_output_size(size: int, depth: int = 4) -> int:
    """Output side of a ``padding="valid"`` U-Net for an input side (572 -> 388 at depth 4)."""
    for _ in range(depth):
        size = (size - 4) // 2
    size -= 4
    for _ in range(depth):
        size = size * 2 - 4
    return size


@SEGMENTATION_MODELS.register(
    "unet_backbone", input_shape=(224, 224, 3),
    paper="Ronneberger et al., MICCAI 2015 (decoder) on a foveal classification backbone",
    description="U-Net-style decoder on a backbone's P2..P5 feature maps",
)
def unet_backbone(
    backbone_name: str = "vgg16",
    input_shape: tuple[int, int, int] = (224, 224, 3),
    num_classes: int = 2,
    decoder_widths: tuple[int, ...] = (256, 128, 64, 32, 16),
    upsampling: str = "transposed",
    batch_norm: bool = True,
    name: str | None = None,
    **backbone_options: Any,
) -> keras.Model:
    """A U-Net decoder on the encoder ``backbone_name`` (any registered architecture).

    From the deepest pyramid level (P2 and above), each shallower level is reached by upsampling,
    concatenating its features and two 3x3 convolutions; x2 steps without skips then reach the
    input size. ``decoder_widths``: filters per step, deepest first; ``upsampling``:
    ``transposed``, ``nearest`` or ``bilinear``; ``**backbone_options`` go to the backbone builder.

    Example:
        >>> unet_backbone("vgg16", (64, 64, 3), 3, width=0.125).output_shape
        (None, 64, 64, 3)
    """
    from foveal.models import build_model
    from foveal.models.pyramid import feature_pyramid, level_stride

    base = build_model(backbone_name, input_shape=tuple(input_shape), include_top=False, **backbone_options)
    feats = feature_pyramid(base, min_level=2)
    if not feats:
        raise ModelError(f"backbone {backbone_name!r} has no feature map at stride 4 or more to attach a decoder to")
    levels = list(reversed(feats))  # deepest first
    x, stride = feats[levels[0]], level_stride(levels[0])
    # a step per shallower level (upsampled to it, its map concatenated), then x2 steps to stride 1
    steps = levels[1:] + [None] * (level_stride(levels[-1]).bit_length() - 1)
    for step, lvl in enumerate(steps):
        target = level_stride(lvl) if lvl else stride // 2
        width = decoder_widths[min(step, len(decoder_widths) - 1)]
        x = upsample(x, stride // target, upsampling, filters=width if upsampling == "transposed" else None,
                     name=f"dec{step + 1}_up")
        if lvl and tuple(x.shape[1:3]) != tuple(feats[lvl].shape[1:3]):
            raise ModelError(f"backbone {backbone_name!r} gives a {lvl} map of {tuple(feats[lvl].shape[1:3])} at input "
                             f"{tuple(input_shape[:2])}, not {stride // target}x its {tuple(x.shape[1:3])} coarser map "
                             "(unpadded convolutions trim borders)",
                             hint="use a backbone with 'same' padding (vgg, resnet, mobilenet, googlenet)")
        if lvl:
            x = layers.Concatenate(name=f"dec{step + 1}_concat")([x, feats[lvl]])
        x = _conv_pair(x, width, "same", batch_norm, f"dec{step + 1}")
        stride = target
    return keras.Model(base.input, segmentation_output(x, num_classes), name=name or f"unet_{backbone_name}")


@SEGMENTATION_MODELS.register(
    "fcn", input_shape=(224, 224, 3),
    paper="Long, Shelhamer, Darrell, Fully Convolutional Networks for Semantic Segmentation, CVPR 2015",
    description="FCN-32s/16s/8s on VGG-16",
)
def fcn(
    backbone: str = "vgg16",
    variant: str = "8s",
    input_shape: tuple[int, int, int] = (224, 224, 3),
    num_classes: int = 21,
    fc_filters: int = 4096,
    dropout: float = 0.5,
    name: str | None = None,
    **backbone_options: Any,
) -> keras.Model:
    """FCN-32s, -16s or -8s (Long et al., CVPR 2015) on a VGG (or any other) backbone.

    conv7 = fc6 (7x7, ``fc_filters``, 4096 in the paper) + fc7 (1x1) with ReLU and ``dropout`` on
    pool5; 1x1 score layers; each fusion upsamples x2 (learned, bilinear start) and adds the next
    skip's score; a fixed bilinear upsampling reaches the input size. A VGG taps pool3/pool4/pool5
    (the first maps at strides 8, 16, 32), another backbone its measured P3/P4/P5.

    Example:
        >>> fcn("vgg16", "16s", (64, 64, 3), 5, fc_filters=32, width=0.125).output_shape
        (None, 64, 64, 5)
    """
    if variant not in FCN_VARIANTS:
        raise ConfigError(f"FCN variant must be one of {', '.join(FCN_VARIANTS)}, got {variant!r}")
    h, w = input_shape[:2]
    if h and w and (h % 32 or w % 32):  # None: any size, checked when called
        raise ModelError(f"fcn needs height and width divisible by 32, got {h}x{w}")
    from foveal.models import build_model
    from foveal.models.pyramid import feature_pyramid, level_stride

    base = build_model(backbone, input_shape=tuple(input_shape), include_top=False, **backbone_options)
    position = "first" if backbone.lower() in FCN_POOL_BACKBONES else "last"
    pyramid = feature_pyramid(base, min_level=3, max_level=5, position=position)
    skips, final = FCN_VARIANTS[variant]
    needed = ("P3", "P4", "P5")[2 - skips:]
    missing = [level for level in needed if level not in pyramid]
    if missing:
        raise ModelError(f"backbone {backbone!r} has no {', '.join(missing)} feature map (stride "
                         f"{', '.join(str(level_stride(m)) for m in missing)}) for FCN-{variant}; it has "
                         f"{', '.join(pyramid) or 'none of P3-P5'}", hint="use vgg16, or a backbone with the ImageNet stem")
    taps = {"pool3": pyramid.get("P3"), "pool4": pyramid.get("P4"), "pool5": pyramid["P5"]}
    x = taps["pool5"]
    for i, size in ((6, 7), (7, 1)):
        x = layers.Conv2D(fc_filters, size, padding="same", activation="relu", name=f"fc{i}")(x)
        if dropout:
            x = layers.Dropout(dropout, name=f"drop{i}")(x)
    x = layers.Conv2D(num_classes, 1, name="score_fr")(x)
    for pool in ("pool4", "pool3")[:skips]:
        x = upsample(x, 2, "transposed", filters=num_classes, name=f"upscore_{pool}")
        score = layers.Conv2D(num_classes, 1, kernel_initializer="zeros", name=f"score_{pool}")(taps[pool])
        x = layers.Add(name=f"fuse_{pool}")([x, score])
    x = upsample(x, final, "transposed", filters=num_classes, trainable=False, name=f"upscore{final}")
    probs = layers.Activation("softmax", dtype="float32", name="probabilities")(x)
    return keras.Model(base.input, probs, name=name or f"fcn{variant}_{backbone}")
