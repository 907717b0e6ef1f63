"""A small, fast CIFAR-10 network after Jordan's airbench (arXiv:2404.00498, 2024).

Keller Jordan, "94% on CIFAR-10 in 3.29 Seconds on a Single GPU". The network is a 2x2
"whitening" convolution (24 filters, no padding: 32x32 -> 31x31) with GELU, then three conv
groups; each is a 3x3 convolution, 2x2 max pooling, batch normalisation, GELU, a second 3x3
convolution, batch normalisation and GELU (widths 64, 256, 256 by default), then a global max
pool and a bias-free linear layer whose logits are scaled by 1/9. Batch normalisation keeps
only its shift (the scale is fixed at 1), uses a short running-average memory (momentum 0.6
in Keras terms) and the paper's epsilon of 1e-12. With 10 classes it has 1,971,640 parameters
that gradients reach plus 2,304 batch-norm running statistics; with ``whiten=true`` the 288
whitening weights are frozen, leaving 1,971,352 trainable, the count of the paper's PyTorch
model (its parameters with ``requires_grad``), 1,971,328 once the whitening bias is frozen too.
It spends its multiply-adds at small resolutions (about 0.12 G per 32x32 image), which is
what makes it train quickly.

The paper also initialises the first layer from the eigenvectors of the training set's 2x2
patch second-moment matrix (:func:`whitening_weights`); foveal's trainer applies that when the
option ``whiten=true`` is given. The layer is then a :class:`WhiteningConv`: its kernel stays
frozen, its bias (starting at 0) trains for the first ``whiten_bias_epochs`` epochs (the
paper: 3) and is then frozen by :class:`~foveal.training.whitening.FreezeWhiteningBias`.

Example:
    >>> from foveal.models import build_model
    >>> build_model("airbench", num_classes=10).count_params()
    1973944
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import layers, ops

from foveal.layers.fused_norm import FusedBatchNormalization
from foveal.models.registry import MODELS

WHITEN_LAYER = "whiten"


@keras.saving.register_keras_serializable(package="foveal")
class PartialDirac(keras.initializers.VarianceScaling):
    """Conv kernel initialiser: identity for the first filters, uniform +-1/sqrt(fan_in) for the rest.

    The first ``min(in, out)`` filters pass their input channel through unchanged (a Dirac delta
    at the kernel centre), so a fresh network starts close to a shallower one; the others get
    PyTorch's default convolution initialisation, as in airbench.

    Example:
        >>> k = np.asarray(PartialDirac(seed=0)((3, 3, 2, 4)))
        >>> k[1, 1, :, :2].tolist()
        [[1.0, 0.0], [0.0, 1.0]]
    """

    def __init__(self, seed: int | None = None) -> None:
        super().__init__(scale=1.0 / 3.0, mode="fan_in", distribution="uniform", seed=seed)

    def __call__(self, shape, dtype=None):
        kernel = super().__call__(shape, dtype=dtype)
        kh, kw, cin, cout = shape
        n = min(cin, cout)
        identity = np.zeros(shape, np.float32)
        identity[kh // 2, kw // 2, np.arange(n), np.arange(n)] = 1.0
        chosen = np.zeros(shape, bool)
        chosen[..., :n] = True
        return ops.where(chosen, ops.cast(identity, kernel.dtype), kernel)

    def get_config(self) -> dict:
        return {"seed": self.seed if isinstance(self.seed, int) else None}


@keras.saving.register_keras_serializable(package="foveal")
class WhiteningConv(layers.Conv2D):
    """airbench's first layer: a convolution with a frozen kernel and a bias trained for a while.

    Args:
        bias_epochs: epochs the bias trains before :class:`~foveal.training.whitening.FreezeWhiteningBias`
            freezes it (0: frozen from the start).
        train_bias: whether the bias is trainable now (saved, so a resumed run keeps it).

    Example:
        >>> layer = WhiteningConv(24, 2, bias_epochs=3)
        >>> layer.build((None, 32, 32, 3))
        >>> [v.trainable for v in (layer.kernel, layer.bias)]
        [False, True]
    """

    def __init__(self, *args: Any, bias_epochs: int = 3, train_bias: bool | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.bias_epochs = int(bias_epochs)
        self.train_bias = self.bias_epochs > 0 if train_bias is None else bool(train_bias)

    def build(self, input_shape) -> None:
        super().build(input_shape)
        self.kernel.trainable = False
        self.bias.trainable = self.train_bias

    def freeze_bias(self) -> None:
        """Stop training the bias (the caller retraces the train function)."""
        self.train_bias = False
        if self.built:
            self.bias.trainable = False

    def get_config(self) -> dict[str, Any]:
        return super().get_config() | {"bias_epochs": self.bias_epochs, "train_bias": self.train_bias}


@MODELS.register(
    "airbench",
    input_shape=(32, 32, 3),
    preprocessing="torch",
    paper="Jordan, 94% on CIFAR-10 in 3.29 Seconds on a Single GPU, arXiv:2404.00498 (2024)",
    description="fast small-image CNN: 2x2 whitening conv, 3 conv groups (64/256/256), max-pool head",
    smoke={"input_shape": (32, 32, 3), "options": {"width": 16, "wide": 32}},
)
def airbench(
    x,
    *,
    num_classes: int,
    include_top: bool = True,
    width: int = 64,
    wide: int = 256,
    whiten: bool = False,
    whiten_bias_epochs: int = 3,
    logit_scale: float = 1.0 / 9.0,
    bn_momentum: float = 0.6,
    bn_epsilon: float = 1e-12,
    dirac: bool = True,
    fused_bn: bool = False,
):
    """The airbench body on a preprocessed input ``x``.

    Args:
        width: filters of the first conv group.
        wide: filters of the second and third conv groups.
        whiten: make the first layer a :class:`WhiteningConv`, initialised by the trainer from
            the data's patch whitening; its kernel is frozen.
        whiten_bias_epochs: epochs the whitening bias trains before it is frozen (the paper: 3).
        logit_scale: factor on the logits before the softmax (the paper: 1/9).
        bn_momentum: Keras batch-norm momentum (the weight of the old running average).
        bn_epsilon: batch-norm epsilon (the paper: 1e-12; statistics are float32 also under bfloat16).
        dirac: initialise the 3x3 convolutions with :class:`PartialDirac` (the paper) instead
            of Keras' Glorot uniform.
        fused_bn: batch norm through TensorFlow's fused kernel (:class:`~foveal.layers.fused_norm.
            FusedBatchNormalization`; same arithmetic, fewer element-wise ops under bfloat16).
    """
    init = PartialDirac if dirac else (lambda: "glorot_uniform")

    def bn_gelu(x, name: str):
        norm = FusedBatchNormalization if fused_bn else layers.BatchNormalization
        x = norm(momentum=bn_momentum, epsilon=bn_epsilon, scale=False, name=f"{name}_bn")(x)
        return layers.Activation("gelu", name=f"{name}_gelu")(x)

    def group(x, filters: int, name: str):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False, kernel_initializer=init(), name=f"{name}_conv1")(x)
        x = layers.MaxPooling2D(2, name=f"{name}_pool")(x)
        x = bn_gelu(x, f"{name}_1")
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False, kernel_initializer=init(), name=f"{name}_conv2")(x)
        return bn_gelu(x, f"{name}_2")

    if whiten:
        x = WhiteningConv(24, 2, padding="valid", name=WHITEN_LAYER, bias_epochs=whiten_bias_epochs)(x)
    else:
        x = layers.Conv2D(24, 2, padding="valid", name=WHITEN_LAYER)(x)
    x = layers.Activation("gelu", name="whiten_gelu")(x)
    for i, filters in enumerate((width, wide, wide), start=1):
        x = group(x, filters, f"group{i}")
    if not include_top:
        return x
    x = layers.GlobalMaxPooling2D(name="global_max")(x)
    x = layers.Dense(num_classes, use_bias=False, name="logits")(x)
    x = layers.Rescaling(logit_scale, name="logit_scale")(x)
    return layers.Activation("softmax", dtype="float32", name="probabilities")(x)


def whitening_weights(patches: np.ndarray, eps: float = 5e-4, center: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Kernel and bias of the 2x2 whitening layer from preprocessed training patches.

    The 12 eigenvectors of the 2x2x3 patch second-moment matrix (``patches^T patches / N``, as
    the paper: the preprocessed images are already roughly centred), each divided by the square
    root of its eigenvalue (plus ``eps``), and their negatives: 24 filters whose outputs are
    decorrelated with unit variance; the bias is 0 (the paper trains it for 3 epochs). With
    ``center=True`` the covariance about the mean is used instead and the bias centres the
    outputs on the patch mean.

    Args:
        patches: array (N, 2, 2, C) of patches from preprocessed training images.

    Returns:
        ``(kernel, bias)`` shaped (2, 2, C, 2*4*C) and (2*4*C,).
    """
    n, h, w, c = patches.shape
    flat = patches.reshape(n, h * w * c).astype(np.float64)
    mean = flat.mean(axis=0) if center else np.zeros(h * w * c)
    cov = (flat - mean).T @ (flat - mean) / n
    eigenvalues, eigenvectors = np.linalg.eigh(cov)
    filters = (eigenvectors / np.sqrt(eigenvalues + eps)).T  # (12, 12): one filter per row
    filters = np.concatenate([filters, -filters], axis=0)
    kernel = filters.reshape(-1, h, w, c).transpose(1, 2, 3, 0)
    bias = -(filters @ mean)
    return kernel.astype(np.float32), bias.astype(np.float32)


__all__ = ["PartialDirac", "WhiteningConv", "airbench", "whitening_weights", "WHITEN_LAYER"]
