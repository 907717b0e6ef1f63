"""Object detection: YOLO-style detectors and Faster R-CNN on any foveal backbone.

YOLO heads (Redmon & Farhadi, "YOLO9000", CVPR 2017; "YOLOv3", arXiv 2018: :mod:`.model`,
:mod:`.loss`, :mod:`.postprocess`) or a two-stage Faster R-CNN (Ren et al., NeurIPS 2015:
:mod:`.faster_rcnn`), chosen with ``--detector``; both ``predict`` boxes, scores and classes, so
data, run, scoring, prediction, report and export hooks serve both. :mod:`.sliding_window` is
the texts' FCN detector, :mod:`.adapt` domain adaptation. Names are imported lazily.

Example:
    >>> model = build_detector("resnet18", 2, np.array([[0.2, 0.3]]), input_shape=(64, 64, 3))  # doctest: +SKIP
    >>> model.compile("adam"); model.fit(dataset)  # (images, {"boxes", "classes"})  # doctest: +SKIP
    >>> model.predict(images)["boxes"]  # doctest: +SKIP
"""

from __future__ import annotations

from foveal._lazy import lazy_exports

__getattr__, __all__ = lazy_exports("foveal.detection", {
    ".model": "build_detector DetectorModel AnchorReshape DetectionOutputs",
    ".faster_rcnn": "build_faster_rcnn FasterRCNNModel RCNNSettings",
    ".loss": "YoloLoss assign_targets",
    ".postprocess": "decode_predictions detect_from_outputs non_max_suppression nms_image reference_nms",
    "foveal.data.box_augment": "BoxAugment parse_box_augment augment_boxes",
    ".pipeline": "make_detection_pipeline",
    ".config": "DetectConfig",
    ".train": "train_detector evaluate_detector",
    ".scoring": "detect_dataset score_detections to_coco_results",
    ".results": "score_results",
    ".predict": "predict_detections",
    ".report": "write_detection_report",
    ".sliding_window": "patch_dataset train_patch_classifier to_fully_convolutional sliding_window_detect "
                       "run_sliding_window",
    ".cli": "add_detect_command",
    ".adapt": "DomainAdapter",
})
