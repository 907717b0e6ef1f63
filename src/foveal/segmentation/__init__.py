"""Semantic segmentation: a class for every pixel.

Modules: :mod:`.data` (image + mask folders, COCO polygons to masks, validation),
:mod:`.augment` (joint image/mask augmentation), :mod:`.losses` (pixel cross-entropy, soft
Dice, U-Net border weights), :mod:`.metrics` (confusion matrix, IoU, Dice), :mod:`.models`
(U-Net, U-Net on a backbone, FCN-8s/16s/32s), :mod:`.pipeline` (``tf.data`` input),
:mod:`.train` (run folders, evaluation), :mod:`.predict` (masks and overlays for any image
size), :mod:`.crf` (optional dense-CRF refinement), :mod:`.report` and :mod:`.cli`
(``foveal segment``).

The names below are imported lazily, so ``import foveal.segmentation`` stays cheap.

Example:
    >>> from foveal.segmentation import SegmentConfig, train_segmenter
    >>> result = train_segmenter(SegmentConfig(classes=["membrane", "cell"], holdout=5))  # doctest: +SKIP
"""

from __future__ import annotations

from foveal._lazy import lazy_getattr

_LAZY = {
    "SegmentConfig": "foveal.segmentation.train",
    "train_segmenter": "foveal.segmentation.train",
    "evaluate_segmenter": "foveal.segmentation.train",
    "score_segmenter": "foveal.segmentation.train",
    "build_segmenter": "foveal.segmentation.train",
    "predict_masks": "foveal.segmentation.predict",
    "predict_labels": "foveal.segmentation.predict",
    "predict_probabilities": "foveal.segmentation.predict",
    "make_segmentation_pipeline": "foveal.segmentation.pipeline",
    "crf_refine": "foveal.segmentation.crf",
    "write_segmentation_report": "foveal.segmentation.report",
    "SegmentationImages": "foveal.segmentation.data",
    "read_mask_folder": "foveal.segmentation.data",
    "coco_semantic_masks": "foveal.segmentation.data",
    "SEGMENTATION_MODELS": "foveal.segmentation.models",
    "add_segment_command": "foveal.segmentation.cli",
}


__getattr__ = lazy_getattr("foveal.segmentation", _LAZY)


__all__ = list(_LAZY)
