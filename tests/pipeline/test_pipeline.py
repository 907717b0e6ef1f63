"""tf.data pipeline, augmentation layers, stratified splits and class balancing."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from foveal.data.augment import PRESETS, build_augmenter, parse_spec
from foveal.data.balance import balanced_class_weights, oversample
from foveal.data.pipeline import make_pipeline, resize_image
from foveal.data.source import LabeledImages
from foveal.data.splits import make_splits, stratified_indices
from foveal.errors import ConfigError, DataError


def arrays(n=40, size=8, channels=1, classes=4, seed=0) -> LabeledImages:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, size, size, channels), dtype=np.uint8)
    labels = (np.arange(n) % classes).astype(np.int32)
    return LabeledImages(class_names=[f"c{i}" for i in range(classes)], labels=labels, images=images, origin="test")


def test_batches_have_model_shapes_and_one_hot_labels():
    ds = make_pipeline(arrays(), image_size=(16, 16), channels=3, batch_size=8, training=False)
    x, y = next(iter(ds))
    assert x.shape == (8, 16, 16, 3) and x.dtype == tf.float32
    assert y.shape == (8, 4) and float(tf.reduce_sum(y)) == 8.0
    assert 0.0 <= float(tf.reduce_min(x)) and float(tf.reduce_max(x)) <= 255.0


def test_evaluation_pipeline_keeps_order_and_pixels():
    data = arrays()
    ds = make_pipeline(data, image_size=(8, 8), channels=1, batch_size=7, training=False, one_hot=False)
    xs, ys = zip(*[(x.numpy(), y.numpy()) for x, y in ds])
    np.testing.assert_array_equal(np.concatenate(ys), data.labels)
    np.testing.assert_array_equal(np.concatenate(xs).astype(np.uint8), data.images)


def test_keep_aspect_pads_instead_of_stretching():
    image = tf.fill([10, 40, 1], tf.constant(200, tf.uint8))
    stretched = resize_image(image, (20, 20), keep_aspect=False).numpy()
    padded = resize_image(image, (20, 20), keep_aspect=True).numpy()
    assert stretched.min() == 200
    assert padded[0, 10, 0] == 0 and padded[10, 10, 0] == 200  # black bars above and below


def test_training_pipeline_shuffles_reproducibly():
    def first_labels(seed):
        ds = make_pipeline(arrays(), image_size=(8, 8), channels=1, batch_size=40, training=True,
                           seed=seed, one_hot=False)
        return next(iter(ds))[1].numpy()

    assert np.array_equal(first_labels(3), first_labels(3))
    assert not np.array_equal(first_labels(3), np.arange(40) % 4)


def test_augmenter_changes_training_images_only():
    aug = build_augmenter("standard", image_size=(16, 16), seed=1)
    x = tf.random.uniform((4, 16, 16, 3), 0, 255, seed=1)
    assert not np.allclose(aug(x, training=True), x)
    np.testing.assert_array_equal(aug(x, training=False), x)


def test_every_op_and_preset_builds_and_keeps_shape():
    x = tf.random.uniform((2, 16, 16, 3), 0, 255, seed=2)
    for preset in PRESETS:
        aug = build_augmenter(preset, image_size=(16, 16), seed=0)
        if aug is not None:
            assert aug(x, training=True).shape == x.shape
    aug = build_augmenter("flip,vflip,crop=2,translate=0.1,zoom=0.2,rotate=20,brightness=0.2,contrast=0.3,jpeg=50",
                          image_size=(16, 16))
    out = aug(x, training=True)
    assert out.shape == x.shape and len(aug.layers) == 9


def test_augment_spec_errors():
    assert parse_spec("flip, rotate=15") == [("flip", None), ("rotate", "15")]
    with pytest.raises(ConfigError, match="unknown augmentation 'blur'"):
        build_augmenter("blur", image_size=(8, 8))
    with pytest.raises(ConfigError, match="expected a number"):
        build_augmenter("rotate=lots", image_size=(8, 8))


def test_stratified_split_keeps_proportions_and_is_seeded():
    labels = np.repeat([0, 1, 2], [100, 50, 10])
    train, val, test = stratified_indices(labels, [0.2, 0.1], seed=5)
    assert sorted(np.concatenate([train, val, test])) == list(range(160))
    assert list(np.bincount(labels[val])) == [20, 10, 2]
    assert list(np.bincount(labels[test])) == [10, 5, 1]
    again = stratified_indices(labels, [0.2, 0.1], seed=5)
    assert all(np.array_equal(a, b) for a, b in zip((train, val, test), again))


def test_make_splits_prefers_given_parts():
    data = arrays(n=40)
    test = arrays(n=8, seed=1)
    splits = make_splits({"train": data, "test": test}, val_split=0.25, test_split=0.5, seed=0)
    assert len(splits.train) == 30 and len(splits.val) == 10 and splits.test is test
    with pytest.raises(DataError, match="classes"):
        other = LabeledImages(["x", "y"], np.array([0, 1]), images=np.zeros((2, 8, 8, 1), np.uint8))
        make_splits({"train": data}, val_split=0.1, test_split=0.0, seed=0, val_data={"train": other})


def test_balanced_class_weights_match_scikit_learn():
    from sklearn.utils.class_weight import compute_class_weight

    labels = np.repeat([0, 1, 2], [70, 20, 10])
    ours = balanced_class_weights(labels, 3)
    theirs = compute_class_weight("balanced", classes=np.arange(3), y=labels)
    np.testing.assert_allclose([ours[i] for i in range(3)], theirs)


def test_oversample_evens_out_classes():
    data = LabeledImages(["a", "b"], np.array([0] * 9 + [1] * 3, np.int32), images=np.zeros((12, 2, 2, 1), np.uint8))
    balanced = oversample(data, seed=0)
    assert list(np.bincount(balanced.labels)) == [9, 9]


def test_class_sorted_folders_give_mixed_batches(digits_folder):
    """Folders are read class by class; a small image buffer must still give mixed batches."""
    from foveal.data.readers import load_dataset

    data = load_dataset(str(digits_folder))["train"]
    assert list(data.labels[:30]) == [0] * 30  # the file list is class-sorted
    ds = make_pipeline(data, image_size=(16, 16), channels=1, batch_size=32, training=True, seed=1,
                       shuffle_buffer=8, one_hot=False)
    first = next(iter(ds))[1].numpy()
    assert len(set(first.tolist())) >= 6
