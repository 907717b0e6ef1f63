"""The texts' sliding-window detector: patches, the FCN conversion, detection with NMS."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from PIL import Image

from foveal.data.boxes import BoxedImages
from foveal.detection.sliding_window import (
    fcn_geometry,
    patch_dataset,
    sliding_window_detect,
    to_fully_convolutional,
    train_patch_classifier,
)
from foveal.errors import DataError, ModelError
from foveal.models import build_model


def test_fcn_output_equals_the_classifier_on_every_window():
    classifier = build_model("lenet5", num_classes=3, input_shape=(32, 32, 3))
    fcn = to_fully_convolutional(classifier)
    assert fcn_geometry(fcn) == ((32, 32), (4, 4))
    image = np.random.default_rng(0).uniform(0, 255, (1, 32 + 4 * 3, 32 + 4 * 5, 3)).astype("float32")
    grid = np.asarray(fcn(image))
    assert grid.shape == (1, 4, 6, 3)
    windows = np.stack([image[0, 4 * i:4 * i + 32, 4 * j:4 * j + 32] for i in range(4) for j in range(6)])
    expected = np.asarray(classifier(windows)).reshape(4, 6, 3)
    np.testing.assert_allclose(grid[0], expected, rtol=1e-4, atol=1e-6)


def test_models_without_a_dense_head_or_with_same_padding_are_refused():
    with pytest.raises(ModelError, match="Flatten"):
        to_fully_convolutional(build_model("lenet5", num_classes=2, input_shape=(32, 32, 1), include_top=False))
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(2, 3, padding="same")(inputs)
    fcn = to_fully_convolutional(keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Flatten()(x))))
    with pytest.raises(ModelError, match="same"):
        fcn_geometry(fcn)


def brightness_fcn(window: int = 16, pool: int = 4) -> keras.Model:
    """A hand-set classifier: 'object' when a window's mean brightness is above 80% of white."""
    inputs = keras.Input((window, window, 1))
    x = keras.layers.AveragePooling2D(pool)(inputs)
    x = keras.layers.Flatten()(x)
    head = keras.layers.Dense(2, activation="softmax")
    model = keras.Model(inputs, head(x))
    cells = (window // pool) ** 2
    kernel = np.zeros((cells, 2), np.float32)
    kernel[:, 1] = 0.2 / cells  # logit(object) - logit(background) = 0.2 * (mean - 204)
    head.set_weights([kernel, np.array([0.0, -0.2 * 204], np.float32)])
    return to_fully_convolutional(model)


def test_sliding_window_finds_a_bright_square_at_its_scale():
    fcn = brightness_fcn()
    image = np.zeros((64, 96), np.uint8)
    image[24:40, 40:56] = 255  # a 16-pixel square: the window at scale 1
    boxes, scores, classes = sliding_window_detect(fcn, image, scales=(1.0, 0.5), score_threshold=0.5)
    np.testing.assert_allclose(boxes, [[40, 24, 56, 40]], atol=1e-4)
    assert classes.tolist() == [0] and scores[0] > 0.99
    # A 32-pixel square fills a 16-pixel window at scale 1/2; its box is in original pixels.
    image = np.zeros((64, 96, 1), np.float32)
    image[8:40, 32:64] = 255
    boxes, scores, _ = sliding_window_detect(fcn, image, scales=(0.5,), window=16, stride=4)
    np.testing.assert_allclose(boxes, [[32, 8, 64, 40]], atol=1e-4)
    empty = sliding_window_detect(fcn, np.zeros((40, 40)), scales=(1.0, 0.25))
    assert [a.shape for a in empty] == [(0, 4), (0,), (0,)]


def squares_dataset(tmp_path, count: int = 6) -> BoxedImages:
    rng = np.random.default_rng(1)
    paths, boxes = [], []
    for i in range(count):
        pixels = np.full((64, 64, 3), 30, np.uint8)
        x, y = rng.integers(0, 40, 2)
        pixels[y:y + 20, x:x + 20] = 230
        Image.fromarray(pixels).save(tmp_path / f"{i}.png")
        paths.append(str(tmp_path / f"{i}.png"))
        boxes.append(np.array([[x, y, x + 20, y + 20]], np.float32))
    return BoxedImages(paths=np.array(paths), boxes=boxes, labels=[np.zeros(1, np.int32)] * count,
                       class_names=["square"], image_sizes=np.full((count, 2), 64), origin="squares")


def test_patches_then_a_trained_classifier_then_the_fcn(tmp_path):
    data = squares_dataset(tmp_path)
    patches = patch_dataset(data, 16, positives_per_box=2, negatives_per_image=3, seed=0)
    assert patches.class_names == ["background", "square"] and patches.images.shape[1:] == (16, 16, 3)
    assert patches.info == {"positives": 12, "negatives": 18}
    positives, negatives = patches.images[patches.labels == 1], patches.images[patches.labels == 0]
    assert positives[::2].mean() > 200 and negatives.mean() < 60  # exact squares are bright, background dark
    classifier, history = train_patch_classifier(patches, architecture="lenet5", patch_size=16, epochs=1,
                                                 batch_size=16, augment="none")
    assert classifier.input_shape == (None, 16, 16, 3) and len(history["loss"]) == 1
    fcn = to_fully_convolutional(classifier)
    image = np.asarray(Image.open(data.paths[0]))
    boxes, scores, classes = sliding_window_detect(fcn, image, score_threshold=0.0, iou_threshold=0.5,
                                                   max_detections=5)
    assert boxes.shape[1] == 4 and len(boxes) == len(scores) == len(classes) <= 5


def test_unreadable_images_are_named_or_skipped(tmp_path):
    data = squares_dataset(tmp_path, count=2)
    (tmp_path / "1.png").write_bytes(b"broken")
    with pytest.raises(DataError, match="1.png"):
        patch_dataset(data, 16)
    patches = patch_dataset(data, 16, skip_invalid=True)
    assert len(patches.info["skipped"]) == 1 and patches.info["positives"] == 2
