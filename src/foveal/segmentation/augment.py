"""Joint image + mask augmentation inside ``tf.data``: one random draw moves both.

Every geometric op (flip, rotation by multiples of 90 degrees and by a small angle, scale
jitter, random crop, elastic deformation) is folded into a single map from output pixel to
source position, sampled once: bilinearly for the image, by nearest neighbour for the mask,
so labels are never interpolated. Output pixels whose source lies outside the image get the
mask's ignore label (and a reflected image). Photometric jitter (brightness, contrast) then
touches the image only.

The elastic deformation follows Ronneberger, Fischer, Brox, "U-Net: Convolutional Networks for
Biomedical Image Segmentation", MICCAI 2015, section 3.1: random displacement vectors on a
coarse 3x3 grid, drawn from a Gaussian with a standard deviation of 10 pixels and smoothly
interpolated (bicubic) to a per-pixel displacement field.

Example:
    >>> aug = SegmentationAugment(crop_size=(128, 128), scale=(0.8, 1.25), elastic_sigma=10.0)
    >>> ds = augment_dataset(pairs_ds, aug, seed=0)          # doctest: +SKIP
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import tensorflow as tf


@dataclass(frozen=True)
class SegmentationAugment:
    """The random transformations applied to each (image, mask) pair.

    Attributes:
        crop_size: (height, width) of the output; None keeps the input size.
        hflip, vflip: random horizontal / vertical flips.
        rot90: random rotation by 0, 90, 180 or 270 degrees.
        max_angle: extra rotation drawn uniformly in [-max_angle, max_angle] degrees.
        scale: (min, max) scale factor, drawn log-uniformly (1, 1 disables).
        elastic_sigma: std (pixels) of the coarse displacement vectors; 0 disables.
        elastic_grid: coarse grid size of the displacement field (3 in U-Net).
        brightness: add a value in [-b, b] * 255 to the image.
        contrast: scale the image around its mean by a factor in [1 - c, 1 + c].
        ignore_label: mask value for pixels from outside the source image.
        image_interpolation: ``bilinear`` or ``nearest`` for the image (the mask is always nearest).
    """

    crop_size: tuple[int, int] | None = None
    hflip: bool = True
    vflip: bool = False
    rot90: bool = False
    max_angle: float = 0.0
    scale: tuple[float, float] = (1.0, 1.0)
    elastic_sigma: float = 0.0
    elastic_grid: int = 3
    brightness: float = 0.0
    contrast: float = 0.0
    ignore_label: int = 255
    image_interpolation: str = "bilinear"

    def __call__(self, image, mask, seed, weights=None):
        """Augment one pair with the stateless random ``seed`` (an int32/int64 pair).

        Args:
            image: HxWxC image (any numeric dtype, pixel values 0..255).
            mask: HxW or HxWx1 integer mask.
            seed: shape (2,) integer tensor; the same seed gives the same result.
            weights: optional HxW per-pixel loss weights; they follow the mask (nearest
                neighbour, 0 outside the image).

        Returns:
            (float32 image out_h x out_w x C, int32 mask out_h x out_w), plus the float32
            weights out_h x out_w when ``weights`` is given.
        """
        image = tf.cast(tf.convert_to_tensor(image), tf.float32)
        mask = tf.convert_to_tensor(mask)
        mask = tf.cast(mask[..., 0] if mask.shape.rank == 3 else mask, tf.int32)
        seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 8)
        src_h, src_w = tf.shape(image)[0], tf.shape(image)[1]
        out_h, out_w = (src_h, src_w) if self.crop_size is None else self.crop_size
        ys, xs = self._source_coordinates(src_h, src_w, out_h, out_w, seeds)
        image = _sample(image, ys, xs, self.image_interpolation, fill=None)
        mask = _sample(mask[..., None], ys, xs, "nearest", fill=self.ignore_label)[..., 0]
        image = self._photometric(image, seeds[6], seeds[7])
        if weights is not None:
            weights = tf.cast(tf.convert_to_tensor(weights), tf.float32)
            weights = _sample(weights[..., None], ys, xs, "nearest", fill=0.0)[..., 0]
        if self.crop_size is not None:
            image = tf.ensure_shape(image, [*self.crop_size, None])
            mask = tf.ensure_shape(mask, list(self.crop_size))
            if weights is not None:
                weights = tf.ensure_shape(weights, list(self.crop_size))
        return (image, mask) if weights is None else (image, mask, weights)

    def _source_coordinates(self, src_h, src_w, out_h, out_w, seeds):
        """Source (y, x) in pixel-centre coordinates for every output pixel."""
        f32 = tf.float32
        src_h, src_w = tf.cast(src_h, f32), tf.cast(src_w, f32)
        oh, ow = tf.cast(out_h, f32), tf.cast(out_w, f32)
        lo, hi = math.log(self.scale[0]), math.log(self.scale[1])
        scale = tf.exp(tf.random.stateless_uniform([], seeds[0], lo, hi)) if hi > lo else tf.constant(self.scale[0], f32)
        angle = tf.constant(0.0)
        if self.max_angle:
            angle += tf.random.stateless_uniform([], seeds[1], -self.max_angle, self.max_angle) * math.pi / 180
        if self.rot90:
            quarter = tf.random.stateless_uniform([], seeds[2], 0, 4, dtype=tf.int32)
            angle += tf.cast(quarter, f32) * (math.pi / 2)
        flips = tf.random.stateless_uniform([2], seeds[3]) < 0.5
        sx = tf.where(flips[0] & self.hflip, -1.0, 1.0) if self.hflip else tf.constant(1.0)
        sy = tf.where(flips[1] & self.vflip, -1.0, 1.0) if self.vflip else tf.constant(1.0)
        # Crop centre, in scaled source coordinates: anywhere the crop fits (or, when the scaled
        # image is smaller than the crop, anywhere the image stays inside the crop).
        centre_draw = tf.random.stateless_uniform([2], seeds[4])
        cy = _between(oh / 2, src_h * scale - oh / 2, centre_draw[0])
        cx = _between(ow / 2, src_w * scale - ow / 2, centre_draw[1])
        gy, gx = tf.meshgrid(tf.range(oh) + 0.5 - oh / 2, tf.range(ow) + 0.5 - ow / 2, indexing="ij")
        gy, gx = gy * sy, gx * sx
        cos, sin = tf.cos(angle), tf.sin(angle)
        ry, rx = cos * gy - sin * gx, sin * gy + cos * gx
        ys, xs = (ry + cy) / scale, (rx + cx) / scale
        if self.elastic_sigma > 0:
            g = self.elastic_grid
            coarse = tf.random.stateless_normal([1, g, g, 2], seeds[5], stddev=self.elastic_sigma)
            field = tf.image.resize(coarse, tf.stack([out_h, out_w]), method="bicubic")[0]
            ys, xs = ys + field[..., 0], xs + field[..., 1]
        return ys, xs

    def _photometric(self, image, seed_b, seed_c):
        if not (self.brightness or self.contrast):
            return image
        if self.contrast:
            factor = tf.random.stateless_uniform([], seed_c, 1 - self.contrast, 1 + self.contrast)
            mean = tf.reduce_mean(image, axis=[0, 1], keepdims=True)
            image = (image - mean) * factor + mean
        if self.brightness:
            image = image + tf.random.stateless_uniform([], seed_b, -self.brightness, self.brightness) * 255.0
        return tf.clip_by_value(image, 0.0, 255.0)


def augment_dataset(ds: tf.data.Dataset, augment: SegmentationAugment, seed: int = 0) -> tf.data.Dataset:
    """Map ``augment`` over an unbatched dataset of (image, mask[, weights]), one fresh seed per element.

    Seeds come from ``tf.data.Dataset.random(seed)``, so a run is reproducible and each epoch
    (each new iteration) draws new transformations.
    """
    seeds = tf.data.Dataset.random(seed=seed).batch(2, drop_remainder=True)
    pairs = tf.data.Dataset.zip((ds, seeds))
    return pairs.map(lambda pair, s: augment(*pair[:2], s, *pair[2:]), num_parallel_calls=tf.data.AUTOTUNE)


def _between(a, b, u):
    lo, hi = tf.minimum(a, b), tf.maximum(a, b)
    return lo + (hi - lo) * u


def _reflect(coord, size):
    """Reflect integer indices into [0, size) (symmetric, edge repeated)."""
    period = 2 * size
    c = tf.math.floormod(coord, period)
    return tf.where(c >= size, period - 1 - c, c)


def _sample(image, ys, xs, method: str, fill):
    """Sample ``image`` (HxWxC) at pixel-centre coordinates; ``fill`` (or reflection) outside."""
    h, w = tf.shape(image)[0], tf.shape(image)[1]
    inside = (ys >= 0) & (ys < tf.cast(h, tf.float32)) & (xs >= 0) & (xs < tf.cast(w, tf.float32))
    if method == "nearest":
        iy, ix = tf.cast(tf.floor(ys), tf.int32), tf.cast(tf.floor(xs), tf.int32)
        out = tf.gather_nd(image, tf.stack([_reflect(iy, h), _reflect(ix, w)], -1))
    elif method == "bilinear":
        y, x = ys - 0.5, xs - 0.5
        y0, x0 = tf.floor(y), tf.floor(x)
        wy, wx = (y - y0)[..., None], (x - x0)[..., None]
        y0, x0 = tf.cast(y0, tf.int32), tf.cast(x0, tf.int32)

        def at(iy, ix):
            return tf.gather_nd(image, tf.stack([_reflect(iy, h), _reflect(ix, w)], -1))

        top = at(y0, x0) * (1 - wx) + at(y0, x0 + 1) * wx
        bottom = at(y0 + 1, x0) * (1 - wx) + at(y0 + 1, x0 + 1) * wx
        out = top * (1 - wy) + bottom * wy
    else:
        raise ValueError(f"interpolation must be bilinear or nearest, got {method!r}")
    if fill is None:
        return out
    return tf.where(inside[..., None], out, tf.cast(fill, out.dtype))
