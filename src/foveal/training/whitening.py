"""Initialise a model's patch-whitening layer from its training images (airbench's first layer).

Jordan, "94% on CIFAR-10 in 3.29 Seconds on a Single GPU" (arXiv:2404.00498): a frozen 2x2
convolution whitening the training images' 2x2 patches (seen through the model's
preprocessing), its bias trained for the first 3 epochs only.

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

from foveal.models.classification.airbench import WHITEN_LAYER, WhiteningConv, whitening_weights


def _whiten_layer(model: keras.Model):
    try:
        return model.get_layer(WHITEN_LAYER)
    except ValueError:
        return None


def has_whitening(model: keras.Model) -> bool:
    """True when ``model``'s ``whiten`` layer waits for data-driven weights: a
    :class:`WhiteningConv`, or a frozen layer of that name (models saved before it existed)."""
    layer = _whiten_layer(model)
    return layer is not None and (isinstance(layer, WhiteningConv) or not layer.trainable)


class FreezeWhiteningBias(keras.callbacks.Callback):
    """Freezes the whitening layer's bias at the start of epoch ``layer.bias_epochs`` (airbench: 3),
    retracing the train function so that no momentum or weight decay reaches it afterwards.

    Example:
        >>> from foveal.models import build_model
        >>> model = build_model("airbench", num_classes=10, whiten=True, width=8, wide=16)
        >>> callback = FreezeWhiteningBias(); callback.set_model(model)
        >>> callback.on_epoch_begin(3); model.get_layer("whiten").bias.trainable
        False
    """

    def on_epoch_begin(self, epoch, logs=None) -> None:
        layer = _whiten_layer(self.model)
        if isinstance(layer, WhiteningConv) and layer.train_bias and epoch >= layer.bias_epochs:
            layer.freeze_bias()
            if getattr(self.model, "train_function", None) is not None:
                self.model.make_train_function(force=True)


def init_whitening(model: keras.Model, images: np.ndarray, max_patches: int = 2_000_000) -> bool:
    """Set the ``whiten`` layer from the 2x2 patches of ``images`` (N, H, W, C raw pixels, at most
    ``max_patches`` patches); False when the model has no ``whiten`` layer waiting for it."""
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
    # The paper: uncentred, bias 0 when the bias then trains; a frozen legacy layer keeps the centring bias.
    kernel, bias = whitening_weights(patches, center=not isinstance(layer, WhiteningConv))
    if kernel.shape != tuple(layer.kernel.shape):
        raise ValueError(f"the whiten layer has kernel {tuple(layer.kernel.shape)}, "
                         f"whitening gives {kernel.shape}")
    layer.kernel.assign(kernel)
    layer.bias.assign(bias)
    return True
