"""Synthetic tracking data: videos of moving shapes with their ground-truth tracks.

``foveal datasets synth moving-shapes`` draws circles and squares (two classes) moving at
constant speed over a textured background, bouncing off the frame's edges and passing over one
another (the one drawn later hides the other), deterministic for a seed. It writes what a
tracking experiment needs end to end:

* ``images/`` + ``train.csv``, ``val.csv``: frames of separate training sequences with their
  boxes, in the CSV layout ``foveal detect train --data OUTPUT`` reads;
* ``video.mp4``: a further, unseen sequence, and ``gt.txt``: its tracks in the MOT Challenge
  ground-truth format (``frame,id,left,top,width,height,1,class,1``; frames from 1), which
  ``foveal video track --gt`` scores against (:mod:`foveal.video.mot`).

Example:
    >>> manifest = make_moving_shapes("shapes/", seed=0)  # doctest: +SKIP
    >>> manifest["video"], manifest["gt"]  # doctest: +SKIP
    ('shapes/video.mp4', 'shapes/gt.txt')
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from foveal.errors import ConfigError, DataError
from foveal.utils_io import atomic_path, atomic_write_text

SHAPES = ("circle", "square")
_COLOURS = {"circle": (240, 150, 40), "square": (60, 200, 230)}  # RGB


def moving_shapes(frames: int, size: tuple[int, int] = (128, 128), objects: int = 3, *, seed: int = 0,
                  radius: tuple[int, int] = (10, 18), speed: tuple[float, float] = (1.5, 4.0)
                  ) -> tuple[np.ndarray, list[list[dict[str, Any]]]]:
    """One sequence: ``(frames (N, H, W, 3) uint8 RGB, per frame [{"id", "class", "box"}])``.

    Each object has a class (circle or square, alternating from a random start), a half-size in
    ``radius`` pixels, a position and a velocity of ``speed`` pixels a frame in a random
    direction; it bounces off the edges, so its whole box stays inside the frame. Ids start at 1.
    """
    import cv2

    if frames < 1 or objects < 1:
        raise ConfigError("frames and objects must be at least 1")
    h, w = size
    if min(h, w) < 4 * radius[1]:
        raise ConfigError(f"frames of {h}x{w} are too small for shapes of half-size up to {radius[1]}")
    rng = np.random.default_rng(seed)
    first = int(rng.integers(len(SHAPES)))
    state = []
    for k in range(objects):
        r = int(rng.integers(radius[0], radius[1] + 1))
        angle, v = rng.uniform(0, 2 * np.pi), rng.uniform(*speed)
        state.append({"id": k + 1, "class": SHAPES[(first + k) % len(SHAPES)], "r": r,
                      "p": np.array([rng.uniform(r, w - r), rng.uniform(r, h - r)]),
                      "v": np.array([np.cos(angle), np.sin(angle)]) * v,
                      "shade": rng.integers(-30, 31, 3)})
    yy, xx = np.mgrid[0:h, 0:w]
    base = (40 + 30 * np.sin(xx / rng.uniform(8, 20)) * np.cos(yy / rng.uniform(8, 20)))[..., None]
    background = np.clip(base + rng.normal(0, 6, (h, w, 3)) + rng.integers(-20, 21, 3), 0, 255)
    out = np.zeros((frames, h, w, 3), np.uint8)
    truth: list[list[dict[str, Any]]] = []
    for t in range(frames):
        frame = np.clip(background + rng.normal(0, 4, (h, w, 3)), 0, 255).astype(np.uint8)
        boxes = []
        for o in state:
            cx, cy, r = o["p"][0], o["p"][1], o["r"]
            colour = tuple(int(c) for c in np.clip(np.array(_COLOURS[o["class"]]) + o["shade"], 0, 255))
            if o["class"] == "circle":
                cv2.circle(frame, (int(round(cx)), int(round(cy))), r, colour, -1, cv2.LINE_AA)
            else:
                cv2.rectangle(frame, (int(round(cx - r)), int(round(cy - r))), (int(round(cx + r)), int(round(cy + r))),
                              colour, -1)
            boxes.append({"id": o["id"], "class": o["class"],
                          "box": [float(round(cx - r)), float(round(cy - r)), float(round(cx + r)), float(round(cy + r))]})
            o["p"] = o["p"] + o["v"]
            for axis, limit in ((0, w), (1, h)):  # bounce: the box stays inside the frame
                if o["p"][axis] < r or o["p"][axis] > limit - 1 - r:
                    o["v"][axis] = -o["v"][axis]
                    o["p"][axis] = float(np.clip(o["p"][axis], r, limit - 1 - r))
        out[t] = frame
        truth.append(boxes)
    return out, truth


def gt_lines(truth: list[list[dict[str, Any]]]) -> str:
    """MOT Challenge ground truth: ``frame,id,left,top,width,height,1,class,1`` (class from 1)."""
    lines = []
    for f, boxes in enumerate(truth, start=1):
        for b in boxes:
            x0, y0, x1, y1 = b["box"]
            lines.append(f"{f},{b['id']},{x0:.1f},{y0:.1f},{x1 - x0:.1f},{y1 - y0:.1f},1,"
                         f"{SHAPES.index(b['class']) + 1},1")
    return "\n".join(lines) + "\n"


def _write_video(path: Path, frames: np.ndarray, fps: float) -> None:
    import cv2

    h, w = frames.shape[1:3]
    with atomic_path(path) as tmp:
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
        if not writer.isOpened():
            raise DataError(f"cannot write {path}: OpenCV has no MP4 encoder here")
        try:
            for frame in frames:
                writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        finally:
            writer.release()


def make_moving_shapes(output: str | os.PathLike, *, seed: int = 0, frames: int = 150, size: int | tuple[int, int] = 128,
                       objects: int = 3, train_sequences: int = 3, train_frames: int = 60, val_frames: int = 30,
                       fps: float = 10.0, overwrite: bool = False) -> dict[str, Any]:
    """Write a moving-shapes tracking dataset to ``output`` (see the module docstring).

    Sequences use seeds ``seed*1000 + k``: training ones k = 0..train_sequences-1, validation
    k = 100, the test video k = 200, so the video's objects are never seen in training.

    Returns:
        the manifest (also written as ``moving-shapes.json``).
    """
    import cv2

    out = Path(output)
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise ConfigError(f"--output {out} exists and is not empty", hint="pass --overwrite or a new folder")
        shutil.rmtree(out)
    hw = (size, size) if isinstance(size, int) else tuple(size)
    images = out / "images"
    images.mkdir(parents=True, exist_ok=True)
    counts = {}
    for split, seqs, length, offset in (("train", train_sequences, train_frames, 0), ("val", 1, val_frames, 100)):
        rows = ["filename,width,height,class,xmin,ymin,xmax,ymax"]
        for k in range(seqs):
            clip, truth = moving_shapes(length, hw, objects, seed=seed * 1000 + offset + k)
            for t, (frame, boxes) in enumerate(zip(clip, truth)):
                name = f"{split}{k:02d}_{t:04d}.png"
                cv2.imwrite(str(images / name), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
                rows += [f"{name},{hw[1]},{hw[0]},{b['class']},{b['box'][0]:.0f},{b['box'][1]:.0f},"
                         f"{b['box'][2]:.0f},{b['box'][3]:.0f}" for b in boxes]
        atomic_write_text(out / f"{split}.csv", "\n".join(rows) + "\n")
        counts[split] = seqs * length
    clip, truth = moving_shapes(frames, hw, objects, seed=seed * 1000 + 200)
    _write_video(out / "video.mp4", clip, fps)
    atomic_write_text(out / "gt.txt", gt_lines(truth))
    manifest = {"kind": "moving-shapes", "seed": seed, "size": list(hw), "objects": objects, "classes": list(SHAPES),
                "images": counts, "video": str(out / "video.mp4"), "video_frames": frames, "fps": fps,
                "gt": str(out / "gt.txt"), "detector_data": str(out)}
    atomic_write_text(out / "moving-shapes.json", json.dumps(manifest, indent=1))
    return manifest


__all__ = ["SHAPES", "gt_lines", "make_moving_shapes", "moving_shapes"]
