"""Image-to-image networks: denoising auto-encoders and three super-resolution families.

Every model takes raw pixels (0..255, a ``Preprocess`` layer first) of any size (fixed only
with a zoo encoder) and returns the enhanced image in [0, 1] as float32 (``enhanced``), ``scale``
times larger for super-resolution.

* ``denoise`` — a convolutional (denoising) auto-encoder, the texts' encoder-decoder (Planche &
  Andres ch. 6; Vincent et al., "Extracting and Composing Robust Features with Denoising
  Autoencoders", ICML 2008): a small default encoder (``depth`` levels of two 3x3 convolutions
  and a 2x2 max-pooling, filters doubling from ``width``) or a zoo encoder (``encoder=resnet18``,
  its feature map at stride ``2**depth``), then a decoder that upsamples by transposed
  convolution, nearest/bilinear upsampling, or max-unpooling at the positions the encoder's
  poolings remembered (SegNet; default encoder only), and a linear 3x3 convolution (clipped
  to [0, 1] when used).
* ``sr-upscale`` — the texts' route to super-resolution: upscale the input by bicubic (or
  bilinear) interpolation, then a fully convolutional network (a U-Net-like residual net with
  ``levels`` poolings; 0 is a plain FCN as VDSR, Kim et al., CVPR 2016) adds the details the
  interpolation lost.
* ``espcn`` — Shi et al., "Real-Time Single Image and Video Super-Resolution Using an Efficient
  Sub-Pixel Convolutional Neural Network", CVPR 2016: 5x5/64, 3x3/32 tanh convolutions (``width`` 64) on the
  low-resolution image and a 3x3 convolution to ``C * scale**2`` channels rearranged by
  ``depth_to_space`` (the sub-pixel convolution).
* ``edsr`` — Lim et al., "Enhanced Deep Residual Networks for Single Image Super-Resolution",
  CVPRW 2017, the EDSR-baseline: 16 residual blocks of 64 filters without batch normalisation,
  a global skip, sub-pixel upsamplers (x2, x3, or two x2 for x4), 1,369,859 parameters at x2
  on RGB (tested).

Example:
    >>> build_enhancer("espcn", channels=1, scale=3).output_shape
    (None, None, None, 1)
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf
from keras import layers

from foveal.errors import ConfigError
from foveal.layers.decoder import MaxPoolingWithArgmax, MaxUnpooling, upsample
from foveal.layers.preprocess import Preprocess
from foveal.registry import did_you_mean

ARCHITECTURES = ("denoise", "sr-upscale", "espcn", "edsr")
#: He et al. (ICCV 2015) initialisation for ReLU layers: with Glorot's, the auto-encoder's output started
#: almost constant and training sat at "predict the mean image" on MNIST
HE = "he_normal"
DECODERS = ("transposed", "upsample", "bilinear", "unpool")
#: scales each super-resolution architecture can build
SCALES: dict[str, tuple[int, ...]] = {"sr-upscale": (2, 3, 4, 5, 6, 8), "espcn": (2, 3, 4, 5, 6, 8),
                                      "edsr": (2, 3, 4, 8)}
#: options each builder takes (checked before building, so a typo is one line)
OPTIONS: dict[str, dict[str, Any]] = {
    "denoise": {"width": 32, "depth": 2, "convs": 2, "decoder": "transposed", "encoder": None, "skips": False},
    "sr-upscale": {"width": 64, "depth": 6, "levels": 1, "method": "bicubic"},
    "espcn": {"width": 64, "activation": "tanh"},
    "edsr": {"blocks": 16, "filters": 64, "res_scale": 1.0},
}


@keras.saving.register_keras_serializable(package="foveal")
class PixelShuffle(keras.layers.Layer):
    """``depth_to_space``: (H, W, C*r*r) -> (H*r, W*r, C), the sub-pixel convolution's
    rearrangement (Shi et al., CVPR 2016).

    Example:
        >>> PixelShuffle(2)(tf.zeros((1, 3, 3, 8))).shape
        TensorShape([1, 6, 6, 2])
    """

    def __init__(self, scale: int = 2, **kwargs: Any):
        super().__init__(**kwargs)
        self.scale = int(scale)

    def call(self, inputs):
        return tf.nn.depth_to_space(inputs, self.scale)

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        r = self.scale
        return (n, None if h is None else h * r, None if w is None else w * r, None if c is None else c // (r * r))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "scale": self.scale}


@keras.saving.register_keras_serializable(package="foveal")
class ResizeBy(keras.layers.Layer):
    """Resize by an integer factor (any input size): bicubic or bilinear interpolation.

    Example:
        >>> ResizeBy(3)(tf.zeros((1, 4, 5, 1))).shape
        TensorShape([1, 12, 15, 1])
    """

    def __init__(self, scale: int = 2, method: str = "bicubic", **kwargs: Any):
        super().__init__(**kwargs)
        self.scale, self.method = int(scale), method

    def call(self, inputs):
        shape = tf.shape(inputs)
        return tf.image.resize(inputs, tf.stack([shape[1] * self.scale, shape[2] * self.scale]), method=self.method)

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        return (n, None if h is None else h * self.scale, None if w is None else w * self.scale, c)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "scale": self.scale, "method": self.method}


def check_options(model: str, options: dict[str, Any]) -> dict[str, Any]:
    """``options`` over the architecture's defaults; an unknown option is refused in one line."""
    known = OPTIONS[model]
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ConfigError(f"--model-options: {model} has no option {', '.join(map(repr, unknown))}",
                          hint=f"its options: {', '.join(f'{k}={v}' for k, v in known.items())}")
    return {**known, **options}


def check_scale(model: str, scale: int) -> None:
    """Refuse a scale the architecture cannot build, naming ``--scale``."""
    if model == "denoise":
        if scale != 1:
            raise ConfigError(f"--scale {scale}: the denoise model keeps the image size (scale 1)",
                              hint="for super-resolution use --model sr-upscale, espcn or edsr")
        return
    if scale not in SCALES[model]:
        why = " (its upsamplers are x2 steps or one x3 step)" if model == "edsr" else ""
        raise ConfigError(f"--scale {scale}: {model} upscales by {', '.join(map(str, SCALES[model]))}{why}",
                          hint="the usual factors are 2, 3 and 4")


def input_multiple(model: str, options: dict[str, Any]) -> int:
    """What the input's sides must be multiples of (prediction pads to it)."""
    opts = check_options(model, options)
    if model == "denoise":
        return 2 ** int(opts["depth"])
    if model == "sr-upscale":
        return 2 ** int(opts["levels"])
    return 1


def build_enhancer(model: str, *, channels: int, scale: int = 1, options: dict[str, Any] | None = None,
                   input_size: int | None = None) -> keras.Model:
    """Build architecture ``model`` (see the module docstring) for ``channels``-channel images.

    Args:
        model: ``denoise``, ``sr-upscale``, ``espcn`` or ``edsr``.
        channels: 1 or 3.
        scale: the upscaling factor (1 for ``denoise``).
        options: builder options (see :data:`OPTIONS`).
        input_size: fixed input side (needed by zoo encoders only; None: any size).

    Raises:
        ConfigError: an unknown model or option, or a scale the model cannot build.
    """
    if model not in ARCHITECTURES:
        raise ConfigError(f"--model {model!r}: unknown enhancement model (known: {', '.join(ARCHITECTURES)})",
                          hint=did_you_mean(model, ARCHITECTURES, n=1, cutoff=0.6, quote=True))
    check_scale(model, scale)
    opts = check_options(model, dict(options or {}))
    if model == "denoise" and opts["encoder"]:
        return _zoo_autoencoder(channels, opts, input_size)
    size = None if model != "denoise" or not opts["encoder"] else input_size
    inputs = keras.Input((size, size, channels), name="pixels")
    x = Preprocess("rescale", name="preprocess")(inputs)
    out = {"denoise": _autoencoder, "sr-upscale": _sr_upscale, "espcn": _espcn, "edsr": _edsr}[model](
        x, channels=channels, scale=scale, **opts)
    out = layers.Activation("linear", dtype="float32", name="enhanced")(out)
    return keras.Model(inputs, out, name=model.replace("-", "_"))


def _autoencoder(x, *, channels: int, scale: int, width: int, depth: int, convs: int, decoder: str, encoder: Any,
                 skips: bool):
    if decoder not in DECODERS:
        raise ConfigError(f"--model-options decoder={decoder!r}: use one of {', '.join(DECODERS)}")
    if depth < 1 or width < 1 or convs < 1:
        raise ConfigError("--model-options: depth, width and convs must be at least 1")
    saved = []
    for level in range(depth):
        for k in range(convs):
            x = layers.Conv2D(width * 2 ** level, 3, padding="same", activation="relu", kernel_initializer=HE,
                              name=f"enc{level + 1}_conv{k + 1}")(x)
        if decoder == "unpool":
            pooled, where = MaxPoolingWithArgmax(2, name=f"enc{level + 1}_pool")(x)
            saved.append((x, where))
            x = pooled
        else:
            saved.append((x, None))
            x = layers.MaxPooling2D(2, name=f"enc{level + 1}_pool")(x)
    x = layers.Conv2D(width * 2 ** depth, 3, padding="same", activation="relu", kernel_initializer=HE,
                      name="code")(x)
    return _decode(x, saved, channels=channels, width=width, depth=depth, convs=convs, decoder=decoder, skips=skips)


def _decode(x, saved, *, channels: int, width: int, depth: int, convs: int, decoder: str, skips: bool):
    for level in reversed(range(depth)):
        filters = width * 2 ** level
        name = f"dec{level + 1}"
        if decoder == "unpool":
            before, where = saved[level]
            x = layers.Conv2D(before.shape[-1], 1, name=f"{name}_match")(x)
            x = MaxUnpooling(2, name=f"{name}_unpool")([x, where, before])
        elif decoder == "transposed":
            x = layers.Conv2DTranspose(filters, 3, strides=2, padding="same", activation="relu",
                                       kernel_initializer=HE, name=f"{name}_up")(x)
        else:
            x = upsample(x, 2, "nearest" if decoder == "upsample" else "bilinear", name=f"{name}_up")
        if skips and saved and saved[level][0] is not None:
            x = layers.Concatenate(name=f"{name}_skip")([x, saved[level][0]])
        for k in range(convs):
            x = layers.Conv2D(filters, 3, padding="same", activation="relu", kernel_initializer=HE,
                              name=f"{name}_conv{k + 1}")(x)
    # linear, not the usual sigmoid: with MSE a sigmoid saturates on MNIST's black background and
    # training sat at the all-black image; outputs are clipped to [0, 1] when used
    return layers.Conv2D(channels, 3, padding="same", name="output_conv")(x)


def _zoo_autoencoder(channels: int, opts: dict[str, Any], input_size: int | None) -> keras.Model:
    """A zoo backbone's map at stride ``2**depth`` (measured) decoded back to the input size."""
    from foveal.models import build_model
    from foveal.models.pyramid import feature_pyramid

    if opts["decoder"] == "unpool":
        raise ConfigError(f"--model-options decoder=unpool needs the default encoder: {opts['encoder']} does not "
                          "record where its maxima were", hint="use decoder=transposed, upsample or bilinear")
    if not input_size:
        raise ConfigError(f"--model-options encoder={opts['encoder']}: a zoo encoder needs a fixed input size",
                          hint="pass --patch-size (the size it trains and predicts tiles at)")
    depth = int(opts["depth"])
    if input_size % 2 ** depth:
        raise ConfigError(f"--patch-size {input_size} is not a multiple of 2**depth = {2 ** depth}")
    base = build_model(str(opts["encoder"]), input_shape=(input_size, input_size, channels), include_top=False)
    feats = feature_pyramid(base, min_level=1)
    level = f"P{depth}"
    if level not in feats:
        raise ConfigError(f"--model-options encoder={opts['encoder']} has no feature map at stride {2 ** depth} "
                          f"(it has {', '.join(feats) or 'none'})", hint="choose another depth")
    out = _decode(feats[level], [(None, None)] * depth, channels=channels, width=int(opts["width"]), depth=depth,
                  convs=int(opts["convs"]), decoder=opts["decoder"], skips=False)
    out = layers.Activation("linear", dtype="float32", name="enhanced")(out)
    return keras.Model(base.input, out, name=f"denoise_{opts['encoder']}")


def _sr_upscale(x, *, channels: int, scale: int, width: int, depth: int, levels: int, method: str):
    if method not in ("bicubic", "bilinear"):
        raise ConfigError(f"--model-options method={method!r}: use bicubic or bilinear")
    up = ResizeBy(scale, method, name="upscale")(x)
    y = up
    saved = []
    convs_per_level = max(1, depth // (2 * levels + 1))
    for level in range(levels):
        for k in range(convs_per_level):
            y = layers.Conv2D(width * 2 ** level, 3, padding="same", activation="relu", name=f"d{level}_conv{k}")(y)
        saved.append(y)
        y = layers.MaxPooling2D(2, name=f"d{level}_pool")(y)
    for k in range(max(1, depth - 2 * levels * convs_per_level)):
        y = layers.Conv2D(width * 2 ** levels, 3, padding="same", activation="relu", name=f"mid_conv{k}")(y)
    for level in reversed(range(levels)):
        y = layers.Conv2DTranspose(width * 2 ** level, 2, strides=2, padding="same", name=f"u{level}_up")(y)
        y = layers.Concatenate(name=f"u{level}_skip")([y, saved[level]])
        for k in range(convs_per_level):
            y = layers.Conv2D(width * 2 ** level, 3, padding="same", activation="relu", name=f"u{level}_conv{k}")(y)
    residual = layers.Conv2D(channels, 3, padding="same", name="residual")(y)
    return layers.Add(name="add_upscaled")([up, residual])


def _espcn(x, *, channels: int, scale: int, width: int, activation: str):
    for k, f in enumerate((width, max(1, width // 2))):
        x = layers.Conv2D(int(f), 5 if k == 0 else 3, padding="same", activation=activation, name=f"conv{k + 1}")(x)
    x = layers.Conv2D(channels * scale * scale, 3, padding="same", name="subpixel_conv")(x)
    return PixelShuffle(scale, name="pixel_shuffle")(x)


def _edsr(x, *, channels: int, scale: int, blocks: int, filters: int, res_scale: float):
    x = layers.Rescaling(1.0, offset=-0.5, name="mean_shift")(x)
    head = layers.Conv2D(filters, 3, padding="same", name="head")(x)
    y = head
    for b in range(blocks):
        r = layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"block{b + 1}_conv1")(y)
        r = layers.Conv2D(filters, 3, padding="same", name=f"block{b + 1}_conv2")(r)
        if res_scale != 1.0:
            r = layers.Rescaling(res_scale, name=f"block{b + 1}_scale")(r)
        y = layers.Add(name=f"block{b + 1}_add")([y, r])
    y = layers.Conv2D(filters, 3, padding="same", name="body_end")(y)
    y = layers.Add(name="global_skip")([head, y])
    steps = [3] if scale == 3 else [2] * {2: 1, 4: 2, 8: 3}[scale]
    for k, r in enumerate(steps):
        y = layers.Conv2D(filters * r * r, 3, padding="same", name=f"upsample{k + 1}_conv")(y)
        y = PixelShuffle(r, name=f"upsample{k + 1}_shuffle")(y)
    y = layers.Conv2D(channels, 3, padding="same", name="tail")(y)
    return layers.Rescaling(1.0, offset=0.5, name="mean_add")(y)


__all__ = ["ARCHITECTURES", "DECODERS", "OPTIONS", "SCALES", "PixelShuffle", "ResizeBy", "build_enhancer",
           "check_options", "check_scale", "input_multiple"]


@keras.saving.register_keras_serializable(package="foveal", name="enhance_psnr")
def psnr(y_true, y_pred):
    """PSNR in dB of each image of a batch, outputs clipped to [0, 1] (a training metric)."""
    return tf.image.psnr(tf.cast(y_true, tf.float32), tf.clip_by_value(tf.cast(y_pred, tf.float32), 0.0, 1.0), 1.0)


__all__ += ["psnr"]
