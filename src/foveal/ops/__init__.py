"""Array operations shared by detection: box geometry (:mod:`~foveal.ops.boxes`) and anchors
(:mod:`~foveal.ops.anchors`)."""

from foveal.ops.anchors import anchors_for, kmeans_anchors
from foveal.ops.boxes import (
    box_area,
    center_to_corners,
    clip_boxes,
    corners_to_center,
    decode_yolo,
    encode_yolo,
    iou_matrix,
    wh_iou,
)

__all__ = ["anchors_for", "box_area", "center_to_corners", "clip_boxes", "corners_to_center", "decode_yolo",
           "encode_yolo", "iou_matrix", "kmeans_anchors", "wh_iou"]
