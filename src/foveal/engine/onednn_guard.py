"""Constant-size training batches where oneDNN's strided 1x1 filter gradient would crash
(TensorFlow 2.21 on a changing batch size; docs/fpn-onednn-crash.md).

Example:
    >>> import keras
    >>> model = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Conv2D(8, 3),
    ...                           keras.layers.Conv2D(16, 1, strides=2)])
    >>> strided_narrow_1x1(model)
    ['conv2d_1']
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import keras
    import tensorflow as tf

#: oneDNN's strided 1x1 kernel is safe from this many input channels on (one AVX-512 block of floats)
SAFE_CHANNELS = 16
#: where the crash and its workaround are described
CRASH_DOC = "docs/fpn-onednn-crash.md"


def onednn_enabled() -> bool:
    """Whether TensorFlow's oneDNN kernels are on (the default on x86 Linux)."""
    return os.environ.get("TF_ENABLE_ONEDNN_OPTS", "").strip() != "0"


def strided_narrow_1x1(model: keras.Model) -> list[str]:
    """The names of ``model``'s built ``Conv2D`` layers (nested models included) with a strided 1x1
    kernel on fewer than :data:`SAFE_CHANNELS` input channels: those oneDNN crashes on."""
    import keras

    found = []
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if not isinstance(layer, keras.layers.Conv2D):  # subclasses too; not the transposed/depthwise/separable kernels
            continue
        kernel = getattr(layer, "kernel", None)
        if kernel is None or tuple(layer.kernel_size) != (1, 1) or max(layer.strides) <= 1:
            continue
        channels = int(kernel.shape[-2]) * int(getattr(layer, "groups", 1) or 1)
        if channels < SAFE_CHANNELS:
            found.append(layer.name)
    return found


@dataclass(frozen=True)
class ConstantBatchPlan:
    """``steps`` full batches of ``batch_size`` per epoch, ``dropped`` images left out, for ``layers``."""

    batch_size: int
    steps: int
    dropped: int
    layers: tuple[str, ...]

    def record(self) -> dict[str, Any]:
        """The plan as the run folder records it (model card, ``state.json``, ``metrics.json``)."""
        return {"reason": "oneDNN strided 1x1 convolution on < 16 channels (TensorFlow 2.21 crash with a "
                          f"changing batch size; {CRASH_DOC})",
                "batch_size": self.batch_size, "steps_per_epoch": self.steps,
                "dropped_per_epoch": self.dropped, "layers": list(self.layers)}

    def message(self) -> str:
        """The one log line that says what was done and why."""
        names = ", ".join(self.layers[:3]) + (f" and {len(self.layers) - 3} more" if len(self.layers) > 3 else "")
        return (f"constant batches: {self.dropped} image(s) of each reshuffled epoch left out ({self.steps} full "
                f"batches of {self.batch_size}): oneDNN crashes on a changing batch size in the filter gradient of "
                f"strided 1x1 convolutions on < {SAFE_CHANNELS} channels ({names}); TF_ENABLE_ONEDNN_OPTS=0 "
                f"keeps every image ({CRASH_DOC})")


def constant_batch_plan(model: keras.Model, *, examples: int | None, batch_size: int,
                        onednn: bool | None = None) -> ConstantBatchPlan | None:
    """The guard's plan for an epoch of ``examples`` images (None: a stream), or None when
    nothing needs to change."""
    if examples is None or examples <= batch_size or examples % batch_size == 0:
        return None
    if not (onednn_enabled() if onednn is None else onednn):
        return None
    layers = strided_narrow_1x1(model)
    if not layers:
        return None
    return ConstantBatchPlan(batch_size, examples // batch_size, examples % batch_size, tuple(layers))


def full_batches_only(ds: tf.data.Dataset, batch_size: int) -> tf.data.Dataset:
    """``ds`` (batches of any structure, ragged included) without those not of ``batch_size``."""
    import tensorflow as tf

    def length(*element):
        for leaf in tf.nest.flatten(element):
            if isinstance(leaf, tf.RaggedTensor):
                return tf.cast(leaf.nrows(), tf.int64)
            if isinstance(leaf, tf.SparseTensor):
                return leaf.dense_shape[0]
            if leaf.shape.rank:
                return tf.shape(leaf, out_type=tf.int64)[0]
        raise ValueError("full_batches_only: the dataset's elements have no batch dimension")

    return ds.filter(lambda *element: tf.equal(length(*element), batch_size))
