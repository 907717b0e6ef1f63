"""Semantic segmentation: a class for every pixel (U-Net, FCN), ``foveal segment``.

The names below are imported lazily, so ``import foveal.segmentation`` stays cheap.

Example:
    >>> from foveal.segmentation import SegmentConfig, train_segmenter
    >>> result = train_segmenter(SegmentConfig(classes=["membrane", "cell"], holdout=5))  # doctest: +SKIP
"""

from __future__ import annotations

from foveal._lazy import lazy_exports

__getattr__, __all__ = lazy_exports("foveal.segmentation", {
    ".train": "SegmentConfig train_segmenter evaluate_segmenter score_segmenter build_segmenter",
    ".predict": "predict_masks predict_labels predict_probabilities",
    ".pipeline": "make_segmentation_pipeline",
    ".crf": "crf_refine",
    ".report": "write_segmentation_report",
    ".data": "SegmentationImages read_mask_folder",
    ".coco": "coco_semantic_masks",
    ".models": "SEGMENTATION_MODELS",
    ".cli": "add_segment_command",
})
