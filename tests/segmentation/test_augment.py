"""Joint augmentation: the mask follows the image exactly and is never interpolated."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from foveal.segmentation.augment import SegmentationAugment, augment_dataset


def synthetic(seed: int = 0):
    """Blocks of 4 classes; the image's red channel encodes the class: mask = (red - 10) / 60."""
    rng = np.random.default_rng(seed)
    mask = np.kron(rng.integers(0, 4, (6, 6)), np.ones((8, 8), int)).astype(np.uint8)
    image = np.stack([mask * 60 + 10, mask * 30, 255 - mask * 50], -1).astype(np.uint8)
    return image, mask


FULL = SegmentationAugment(crop_size=(40, 40), hflip=True, vflip=True, rot90=True, max_angle=25,
                           scale=(0.6, 1.5), elastic_sigma=6.0, image_interpolation="nearest")


def test_mask_keeps_its_relation_to_the_pixels():
    image, mask = synthetic()
    padded = 0
    for s in range(12):
        out_image, out_mask = (t.numpy() for t in FULL(image, mask, tf.constant([s, 7])))
        assert out_image.shape == (40, 40, 3) and out_mask.shape == (40, 40)
        labelled = out_mask != 255
        np.testing.assert_array_equal((out_image[..., 0][labelled] - 10) / 60, out_mask[labelled])
        padded += (~labelled).sum()
    assert padded > 0  # rotations and zoom-outs did reach outside the image


def test_bilinear_image_nearest_mask():
    image, mask = synthetic(1)
    aug = SegmentationAugment(max_angle=30, scale=(0.8, 1.2), elastic_sigma=4.0, brightness=0.1, contrast=0.2)
    out_image, out_mask = (t.numpy() for t in aug(image, mask, tf.constant([3, 4])))
    assert set(np.unique(out_mask)) <= {0, 1, 2, 3, 255}
    assert out_image.dtype == np.float32 and 0 <= out_image.min() and out_image.max() <= 255
    # interpolated image values appear (edges blend), but never interpolated labels
    assert len(np.unique(out_image[..., 0])) > 4


def test_identity_and_exact_quarter_turns():
    image, mask = synthetic(2)
    out_image, out_mask = SegmentationAugment(hflip=False)(image, mask, tf.constant([0, 0]))
    np.testing.assert_array_equal(out_image.numpy(), image)
    np.testing.assert_array_equal(out_mask.numpy(), mask)
    seen = set()
    for s in range(16):
        out_image, out_mask = SegmentationAugment(hflip=True, vflip=True, rot90=True)(image, mask, tf.constant([s, 1]))
        out_mask = out_mask.numpy()
        assert (out_mask != 255).all()  # a square turned by 90 degrees needs no padding
        candidates = [np.rot90(f, k) for k in range(4) for f in (mask, mask[:, ::-1])]
        match = [i for i, c in enumerate(candidates) if np.array_equal(c, out_mask)]
        assert match
        seen.add(match[0])
    assert len(seen) > 3


def test_photometric_leaves_mask_alone_and_seed_repeats():
    image, mask = synthetic(3)
    aug = SegmentationAugment(hflip=False, brightness=0.2, contrast=0.3)
    out_image, out_mask = aug(image, mask, tf.constant([5, 5]))
    np.testing.assert_array_equal(out_mask.numpy(), mask)
    assert not np.allclose(out_image.numpy(), image)
    again, _ = aug(image, mask, tf.constant([5, 5]))
    np.testing.assert_array_equal(out_image.numpy(), again.numpy())


def test_augment_dataset_draws_fresh_transforms():
    image, mask = synthetic(4)
    ds = tf.data.Dataset.from_tensors((image, mask)).repeat(4)
    outs = [m.numpy() for _, m in augment_dataset(ds, FULL, seed=1)]
    assert len(outs) == 4 and not all(np.array_equal(outs[0], o) for o in outs[1:])
    again = [m.numpy() for _, m in augment_dataset(ds, FULL, seed=1)]
    for a, b in zip(outs, again):
        np.testing.assert_array_equal(a, b)
