"""U-Net + watershed: targets, post-processing on hand-made touching discs, ISBI cells as instances."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from foveal.errors import ConfigError, ModelError
from foveal.instance.cells import cell_instances, write_cell_instances
from foveal.instance.watershed import (
    connected_instances,
    instance_targets,
    instances_to_results,
    target_channels,
    watershed_instances,
)


def _touching_discs(size: int = 64) -> np.ndarray:
    """Two discs of radius 12 whose centres are 20 px apart: they overlap in a lens and touch."""
    yy, xx = np.mgrid[:size, :size]
    labels = np.zeros((size, size), np.int32)
    labels[(yy - 32) ** 2 + (xx - 20) ** 2 <= 144] = 1
    labels[(yy - 32) ** 2 + (xx - 40) ** 2 <= 144] = 2  # the later disc owns the overlap
    return labels


def _one_hot(targets: np.ndarray, soften: float = 0.0) -> np.ndarray:
    probs = np.eye(3, dtype=np.float32)[targets]
    return (1 - soften) * probs + soften / 3


def _best_iou(labels: np.ndarray, truth: np.ndarray) -> list[float]:
    out = []
    for k in range(1, int(truth.max()) + 1):
        t = truth == k
        out.append(max(((labels == j) & t).sum() / ((labels == j) | t).sum() for j in range(1, int(labels.max()) + 1)))
    return out


def test_targets_match_scikit_image_boundaries():
    from skimage.segmentation import find_boundaries

    labels = _touching_discs()
    targets = instance_targets(labels, 1)
    boundary = find_boundaries(labels, connectivity=2, mode="inner") & (labels > 0)
    assert np.array_equal(targets == 2, boundary)
    assert np.array_equal(targets == 1, (labels > 0) & ~boundary)
    assert np.array_equal(targets == 0, labels == 0)
    wide = instance_targets(labels, 3)  # wider boundary: interiors shrink, objects stay apart
    assert (wide == 1).sum() < (targets == 1).sum() and (wide == 0).sum() == (labels == 0).sum()
    edge = np.ones((6, 6), np.int32)  # the image border is no boundary
    assert (instance_targets(edge, 2) == 1).all()
    with pytest.raises(ConfigError, match="at least 1"):
        instance_targets(labels, 0)


def test_watershed_splits_touching_discs_that_components_merge():
    truth = _touching_discs()
    probs = _one_hot(instance_targets(truth, 2), soften=0.1)
    merged, _ = connected_instances(probs)
    assert merged.max() == 1  # one blob: the foreground does not separate touching discs
    for elevation in ("interior", "boundary", "distance"):
        labels, scores = watershed_instances(probs, elevation=elevation)
        assert labels.max() == 2 and len(scores) == 2, elevation
        assert min(_best_iou(labels, truth)) > 0.9, elevation
        assert np.array_equal(labels > 0, truth > 0)  # every foreground pixel goes to one of them
    assert np.allclose(scores, [probs[..., 1][labels == k].mean() for k in (1, 2)])


def test_watershed_on_a_binary_blob_with_distance_markers():
    """No boundary predicted at all: markers from a sharper interior still split the blob."""
    truth = _touching_discs()
    from scipy import ndimage

    distance = ndimage.distance_transform_edt(truth > 0)
    probs = np.zeros((*truth.shape, 3), np.float32)
    probs[..., 0] = truth == 0
    probs[..., 1] = (truth > 0) * np.clip(distance / 10, 0, 1)
    probs[..., 2] = (truth > 0) - probs[..., 1]
    labels, _ = watershed_instances(probs, interior_threshold=0.85, elevation="distance")
    assert labels.max() == 2 and min(_best_iou(labels, truth)) > 0.85


def test_small_regions_scores_and_results():
    probs = np.zeros((20, 20, 3), np.float32)
    probs[..., 0] = 1
    probs[2:10, 2:10] = (0, 0.2, 0.8)
    probs[4:8, 4:8] = (0, 0.9, 0.1)
    probs[15:17, 15:17] = (0, 0.9, 0.1)  # 4 px: too small an instance by default
    labels, scores = watershed_instances(probs)
    assert labels.max() == 1 and np.isclose(scores[0], (16 * 0.9 + 48 * 0.2) / 64)
    _, fg = watershed_instances(probs, score="foreground")
    assert np.isclose(fg[0], 1.0)
    empty, none = watershed_instances(np.stack([np.ones((5, 5)), np.zeros((5, 5)), np.zeros((5, 5))], -1))
    assert empty.max() == 0 and len(none) == 0
    records = instances_to_results(labels, scores, image_id=7, category_id=3)
    from pycocotools import mask as mask_utils

    rle = records[0]["segmentation"]
    assert np.array_equal(mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode()}), labels == 1)
    assert records[0]["bbox"] == [2.0, 2.0, 8.0, 8.0] and records[0]["image_id"] == 7
    with pytest.raises(ConfigError, match="elevation"):
        watershed_instances(probs, elevation="height")
    with pytest.raises(ModelError, match="background, interior, boundary"):
        target_channels(["membrane", "cell"])
    assert target_channels(["boundary", "background", "interior"]) == (1, 2, 0)


def test_cells_are_connected_regions_between_membranes(tmp_path):
    from scipy import ndimage

    rng = np.random.default_rng(0)
    cells = rng.random((40, 40)) > 0.35
    for connectivity, structure in ((1, None), (2, np.ones((3, 3)))):
        ours = cell_instances(cells, connectivity=connectivity)
        theirs, count = ndimage.label(cells, structure=structure)
        assert ours.max() == count
        assert len(set(zip(ours.ravel().tolist(), theirs.ravel().tolist()))) == count + 1  # same partition
    big = cell_instances(cells, min_area=5)
    assert big.max() == len(np.unique(big)) - 1 and np.bincount(big.ravel())[1:].min() >= 5

    isbi = tmp_path / "isbi"
    (isbi / "image").mkdir(parents=True)
    (isbi / "label").mkdir()
    for i in range(2):
        label = np.full((32, 32), 255, np.uint8)
        label[:, 15:17] = 0  # a vertical membrane: two cells
        label[10 + i, :15] = 0  # and one across the left cell: three
        Image.fromarray(label).save(isbi / "label" / f"{i}.png")
        Image.fromarray(rng.integers(0, 255, (32, 32), dtype=np.uint8)).save(isbi / "image" / f"{i}.png")
    manifest = write_cell_instances(isbi, tmp_path / "cells", boundary_width=1, holdout=1)
    assert manifest["instances"] == 6 and manifest["instances_per_image"] == [3, 3]
    test = json.loads((tmp_path / "cells" / "annotations" / "instances_test.json").read_text())
    assert [im["file_name"] for im in test["images"]] == ["1.png"] and len(test["annotations"]) == 3
    coco = json.loads((tmp_path / "cells" / "annotations" / "instances.json").read_text())
    assert len(coco["annotations"]) == 6 and coco["categories"][0]["name"] == "cell"

    from foveal.instance.label_maps import label_maps_to_coco
    from foveal.segmentation.data import read_mask_folder

    assert [a["segmentation"] for a in label_maps_to_coco(tmp_path / "cells")["annotations"]] == \
        [a["segmentation"] for a in coco["annotations"]]
    targets = read_mask_folder(tmp_path / "cells")  # what `foveal segment train --data cells/` reads
    assert targets.class_names == ["background", "interior", "boundary"] and targets.mask_format == "palette"
    assert set(np.unique(targets.load_mask(0)).tolist()) == {0, 1, 2}
