"""What an enhancement model learns to undo: corruptions and downscaling, inside ``tf.data``.

Corruptions (``--corruption``), applied in the order given to images in [0, 1], each drawn
from a per-image stateless seed (so a run, and an evaluation, repeat exactly):

=================  ==========================================================================
``gaussian=S``     additive Gaussian noise of standard deviation S (default 0.5, the texts'
                   denoising auto-encoder on [0, 1] images), then clipped to [0, 1]
``salt-pepper=P``  a fraction P (default 0.1) of the pixels set to black or white, half each
``jpeg=Q``         JPEG compression at quality Q (default 20), 1 or 3 channels
``blur=S``         Gaussian blur of standard deviation S pixels (default 1.0), mirrored edges
=================  ==========================================================================

A value may be a range ``LO-HI`` (e.g. ``gaussian=0.1-0.5``): each image draws its own, which
trains a blind denoiser. ``none`` corrupts nothing (super-resolution models by default). The
result is rounded to 8-bit levels: the model sees what an image file of it would hold.

Super-resolution inputs are the reference downscaled by ``scale`` with bicubic interpolation
and antialiasing (the usual bicubic degradation, as MATLAB's ``imresize``), then corrupted,
then rounded to 8 bits; the baseline a model must beat is the bicubic upscaling of that input.

Example:
    >>> parse_corruption("gaussian=0.5,jpeg=30")
    (('gaussian', (0.5, 0.5)), ('jpeg', (30.0, 30.0)))
"""

from __future__ import annotations

import math
from typing import Any

from foveal.errors import ConfigError

#: corruption -> (default value, allowed range, what the value is)
CORRUPTIONS: dict[str, tuple[float, tuple[float, float], str]] = {
    "gaussian": (0.5, (0.0, 10.0), "noise standard deviation on [0, 1] pixels"),
    "salt-pepper": (0.1, (0.0, 1.0), "fraction of pixels"),
    "jpeg": (20.0, (1.0, 100.0), "JPEG quality"),
    "blur": (1.0, (0.05, 20.0), "blur standard deviation in pixels"),
}
ALIASES = {"gauss": "gaussian", "noise": "gaussian", "salt_pepper": "salt-pepper", "saltpepper": "salt-pepper",
           "s&p": "salt-pepper", "jpg": "jpeg", "gaussian-blur": "blur"}
UPSCALE_METHODS = ("bicubic", "bilinear")

Corruption = tuple[tuple[str, tuple[float, float]], ...]


def parse_corruption(spec: str, option: str = "--corruption") -> Corruption:
    """``"gaussian=0.5,jpeg=20-40"`` -> ``(("gaussian", (0.5, 0.5)), ("jpeg", (20.0, 40.0)))``.

    Raises:
        ConfigError: naming the option and the unknown name or bad value.
    """
    text = (spec or "").strip().lower()
    if text in ("", "none"):
        return ()
    out = []
    for item in (p.strip() for p in text.split(",")):
        if not item:
            continue
        name, _, value = item.partition("=")
        name = ALIASES.get(name.strip(), name.strip())
        if name not in CORRUPTIONS:
            import difflib

            close = difflib.get_close_matches(name, CORRUPTIONS, n=1)
            raise ConfigError(f"{option} {spec!r}: unknown corruption {name!r} (known: {', '.join(CORRUPTIONS)}, none)",
                              hint=f"did you mean {close[0]!r}?" if close else "e.g. gaussian=0.5,jpeg=30")
        default, (lo, hi), what = CORRUPTIONS[name]
        try:
            if not value.strip():
                low = high = default
            elif "-" in value.strip()[1:]:
                text_value = value.strip()
                cut = text_value.index("-", 1)
                low, high = float(text_value[:cut]), float(text_value[cut + 1:])
            else:
                low = high = float(value)
        except ValueError:
            raise ConfigError(f"{option} {spec!r}: {name}={value} is not a number or a range LO-HI "
                              f"({what})") from None
        if not (lo <= low <= high <= hi):
            raise ConfigError(f"{option} {spec!r}: {name} takes the {what} in [{lo:g}, {hi:g}], got {value}")
        out.append((name, (low, high)))
    return tuple(out)


def describe_corruption(corruption: Corruption) -> str:
    """``gaussian=0.5, jpeg=20-40`` (``none`` when empty)."""
    def value(lo: float, hi: float) -> str:
        return f"{lo:g}" if lo == hi else f"{lo:g}-{hi:g}"

    return ", ".join(f"{n}={value(*r)}" for n, r in corruption) or "none"


def _draw(seed, low: float, high: float):
    import tensorflow as tf

    if low == high:
        return tf.constant(low, tf.float32)
    return tf.random.stateless_uniform([], seed, low, high)


def gaussian_blur(image, sigma, radius: int):
    """HxWxC ``image`` blurred by a Gaussian of ``sigma`` (a scalar tensor) with ``radius`` taps
    each side, mirrored edges."""
    import tensorflow as tf

    x = tf.cast(tf.range(-radius, radius + 1), tf.float32)
    g = tf.exp(-x ** 2 / (2.0 * tf.maximum(sigma, 1e-3) ** 2))
    g = g / tf.reduce_sum(g)
    channels = tf.shape(image)[-1]
    padded = tf.pad(image[None], [[0, 0], [radius, radius], [radius, radius], [0, 0]], mode="SYMMETRIC")
    kx = tf.tile(tf.reshape(g, [1, -1, 1, 1]), [1, 1, channels, 1])
    ky = tf.tile(tf.reshape(g, [-1, 1, 1, 1]), [1, 1, channels, 1])
    out = tf.nn.depthwise_conv2d(padded, kx, [1, 1, 1, 1], "VALID")
    out = tf.nn.depthwise_conv2d(out, ky, [1, 1, 1, 1], "VALID")
    return out[0]


def corrupt(image, corruption: Corruption, seed):
    """``image`` (HxWxC float32 in [0, 1]) corrupted as ``corruption`` says, with the stateless
    ``seed`` (a shape-[2] int tensor); clipped to [0, 1], not rounded."""
    import tensorflow as tf

    x = tf.convert_to_tensor(image, tf.float32)
    seed = tf.cast(seed, tf.int64)
    for k, (name, (low, high)) in enumerate(corruption):
        s_value = tf.random.experimental.stateless_fold_in(seed, 2 * k)
        s_noise = tf.random.experimental.stateless_fold_in(seed, 2 * k + 1)
        value = _draw(s_value, low, high)
        if name == "gaussian":
            x = x + value * tf.random.stateless_normal(tf.shape(x), s_noise)
        elif name == "salt-pepper":
            shape = tf.concat([tf.shape(x)[:2], [1]], 0)
            u = tf.random.stateless_uniform(shape, s_noise)
            x = tf.where(u < value / 2, 0.0, tf.where(u > 1 - value / 2, 1.0, x))
        elif name == "jpeg":
            x = tf.image.adjust_jpeg_quality(tf.clip_by_value(x, 0.0, 1.0), tf.cast(tf.round(value), tf.int32))
            x = tf.reshape(x, tf.shape(image))
        elif name == "blur":
            x = gaussian_blur(x, value, max(1, math.ceil(3 * high)))
        x = tf.clip_by_value(x, 0.0, 1.0)
    return x


def to_levels(image):
    """[0, 1] floats rounded to the 256 levels of an 8-bit file (still in [0, 1])."""
    import tensorflow as tf

    return tf.round(tf.clip_by_value(image, 0.0, 1.0) * 255.0) / 255.0


def downscale(image, scale: int):
    """HxWxC in [0, 1] (sides multiples of ``scale``) -> (H/scale)x(W/scale)xC, bicubic with
    antialiasing, clipped to [0, 1]."""
    import tensorflow as tf

    shape = tf.shape(image)
    size = tf.stack([shape[0] // scale, shape[1] // scale])
    out = tf.image.resize(image, size, method="bicubic", antialias=True)
    return tf.clip_by_value(out, 0.0, 1.0)


def upscale(image, scale: int, method: str = "bicubic"):
    """HxWxC (or NxHxWxC) -> ``scale`` times larger by ``method`` (the baseline), clipped."""
    import tensorflow as tf

    shape = tf.shape(image)
    size = tf.stack([shape[-3] * scale, shape[-2] * scale])
    return tf.clip_by_value(tf.image.resize(image, size, method=method), 0.0, 1.0)


def degrade(reference, *, scale: int, corruption: Corruption, seed) -> Any:
    """The model input of a reference image (HxWxC in [0, 1], sides multiples of ``scale``):
    downscaled by ``scale`` (when above 1), corrupted, rounded to 8-bit levels; in [0, 1]."""
    x = downscale(reference, scale) if scale > 1 else reference
    return to_levels(corrupt(x, corruption, seed))


__all__ = ["CORRUPTIONS", "UPSCALE_METHODS", "corrupt", "degrade", "describe_corruption", "downscale",
           "gaussian_blur", "parse_corruption", "to_levels", "upscale"]
