"""Pictures of what a CNN computes: its first-layer filters and the feature maps of a layer.

The first convolution's kernels are the only filters that live in pixel space, so they can be
drawn as small images (Zeiler & Fergus, "Visualizing and Understanding Convolutional
Networks", ECCV 2014, fig. 2 shows the same for AlexNet-like nets); deeper layers are better
understood through their feature maps for a given image. Figures are drawn like
:mod:`foveal.visualize.plots`: own Agg canvas, PNG bytes returned.
"""

from __future__ import annotations

import difflib
import math
import os
from typing import Any

import keras
import numpy as np

from foveal.errors import FovealError
from foveal.visualize.plots import _finish, _new_figure

MAX_CHANNELS = 64


def find_layer(model: keras.Model, name: str) -> keras.layers.Layer:
    """``model``'s layer called ``name``; an unknown name is a FovealError listing close ones."""
    names = [layer.name for layer in model.layers]
    if name in names:
        return model.get_layer(name)
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
    raise FovealError(
        f"model {model.name!r} has no layer {name!r}",
        hint=f"did you mean {', '.join(close)}?" if close else "see the layer names in `foveal inspect MODEL`",
    )


def as_model_input(model: keras.Model, image: np.ndarray) -> np.ndarray:
    """``image`` (HxWxC or HxW, values 0..255) as a float32 batch of one for ``model``.

    Raises:
        FovealError: the image's size or channel count differs from the model's input.
    """
    array = np.asarray(image)
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3:
        raise FovealError(f"the image must have shape (height, width, channels), got {array.shape}")
    expected = tuple(model.inputs[0].shape[1:])
    if len(expected) != 3 or any(e is not None and e != a for e, a in zip(expected, array.shape)):
        raise FovealError(
            f"the image has shape {array.shape} but model {model.name!r} takes {expected}",
            hint="resize it first, e.g. with foveal.data.files.load_image(path, card)",
        )
    return array.astype(np.float32)[None]


def _single(inputs: list[Any]) -> Any:
    """One input tensor as itself: a one-element list makes Keras warn about the call structure."""
    return inputs[0] if len(inputs) == 1 else inputs


def first_conv_layer(model: keras.Model) -> keras.layers.Layer:
    """The first layer (in graph order) with a 2D convolution kernel of shape (kh, kw, cin, cout)."""
    def walk(m: keras.Model):
        for layer in m.layers:
            if isinstance(layer, keras.Model):
                yield from walk(layer)
            else:
                yield layer

    for layer in walk(model):
        kernel = getattr(layer, "kernel", None)
        if kernel is not None and len(kernel.shape) == 4 and hasattr(layer, "kernel_size"):
            return layer
    raise FovealError(f"model {model.name!r} has no 2D convolution layer whose filters could be drawn")


def _input_is_bgr(model: keras.Model) -> bool:
    """True when the model's Preprocess layer flips RGB to BGR (the "caffe" convention)."""
    return any(getattr(layer, "mode", None) == "caffe" for layer in model.layers[:3])


def filter_images(model: keras.Model, max_filters: int = MAX_CHANNELS) -> np.ndarray:
    """The first convolution's kernels as float images in [0, 1], shape (N, kh, kw, 3 or 1).

    Each filter is min-max normalised on its own. Three input channels are shown as RGB
    (swapped back from BGR for "caffe"-preprocessed models); any other count as gray, the
    mean over input channels.
    """
    layer = first_conv_layer(model)
    kernel = np.asarray(keras.ops.convert_to_numpy(layer.kernel), dtype=np.float64)
    kernel = np.moveaxis(kernel, -1, 0)[:max_filters]  # (N, kh, kw, cin)
    if kernel.shape[-1] == 3:
        if _input_is_bgr(model):
            kernel = kernel[..., ::-1]
    else:
        kernel = kernel.mean(axis=-1, keepdims=True)
    low = kernel.min(axis=(1, 2, 3), keepdims=True)
    span = kernel.max(axis=(1, 2, 3), keepdims=True) - low
    return np.where(span > 0, (kernel - low) / np.where(span > 0, span, 1), 0.5)


def plot_first_layer_filters(
    model: keras.Model, max_filters: int = MAX_CHANNELS, path: str | os.PathLike[str] | None = None
) -> bytes:
    """Draw the kernels of the model's first convolution as a grid of small images.

    Args:
        model: a Keras model with at least one Conv2D-like layer.
        max_filters: draw at most this many filters.
        path: also write the PNG here.

    Returns:
        The PNG bytes.

    Example:
        >>> from foveal.models import build_model
        >>> png = plot_first_layer_filters(build_model("lenet5"))
        >>> png[:4] == b"\\x89PNG"
        True
    """
    layer = first_conv_layer(model)
    images = filter_images(model, max_filters)
    title = f"{layer.name}: {images.shape[0]} filters of {images.shape[1]}x{images.shape[2]}"
    return _grid(images, [str(i) for i in range(len(images))], title, cmap="gray", path=path, cell=0.9)


def feature_maps(model: keras.Model, layer_name: str, image: np.ndarray) -> np.ndarray:
    """The output of layer ``layer_name`` for ``image``: float array (H, W, C).

    Raises:
        FovealError: unknown layer, or its output is not a (H, W, C) feature map.
    """
    layer = find_layer(model, layer_name)
    if len(layer.output.shape) != 4:
        raise FovealError(
            f"layer {layer_name!r} outputs shape {tuple(layer.output.shape[1:])}, not a feature map",
            hint="pick a convolution, pooling or activation layer before global pooling",
        )
    probe = keras.Model(_single(model.inputs), layer.output)
    return np.asarray(probe(as_model_input(model, image), training=False))[0]


def plot_feature_maps(
    model: keras.Model,
    layer_name: str,
    image: np.ndarray,
    max_channels: int = MAX_CHANNELS,
    path: str | os.PathLike[str] | None = None,
) -> bytes:
    """Draw the channels of layer ``layer_name``'s output for ``image`` as a grid.

    Args:
        model: a functional Keras model taking raw pixels.
        layer_name: a layer with a 4D output (conv, pooling, activation ...).
        image: HxWxC (or HxW) array, uint8 or float in 0..255, of the model's input size.
        max_channels: draw the first this-many channels (at most 64 by default).
        path: also write the PNG here.

    Returns:
        The PNG bytes; each channel is min-max normalised on its own (viridis colours).
    """
    maps = feature_maps(model, layer_name, image)
    maps = np.moveaxis(maps, -1, 0)[:max_channels]
    low = maps.min(axis=(1, 2), keepdims=True)
    span = maps.max(axis=(1, 2), keepdims=True) - low
    maps = np.where(span > 0, (maps - low) / np.where(span > 0, span, 1), 0.0)
    channels = maps.shape[0]
    title = f"{layer_name}: {channels} channel(s) of {maps.shape[1]}x{maps.shape[2]}"
    return _grid(maps[..., None], [str(i) for i in range(channels)], title, cmap="viridis", path=path, cell=1.1)


def _grid(images: np.ndarray, labels: list[str], title: str, cmap: str, path: Any, cell: float) -> bytes:
    """Tile ``images`` (N, h, w, 1 or 3; values in [0, 1]) into one mosaic drawn with one imshow.

    One axes with one image renders far faster than N small axes, which matters for 64 maps.
    """
    from matplotlib import colormaps

    n, h, w = images.shape[:3]
    cols = min(8, n)
    rows = math.ceil(n / cols)
    gap = max(1, round(max(h, w) / 8))
    colour = images if images.shape[-1] == 3 else colormaps[cmap](images[..., 0])[..., :3]
    mosaic = np.ones((rows * (h + gap) - gap, cols * (w + gap) - gap, 3))
    for i, tile in enumerate(colour):
        r, c = divmod(i, cols)
        mosaic[r * (h + gap):r * (h + gap) + h, c * (w + gap):c * (w + gap) + w] = tile
    fig = _new_figure(cell * cols + 0.2, cell * rows * h / max(w, 1) + 0.5)
    ax = fig.add_subplot()
    ax.imshow(mosaic, interpolation="nearest")
    for i, label in enumerate(labels if min(h, w) >= 6 else []):  # tiny tiles: row-major, unlabelled
        r, c = divmod(i, cols)
        ax.text(c * (w + gap) - 0.5, r * (h + gap) - 0.5, label, fontsize=6, va="top", ha="left",
                color="white", bbox={"facecolor": "black", "alpha": 0.5, "pad": 0.5, "linewidth": 0})
    ax.set_axis_off()
    ax.set_title(title, fontsize=9)
    return _finish(fig, path)


__all__ = [
    "as_model_input", "feature_maps", "filter_images", "find_layer", "first_conv_layer",
    "plot_feature_maps", "plot_first_layer_filters",
]
