"""Tiny models of every task (width-16 backbones, 64x64 inputs), saved once per session, and
small datasets for them, for the export, benchmark and serve tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from localization.conftest import write_rectangles
from segmentation.conftest import CLASSES as SEGMENT_CLASSES
from segmentation.conftest import write_squares

ANCHORS = np.array([[0.15, 0.15], [0.3, 0.3], [0.6, 0.6]], np.float32)


def save_detector(path: Path, classes: list[str], *, score_threshold: float = 0.05,
                  keep_aspect: bool = False) -> Path:
    """An untrained one-scale YOLO on ResNet-18 (width 16); the objectness bias is set to 0 so
    that it finds boxes (the prior of 0.01 would leave every image empty)."""
    import keras

    from foveal.detection.model import build_detector
    from foveal.models import ModelCard, save_model

    keras.utils.set_random_seed(0)  # the same untrained weights (and so the same boxes) in every run

    model = build_detector("resnet18", len(classes), ANCHORS, input_shape=(64, 64, 3),
                           backbone_options={"width": 16}, head_width=16, score_threshold=score_threshold)
    layer = model.get_layer(f"head_{model.levels[0]}_out")
    kernel, bias = layer.get_weights()
    bias = bias.reshape(len(ANCHORS), -1)
    bias[:, 4] = 0.0
    layer.set_weights([kernel, bias.reshape(-1)])
    card = ModelCard("yolo-resnet18", list(classes), (64, 64, 3), keep_aspect=keep_aspect, task="detect",
                     training={"anchors": ANCHORS.tolist(), "keep_aspect": keep_aspect,
                               "score_threshold": score_threshold, "iou_threshold": 0.45})
    return save_model(model, path, card)


def save_localizer(path: Path, classes: list[str]) -> Path:
    import keras

    from foveal.localization.model import build_localizer, init_heads
    from foveal.models import ModelCard, save_model

    keras.utils.set_random_seed(0)

    model = build_localizer("resnet18", num_classes=len(classes), input_shape=(64, 64, 3), width=16)
    init_heads(model, [0.5, 0.5, 0.6, 0.6])  # boxes of a sensible size, as training starts
    box = model.get_layer("box")
    kernel, bias = box.get_weights()
    box.set_weights([kernel * 0.01, bias])  # untrained features are large: keep the sigmoid off its ends
    card = ModelCard("resnet18", list(classes), (64, 64, 3), task="localize",
                     training={"mean_box": [0.2, 0.2, 0.8, 0.8]})
    return save_model(model, path, card)


def save_segmenter(path: Path, classes: list[str], *, image_size: tuple[int, int] | None = (64, 64)) -> Path:
    """A U-Net (depth 2, width 16); ``image_size`` None: trained at native resolution (on crops)."""
    import keras

    from foveal.models import ModelCard, save_model
    from foveal.segmentation.train import build_segmenter

    keras.utils.set_random_seed(0)

    model = build_segmenter("unet", num_classes=len(classes), channels=3, options={"depth": 2, "width": 16})
    card = ModelCard("unet", list(classes), (64, 64, 3), task="segment",
                     training={"stride": 4, "tile": 256, "ignore_label": 255,
                               "image_size": list(image_size) if image_size else None})
    return save_model(model, path, card)


@pytest.fixture(scope="session")
def task_models(tmp_path_factory) -> dict[str, Path]:
    """``{"detect", "localize", "segment"}`` -> a saved tiny model of that task."""
    root = tmp_path_factory.mktemp("task_models")
    return {"detect": save_detector(root / "det.keras", ["box"]),
            "localize": save_localizer(root / "loc.keras", ["box"]),
            "segment": save_segmenter(root / "seg.keras", list(SEGMENT_CLASSES))}


@pytest.fixture(scope="session")
def task_data(tmp_path_factory) -> dict[str, str]:
    """A dataset per task: bright rectangles (class ``box``) for detect and localize, coloured
    squares with masks for segment."""
    root = tmp_path_factory.mktemp("task_data")
    boxes = str(write_rectangles(root / "rect", 12))
    return {"detect": boxes, "localize": boxes, "segment": str(write_squares(root / "squares", 6, 64, 64))}
