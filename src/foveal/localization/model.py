"""Classification with localization: a backbone, pooling and two heads (Géron, *Hands-On
Machine Learning*, 2nd ed., ch. 14).

The ``class`` head is a softmax over the classes; with one class, where a softmax would be the
constant 1, it is a sigmoid *presence* score (1 for annotated images, 0 for images without
boxes). The ``box`` head regresses ``(cx, cy, sqrt(w), sqrt(h))`` in fractions of the image
(:func:`~foveal.localization.metrics.encode_boxes`) through a sigmoid, since every target lies
in [0, 1]. Images with several boxes are trained on their largest.

Example:
    >>> model = build_localizer("resnet18", num_classes=1, input_shape=(64, 64, 3), width=8)
    >>> sorted(model.output_names), model.get_layer("box").output.shape
    (['box', 'class'], (None, 4))
"""

from __future__ import annotations

from typing import Any

import keras
from keras import layers

from foveal.errors import ConfigError
from foveal.localization.losses import BoxMSE
from foveal.localization.metrics import BoxIoU
from foveal.models import build_model

BOX_FORMAT = "cx,cy,sqrt_w,sqrt_h normalized by image size (box output); corners in pixels (predictions)"


def build_localizer(
    backbone: str,
    *,
    num_classes: int,
    input_shape: tuple[int, int, int],
    preprocessing: str | None = None,
    pooling: str = "avg",
    dropout: float = 0.0,
    l1: float = 0.0,
    l2: float = 0.0,
    **options: Any,
) -> keras.Model:
    """Build a localizer on a registered backbone (built without its classifier).

    Args:
        num_classes: object classes; 1 gives the sigmoid presence head (see the module docstring).
        input_shape: (height, width, channels) of the raw pixel input (0..255).
        preprocessing: the backbone's ``Preprocess`` mode (default: the architecture's).
        pooling: ``avg`` (global average pooling, as in the texts) or ``flatten`` (keeps every
            position of the last map: small backbones trained from scratch may lose *where*).
        dropout: on the pooled features, before both heads.
        **options: backbone options, e.g. ``width=16``.

    Returns:
        An uncompiled model with outputs ``{"class": (N, C or 1), "box": (N, 4)}``.
    """
    base = build_model(backbone, num_classes=max(num_classes, 2), input_shape=input_shape, include_top=False,
                       preprocessing=preprocessing, l1=l1, l2=l2, **options)
    if pooling == "avg":
        x = layers.GlobalAveragePooling2D(name="head_gap")(base.output)
    elif pooling == "flatten":
        x = layers.Flatten(name="head_flatten")(base.output)
    else:
        raise ConfigError(f"pooling must be 'avg' or 'flatten', got {pooling!r}")
    if dropout:
        x = layers.Dropout(dropout, name="head_dropout")(x)
    regularizer = keras.regularizers.L1L2(l1=l1, l2=l2) if (l1 or l2) else None
    if num_classes >= 2:
        cls = layers.Dense(num_classes, activation="softmax", dtype="float32", name="class",
                           kernel_regularizer=regularizer)(x)
    else:
        cls = layers.Dense(1, activation="sigmoid", dtype="float32", name="class", kernel_regularizer=regularizer)(x)
    box = layers.Dense(4, activation="sigmoid", dtype="float32", name="box", kernel_regularizer=regularizer)(x)
    return keras.Model(base.input, {"class": cls, "box": box}, name=f"{backbone}_localizer")


def compile_localizer(
    model: keras.Model,
    optimizer: keras.optimizers.Optimizer | str = "adam",
    *,
    num_classes: int,
    class_weight: float = 0.8,
    box_weight: float = 0.2,
) -> None:
    """Compile with the two losses weighted ``class_weight`` / ``box_weight`` (Géron: 0.8 / 0.2);
    metrics ``class_accuracy`` (presence at 0.5 for one class) and ``box_iou``."""
    if num_classes >= 2:
        class_loss: keras.losses.Loss = keras.losses.SparseCategoricalCrossentropy()
        accuracy: keras.metrics.Metric = keras.metrics.SparseCategoricalAccuracy(name="accuracy")
    else:
        class_loss = keras.losses.BinaryCrossentropy()
        accuracy = keras.metrics.BinaryAccuracy(name="accuracy")
    model.compile(
        optimizer=optimizer,
        loss={"class": class_loss, "box": BoxMSE()},
        loss_weights={"class": class_weight, "box": box_weight},
        metrics={"class": [accuracy], "box": [BoxIoU(name="iou")]},
    )


def init_heads(model: keras.Model, mean_encoded_box, presence_rate: float | None = None) -> None:
    """Start the box head at the training set's mean box (and presence at its base rate), so
    training starts from the trivial baseline instead of a centred quarter-size box."""
    import numpy as np

    def logit(p):
        p = np.clip(np.asarray(p, np.float64), 0.01, 0.99)
        return np.log(p / (1 - p))

    box = model.get_layer("box")
    kernel, _ = box.get_weights()
    box.set_weights([kernel, logit(mean_encoded_box).astype(np.float32)])
    if presence_rate is not None and model.get_layer("class").units == 1:
        cls = model.get_layer("class")
        kernel, _ = cls.get_weights()
        cls.set_weights([kernel, logit([presence_rate]).astype(np.float32)])
