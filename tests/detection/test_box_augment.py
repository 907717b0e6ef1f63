"""Box-aware augmentation: the spec grammar, and boxes that follow their pixels exactly."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from foveal.data.box_augment import (
    FILL_VALUE,
    PRESETS,
    BoxAugment,
    augment_boxes,
    boxes_in_window,
    parse_box_augment,
    sample_window,
)
from foveal.errors import ConfigError


def rectangle_image(height: int, width: int, box: tuple[int, int, int, int], channels: int = 3) -> np.ndarray:
    """A black image with a white rectangle covering pixel corners ``box`` (x0, y0, x1, y1)."""
    image = np.zeros((height, width, channels), np.float32)
    x0, y0, x1, y1 = box
    image[y0:y1, x0:x1] = 255.0
    return image


def bright_extent(image: np.ndarray, threshold: float = 128.0) -> np.ndarray:
    """Pixel corners ``[x0, y0, x1, y1]`` of the pixels brighter than ``threshold``."""
    ys, xs = np.nonzero(np.asarray(image)[..., 0] > threshold)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float64)


def run(image, boxes, classes, seed, spec):
    out = augment_boxes(tf.constant(image), tf.constant(boxes, tf.float32), tf.constant(classes, tf.int32),
                        tf.constant(seed, tf.int64), spec)
    return tuple(np.asarray(t) for t in out)


# --------------------------------------------------------------------------- grammar


def test_presets_and_lists_parse():
    detect = parse_box_augment("detect")
    assert detect == BoxAugment(flip=True, crop=0.5, scale=0.25, translate=0.1, min_visible=0.3, brightness=0.15,
                                contrast=0.25, saturation=0.3, hue=0.02)
    assert parse_box_augment("none") == BoxAugment() and not BoxAugment().active
    assert parse_box_augment("light").translate == 0.05
    custom = parse_box_augment("flip,crop=0.5,min_visible=0.3,translate=0.1,brightness=0.2")
    assert (custom.flip, custom.crop, custom.min_visible, custom.translate, custom.brightness) == (
        True, 0.5, 0.3, 0.1, 0.2)
    assert custom.contrast is None and custom.geometric and custom.active
    assert parse_box_augment("detect, hue=0").hue == 0.0  # later items override a preset's
    assert parse_box_augment("crop").crop == 0.5  # the default value
    assert parse_box_augment(custom.describe()) == custom
    assert set(PRESETS) == {"none", "light", "detect"}


@pytest.mark.parametrize("spec, named", [("flip,blur", "'blur'"), ("crop=abc", "'crop=abc'"),
                                         ("crop=1.5", "'crop=1.5'"), ("crop=0", "'crop=0'"), ("flip=1", "'flip=1'"),
                                         ("hue=0.7", "'hue=0.7'"), ("min_visible=-1", "'min_visible=-1'")])
def test_bad_items_are_named(spec, named):
    with pytest.raises(ConfigError, match=named):
        parse_box_augment(spec)


# --------------------------------------------------------------------------- geometry


def test_flips_move_boxes_exactly_with_the_pixels():
    height, width = 40, 60
    image = rectangle_image(height, width, (5, 10, 15, 22))
    box = np.array([[5 / width, 10 / height, 15 / width, 22 / height]], np.float32)
    for spec, axis in (("flip", 1), ("vflip", 0)):
        outcomes = set()
        for seed in range(12):
            out, boxes, classes = run(image, box, [3], [seed, 7], spec)
            flipped = not np.array_equal(out, image)
            outcomes.add(flipped)
            if flipped:
                np.testing.assert_array_equal(out, np.flip(image, axis=axis))
            np.testing.assert_allclose(boxes[0] * [width, height, width, height], bright_extent(out), atol=1e-4)
            assert classes.tolist() == [3]
        assert outcomes == {True, False}  # each draw is a coin toss


def test_sample_window_maps_pixel_centres_like_the_boxes():
    image = rectangle_image(40, 40, (15, 12, 25, 30))
    window = tf.constant([0.25, 0.25, 0.75, 0.75])  # the central 20x20, zoomed x2
    out = np.asarray(sample_window(tf.constant(image), window))
    assert out.shape == (40, 40, 3)
    np.testing.assert_allclose(bright_extent(out), [10, 4, 30, 40], atol=1)
    # The same window through the box arithmetic.
    moved, _ = boxes_in_window(tf.constant([[15 / 40, 12 / 40, 25 / 40, 30 / 40]]), tf.constant([0]), window, 0.0,
                               tf.constant([40, 40]))
    np.testing.assert_allclose(np.asarray(moved)[0] * 40, [10, 4, 30, 40], atol=1e-4)
    # Looking past the image's edge shows the gray fill.
    outside = np.asarray(sample_window(tf.constant(image), tf.constant([-1.0, 0.0, 0.0, 1.0])))
    np.testing.assert_allclose(outside, FILL_VALUE)


def test_boxes_are_clipped_or_dropped_by_visible_fraction():
    boxes = tf.constant([[0.0, 0.0, 0.5, 0.5],    # a quarter stays visible
                         [0.3, 0.3, 0.7, 0.7],    # fully visible
                         [0.0, 0.0, 0.1, 0.1]])   # out of view
    window = tf.constant([0.25, 0.25, 1.25, 1.25])
    size = tf.constant([100, 100])
    kept, classes = boxes_in_window(boxes, tf.constant([0, 1, 2]), window, 0.3, size)
    assert np.asarray(classes).tolist() == [1]
    np.testing.assert_allclose(np.asarray(kept), [[0.05, 0.05, 0.45, 0.45]], atol=1e-6)
    kept, classes = boxes_in_window(boxes, tf.constant([0, 1, 2]), window, 0.2, size)
    assert np.asarray(classes).tolist() == [0, 1]
    np.testing.assert_allclose(np.asarray(kept)[0], [0.0, 0.0, 0.25, 0.25], atol=1e-6)  # clipped to the view


def test_random_crops_keep_boxes_on_their_pixels():
    height, width = 64, 64
    image = rectangle_image(height, width, (20, 16, 44, 40))
    box = np.array([[20 / 64, 16 / 64, 44 / 64, 40 / 64]], np.float32)
    spec = "crop=0.4,scale=0.3,translate=0.2,min_visible=0.5"
    kept = 0
    for seed in range(12):
        out, boxes, _ = run(image, box, [0], [seed, 1], spec)
        if len(boxes):
            kept += 1
            extent = bright_extent(out)
            np.testing.assert_allclose(boxes[0] * 64, extent, atol=1.5)
            assert np.all((boxes >= 0) & (boxes <= 1))
    assert kept > 0


def test_safe_crop_keeps_every_box_whole_on_its_pixels():
    image = rectangle_image(64, 64, (6, 10, 18, 20)) + rectangle_image(64, 64, (40, 36, 58, 60))
    boxes = np.array([[6 / 64, 10 / 64, 18 / 64, 20 / 64], [40 / 64, 36 / 64, 58 / 64, 60 / 64]], np.float32)
    sides = set()
    for seed in range(10):
        out, moved, classes = run(image, boxes, [0, 1], [seed, 4], "safe_crop=0.3")
        assert classes.tolist() == [0, 1]  # nothing cut, nothing dropped
        sides.add(round(float(moved[1, 2] - moved[0, 0]), 3))
        first = bright_extent(out[:, : int(np.ceil(moved[0, 2] * 64)) + 1])
        np.testing.assert_allclose(moved[0] * 64, first, atol=1.0)
    assert len(sides) > 1  # the zoom varies
    # Without boxes the window holds the centre, and the image is still cropped and zoomed.
    out, moved, _ = run(image, np.zeros((0, 4), np.float32), [], [1, 4], "safe_crop=0.3")
    assert out.shape == image.shape and moved.shape == (0, 4)


def test_the_two_crops_exclude_each_other():
    assert parse_box_augment("safe_crop").safe_crop == 0.75 and parse_box_augment("safe_crop").geometric
    with pytest.raises(ConfigError, match="use one of them"):
        parse_box_augment("crop,safe_crop")


def test_min_visible_drops_cut_boxes():
    image = rectangle_image(64, 64, (0, 0, 8, 8))
    box = np.array([[0.0, 0.0, 0.125, 0.125]], np.float32)
    # Translating by up to half the image pushes the corner box out of view in most draws.
    outcomes = {len(run(image, box, [0], [seed, 2], "translate=0.5,min_visible=0.9")[1]) for seed in range(12)}
    assert outcomes == {0, 1}


# --------------------------------------------------------------------------- the rest


def test_seeded_draws_are_repeatable_and_differ_between_seeds():
    rng = np.random.default_rng(0)
    image = rng.uniform(0, 255, (32, 48, 3)).astype(np.float32)
    boxes = np.array([[0.1, 0.1, 0.6, 0.7], [0.5, 0.4, 0.9, 0.9]], np.float32)
    first = run(image, boxes, [0, 1], [5, 9], "detect")
    again = run(image, boxes, [0, 1], [5, 9], "detect")
    other = run(image, boxes, [0, 1], [6, 9], "detect")
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[0], other[0])
    assert first[0].shape == image.shape and first[0].min() >= 0 and first[0].max() <= 255


def test_images_without_boxes_and_gray_images_stay_valid():
    out, boxes, classes = run(np.full((24, 24, 1), 90, np.float32), np.zeros((0, 4), np.float32), [], [1, 1],
                              "detect,vflip")
    assert out.shape == (24, 24, 1) and boxes.shape == (0, 4) and classes.shape == (0,)


def test_photometric_changes_leave_boxes_alone():
    image = rectangle_image(16, 16, (2, 2, 9, 9)) * 0.5 + 40
    boxes = np.array([[0.1, 0.2, 0.5, 0.6]], np.float32)
    out, moved, _ = run(image, boxes, [0], [3, 3], "brightness=0.3,contrast=0.5,saturation=0.5,hue=0.1")
    np.testing.assert_array_equal(moved, boxes)
    assert not np.allclose(out, image)


def test_augment_runs_inside_a_dataset_map():
    ds = tf.data.Dataset.from_tensors((tf.zeros([20, 20, 3]), tf.constant([[0.2, 0.2, 0.8, 0.8]]), tf.constant([0])))
    ds = ds.map(lambda x, b, c: augment_boxes(x, b, c, tf.constant([1, 2]), "detect"))
    image, boxes, classes = next(iter(ds))
    assert image.shape == (20, 20, 3) and boxes.shape[1] == 4
