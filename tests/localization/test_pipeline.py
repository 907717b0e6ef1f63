"""The localization pipeline: targets, and augmentation that moves image and box together."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from foveal.data.boxes import BoxedImages
from foveal.errors import ConfigError
from foveal.localization.metrics import NO_BOX, decode_boxes
from foveal.localization.pipeline import augment_example, make_localization_pipeline, parse_augment

SIZE = 64


def _rectangle_data(tmp_path, copies: int = 24, box=(6, 20, 26, 50), source_size=(96, 80)) -> BoxedImages:
    """One dark ``source_size`` image with a bright rectangle, listed ``copies`` times."""
    w, h = source_size
    image = np.full((h, w, 3), 20, np.uint8)
    x0, y0, x1, y1 = box
    image[y0:y1, x0:x1] = 240
    path = tmp_path / "rect.png"
    Image.fromarray(image).save(path)
    return BoxedImages(paths=np.array([str(path)] * copies), boxes=[np.array([box], np.float32)] * copies,
                       labels=[np.zeros(1, np.int32)] * copies, class_names=["rect"],
                       image_sizes=np.array([[w, h]] * copies))


def _bright_extent(image: np.ndarray) -> np.ndarray:
    """Corner box (pixels, continuous) of the bright pixels of one image."""
    ys, xs = np.nonzero(image[..., 0] > 130)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float32)


def _batch(data, augment, seed=0):
    ds = make_localization_pipeline(data, image_size=(SIZE, SIZE), channels=3, batch_size=len(data),
                                    training=True, augment=augment, seed=seed)
    images, targets = next(iter(ds))
    boxes = np.asarray(decode_boxes(targets["box"])) * SIZE
    return images.numpy(), boxes, targets


def test_targets_without_augmentation(tmp_path):
    data = _rectangle_data(tmp_path, copies=2)
    images, boxes, targets = _batch(data, "none")
    assert images.shape == (2, SIZE, SIZE, 3) and images.dtype == np.float32
    np.testing.assert_allclose(targets["class"].numpy(), [[1.0], [1.0]])  # one class: presence
    np.testing.assert_allclose(boxes[0], [6 * SIZE / 96, 20 * SIZE / 80, 26 * SIZE / 96, 50 * SIZE / 80], atol=1e-4)
    np.testing.assert_allclose(_bright_extent(images[0]), boxes[0], atol=1.5)


def test_flip_moves_the_box_with_the_rectangle(tmp_path):
    data = _rectangle_data(tmp_path)
    images, boxes, _ = _batch(data, "flip", seed=3)
    flipped = boxes[:, 0] > SIZE / 2
    assert flipped.any() and (~flipped).any()  # both outcomes occur in 24 draws
    for image, box in zip(images, boxes):
        np.testing.assert_allclose(_bright_extent(image), box, atol=1.5)


def test_crop_keeps_the_box_on_the_rectangle(tmp_path):
    data = _rectangle_data(tmp_path)
    images, boxes, _ = _batch(data, "flip,crop=0.5", seed=5)
    widths = boxes[:, 2] - boxes[:, 0]
    assert widths.max() - widths.min() > 2  # the crops differ in scale
    for image, box in zip(images, boxes):
        np.testing.assert_allclose(_bright_extent(image), box, atol=2.0)


def test_crop_puts_the_picture_on_its_box_to_a_fraction_of_a_pixel():
    # The crop used to resample with crop_and_resize on the window's corners, which left the
    # picture up to 0.43 px off its box in these draws; the shared exact mapping leaves 0.11.
    image = np.full((SIZE, SIZE, 3), 20, np.float32)
    image[20:50, 6:26] = 240
    box = tf.constant([6 / SIZE, 20 / SIZE, 26 / SIZE, 50 / SIZE])
    rows, cols = np.mgrid[0:SIZE, 0:SIZE] + 0.5
    offsets = []
    for seed in range(40):
        out, moved, kept = augment_example(tf.constant(image), box, tf.constant(True),
                                           tf.constant([seed, 3], tf.int64), parse_augment("crop=0.5"))
        assert bool(kept)
        mass = np.clip((np.asarray(out)[..., 0] - 20) / 220, 0, 1)
        centre = np.array([(mass * cols).sum(), (mass * rows).sum()]) / mass.sum()
        corners = np.asarray(moved) * SIZE
        offsets.append(np.abs(centre - (corners[:2] + corners[2:]) / 2).max())
    assert max(offsets) < 0.2


def test_photometric_ops_leave_the_box_alone(tmp_path):
    data = _rectangle_data(tmp_path, copies=8)
    plain_images, plain, _ = _batch(data, "none")
    images, boxes, _ = _batch(data, "brightness=0.3,contrast=0.5", seed=1)
    np.testing.assert_allclose(boxes, plain, atol=1e-5)
    assert not np.allclose(images, plain_images)
    assert images.min() >= 0 and images.max() <= 255


def test_multiclass_targets_and_images_without_box(tmp_path):
    data = _rectangle_data(tmp_path, copies=2)
    data = BoxedImages(paths=data.paths, boxes=[data.boxes[0], np.zeros((0, 4), np.float32)],
                       labels=[np.zeros(1, np.int32), np.zeros(0, np.int32)], class_names=["rect"],
                       image_sizes=data.image_sizes)
    _, _, targets = _batch(data, "flip,crop")
    np.testing.assert_allclose(targets["class"].numpy(), [[1.0], [0.0]])
    np.testing.assert_allclose(targets["box"].numpy()[1], [NO_BOX] * 4)


@pytest.mark.parametrize("spec", ["rotate", "flip=1", "crop=1.5", "brightness=x", "translate=0.1", "safe_crop"])
def test_bad_augment_specs(spec):
    with pytest.raises(ConfigError):
        parse_augment(spec)


def test_presets():
    assert parse_augment("standard").flip and parse_augment("standard").safe_crop == 0.75
    assert not parse_augment("none").active
    # The localizer's crop is the shared crop that keeps every box whole, not detection's.
    custom = parse_augment("flip,vflip,crop=0.6,hue=0.1")
    assert (custom.safe_crop, custom.crop, custom.vflip, custom.hue) == (0.6, None, True, 0.1)
