"""Object detection: YOLO-style detectors and Faster R-CNN on any foveal backbone.

A detector is a foveal backbone with a YOLO head (Redmon & Farhadi, "YOLO9000", CVPR 2017;
"YOLOv3: An Incremental Improvement", arXiv 2018): per grid cell and anchor, box offsets
(sigmoid centre, exp scale of the anchor), an objectness score and class scores, on one scale
(YOLOv2) or three (YOLOv3); or a two-stage Faster R-CNN (Ren et al., NeurIPS 2015: region
proposals, then RoI Align and a classification/refinement head; :mod:`.faster_rcnn`, with
:mod:`foveal.ops.rcnn` and :mod:`foveal.layers.roi`), chosen with ``--detector``. Both models'
``predict`` return boxes, scores and classes, so everything below serves both. Modules:
:mod:`.model` (``build_detector`` and ``DetectorModel``), :mod:`.loss` (``YoloLoss``, targets built
in-graph from padded boxes), :mod:`.postprocess` (decoding and non-max suppression in
TensorFlow, a NumPy reference), :mod:`.pipeline` (``tf.data`` input with the box-aware
augmentation of :mod:`foveal.data.box_augment`, multi-scale batches, letterboxing),
:mod:`.config` and :mod:`.train` (``DetectConfig``, run folders, evaluation), :mod:`.scoring`
(COCO/VOC metrics of a model on a dataset), :mod:`.predict`, :mod:`.report` (HTML with PR
curves), :mod:`.sliding_window` and :mod:`.scan` (the texts' FCN detector), :mod:`.cli`
(``foveal detect``), :mod:`.adapt` (``--adapt-target``: CORAL or a DANN domain head on the
backbone map, trained against an unlabelled target image stream).

The names below are imported lazily, so ``import foveal.detection`` stays cheap.

Example:
    >>> import numpy as np
    >>> from foveal.detection import build_detector
    >>> model = build_detector("resnet18", 2, np.array([[0.2, 0.3]]), input_shape=(64, 64, 3),
    ...                        backbone_options={"width": 8})  # doctest: +SKIP
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
    ".sliding_window": "patch_dataset train_patch_classifier to_fully_convolutional sliding_window_detect",
    ".scan": "run_sliding_window",
    ".cli": "add_detect_command",
    ".adapt": "DomainAdapter",
})
