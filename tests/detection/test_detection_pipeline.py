"""The detection tf.data pipeline: targets, padding, letterbox, multi-scale, seeds, bad files."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from PIL import Image

from conftest import requires_shared
from foveal.data.boxes import BoxedImages, load_boxes
from foveal.detection.pipeline import (
    detection_data_errors,
    images_only,
    letterbox_geometry,
    make_detection_pipeline,
    to_image_pixels,
)
from foveal.errors import ConfigError, DataError

from .conftest import RACCOON


def boxed(tmp_path, specs, class_names=("cat", "dog")) -> BoxedImages:
    """Images ``(width, height, [(x0, y0, x1, y1, label, difficult)])``: white boxes on black."""
    paths, boxes, labels, hard, sizes = [], [], [], [], []
    for i, (width, height, objects) in enumerate(specs):
        pixels = np.zeros((height, width, 3), np.uint8)
        for x0, y0, x1, y1, *_ in objects:
            pixels[y0:y1, x0:x1] = 255
        path = tmp_path / f"img{i}.png"
        Image.fromarray(pixels).save(path)
        paths.append(str(path))
        boxes.append(np.array([o[:4] for o in objects], np.float32).reshape(-1, 4))
        labels.append(np.array([o[4] for o in objects], np.int32))
        hard.append(np.array([o[5] for o in objects], bool))
        sizes.append((width, height))
    return BoxedImages(paths=np.array(paths), boxes=boxes, labels=labels, class_names=list(class_names),
                       image_sizes=np.array(sizes), difficult=hard, origin="synthetic")


def batches(ds):
    return [(np.asarray(x), {k: np.asarray(v) for k, v in t.items()}) for x, t in ds]


def test_targets_are_normalised_padded_and_in_order(tmp_path, caplog):
    data = boxed(tmp_path, [
        (64, 32, [(8, 4, 24, 20, 1, False), (30, 10, 40, 30, 0, True)]),  # the difficult box is left out
        (32, 32, []),                                                      # a negative, kept
        (48, 48, [(i * 6, 0, i * 6 + 4 + i, 10, 0, False) for i in range(7)]),  # 7 boxes > M = 5
    ])
    with caplog.at_level(logging.WARNING, logger="foveal"):
        ds = make_detection_pipeline(data, image_size=32, batch_size=2, max_boxes=5)
    assert "more than 5 boxes" in caplog.text
    (x1, t1), (x2, t2) = batches(ds)
    assert x1.shape == (2, 32, 32, 3) and x1.dtype == np.float32 and x2.shape == (1, 32, 32, 3)
    assert t1["boxes"].shape == (2, 5, 4) and t1["classes"].dtype == np.int32
    np.testing.assert_allclose(t1["boxes"][0, 0], [8 / 64, 4 / 32, 24 / 64, 20 / 32], atol=1e-6)
    assert t1["classes"][0].tolist() == [1, -1, -1, -1, -1]
    assert t1["classes"][1].tolist() == [-1] * 5 and not t1["boxes"][1].any()
    # The five largest of seven boxes are kept, in their original order.
    widths = np.round((t2["boxes"][0, :, 2] - t2["boxes"][0, :, 0]) * 48).astype(int).tolist()
    assert widths == [6, 7, 8, 9, 10]
    assert np.asarray(next(iter(ds.map(images_only)))).shape == (2, 32, 32, 3)
    # prediction and scoring (max_boxes None) keep every box and warn of none: scoring reads the data itself
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="foveal"):
        every = batches(make_detection_pipeline(data, image_size=32, batch_size=3, max_boxes=None))
    assert "more than" not in caplog.text and every[0][1]["boxes"].shape == (3, 7, 4)


def test_letterbox_moves_boxes_with_the_pixels_and_inverts(tmp_path):
    data = boxed(tmp_path, [(80, 40, [(20, 8, 60, 32, 0, False)])])
    assert letterbox_geometry(80, 40, (64, 64)) == (64, 32, 0, 16)
    images, targets = batches(make_detection_pipeline(data, image_size=64, batch_size=1, keep_aspect=True))[0]
    box = targets["boxes"][0, 0]
    np.testing.assert_allclose(box, [20 / 80, (16 + 8 * 0.8) / 64, 60 / 80, (16 + 32 * 0.8) / 64], atol=1e-6)
    ys, xs = np.nonzero(images[0, ..., 0] > 128)
    np.testing.assert_allclose([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], box * 64, atol=1)
    assert images[0, 0, 0, 0] == pytest.approx(114) and images[0, 40, 0, 0] == 0  # gray bars, black image
    np.testing.assert_allclose(to_image_pixels(box[None], (80, 40), (64, 64), keep_aspect=True), [[20, 8, 60, 32]],
                               atol=1e-4)
    np.testing.assert_allclose(to_image_pixels(np.array([[0.25, 0.5, 0.5, 1.0]]), (80, 40), (64, 64), False),
                               [[20, 20, 40, 40]])


def test_multi_scale_draws_one_size_per_batch(tmp_path):
    data = boxed(tmp_path, [(40, 40, [(5, 5, 20, 20, 0, False)])] * 4)
    ds = make_detection_pipeline(data, image_size=64, batch_size=2, training=True, augment="none",
                                 multi_scale=[32, 64, 96], seed=3)
    sizes = []
    for _ in range(4):  # epochs: each batch draws again
        for images, targets in ds:
            assert images.shape[1] == images.shape[2] and images.shape[1] % 32 == 0
            assert targets["boxes"].shape == (2, 100, 4)
            sizes.append(int(images.shape[1]))
    assert set(sizes) <= {32, 64, 96} and len(set(sizes)) > 1
    evaluation = make_detection_pipeline(data, image_size=64, batch_size=2, multi_scale=[32, 96])
    assert next(iter(evaluation))[0].shape == (2, 64, 64, 3)  # only training changes sizes
    with pytest.raises(ConfigError, match="multiples of 32"):
        make_detection_pipeline(data, image_size=64, training=True, multi_scale=[64, 100])


def test_training_batches_are_seeded(tmp_path):
    data = boxed(tmp_path, [(48, 40, [(4 + i, 6, 30, 30 + i, i % 2, False)]) for i in range(6)])

    def first_epoch(seed):
        return batches(make_detection_pipeline(data, image_size=32, batch_size=3, training=True, seed=seed))

    one, again, other = first_epoch(1), first_epoch(1), first_epoch(2)
    for (xa, ta), (xb, tb) in zip(one, again):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ta["boxes"], tb["boxes"])
    assert any(not np.array_equal(xa, xb) for (xa, _), (xb, _) in zip(one, other))
    for _, t in one:
        real = t["classes"] >= 0
        assert np.all((t["boxes"] >= 0) & (t["boxes"] <= 1))
        assert np.all(t["boxes"][real][:, 2] > t["boxes"][real][:, 0]) and not t["boxes"][~real].any()


def test_undecodable_file_is_named_or_skipped(tmp_path):
    data = boxed(tmp_path, [(32, 32, [(2, 2, 20, 20, 0, False)])] * 3)
    broken = tmp_path / "img1.png"
    broken.write_bytes(b"this is not an image")
    with pytest.raises(DataError, match="img1.png"):
        with detection_data_errors("synthetic"):
            batches(make_detection_pipeline(data, image_size=32, batch_size=2))
    ds = make_detection_pipeline(data, image_size=32, batch_size=4, skip_invalid=True, training=True,
                                 augment="none")
    (images, targets), = batches(ds)
    assert images.shape[0] == 2 and targets["classes"][:, 0].tolist() == [0, 0]
    assert data.info["undecodable"] == [str(broken)]
    # Outside training a gray stand-in keeps the batches aligned with the data's order.
    (images, targets), = batches(make_detection_pipeline(data, image_size=32, batch_size=4, skip_invalid=True))
    assert images.shape[0] == 3 and targets["classes"][:, 0].tolist() == [0, -1, 0]
    assert np.all(images[1] == 114) and data.info["undecodable"] == [str(broken)]


def test_bad_options_are_config_errors(tmp_path):
    data = boxed(tmp_path, [(32, 32, [])])
    for options, message in (({"cache": "disk"}, "cache"), ({"augment": "flip,zoom"}, "zoom"),
                             ({"image_size": (32,)}, "image_size"), ({"channels": 2}, "channels")):
        with pytest.raises(ConfigError, match=message):
            make_detection_pipeline(data, **options)


@requires_shared("raccoon")
def test_raccoon_with_the_detect_preset():
    data = load_boxes(RACCOON)["train"].subset(np.arange(6))
    ds = make_detection_pipeline(data, image_size=128, batch_size=3, training=True, augment="detect",
                                 keep_aspect=True, max_boxes=8, drop_remainder=True)
    for images, targets in batches(ds):
        assert images.shape == (3, 128, 128, 3) and 0 <= images.min() and images.max() <= 255
        real = targets["classes"] >= 0
        assert np.all(targets["classes"][real] == 0)
        b = targets["boxes"][real]
        assert np.all((b >= 0) & (b <= 1)) and np.all(b[:, 2] > b[:, 0]) and np.all(b[:, 3] > b[:, 1])
