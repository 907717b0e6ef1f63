"""Box-aware augmentation: one random draw moves an image and all its boxes.

The one implementation behind the detection pipeline (:mod:`foveal.detection.pipeline`, any
number of boxes) and the localization pipeline (:mod:`foveal.localization.pipeline`, one box).
Each task spells its specs in its own :class:`AugmentGrammar` (presets, op names, defaults), and
the grammar also fixes which seed slot each op draws from, so a task's recorded runs repeat.

Everything runs inside ``tf.data`` with stateless random ops, so an example's augmentation is
a pure function of its seed: a run is repeatable, and each epoch draws afresh (the pipeline
gives every element a new seed per epoch, derived from the run's seed).

A spec is a preset name or a comma list of ``op`` / ``op=value`` items; presets may appear in
the list and later items override earlier ones (``detect,hue=0`` is the preset without hue).
The detection grammar (:data:`DETECTION_GRAMMAR`, the default) knows every op:

=============  ======================================================================  =======
op             what it does                                                            default
=============  ======================================================================  =======
flip           horizontal flip with probability 1/2; boxes mirrored                    -
vflip          vertical flip with probability 1/2 (aerial/medical images)              -
crop=S         with probability 1/2, a random window of each side about S..1 of the     0.5
               image (aspect ratio jittered within 3/4..4/3) stretched to the input:
               scale jitter by zooming in and a random crop at once
safe_crop=S    a random window of each side at least S of the image that holds every    0.75
               box whole (all of them: their union), stretched to the input; instead
               of ``crop``. The localizer's ``crop``.
scale=F        zoom by a factor drawn in [1-F, 1+F] about the window's centre; below 1  0.25
               the image shrinks inside a gray border (zoom out)
translate=F    shift the view by up to F of the width and height (gray border)        0.1
min_visible=V  drop a box when less than V of its area stays in view                  0.3
brightness=F   add up to +-F x 255 to every pixel                                     0.15
contrast=F     scale contrast about each channel's mean by a factor in [1-F, 1+F]     0.25
saturation=F   scale saturation by a factor in [1-F, 1+F] (RGB only)                  0.3
hue=F          rotate hue by up to +-F of the colour circle (RGB only, F <= 0.5)      0.02
=============  ======================================================================  =======

Presets: ``none``; ``light`` (flip, translate=0.05, brightness=0.1, contrast=0.1); ``detect``,
the detection preset (flip, crop=0.5, scale=0.25, translate=0.1, min_visible=0.3,
brightness=0.15, contrast=0.25, saturation=0.3, hue=0.02).

Geometry: crop (or safe_crop), scale and translate together choose one window of the source image
(normalised coordinates, possibly reaching past its edges), sampled back to the input size
in a single ``crop_and_resize``; pixel centres are mapped exactly, so a box follows its
pixels. Boxes are then clipped to the view and kept when at least ``min_visible`` of their
(transformed) area is visible and they are at least one output pixel wide and tall. Dropped
boxes are removed, so an image may end with fewer boxes, or none: it stays a valid negative.

Example:
    >>> cfg = parse_box_augment("flip,crop=0.6,brightness=0.2")
    >>> cfg.flip, cfg.crop, cfg.brightness, cfg.min_visible
    (True, 0.6, 0.2, 0.3)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace

import tensorflow as tf

from foveal.errors import ConfigError

PRESETS: dict[str, str] = {
    "none": "",
    "light": "flip,translate=0.05,brightness=0.1,contrast=0.1",
    "detect": "flip,crop=0.5,scale=0.25,translate=0.1,min_visible=0.3,brightness=0.15,contrast=0.25,"
              "saturation=0.3,hue=0.02",
}
#: Default value of each op written without one; flags have None.
DEFAULTS: dict[str, float | None] = {
    "flip": None, "vflip": None, "crop": 0.5, "safe_crop": 0.75, "scale": 0.25, "translate": 0.1,
    "min_visible": 0.3, "brightness": 0.15, "contrast": 0.25, "saturation": 0.3, "hue": 0.02,
}
# Allowed (low, high, high included) per op with a value.
_RANGES: dict[str, tuple[float, float, bool]] = {
    "crop": (0.0, 1.0, True), "safe_crop": (0.0, 1.0, True), "scale": (0.0, 1.0, False), "translate": (0.0, 1.0, False),
    "min_visible": (0.0, 1.0, True), "brightness": (0.0, 1.0, True), "contrast": (0.0, 1.0, True),
    "saturation": (0.0, 1.0, True), "hue": (0.0, 0.5, True),
}
#: Pixel value of the border shown where the view leaves the image (YOLO's gray).
FILL_VALUE = 114.0
_CROP_PROBABILITY = 0.5
_ASPECT_JITTER = 4.0 / 3.0
# One fixed seed slot per op, so switching an op on or off leaves the others' draws alone.
# ``stateless_split`` gives the same first seeds whatever their number, so ops added at the end
# leave the earlier ones' draws as they were.
_SLOTS = ("crop", "crop_apply", "scale", "translate", "flip", "vflip", "brightness", "contrast",
          "saturation", "hue", "safe_crop")


@dataclass(frozen=True)
class BoxAugment:
    """A parsed augmentation spec; ``None`` (or False) switches an op off.

    See the module docstring for what each field does.
    """

    flip: bool = False
    vflip: bool = False
    crop: float | None = None
    safe_crop: float | None = None
    scale: float | None = None
    translate: float | None = None
    min_visible: float = 0.3
    brightness: float | None = None
    contrast: float | None = None
    saturation: float | None = None
    hue: float | None = None
    #: Seed slot of each op, in order (set by the grammar the spec was parsed with).
    slots: tuple[str, ...] = field(default=_SLOTS, compare=False, repr=False)

    @property
    def geometric(self) -> bool:
        """Whether the view window moves (crop, safe_crop, scale or translate)."""
        return any(v for v in (self.crop, self.safe_crop, self.scale, self.translate))

    @property
    def active(self) -> bool:
        """Whether any op is on."""
        return self.flip or self.vflip or self.geometric or any(
            v for v in (self.brightness, self.contrast, self.saturation, self.hue))

    def describe(self) -> str:
        """The canonical spec string (``none`` when nothing is on)."""
        items = []
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in ("min_visible", "slots"):
                continue
            if value is True:
                items.append(f.name)
            elif value not in (None, False):
                items.append(f"{f.name}={value:g}")
        if self.geometric:
            items.append(f"min_visible={self.min_visible:g}")
        return ",".join(items) or "none"


@dataclass(frozen=True)
class AugmentGrammar:
    """How one task spells augmentation specs.

    Attributes:
        presets: preset name -> the comma list it stands for.
        ops: op name as written -> :class:`BoxAugment` field it sets.
        defaults: op name as written -> its value when written without one (None: a flag).
        slots: the seed slot of each field, in order; a task's recorded runs repeat only with
            the slots they were drawn with.
    """

    presets: Mapping[str, str]
    ops: Mapping[str, str]
    defaults: Mapping[str, float | None]
    slots: tuple[str, ...] = _SLOTS


#: Detection's spelling: every op under its own name, the presets above.
DETECTION_GRAMMAR = AugmentGrammar(presets=PRESETS, ops={name: name for name in DEFAULTS}, defaults=DEFAULTS)


def parse_box_augment(spec: str | BoxAugment | None, grammar: AugmentGrammar = DETECTION_GRAMMAR) -> BoxAugment:
    """A spec string (see the module docstring) -> :class:`BoxAugment`.

    Args:
        spec: a preset, a comma list of ops, or an already parsed :class:`BoxAugment`.
        grammar: the task's spelling (default: detection's).

    Raises:
        ConfigError: an unknown op, a value that is not a number or out of range, a value
            given to a flag such as ``flip``, or both kinds of crop; the message names the item.

    Example:
        >>> parse_box_augment("detect,hue=0").hue
        0.0
    """
    if isinstance(spec, BoxAugment):
        return spec
    values: dict[str, object] = {}
    for item in _expand(spec or "none", grammar.presets):
        name, sep, raw = (part.strip() for part in item.partition("="))
        if name not in grammar.ops:
            raise ConfigError(f"unknown box augmentation {item!r}",
                              hint=f"use a preset ({', '.join(grammar.presets)}) or a comma list of "
                                   f"{', '.join(grammar.ops)}")
        target = grammar.ops[name]
        if grammar.defaults[name] is None:
            if sep:
                raise ConfigError(f"box augmentation {item!r}: {name} takes no value")
            values[target] = True
            continue
        try:
            value = float(raw) if sep else float(grammar.defaults[name])  # type: ignore[arg-type]
        except ValueError:
            raise ConfigError(f"box augmentation {item!r}: {raw!r} is not a number") from None
        low, high, closed = _RANGES[target]
        no_zero = target in ("crop", "safe_crop")
        if not math.isfinite(value) or value < low or value > high or (value == high and not closed) or (
                no_zero and value == 0.0):
            bracket = "]" if closed else ")"
            opening = "(" if no_zero else "["
            raise ConfigError(f"box augmentation {item!r} is out of range {opening}{low:g}, {high:g}{bracket}")
        values[target] = value
    if values.get("crop") and values.get("safe_crop"):
        raise ConfigError("box augmentation: crop and safe_crop both choose the window; use one of them")
    return replace(BoxAugment(), slots=grammar.slots, **values)  # type: ignore[arg-type]


#: The name the trainer's config uses.
parse_augment = parse_box_augment


def _expand(spec: str, presets: Mapping[str, str]) -> list[str]:
    items: list[str] = []
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        if part in presets:
            items.extend(p for p in presets[part].split(",") if p)
        else:
            items.append(part)
    return items


def flip_boxes_horizontally(boxes: tf.Tensor) -> tf.Tensor:
    """Mirror normalised corner boxes left-right: ``x -> 1 - x`` (min and max swap)."""
    return tf.stack([1.0 - boxes[:, 2], boxes[:, 1], 1.0 - boxes[:, 0], boxes[:, 3]], axis=-1)


def flip_boxes_vertically(boxes: tf.Tensor) -> tf.Tensor:
    """Mirror normalised corner boxes top-bottom: ``y -> 1 - y``."""
    return tf.stack([boxes[:, 0], 1.0 - boxes[:, 3], boxes[:, 2], 1.0 - boxes[:, 1]], axis=-1)


def _draw_inputs(image, boxes, classes, seed, cfg: BoxAugment | str):
    """The parsed ``cfg``, the image, boxes ``[K, 4]`` and classes ``[K]`` as tensors, and one
    stateless seed per op slot of ``cfg`` split from ``seed`` (the draws every augmentation of
    boxes shares: :func:`augment_boxes`, and instance augmentation with its masks)."""
    cfg = parse_box_augment(cfg)
    image = tf.convert_to_tensor(image, tf.float32)
    boxes = tf.reshape(tf.convert_to_tensor(boxes, tf.float32), [-1, 4])
    classes = tf.reshape(tf.convert_to_tensor(classes, tf.int32), [-1])
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=len(cfg.slots))
    return cfg, image, boxes, classes, {name: seeds[i] for i, name in enumerate(cfg.slots)}


def augment_boxes(
    image: tf.Tensor, boxes: tf.Tensor, classes: tf.Tensor, seed: tf.Tensor, cfg: BoxAugment | str,
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Augment one image and its boxes with the same random draw.

    Args:
        image: float32 (H, W, C) pixels 0..255; the output has the same size.
        boxes: float32 (K, 4) normalised corners ``[x_min, y_min, x_max, y_max]``; K may be 0.
        classes: int32 (K,) class of each box.
        seed: int32/int64 (2,) seed of the stateless random ops.
        cfg: a :class:`BoxAugment` or a spec string.

    Returns:
        ``(image, boxes, classes)``: the image (float32, 0..255) and the boxes still in view,
        clipped to it (K' <= K rows; dropped boxes are removed).

    Example:
        >>> image = tf.zeros([64, 64, 3])
        >>> boxes = tf.constant([[0.1, 0.2, 0.3, 0.4]])
        >>> out, kept, labels = augment_boxes(image, boxes, tf.constant([0]), tf.constant([1, 2]), "flip")
        >>> out.shape, kept.shape
        (TensorShape([64, 64, 3]), TensorShape([1, 4]))
    """
    cfg, image, boxes, classes, slot = _draw_inputs(image, boxes, classes, seed, cfg)

    if cfg.geometric:
        window = _view_window(cfg, slot, boxes)
        image = sample_window(image, window)
        boxes, classes = boxes_in_window(boxes, classes, window, cfg.min_visible, tf.shape(image)[:2])
    if cfg.flip:
        do = tf.random.stateless_uniform([], slot["flip"]) < 0.5
        image = tf.cond(do, lambda: tf.reverse(image, axis=[1]), lambda: image)
        boxes = tf.cond(do, lambda: flip_boxes_horizontally(boxes), lambda: boxes)
    if cfg.vflip:
        do = tf.random.stateless_uniform([], slot["vflip"]) < 0.5
        image = tf.cond(do, lambda: tf.reverse(image, axis=[0]), lambda: image)
        boxes = tf.cond(do, lambda: flip_boxes_vertically(boxes), lambda: boxes)
    image = _photometric(image, cfg, slot)
    return tf.clip_by_value(image, 0.0, 255.0), boxes, classes


def _uniform(seed: tf.Tensor, low: float, high: float, shape=()) -> tf.Tensor:
    return tf.random.stateless_uniform(shape, seed, low, high)


def _view_window(cfg: BoxAugment, slot: dict[str, tf.Tensor], boxes: tf.Tensor) -> tf.Tensor:
    """The source window ``[x0, y0, x1, y1]`` (normalised, may pass the edges) to show."""
    centre = tf.constant([0.5, 0.5])
    size = tf.constant([1.0, 1.0])  # (w, h)
    if cfg.safe_crop:
        start, size = _safe_crop(boxes, slot["safe_crop"], cfg.safe_crop)
        centre = start + size / 2
    if cfg.crop:
        s = _uniform(slot["crop"], 0.0, 1.0, [4])
        side = cfg.crop + (1.0 - cfg.crop) * s[0]
        aspect = tf.exp((2.0 * s[1] - 1.0) * math.log(_ASPECT_JITTER))
        crop_size = tf.minimum(tf.stack([side * tf.sqrt(aspect), side / tf.sqrt(aspect)]), 1.0)
        crop_centre = crop_size / 2 + (1.0 - crop_size) * s[2:]
        apply = tf.random.stateless_uniform([], slot["crop_apply"]) < _CROP_PROBABILITY
        size = tf.where(apply, crop_size, size)
        centre = tf.where(apply, crop_centre, centre)
    if cfg.scale:
        zoom = _uniform(slot["scale"], 1.0 - cfg.scale, 1.0 + cfg.scale)
        size = size / zoom
    if cfg.translate:
        centre = centre + _uniform(slot["translate"], -cfg.translate, cfg.translate, [2])
    return tf.concat([centre - size / 2, centre + size / 2], axis=0)


def _safe_crop(boxes: tf.Tensor, seed: tf.Tensor, min_side: float) -> tuple[tf.Tensor, tf.Tensor]:
    """Start ``(x0, y0)`` and size ``(w, h)`` of a random window that holds every box whole.

    Each side is drawn in ``min_side..1`` of the image (at least the boxes' extent), then the
    window is placed uniformly among the positions that keep the boxes inside it.
    """
    # Without boxes any window will do: let it hold the centre point.
    union = tf.cond(tf.shape(boxes)[0] > 0,
                    lambda: tf.concat([tf.reduce_min(boxes[:, :2], 0), tf.reduce_max(boxes[:, 2:], 0)], 0),
                    lambda: tf.constant([0.5, 0.5, 0.5, 0.5]))
    u = tf.random.stateless_uniform([3], seed)
    side = min_side + (1.0 - min_side) * u[0]
    extent = tf.minimum(tf.maximum(side, union[2:] - union[:2]), 1.0)
    low = tf.maximum(0.0, union[2:] - extent)
    high = tf.minimum(union[:2], 1.0 - extent)
    return low + (high - low) * u[1:], extent


def sample_window(image: tf.Tensor, window: tf.Tensor, size: tf.Tensor | None = None,
                  fill: float = FILL_VALUE) -> tf.Tensor:
    """Resample the normalised source window ``[x0, y0, x1, y1]`` of ``image`` to ``size``.

    Pixel centres are mapped exactly: output pixel ``i`` (centre ``(i + 0.5) / h`` in output
    fractions) samples the source at ``y0 + (i + 0.5) / h * (y1 - y0)`` of its height, which is
    the same affine map the boxes go through. Outside the image the border is
    :data:`FILL_VALUE`.

    Args:
        image: float32 (H, W, C).
        window: float32 (4,) normalised corners in the source.
        size: (h, w) of the output; default the input size.
        fill: the value outside the image (:data:`FILL_VALUE`; 0 for masks).
    """
    shape = tf.shape(image)
    src = tf.cast(shape[:2], tf.float32)  # (H, W)
    out = shape[:2] if size is None else tf.convert_to_tensor(size, tf.int32)
    out_f = tf.cast(out, tf.float32)
    start = tf.stack([window[1], window[0]])  # (y0, x0)
    extent = tf.stack([window[3] - window[1], window[2] - window[0]])
    # crop_and_resize puts output pixel i at source pixel index b0 (H-1) + i (b1-b0)(H-1)/(h-1):
    # solve for the b0, b1 that hit the exact centre-to-centre positions at i = 0 and i = h-1.
    first = (start + 0.5 / out_f * extent) * src - 0.5
    last = (start + (out_f - 0.5) / out_f * extent) * src - 0.5
    denom = tf.maximum(src - 1.0, 1.0)
    box = tf.concat([first / denom, last / denom], axis=0)  # y0, x0, y1, x1
    result = tf.image.crop_and_resize(image[None], box[None], [0], out, method="bilinear",
                                      extrapolation_value=fill)[0]
    result.set_shape(image.shape if size is None else [None, None, image.shape[-1]])
    return result


def boxes_in_window(
    boxes: tf.Tensor, classes: tf.Tensor, window: tf.Tensor, min_visible: float, out_size: tf.Tensor,
) -> tuple[tf.Tensor, tf.Tensor]:
    """Boxes seen through ``window``: moved into its frame, clipped, and filtered.

    A box is kept when the visible part covers at least ``min_visible`` of its whole
    (transformed) area and is at least one output pixel wide and tall.

    Args:
        boxes: (K, 4) normalised corners in the source.
        classes: (K,) their classes.
        window: (4,) the source window ``[x0, y0, x1, y1]``.
        min_visible: fraction of a box's area that must stay in view.
        out_size: (h, w) of the output image in pixels (for the one-pixel rule).
    """
    origin = tf.tile(window[:2], [2])
    extent = tf.tile(window[2:] - window[:2], [2])
    moved = (boxes - origin) / extent
    clipped = tf.clip_by_value(moved, 0.0, 1.0)
    full = _area(moved)
    visible = _area(clipped)
    pixel = 1.0 / tf.cast(tf.stack([out_size[1], out_size[0]]), tf.float32)  # one pixel in (x, y) fractions
    wide = (clipped[:, 2] - clipped[:, 0]) >= pixel[0]
    tall = (clipped[:, 3] - clipped[:, 1]) >= pixel[1]
    keep = (visible >= min_visible * full) & (visible > 0) & wide & tall
    return tf.boolean_mask(clipped, keep), tf.boolean_mask(classes, keep)


def _area(boxes: tf.Tensor) -> tf.Tensor:
    return tf.maximum(boxes[:, 2] - boxes[:, 0], 0.0) * tf.maximum(boxes[:, 3] - boxes[:, 1], 0.0)


def _photometric(image: tf.Tensor, cfg: BoxAugment, slot: dict[str, tf.Tensor]) -> tf.Tensor:
    """Brightness, contrast, saturation, hue: the image changes, the boxes do not."""
    if cfg.brightness:
        image = image + _uniform(slot["brightness"], -cfg.brightness, cfg.brightness) * 255.0
    if cfg.contrast:
        factor = _uniform(slot["contrast"], 1.0 - cfg.contrast, 1.0 + cfg.contrast)
        mean = tf.reduce_mean(image, axis=[0, 1], keepdims=True)
        image = (image - mean) * factor + mean
    if image.shape[-1] == 3 and cfg.saturation:
        image = _scale_saturation(
            tf.clip_by_value(image, 0.0, 255.0),
            _uniform(slot["saturation"], 1.0 - cfg.saturation, 1.0 + cfg.saturation))
    if image.shape[-1] == 3 and cfg.hue:
        unit = tf.clip_by_value(image, 0.0, 255.0) / 255.0
        image = tf.image.adjust_hue(unit, _uniform(slot["hue"], -cfg.hue, cfg.hue)) * 255.0
    return image


def _scale_saturation(image: tf.Tensor, factor: tf.Tensor) -> tf.Tensor:
    """HSV saturation times ``factor`` (clipped to 1), computed in RGB: same result, a third of the time.

    With hue and value fixed, each channel's distance below the brightest one is proportional
    to the saturation, so scaling S scales those distances, up to the darkest reaching 0.
    """
    value = tf.reduce_max(image, axis=-1, keepdims=True)
    spread = value - tf.reduce_min(image, axis=-1, keepdims=True)
    scale = tf.where(spread > 0, tf.minimum(factor, value / tf.maximum(spread, 1e-6)), 1.0)
    return value - (value - image) * scale


__all__ = ["AugmentGrammar", "BoxAugment", "DEFAULTS", "DETECTION_GRAMMAR", "FILL_VALUE", "PRESETS", "augment_boxes", "boxes_in_window",
           "flip_boxes_horizontally", "flip_boxes_vertically", "parse_augment", "parse_box_augment",
           "sample_window"]
