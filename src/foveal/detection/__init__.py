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

from foveal._lazy import lazy_getattr

_LAZY = {
    "build_detector": "foveal.detection.model",
    "DetectorModel": "foveal.detection.model",
    "AnchorReshape": "foveal.detection.model",
    "DetectionOutputs": "foveal.detection.model",
    "build_faster_rcnn": "foveal.detection.faster_rcnn",
    "FasterRCNNModel": "foveal.detection.faster_rcnn",
    "RCNNSettings": "foveal.detection.faster_rcnn",
    "YoloLoss": "foveal.detection.loss",
    "assign_targets": "foveal.detection.loss",
    "decode_predictions": "foveal.detection.postprocess",
    "detect_from_outputs": "foveal.detection.postprocess",
    "non_max_suppression": "foveal.detection.postprocess",
    "nms_image": "foveal.detection.postprocess",
    "reference_nms": "foveal.detection.postprocess",
    "BoxAugment": "foveal.data.box_augment",
    "parse_box_augment": "foveal.data.box_augment",
    "augment_boxes": "foveal.data.box_augment",
    "make_detection_pipeline": "foveal.detection.pipeline",
    "DetectConfig": "foveal.detection.config",
    "train_detector": "foveal.detection.train",
    "evaluate_detector": "foveal.detection.train",
    "detect_dataset": "foveal.detection.scoring",
    "score_detections": "foveal.detection.scoring",
    "to_coco_results": "foveal.detection.scoring",
    "score_results": "foveal.detection.results",
    "predict_detections": "foveal.detection.predict",
    "write_detection_report": "foveal.detection.report",
    "patch_dataset": "foveal.detection.sliding_window",
    "train_patch_classifier": "foveal.detection.sliding_window",
    "to_fully_convolutional": "foveal.detection.sliding_window",
    "sliding_window_detect": "foveal.detection.sliding_window",
    "run_sliding_window": "foveal.detection.scan",
    "add_detect_command": "foveal.detection.cli",
    "DomainAdapter": "foveal.detection.adapt",
}


__getattr__ = lazy_getattr("foveal.detection", _LAZY)


__all__ = list(_LAZY)
