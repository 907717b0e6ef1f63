"""Joint image + mask augmentation inside ``tf.data``: one random draw moves both.

Every geometric op (flips, quarter turns, a small rotation, scale jitter, the random crop, the
elastic deformation) is folded into one map from output pixel to source position, sampled
bilinearly for the image and by nearest neighbour for the mask (labels are never blended);
outside the source the mask gets the ignore label. Brightness and contrast then touch the image
only. The elastic deformation is U-Net's (Ronneberger, Fischer, Brox, MICCAI 2015, section
3.1): Gaussian displacements on a coarse 3x3 grid, interpolated bicubically to every pixel.

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

    ``crop_size``: output (height, width), None keeps the input size; ``max_angle``: degrees;
    ``scale``: (min, max) factor drawn log-uniformly; ``elastic_sigma``: std (pixels) of the
    coarse displacements on an ``elastic_grid`` grid, 0 disables; ``brightness``: up to +-b x 255;
    ``contrast``: a factor in [1 - c, 1 + c] around the mean.
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
        """Augment one pair (HxWxC image 0..255, HxW[x1] integer mask) with the stateless random
        ``seed`` (shape (2,)); optional HxW ``weights`` follow the mask (0 outside the image).

        Returns:
            (float32 image, int32 mask[, float32 weights]) at ``crop_size``.
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
    """Map ``augment`` over an unbatched dataset of (image, mask[, weights]), one fresh seed per
    element from ``tf.data.Dataset.random(seed)`` (reproducible, new draws each epoch)."""
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
