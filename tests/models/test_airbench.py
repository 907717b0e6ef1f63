"""airbench (Jordan 2024): the paper's parameter count and layer shapes, and the data-driven
whitening layer checked against NumPy (its outputs on the training patches are decorrelated
with unit variance)."""

from __future__ import annotations

import numpy as np

from foveal.models import build_model
from foveal.models.classification.airbench import whitening_weights
from foveal.training.whitening import has_whitening, init_whitening


def trainable(model) -> int:
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


def test_parameter_count_and_shapes_match_the_paper():
    model = build_model("airbench", num_classes=10)
    # The paper's PyTorch model: whiten 2x2x3x24 + 24, conv groups 64/256/256 with bias-only
    # batch norm, a bias-free 256x10 head: 1,971,640 trainable parameters.
    assert trainable(model) == 1_971_640
    shapes = {layer.name: tuple(layer.output.shape[1:]) for layer in model.layers}
    assert shapes["whiten"] == (31, 31, 24)
    assert shapes["group1_pool"] == (15, 15, 64)
    assert shapes["group2_pool"] == (7, 7, 256)
    assert shapes["group3_2_gelu"] == (3, 3, 256)
    assert model.output_shape == (None, 10)


def _correlated_images(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.normal(0, 1, (n, 33, 33, 1))
    smooth = (base[:, :-1, :-1] + base[:, 1:, :-1] + base[:, :-1, 1:] + base[:, 1:, 1:]) / 4  # neighbours correlate
    colour = smooth * np.array([1.0, 0.8, 0.6]) + 0.2 * rng.normal(0, 1, (n, 32, 32, 3))
    return np.clip(128 + 40 * colour, 0, 255).astype("float32")


def test_whitening_weights_decorrelate_patches():
    rng = np.random.default_rng(1)
    mix = rng.normal(0, 1, (12, 12))
    patches = (rng.normal(0, 1, (20000, 12)) @ mix + 3.0).reshape(-1, 2, 2, 3)
    kernel, bias = whitening_weights(patches, eps=0.0, center=True)  # the centred variant (legacy layers)
    assert kernel.shape == (2, 2, 3, 24) and bias.shape == (24,)
    out = patches.reshape(len(patches), -1) @ kernel.reshape(12, 24) + bias
    np.testing.assert_allclose(out.mean(axis=0), 0, atol=1e-4)  # float32 kernel
    np.testing.assert_allclose(np.cov(out[:, :12], rowvar=False), np.eye(12), atol=1e-4)
    np.testing.assert_allclose(out[:, 12:], -out[:, :12], atol=1e-4)


def test_init_whitening_sets_the_frozen_layer_from_the_model_input():
    model = build_model("airbench", num_classes=10, whiten=True)
    assert has_whitening(model) and not has_whitening(build_model("airbench", num_classes=10))
    images = _correlated_images(64)
    assert init_whitening(model, images)
    layer = model.get_layer("whiten")
    import keras

    pre = keras.Model(model.inputs, layer.input).predict(images, verbose=0)
    conv = keras.Model(model.inputs, layer.output).predict(images, verbose=0)
    first = conv[..., :12].reshape(-1, 12).astype(np.float64)
    second = first.T @ first / len(first)  # the paper whitens the uncentred second moment; bias 0
    assert np.abs(second - np.diag(np.diag(second))).max() < 1e-3  # decorrelated
    # Along eigenvector i the output's second moment is lambda_i / (lambda_i + eps) (eps = 5e-4).
    windows = np.lib.stride_tricks.sliding_window_view(pre.astype(np.float64), (2, 2), axis=(1, 2))
    patches = windows.transpose(0, 1, 2, 4, 5, 3).reshape(-1, 12)
    eigenvalues = np.linalg.eigvalsh(patches.T @ patches / len(patches))
    np.testing.assert_allclose(np.sort(np.diag(second)), np.sort(eigenvalues / (eigenvalues + 5e-4)), atol=2e-3)
    np.testing.assert_array_equal(layer.bias.numpy(), 0.0)
    assert pre.shape == (64, 32, 32, 3) and not layer.kernel.trainable and layer.bias.trainable
    assert trainable(model) == 1_971_640 - 2 * 2 * 3 * 24  # the kernel frozen, the bias trains (3 epochs)
