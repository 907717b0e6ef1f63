"""Grad-CAM: where in the image a CNN found the evidence for a class.

Selvaraju, Cogswell, Das, Vedantam, Parikh, Batra, "Grad-CAM: Visual Explanations from Deep
Networks via Gradient-based Localization", ICCV 2017. The class score's gradient with respect
to a late feature map A (H' x W' x K) is averaged over space into one weight per channel,
``alpha_k``; the map ``ReLU(sum_k alpha_k A_k)`` is upsampled to the image and scaled to
[0, 1]. The score is the **pre-softmax** logit, as in the paper: for foveal models (a
``logits`` Dense followed by a softmax ``probabilities`` Activation) the softmax's input is
used, and for models whose last Dense layer has the softmax built in (``keras.applications``)
the logits are recomputed from that layer's input and weights.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import keras
import numpy as np

from foveal.errors import FovealError
from foveal.visualize.filters import _single, as_model_input, find_layer
from foveal.visualize.plots import _finish, _new_figure

_FLAT_CLASSES = ("GlobalAveragePooling", "GlobalMaxPooling", "Flatten")


@dataclass
class GradCAMResult:
    """A heat map and what it explains."""

    heatmap: np.ndarray  # (H, W) in [0, 1], the image's size
    class_index: int
    probabilities: np.ndarray  # the model's output for the image
    layer_name: str


def default_gradcam_layer(model: keras.Model) -> str:
    """The last layer with a 4D output before the first global pooling or flatten layer.

    Raises:
        FovealError: the model has no such layer.
    """
    candidate = None
    for layer in model.layers:
        if any(c.__name__.startswith(_FLAT_CLASSES) for c in type(layer).__mro__):
            break
        if not isinstance(layer, keras.layers.InputLayer) and len(_output_shape(layer)) == 4:
            candidate = layer.name
    if candidate is None:
        raise FovealError(f"model {model.name!r} has no feature map layer for Grad-CAM",
                          hint="pass the layer name explicitly")
    return candidate


def _output_shape(layer: Any) -> tuple:
    try:
        return tuple(layer.output.shape)
    except (AttributeError, ValueError):  # a layer called several times has no single output
        return ()


def _score_head(model: keras.Model) -> tuple[Any, Callable[[Any], Any]]:
    """The tensor to expose and a function mapping it to pre-softmax class scores."""
    last = model.outputs[0]._keras_history.operation
    activation = getattr(last, "activation", None)
    is_softmax = isinstance(last, keras.layers.Softmax) or getattr(activation, "__name__", "") == "softmax"
    if is_softmax and isinstance(last, (keras.layers.Activation, keras.layers.Softmax)):
        return last.input, lambda logits: logits
    if is_softmax and isinstance(last, keras.layers.Dense):
        kernel, bias = last.kernel, last.bias

        def dense_logits(x):
            y = keras.ops.matmul(x, keras.ops.cast(kernel, x.dtype))
            return y if bias is None else y + keras.ops.cast(bias, x.dtype)

        return last.input, dense_logits
    return model.outputs[0], lambda scores: scores


def compute_gradcam(
    model: keras.Model,
    image: np.ndarray,
    class_index: int | None = None,
    layer_name: str | None = None,
) -> GradCAMResult:
    """Grad-CAM heat map with the class and layer it was computed for.

    Args:
        model: a functional Keras model taking raw pixels (foveal models, keras.applications).
        image: HxWxC (or HxW) array in 0..255 of the model's input size.
        class_index: class to explain; default: the top prediction.
        layer_name: feature map layer; default: :func:`default_gradcam_layer`.

    Raises:
        FovealError: unknown layer, a layer without a 4D output, or a class index out of range.
    """
    import tensorflow as tf

    layer_name = layer_name or default_gradcam_layer(model)
    layer = find_layer(model, layer_name)
    if len(_output_shape(layer)) != 4:
        raise FovealError(f"layer {layer_name!r} has no (height, width, channels) output for Grad-CAM",
                          hint="pick a convolution or activation layer before global pooling")
    exposed, to_scores = _score_head(model)
    num_classes = int(model.outputs[0].shape[-1])
    if class_index is not None and not 0 <= int(class_index) < num_classes:
        raise FovealError(f"class index {class_index} is out of range; the model has {num_classes} classes")
    probe = keras.Model(_single(model.inputs), [layer.output, exposed, model.outputs[0]])

    # Traced, so the backward pass computes only d(score)/d(feature map): in eager mode every
    # convolution's gradient would also compute its filter gradient, and oneDNN's kernel for
    # that crashes the process on some small 1x1 strided convolutions (TF 2.21, CPU).
    @tf.function
    def run(x):
        with tf.GradientTape() as tape:
            fmap, head, probabilities = probe(x, training=False)
            tape.watch(fmap)
            scores = to_scores(head)
            if class_index is None:
                index = tf.argmax(scores[0], output_type=tf.int32)
            else:
                index = tf.constant(int(class_index), tf.int32)
            score = tf.gather(scores, index, axis=1)
        return fmap, tape.gradient(score, fmap), index, probabilities

    x = tf.convert_to_tensor(as_model_input(model, image))
    fmap, grads, index, probabilities = run(x)
    index = int(index)
    weights = tf.reduce_mean(tf.cast(grads, tf.float32), axis=(1, 2))  # alpha_k, (1, K)
    cam = tf.nn.relu(tf.einsum("bhwk,bk->bhw", tf.cast(fmap, tf.float32), weights))[0]
    height, width = x.shape[1], x.shape[2]
    cam = tf.image.resize(cam[..., None], (height, width), method="bilinear")[..., 0].numpy()
    peak = float(cam.max())
    heatmap = np.clip(cam / peak, 0.0, 1.0) if peak > 0 else np.zeros_like(cam)
    return GradCAMResult(heatmap.astype(np.float32), index, np.asarray(probabilities)[0], layer_name)


def gradcam(
    model: keras.Model,
    image: np.ndarray,
    class_index: int | None = None,
    layer_name: str | None = None,
) -> np.ndarray:
    """Grad-CAM heat map (H, W) in [0, 1] at the image's size.

    Example:
        >>> from foveal.models import build_model
        >>> model = build_model("lenet5")
        >>> gradcam(model, np.zeros((32, 32, 1)), class_index=3).shape
        (32, 32)
    """
    return compute_gradcam(model, image, class_index, layer_name).heatmap


def overlay_heatmap(image: np.ndarray, heatmap: np.ndarray, alpha: float = 0.45,
                    colormap: str = "jet") -> np.ndarray:
    """Blend a [0, 1] heat map in colour over ``image`` (gray or RGB, 0..255): uint8 HxWx3."""
    from matplotlib import colormaps

    base = np.asarray(image, dtype=np.float32)
    if base.ndim == 2:
        base = base[..., None]
    if base.shape[-1] == 1:
        base = np.repeat(base, 3, axis=-1)
    base = base[..., :3]
    heat = np.asarray(heatmap, dtype=np.float32)
    if heat.shape != base.shape[:2]:
        import tensorflow as tf

        heat = tf.image.resize(heat[..., None], base.shape[:2], method="bilinear")[..., 0].numpy()
    colour = colormaps[colormap](np.clip(heat, 0, 1))[..., :3] * 255.0
    return np.clip((1 - alpha) * base + alpha * colour, 0, 255).astype(np.uint8)


def plot_gradcam(
    model: keras.Model,
    image: np.ndarray,
    class_index: int | None = None,
    layer_name: str | None = None,
    class_names: Sequence[str] | None = None,
    path: str | os.PathLike[str] | None = None,
) -> bytes:
    """Image, heat map and overlay side by side, titled with the class and its probability.

    Args:
        model, image, class_index, layer_name: as for :func:`compute_gradcam`.
        class_names: names for the title (default: the class index).
        path: also write the PNG here.

    Returns:
        The PNG bytes.
    """
    result = compute_gradcam(model, image, class_index, layer_name)
    return plot_gradcam_result(image, result, class_names, path)


def plot_gradcam_result(
    image: np.ndarray,
    result: GradCAMResult,
    class_names: Sequence[str] | None = None,
    path: str | os.PathLike[str] | None = None,
) -> bytes:
    """The figure of :func:`plot_gradcam` for an already computed :class:`GradCAMResult`."""
    shown = np.clip(np.asarray(image, dtype=np.float32), 0, 255).astype(np.uint8)
    if shown.ndim == 3 and shown.shape[-1] == 1:
        shown = shown[..., 0]
    index = result.class_index
    label = class_names[index] if class_names and index < len(class_names) else str(index)
    prob = float(result.probabilities[index]) if result.probabilities.ndim == 1 else float("nan")
    fig = _new_figure(7.5, 2.9)
    axes = fig.subplots(1, 3)
    axes[0].imshow(shown, cmap="gray" if shown.ndim == 2 else None, vmin=0, vmax=255)
    axes[0].set_title("image", fontsize=9)
    axes[1].imshow(result.heatmap, cmap="jet", vmin=0, vmax=1)
    axes[1].set_title(f"Grad-CAM ({result.layer_name})", fontsize=9)
    axes[2].imshow(overlay_heatmap(image, result.heatmap))
    axes[2].set_title(f"class {label} (p={prob:.2f})", fontsize=9)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    return _finish(fig, path)


__all__ = ["GradCAMResult", "compute_gradcam", "default_gradcam_layer", "gradcam", "overlay_heatmap",
           "plot_gradcam", "plot_gradcam_result"]
