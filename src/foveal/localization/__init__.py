"""Classification with localization: one object per image, its class and its box.

A localizer is a foveal backbone with two heads on its pooled features (Géron, *Hands-On
Machine Learning*, 2nd ed., ch. 14): the class, and the box as ``(cx, cy, sqrt(w), sqrt(h))``
in fractions of the image. Modules: :mod:`.model` (build and compile), :mod:`.losses`,
:mod:`.metrics` (IoU, box encoding, the ``BoxIoU`` metric), :mod:`.pipeline` (box-aware
``tf.data`` input), :mod:`.train` (run folders, evaluation, report), :mod:`.predict` and
:mod:`.draw` (boxes on images), :mod:`.cli` (``foveal localize``).

The names below are imported lazily, so ``import foveal.localization`` stays cheap.

Example:
    >>> from foveal.localization import LocalizeConfig, train_localizer
    >>> result = train_localizer(LocalizeConfig(epochs=20))  # doctest: +SKIP
"""

from __future__ import annotations

from foveal._lazy import lazy_getattr

_LAZY = {
    "LocalizeConfig": "foveal.localization.train",
    "train_localizer": "foveal.localization.train",
    "evaluate_localizer": "foveal.localization.train",
    "score_localizer": "foveal.localization.train",
    "build_localizer": "foveal.localization.model",
    "compile_localizer": "foveal.localization.model",
    "BoxMSE": "foveal.localization.losses",
    "BoxIoU": "foveal.localization.metrics",
    "iou": "foveal.localization.metrics",
    "encode_boxes": "foveal.localization.metrics",
    "decode_boxes": "foveal.localization.metrics",
    "make_localization_pipeline": "foveal.localization.pipeline",
    "predict_boxes": "foveal.localization.predict",
    "draw_boxes": "foveal.localization.draw",
    "add_localize_command": "foveal.localization.cli",
}


__getattr__ = lazy_getattr("foveal.localization", _LAZY)


__all__ = list(_LAZY)
