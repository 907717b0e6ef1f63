"""U-Net + marker watershed: instance segmentation from a semantic segmenter.

The texts' other route to instances (Planche & Andres, ch. 6, "post-processing into instance
masks"; the 2018 Data Science Bowl winners' interior + boundary masks; Ronneberger et al.'s
U-Net for touching cells): a segmenter learns three classes per pixel, and a watershed splits
what it finds into objects.

1. **Targets** (:func:`instance_targets`): from an instance label map, ``background`` (0),
   ``interior`` (1: object pixels whose whole ``(2w+1) x (2w+1)`` neighbourhood is the same
   object) and ``boundary`` (2: object pixels within ``w`` pixels, chessboard distance, of
   another object or of background; the image border is not a boundary). Where two objects
   touch, both sides of the contact become boundary, so their interiors are apart.
2. **Model**: any segmenter of :mod:`foveal.segmentation.models` (U-Net by default) trained by
   ``foveal segment train`` on those 3-class masks (``foveal datasets cells`` writes them for
   ISBI; :func:`write_targets` for any instance folder).
3. **Post-processing** (:func:`watershed_instances`): markers are the connected regions where
   P(interior) > ``interior_threshold`` (4-connected, at least ``min_marker_area`` pixels); the
   foreground is where P(background) < 0.5; scikit-image's marker watershed
   (``segmentation.watershed``) floods the foreground from the markers over an elevation map,
   ``1 - P(interior)`` (default), ``P(boundary)``, or the negated distance to the background
   (``distance``). Each region is one instance (smaller than ``min_area``: dropped) with a
   score, the mean P(interior) over its pixels (or the mean foreground probability), so the
   instances can be ranked and scored with COCO mask AP.

:func:`connected_instances` is the baseline without watershed: connected components of the
foreground, which merges objects wherever the predicted boundary has a gap.

Example:
    >>> probs = np.zeros((8, 8, 3), np.float32); probs[..., 0] = 1
    >>> probs[2:6, 2:6] = (0, 0, 1); probs[3:5, 3:5] = (0, 1, 0)
    >>> labels, scores = watershed_instances(probs, min_area=1, min_marker_area=1)
    >>> int(labels.max()), int((labels == 1).sum())
    (1, 16)
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from foveal.errors import ConfigError, ModelError

#: The classes of the watershed targets, in mask-value order.
TARGET_CLASSES = ("background", "interior", "boundary")
#: Their display colours (masks are written as palette PNGs; ``palette.txt`` lists the same).
TARGET_COLOURS = np.array([[0, 0, 0], [60, 180, 75], [255, 225, 25]], np.uint8)
ELEVATIONS = ("interior", "boundary", "distance")
SCORES = ("interior", "foreground")


def instance_targets(instances: np.ndarray, boundary_width: int = 2) -> np.ndarray:
    """3-class targets of an instance label map: 0 background, 1 interior, 2 boundary (HxW uint8).

    Args:
        instances: HxW integer ids, 0 = background.
        boundary_width: ``w``: object pixels within ``w`` pixels (chessboard distance) of another
            id are boundary; at least 1.

    Example:
        >>> labels = np.zeros((5, 7), np.int64); labels[:, 1:4] = 1; labels[:, 4:6] = 2
        >>> instance_targets(labels, 1)[2].tolist()
        [0, 2, 1, 2, 2, 2, 0]
    """
    from scipy import ndimage

    if boundary_width < 1:
        raise ConfigError(f"boundary width must be at least 1 pixel, got {boundary_width}")
    labels = np.asarray(instances)
    size = 2 * int(boundary_width) + 1
    high = ndimage.maximum_filter(labels, size=size, mode="nearest")
    low = ndimage.minimum_filter(labels, size=size, mode="nearest")
    inside = labels > 0
    interior = inside & (high == labels) & (low == labels)
    return np.where(interior, 1, np.where(inside, 2, 0)).astype(np.uint8)


def target_channels(class_names: Sequence[str]) -> tuple[int, int, int]:
    """The (background, interior, boundary) channels of a model trained on watershed targets."""
    names = [str(n) for n in class_names]
    if not set(TARGET_CLASSES) <= set(names):
        raise ModelError(f"the model's classes {names[:8]} are not {', '.join(TARGET_CLASSES)}",
                         hint="train it on 3-class watershed targets (foveal datasets cells, or "
                         "foveal datasets instances targets)")
    return tuple(names.index(n) for n in TARGET_CLASSES)  # type: ignore[return-value]


def target_layout(class_names: Sequence[str]) -> tuple[int, list[int], int, list[str]]:
    """The channels of a model trained on watershed targets, with one or several object classes:
    ``(background, [interior channel of each class], boundary, [object class names])``.

    One class: the channels ``background``, ``interior``, ``boundary`` (:data:`TARGET_CLASSES`),
    the object class named ``object``. Several: ``background``, ``interior:NAME`` for each class
    NAME (in the model's order; what ``foveal instance train --model unet-watershed`` learns and
    :func:`foveal.instance.watershed_family.target_names` names), ``boundary``.

    Example:
        >>> target_layout(["background", "interior:disc", "interior:square", "boundary"])
        (0, [1, 2], 3, ['disc', 'square'])
    """
    names = [str(n) for n in class_names]
    split = [i for i, n in enumerate(names) if n.startswith("interior:")]
    if not split:
        background, interior, boundary = target_channels(names)
        return background, [interior], boundary, ["object"]
    if "background" not in names or "boundary" not in names:
        raise ModelError(f"the model's classes {names[:8]} have per-class interiors but no background or boundary",
                         hint="train it on watershed targets: background, interior:NAME..., boundary")
    return names.index("background"), split, names.index("boundary"), [names[i][len("interior:"):] for i in split]


def _renumber(labels: np.ndarray, min_area: int) -> np.ndarray:
    sizes = np.bincount(labels.ravel())
    keep = sizes >= max(int(min_area), 1)
    keep[0] = False
    lookup = np.zeros(len(sizes), np.int32)
    lookup[keep] = np.arange(1, int(keep.sum()) + 1, dtype=np.int32)
    return lookup[labels]


def _scores(labels: np.ndarray, values: np.ndarray) -> np.ndarray:
    count = int(labels.max())
    if count == 0:
        return np.zeros(0, np.float32)
    sums = np.bincount(labels.ravel(), weights=values.ravel().astype(np.float64), minlength=count + 1)
    sizes = np.bincount(labels.ravel(), minlength=count + 1)
    return (sums[1:] / np.maximum(sizes[1:], 1)).astype(np.float32)


def _split(probabilities: np.ndarray, channels: Sequence[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    probs = np.asarray(probabilities, np.float32)
    if probs.ndim != 3 or probs.shape[-1] < 3:
        raise ConfigError(f"expected HxWx3 class probabilities (background, interior, boundary), got {probs.shape}")
    bg, inner, edge = (probs[..., int(c)] for c in channels)
    return bg, inner, edge


def watershed_instances(
    probabilities: np.ndarray,
    *,
    interior_threshold: float = 0.5,
    foreground_threshold: float = 0.5,
    elevation: str = "interior",
    min_marker_area: int = 4,
    min_area: int = 8,
    score: str = "interior",
    channels: Sequence[int] = (0, 1, 2),
) -> tuple[np.ndarray, np.ndarray]:
    """Instances from background/interior/boundary probabilities by marker watershed.

    Args:
        probabilities: HxWx3 (or more) class probabilities.
        interior_threshold: markers are the 4-connected regions where P(interior) exceeds it.
        foreground_threshold: the watershed floods pixels whose P(background) is below it.
        elevation: ``interior`` (``1 - P(interior)``), ``boundary`` (``P(boundary)``) or
            ``distance`` (negated Euclidean distance to the background).
        min_marker_area: smaller markers are dropped (speckle).
        min_area: smaller instances are dropped.
        score: an instance's score: mean ``interior`` probability or mean ``foreground``
            probability (1 - P(background)) over its pixels.
        channels: the background, interior and boundary channels (:func:`target_channels`).

    Returns:
        An HxW int32 label map (0 = background, 1..N) and the N scores (float32).
    """
    from scipy import ndimage
    from skimage.measure import label
    from skimage.segmentation import watershed

    if elevation not in ELEVATIONS:
        raise ConfigError(f"unknown elevation {elevation!r}", hint=f"use one of {', '.join(ELEVATIONS)}")
    if score not in SCORES:
        raise ConfigError(f"unknown instance score {score!r}", hint=f"use one of {', '.join(SCORES)}")
    bg, inner, edge = _split(probabilities, channels)
    markers = _renumber(label(inner > interior_threshold, connectivity=1), min_marker_area)
    foreground = (bg < foreground_threshold) | (markers > 0)
    if elevation == "interior":
        surface = 1.0 - inner
    elif elevation == "boundary":
        surface = edge
    else:
        surface = -ndimage.distance_transform_edt(foreground)
    labels = watershed(surface, markers, mask=foreground) if markers.any() else np.zeros(bg.shape, np.int32)
    labels = _renumber(labels.astype(np.int32), min_area)
    return labels, _scores(labels, inner if score == "interior" else 1.0 - bg)


def connected_instances(probabilities: np.ndarray, *, foreground_threshold: float = 0.5, min_area: int = 8,
                        score: str = "interior", channels: Sequence[int] = (0, 1, 2)) -> tuple[np.ndarray, np.ndarray]:
    """The baseline without watershed: 4-connected components of the foreground (P(background)
    below ``foreground_threshold``), scored as :func:`watershed_instances` scores."""
    from skimage.measure import label

    if score not in SCORES:
        raise ConfigError(f"unknown instance score {score!r}", hint=f"use one of {', '.join(SCORES)}")
    bg, inner, _ = _split(probabilities, channels)
    labels = _renumber(label(bg < foreground_threshold, connectivity=1).astype(np.int32), min_area)
    return labels, _scores(labels, inner if score == "interior" else 1.0 - bg)


def instances_to_results(labels: np.ndarray, scores: np.ndarray, image_id: int,
                         category_id: int | Sequence[int] = 1) -> list[dict[str, Any]]:
    """COCO result records ``{"image_id", "category_id", "segmentation" (compressed RLE), "bbox", "score"}``
    of a label map's instances 1..N, in that order; ``category_id`` is one id for all of them or
    one per instance."""
    from pycocotools import mask as mask_utils

    from foveal.evaluation.detection import mask_to_rle

    values = np.asarray(scores).tolist()
    ids = [int(category_id)] * len(values) if np.ndim(category_id) == 0 else [int(c) for c in category_id]
    if len(ids) != len(values):
        raise ConfigError(f"{len(ids)} category ids for {len(values)} instances")
    out = []
    for k, (value, category) in enumerate(zip(values, ids), start=1):
        rle = mask_to_rle(labels == k)
        box = mask_utils.toBbox({"size": rle["size"], "counts": rle["counts"].encode("ascii")})
        out.append({"image_id": int(image_id), "category_id": category, "segmentation": rle,
                    "bbox": [float(v) for v in box], "score": float(value)})
    return out


__all__ = ["ELEVATIONS", "SCORES", "TARGET_CLASSES", "TARGET_COLOURS", "connected_instances", "instance_targets",
           "instances_to_results", "target_channels", "target_layout", "watershed_instances"]
