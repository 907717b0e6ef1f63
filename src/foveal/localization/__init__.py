"""Classification with localization: one object per image, its class and its box
(Géron, *Hands-On Machine Learning*, 2nd ed., ch. 14), ``foveal localize``.

The names below are imported lazily, so ``import foveal.localization`` stays cheap.

Example:
    >>> from foveal.localization import LocalizeConfig, train_localizer
    >>> result = train_localizer(LocalizeConfig(epochs=20))  # doctest: +SKIP
"""

from __future__ import annotations

from foveal._lazy import lazy_exports

__getattr__, __all__ = lazy_exports("foveal.localization", {
    ".train": "LocalizeConfig train_localizer evaluate_localizer score_localizer",
    ".model": "build_localizer compile_localizer",
    ".losses": "BoxMSE",
    ".metrics": "BoxIoU iou encode_boxes decode_boxes",
    ".pipeline": "make_localization_pipeline",
    ".predict": "predict_boxes",
    ".draw": "draw_boxes",
    ".cli": "add_localize_command",
})
