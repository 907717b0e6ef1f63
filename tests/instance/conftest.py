"""Tiny untrained instance models of both families, saved with the cards `foveal instance train`
writes, and a small COCO instances set of discs, for the export and serve tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

DISC_SIZE = 64


def disc_labels(i: int, size: int = DISC_SIZE) -> np.ndarray:
    """Three discs (two of them touching) whose place depends on ``i``."""
    yy, xx = np.mgrid[:size, :size]
    labels = np.zeros((size, size), np.int32)
    cx, cy = 16 + 2 * (i % 4), 20 + 3 * (i % 5)
    labels[(yy - cy) ** 2 + (xx - cx) ** 2 <= 100] = 1
    labels[(yy - cy - 4) ** 2 + (xx - cx - 18) ** 2 <= 100] = 2  # touching the first
    labels[(yy - 50) ** 2 + (xx - 48) ** 2 <= 36] = 3
    return labels



def voc_folder(root: Path) -> tuple[Path, np.ndarray]:
    """A Pascal VOC folder of one image: ``JPEGImages/`` and a palette ``SegmentationObject/`` PNG
    with two objects (1, 2), each ringed by VOC's void outline (255); returns the root and the labels."""
    from PIL import Image

    (root / "JPEGImages").mkdir(parents=True)
    (root / "SegmentationObject").mkdir()
    labels = np.zeros((20, 24), np.uint8)
    labels[1:9, 1:11], labels[2:8, 2:10] = 255, 1
    labels[9:19, 11:23], labels[10:18, 12:22] = 255, 2
    Image.fromarray(np.full((20, 24, 3), 90, np.uint8)).save(root / "JPEGImages" / "2007_000032.jpg")
    img = Image.fromarray(labels, mode="P")
    img.putpalette([0, 0, 0, 128, 0, 0, 0, 128, 0] + [0] * 744 + [224, 224, 192])
    img.save(root / "SegmentationObject" / "2007_000032.png")
    return root, labels

def two_class_labels(i: int, size: int = DISC_SIZE, top: int = 20) -> np.ndarray:
    """Cityscapes values (class id * 1000 + instance): two touching discs of class 1 (1000, 1001)
    and a square of class 2 (2000), placed by ``i``."""
    yy, xx = np.mgrid[:size, :size]
    labels = np.zeros((size, size), np.int32)
    cx, cy = 16 + 2 * (i % 4), top + 3 * (i % 5)
    labels[(yy - cy) ** 2 + (xx - cx) ** 2 <= 100] = 1000
    labels[(yy - cy - 4) ** 2 + (xx - cx - 18) ** 2 <= 100] = 1001
    labels[44:58, 40 - i:54 - i] = 2000
    return labels

def write_discs(root: Path, count: int = 6, channels: int = 3) -> Path:
    """Images of discs and their COCO instances (one class, ``disc``); returns the .json."""
    from PIL import Image

    from foveal.instance.label_maps import label_maps_to_coco, write_coco, write_label_map
    from foveal.instance.watershed import instance_targets

    (root / "images").mkdir(parents=True)
    for i in range(count):
        labels = disc_labels(i)
        image = np.where(labels > 0, 200, 40).astype(np.uint8)
        image[instance_targets(labels, 1) == 2] = 90  # visible contours
        Image.fromarray(np.repeat(image[..., None], 3, -1) if channels == 3 else image).save(root / "images" / f"{i}.png")
        write_label_map(root / "instances" / f"{i}.png", labels)
    return write_coco(label_maps_to_coco(root, class_names=["disc"]), root / "annotations" / "discs.json")


def save_mask_rcnn(path: Path, classes: list[str], *, score_threshold: float = 0.05) -> Path:
    """An untrained Mask R-CNN on ResNet-18 (width 16, 64x64, few proposals) with an instance card."""
    import keras

    from foveal.instance.mask_rcnn import build_mask_rcnn
    from foveal.models import ModelCard, save_model

    keras.utils.set_random_seed(0)
    model = build_mask_rcnn("resnet18", len(classes), input_shape=(64, 64, 3), backbone_options={"width": 16},
                            anchor_sizes=[16.0, 32.0], head_width=16, mask_width=8, mask_convs=1, mask_pool=14,
                            pre_nms_test=64, post_nms_test=16, score_threshold=score_threshold, max_detections=10)
    card = ModelCard("mask-rcnn-resnet18", list(classes), (64, 64, 3), keep_aspect=False, task="instance",
                     training={"model": "mask-rcnn", "backbone": "resnet18", "level": model.level,
                               "stride": model.stride, "anchor_sizes": [16.0, 32.0], "mask_size": model.mask_size,
                               "mask_threshold": 0.5, "score_threshold": score_threshold, "iou_threshold": 0.45})
    return save_model(model, path, card)


def save_unet_watershed(path: Path, *, watershed: dict | None = None, channels: int = 3) -> Path:
    """An untrained U-Net (depth 2, width 4) with the card of `instance train --model unet-watershed`."""
    import keras

    from foveal.instance.unet_watershed import post_options
    from foveal.models import ModelCard, save_model
    from foveal.segmentation.train import build_segmenter

    keras.utils.set_random_seed(0)
    model = build_segmenter("unet", num_classes=3, channels=channels, options={"depth": 2, "width": 4})
    settings = post_options(**({"min_area": 4, "min_marker_area": 2} | (watershed or {})))
    card = ModelCard("unet-watershed-resnet18", ["disc"], (64, 64, channels), keep_aspect=False, task="instance",
                     training={"model": "unet-watershed", "unet_options": {"depth": 2, "width": 4},
                               "boundary_width": 2, "target_classes": ["background", "interior", "boundary"],
                               "watershed": settings, "score_threshold": 0.05, "max_detections": 100})
    return save_model(model, path, card)


def pycocotools_segm_stats(gt: dict, results: list[dict]) -> np.ndarray:
    """pycocotools' own mask-AP ``stats`` (12 numbers) for a COCO ground truth and results: the
    independent reference the instance tests compare foveal's scoring with."""
    import contextlib
    import copy
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = copy.deepcopy(gt)
        coco.createIndex()
        run = COCOeval(coco, coco.loadRes(copy.deepcopy(results)), "segm")
        run.evaluate()
        run.accumulate()
        run.summarize()
    return run.stats
