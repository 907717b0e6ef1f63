"""Tiny generated clips for the video tests (written with OpenCV, a few frames of a few pixels)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


def write_clip(path: Path, frames: np.ndarray, fps: float = 10.0, fourcc: str = "mp4v") -> Path:
    """Write RGB ``frames`` (N, H, W, 3) as a video file with OpenCV."""
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = frames.shape[1:3]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
    assert writer.isOpened(), f"no {fourcc} encoder"
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def moving_square(n: int, direction: int, shift: int = 0, h: int = 24, w: int = 32) -> np.ndarray:
    """A bright square moving up (direction -1) or down (+1) over a dark background."""
    frames = np.full((n, h, w, 3), 40, np.uint8)
    for t in range(n):
        y = h // 2 + direction * (t - n // 2) * 2
        y0, y1 = max(0, y - 3), min(h, y + 3)
        frames[t, y0:y1, 8 + shift:14 + shift] = (255, 200, 50)
    return frames


def write_clip_folder(root: Path, per_class: int = 6) -> Path:
    """``root/up/*.mp4`` and ``root/down/*.mp4``: clips of 8 to 8 + per_class - 1 frames."""
    for cls, direction in (("up", -1), ("down", 1)):
        for i in range(per_class):
            write_clip(root / cls / f"c{i}.mp4", moving_square(8 + i, direction, shift=i % 4))
    return root


@pytest.fixture(scope="session")
def clip_folder(tmp_path_factory) -> Path:
    return write_clip_folder(tmp_path_factory.mktemp("clips"))


def write_video_model(folder: Path, model: str = "lstm", *, steps: int = 4, size: int = 16,
                      classes: tuple[str, ...] = ("down", "up")) -> Path:
    """A run folder as ``foveal video train`` leaves it (``best.keras``, ``backbone.keras`` for a
    feature model), of an untrained tiny model: a ReLU backbone (``dann_mnist``, 4 filters) on
    ``size`` x ``size`` frames and ``steps`` steps sampled ``even:steps``. Returns ``best.keras``."""
    import keras

    from foveal.models import ModelCard, save_model
    from foveal.video.endtoend import END_TO_END_MODELS, build_end_to_end
    from foveal.video.features import FeatureExtractor
    from foveal.video.models import build_sequence_model

    keras.utils.set_random_seed(0)
    folder.mkdir(parents=True, exist_ok=True)
    facts = {"backbone": "dann_mnist", "backbone_options": {"width": 4}, "sampling": f"even:{steps}",
             "scene_threshold": 0.4, "steps": steps, "frame_size": [size, size], "model": model}
    if model in END_TO_END_MODELS:
        backbone = None
        if model == "cnn-lstm":
            backbone = FeatureExtractor.create("dann_mnist", (size, size), options={"width": 4}).model
        net = build_end_to_end(model, steps=steps, frame_hw=(size, size), num_classes=len(classes), backbone=backbone,
                               units=4, dense=4, filters=4)
        facts["end_to_end"] = True
    else:
        extractor = FeatureExtractor.create("dann_mnist", (size, size), options={"width": 4})
        extractor.model.save(folder / "backbone.keras")
        rng = np.random.default_rng(0)  # standardising statistics that are not the identity
        stats = (rng.normal(size=extractor.dim).tolist(), rng.uniform(0.5, 2.0, extractor.dim).tolist())
        net = build_sequence_model(model, steps=steps, dim=extractor.dim, num_classes=len(classes), units=4, dense=4,
                                   stats=stats)
        facts.update(backbone_file="backbone.keras", feature_dim=extractor.dim, deltas=False)
    card = ModelCard(architecture=f"video_{model}", class_names=list(classes), input_shape=(size, size, 3),
                     preprocessing="none", task="video", training=facts)
    return save_model(net, folder / "best.keras", card)
