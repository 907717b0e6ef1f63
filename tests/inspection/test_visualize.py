"""First-layer filters, feature maps and Grad-CAM (on a tiny CNN trained to tell a bright
square on the left from one on the right)."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from keras import layers

from foveal.errors import FovealError
from foveal.models import build_model
from foveal.visualize import gradcam, overlay_heatmap, plot_feature_maps, plot_first_layer_filters, plot_gradcam
from foveal.visualize.filters import feature_maps, filter_images
from foveal.visualize.gradcam import compute_gradcam, default_gradcam_layer

PNG = b"\x89PNG\r\n\x1a\n"
SIZE, SQUARE = 16, 4


def squares(labels, rng):
    """Black 16x16 images with a white 4x4 square in the left (0) or right (1) half."""
    x = np.zeros((len(labels), SIZE, SIZE, 1), np.float32)
    for i, label in enumerate(labels):
        row = rng.integers(0, SIZE - SQUARE + 1)
        col = rng.integers(0, SIZE // 2 - SQUARE + 1) + (SIZE // 2 if label else 0)
        x[i, row:row + SQUARE, col:col + SQUARE] = 255
    return x


@pytest.fixture(scope="module")
def square_model():
    """A tiny CNN trained for a few steps, seeded. No biases and a black background make
    every feature vanish away from the square, and non-negative output weights make the
    Grad-CAM channel weights non-negative: the map can only land on the square, so the test
    checks the heat map's placement (layer, gradient, orientation, upsampling), not luck."""
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 128)
    inputs = keras.Input((SIZE, SIZE, 1), name="image")
    x = layers.Rescaling(1 / 255)(inputs)
    x = layers.Conv2D(4, 3, padding="same", use_bias=False, activation="relu", name="c1")(x)
    x = layers.MaxPooling2D(2, name="pool")(x)
    x = layers.Conv2D(4, 3, padding="same", use_bias=False, activation="relu", name="features")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(2, use_bias=False, kernel_constraint=keras.constraints.NonNeg(), name="logits")(x)
    model = keras.Model(inputs, layers.Activation("softmax", name="probabilities")(x))
    model.compile(keras.optimizers.Adam(0.02), "sparse_categorical_crossentropy")
    model.fit(squares(labels, rng), labels, epochs=5, batch_size=32, verbose=0)
    return model


def test_gradcam_heat_is_on_the_square_half(square_model):
    assert default_gradcam_layer(square_model) == "features"
    for label in (0, 1):
        image = np.zeros((SIZE, SIZE, 1), np.float32)
        col = 1 if label == 0 else SIZE - 1 - SQUARE
        image[6:6 + SQUARE, col:col + SQUARE] = 255
        result = compute_gradcam(square_model, image)
        assert result.class_index == label  # the default class is the top prediction
        heat = result.heatmap
        assert heat.shape == (SIZE, SIZE) and heat.min() >= 0 and heat.max() == pytest.approx(1.0)
        left, right = heat[:, : SIZE // 2].sum(), heat[:, SIZE // 2:].sum()
        assert (left if label == 0 else right) / (left + right) > 0.8
        rows = heat.sum(axis=1)
        assert rows[6:10].sum() > rows[:3].sum() + rows[-3:].sum()  # on the square's rows too


def test_gradcam_uses_logits_of_a_fused_softmax_dense_layer(square_model):
    """A Dense layer with the softmax built in (keras.applications style) gives the same map
    as the separate logits + softmax of foveal models."""
    fused = keras.Model(square_model.input, layers.Dense(2, use_bias=False, activation="softmax")(
        square_model.get_layer("flatten").output))
    fused.layers[-1].set_weights(square_model.get_layer("logits").get_weights())
    image = squares([1], np.random.default_rng(3))[0]
    np.testing.assert_allclose(gradcam(fused, image, class_index=1), gradcam(square_model, image, class_index=1),
                               atol=1e-5)


def test_gradcam_errors_and_plots(square_model):
    image = squares([0], np.random.default_rng(1))[0]
    with pytest.raises(FovealError, match="out of range"):
        gradcam(square_model, image, class_index=2)
    with pytest.raises(FovealError, match="no layer 'featurs'.*\n.*did you mean features"):
        gradcam(square_model, image, layer_name="featurs")
    with pytest.raises(FovealError, match="not a feature map|no \\(height"):
        gradcam(square_model, image, layer_name="logits")
    with pytest.raises(FovealError, match="shape"):
        gradcam(square_model, np.zeros((8, 8, 1)))
    assert plot_gradcam(square_model, image, class_names=["left", "right"]).startswith(PNG)
    overlay = overlay_heatmap(image.astype(np.uint8), np.ones((4, 4)))
    assert overlay.shape == (SIZE, SIZE, 3) and overlay.dtype == np.uint8


def test_default_layer_of_foveal_models():
    assert default_gradcam_layer(build_model("lenet5")) == "s4"
    resnet = build_model("resnet18", input_shape=(32, 32, 3), width=4, stem="cifar", num_classes=3)
    assert default_gradcam_layer(resnet) == "stage4_unit2_out"
    heat = gradcam(resnet, np.random.default_rng(0).uniform(0, 255, (32, 32, 3)))
    assert heat.shape == (32, 32) and 0 <= heat.min() <= heat.max() <= 1


def test_first_layer_filters_rgb_gray_and_normalised():
    rgb = build_model("resnet18", input_shape=(32, 32, 3), width=4, stem="cifar", num_classes=3)
    images = filter_images(rgb)
    assert images.shape == (4, 3, 3, 3)
    assert np.allclose(images.min(axis=(1, 2, 3)), 0) and np.allclose(images.max(axis=(1, 2, 3)), 1)
    assert plot_first_layer_filters(rgb).startswith(PNG)
    gray = build_model("lenet5")
    assert filter_images(gray).shape == (6, 5, 5, 1)
    assert plot_first_layer_filters(gray).startswith(PNG)
    inputs = keras.Input((4,))
    with pytest.raises(FovealError, match="no 2D convolution"):
        plot_first_layer_filters(keras.Model(inputs, layers.Dense(2)(inputs)))


def test_feature_maps(square_model):
    image = squares([1], np.random.default_rng(2))[0].astype(np.uint8)
    maps = feature_maps(square_model, "c1", image)
    assert maps.shape == (SIZE, SIZE, 4)
    assert plot_feature_maps(square_model, "c1", image).startswith(PNG)
    with pytest.raises(FovealError, match="not a feature map"):
        plot_feature_maps(square_model, "flatten", image)
    with pytest.raises(FovealError, match="no layer 'nope'"):
        plot_feature_maps(square_model, "nope", image)


def test_feature_maps_cap_at_64_channels(monkeypatch):
    from foveal.visualize import filters

    drawn = []
    monkeypatch.setattr(filters, "_grid", lambda images, *args, **kwargs: drawn.append(images.shape) or PNG)
    inputs = keras.Input((6, 6, 1))
    model = keras.Model(inputs, layers.Conv2D(80, 1, name="wide")(inputs))
    plot_feature_maps(model, "wide", np.ones((6, 6, 1)))
    assert drawn == [(64, 6, 6, 1)]
