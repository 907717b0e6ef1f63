"""Initialise a model's patch-whitening layer from its training images (airbench's first layer).

Jordan, "94% on CIFAR-10 in 3.29 Seconds on a Single GPU" (arXiv:2404.00498) starts the
network with a 2x2 convolution whose filters whiten the 2x2 patches of the training images,
and keeps it frozen. :func:`init_whitening` does this for any model with a layer named
``whiten`` (see :mod:`foveal.models.classification.airbench`): it runs a sample of training
images through the model's preprocessing, collects every 2x2 patch and sets the layer's kernel
and bias from :func:`~foveal.models.classification.airbench.whitening_weights`.

Example:
    >>> from foveal.models import build_model
    >>> import numpy as np
    >>> model = build_model("airbench", num_classes=10, whiten=True)
    >>> images = np.random.default_rng(0).uniform(0, 255, (64, 32, 32, 3)).astype("float32")
    >>> init_whitening(model, images)
    True
"""

from __future__ import annotations

import keras
import numpy as np

from foveal.models.classification.airbench import WHITEN_LAYER, whitening_weights


def has_whitening(model: keras.Model) -> bool:
    """True when ``model`` has a frozen ``whiten`` layer waiting for its data-driven weights."""
    try:
        layer = model.get_layer(WHITEN_LAYER)
    except ValueError:
        return False
    return not layer.trainable


def init_whitening(model: keras.Model, images: np.ndarray, max_patches: int = 2_000_000) -> bool:
    """Set the ``whiten`` layer from the 2x2 patches of ``images`` (raw pixels, 0..255).

    Args:
        model: a model with a layer named ``whiten`` (a 2x2 convolution, frozen).
        images: array (N, H, W, C) of training images as the model takes them.
        max_patches: patches used at most (a random subset beyond that).

    Returns:
        True when the layer was set; False when the model has no frozen ``whiten`` layer.
    """
    if not has_whitening(model):
        return False
    layer = model.get_layer(WHITEN_LAYER)
    before = keras.Model(model.inputs, layer.input)
    x = np.asarray(before.predict(np.asarray(images, np.float32), batch_size=512, verbose=0), np.float64)
    kh, kw = layer.kernel.shape[:2]
    n, h, w, c = x.shape
    windows = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(1, 2))  # (n, h', w', c, kh, kw)
    patches = windows.transpose(0, 1, 2, 4, 5, 3).reshape(-1, kh, kw, c)
    if len(patches) > max_patches:
        patches = patches[np.random.default_rng(0).choice(len(patches), max_patches, replace=False)]
    kernel, bias = whitening_weights(patches)
    if kernel.shape != tuple(layer.kernel.shape):
        raise ValueError(f"the whiten layer has kernel {tuple(layer.kernel.shape)}, "
                         f"whitening gives {kernel.shape}")
    layer.kernel.assign(kernel)
    layer.bias.assign(bias)
    return True


__all__ = ["has_whitening", "init_whitening"]
