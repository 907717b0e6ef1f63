"""Anchor priors by k-means on box sizes with the ``1 - IoU`` distance (YOLOv2).

Redmon & Farhadi, "YOLO9000: Better, Faster, Stronger", CVPR 2017, sec. 2 "Dimension
Clusters": Euclidean k-means on ``(w, h)`` lets big boxes dominate the error, so boxes are
clustered with ``d(box, centroid) = 1 - IoU(box, centroid)``, both placed on one centre.
The result is judged by the mean IoU of each box with its nearest anchor.

Example:
    >>> import numpy as np
    >>> wh = np.array([[10, 10], [11, 9], [50, 40], [52, 44]], float)
    >>> anchors, mean_iou = kmeans_anchors(wh, 2, seed=0)
    >>> np.round(anchors).tolist()
    [[10.0, 10.0], [51.0, 42.0]]
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from foveal.errors import DataError
from foveal.ops.boxes import wh_iou

if TYPE_CHECKING:
    from foveal.data.boxes.source import BoxedImages


def kmeans_anchors(wh, k: int, *, seed: int = 0, max_iter: int = 300) -> tuple[np.ndarray, float]:
    """Cluster box sizes ``(N, 2)`` into ``k`` anchors with the ``1 - IoU`` distance.

    Centroids start at ``k`` distinct boxes drawn with ``seed``; each step assigns every box to
    the centroid of highest IoU and moves each centroid to the median size of its boxes (robust
    to outliers, as common YOLO tools do); an emptied cluster keeps its centroid.

    Returns:
        ``(anchors, mean_iou)``: float64 (k, 2) anchors sorted by area, and the mean over
        boxes of the IoU with the best anchor.
    """
    wh = np.asarray(wh, np.float64).reshape(-1, 2)
    wh = wh[(wh > 0).all(axis=1)]
    unique = np.unique(wh, axis=0)
    if k < 1 or len(unique) < k:
        raise DataError(f"k-means needs at least k={k} distinct box sizes, got {len(unique)}")
    rng = np.random.default_rng(seed)
    centroids = unique[rng.choice(len(unique), k, replace=False)]
    assign = np.full(len(wh), -1)
    for _ in range(max_iter):
        new = np.argmax(wh_iou(wh, centroids), axis=1)
        if np.array_equal(new, assign):
            break
        assign = new
        for j in range(k):
            members = wh[assign == j]
            if len(members):
                centroids[j] = np.median(members, axis=0)
    centroids = centroids[np.argsort(centroids[:, 0] * centroids[:, 1], kind="stable")]
    return centroids, float(np.mean(np.max(wh_iou(wh, centroids), axis=1)))


def anchors_for(boxed: "BoxedImages", k: int, image_size: int | tuple[int, int], *,
                seed: int = 0) -> tuple[np.ndarray, float]:
    """k-means anchors for a dataset's boxes once each image is resized to ``image_size``.

    Args:
        boxed: the annotated images.
        k: number of anchors.
        image_size: the model's input ``(width, height)`` (or one side for a square input);
            boxes are scaled as the image is (stretched, no letterbox).

    Returns:
        ``(anchors, mean_iou)``, anchors in pixels of the resized input, sorted by area.
    """
    width, height = (image_size, image_size) if isinstance(image_size, int) else image_size
    sizes = []
    for boxes, (w, h) in zip(boxed.boxes, boxed.image_sizes):
        if len(boxes):
            scale = np.array([width / w, height / h])
            sizes.append((boxes[:, 2:] - boxes[:, :2]) * scale)
    if not sizes:
        raise DataError(f"{boxed.origin}: no boxes to compute anchors from")
    return kmeans_anchors(np.concatenate(sizes), k, seed=seed)


__all__ = ["anchors_for", "kmeans_anchors"]
