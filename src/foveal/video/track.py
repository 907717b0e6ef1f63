"""Tracking detected objects through a video, SORT-style, and running a detector every k frames.

SORT (Bewley et al., "Simple Online and Realtime Tracking", ICIP 2016): each track is a
constant-velocity Kalman filter over the box state ``[cx, cy, area, aspect, vx, vy, varea]``
(the aspect ratio is held constant); each frame with detections, the tracks' predicted boxes
are matched to the detections by the Hungarian algorithm on IoU
(:func:`scipy.optimize.linear_sum_assignment`), pairs under ``iou_threshold`` (or of different
classes) are not matched, unmatched detections start tracks, and a track unmatched for more than
``max_age`` detection rounds ends. A track is reported once it has ``min_hits`` matches (or
from the start of the video, as SORT does for its first frames).

With ``every=k`` the detector runs on every k-th frame only; in between, the Kalman
prediction carries each track's box, which is where the speed-up comes from
(``benchmarks/video_fight.py`` and :func:`track_video` measure it).

Tracks are written as JSON and in the MOT Challenge text format
(``frame,id,left,top,width,height,score,-1,-1,-1``, frames from 1).

Example:
    >>> tracker = SortTracker()
    >>> out = tracker.update(np.array([[10, 10, 50, 50.]]), np.array([0.9]), np.array([0]))
    >>> out[0]["id"]
    1
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from foveal.errors import ConfigError, DataError
from foveal.ops.boxes import iou_matrix
from foveal.utils_io import atomic_path, atomic_write_text


def _to_z(box: np.ndarray) -> np.ndarray:
    """Corners -> measurement ``[cx, cy, area, aspect]``."""
    w, h = max(box[2] - box[0], 1e-6), max(box[3] - box[1], 1e-6)
    return np.array([box[0] + w / 2, box[1] + h / 2, w * h, w / h])


def _to_box(x: np.ndarray) -> np.ndarray:
    """State -> corners."""
    area, aspect = max(float(x[2]), 1e-6), max(float(x[3]), 1e-6)
    w = np.sqrt(area * aspect)
    h = area / w
    return np.array([x[0] - w / 2, x[1] - h / 2, x[0] + w / 2, x[1] + h / 2])


class KalmanBox:
    """A constant-velocity Kalman filter over one box (SORT's noise settings)."""

    F = np.eye(7)
    F[0, 4] = F[1, 5] = F[2, 6] = 1.0
    H = np.eye(4, 7)

    def __init__(self, box: np.ndarray) -> None:
        self.x = np.zeros(7)
        self.x[:4] = _to_z(box)
        self.P = np.diag([10.0, 10.0, 10.0, 10.0, 1e4, 1e4, 1e4])  # velocities unknown at first
        self.Q = np.diag([1.0, 1.0, 1.0, 1.0, 1e-2, 1e-2, 1e-4])
        self.R = np.diag([1.0, 1.0, 10.0, 10.0])

    def predict(self) -> np.ndarray:
        if self.x[2] + self.x[6] <= 0:  # an area that would turn negative stops shrinking
            self.x[6] = 0.0
        self.x = self.F @ self.x
        self.P = self.F @ self.P @ self.F.T + self.Q
        return _to_box(self.x)

    def update(self, box: np.ndarray) -> None:
        z = _to_z(box)
        y = z - self.H @ self.x
        S = self.H @ self.P @ self.H.T + self.R
        K = self.P @ self.H.T @ np.linalg.inv(S)
        self.x = self.x + K @ y
        self.P = (np.eye(7) - K @ self.H) @ self.P

    @property
    def box(self) -> np.ndarray:
        return _to_box(self.x)


class Track:
    def __init__(self, track_id: int, box: np.ndarray, score: float, cls: int) -> None:
        self.id, self.kf, self.score, self.cls = track_id, KalmanBox(box), float(score), int(cls)
        self.hits, self.misses, self.age = 1, 0, 0


def associate(boxes_a: np.ndarray, boxes_b: np.ndarray, iou_threshold: float,
              classes_a: np.ndarray | None = None, classes_b: np.ndarray | None = None
              ) -> tuple[list[tuple[int, int]], list[int], list[int]]:
    """Match boxes by maximum total IoU (Hungarian); pairs under ``iou_threshold`` or of
    different classes are dropped. Returns (pairs, unmatched a, unmatched b)."""
    from scipy.optimize import linear_sum_assignment

    if len(boxes_a) == 0 or len(boxes_b) == 0:
        return [], list(range(len(boxes_a))), list(range(len(boxes_b)))
    iou = iou_matrix(boxes_a, boxes_b)
    if classes_a is not None and classes_b is not None:
        iou = np.where(np.asarray(classes_a)[:, None] == np.asarray(classes_b)[None, :], iou, 0.0)
    rows, cols = linear_sum_assignment(-iou)
    pairs = [(int(r), int(c)) for r, c in zip(rows, cols) if iou[r, c] >= iou_threshold]
    matched_a, matched_b = {r for r, _ in pairs}, {c for _, c in pairs}
    return (pairs, [i for i in range(len(boxes_a)) if i not in matched_a],
            [j for j in range(len(boxes_b)) if j not in matched_b])


class SortTracker:
    """SORT: Kalman-predicted boxes matched to detections by IoU; see the module docstring.

    Args:
        iou_threshold: least IoU of a match (SORT: 0.3).
        max_age: detection rounds a track may go unmatched before it ends (SORT: 1).
        min_hits: matches before a track is reported (SORT: 3); tracks are reported from the
            start during the first ``min_hits`` detection rounds.
        class_aware: only match detections of the track's class.
    """

    def __init__(self, iou_threshold: float = 0.3, max_age: int = 1, min_hits: int = 3,
                 class_aware: bool = True) -> None:
        if not 0.0 < iou_threshold <= 1.0 or max_age < 0 or min_hits < 1:
            raise ConfigError("iou_threshold must be in (0, 1], max_age >= 0 and min_hits >= 1")
        self.iou_threshold, self.max_age, self.min_hits, self.class_aware = iou_threshold, max_age, min_hits, class_aware
        self.tracks: list[Track] = []
        self.rounds = 0
        self._next_id = 1

    def _report(self, predicted_only: bool) -> list[dict[str, Any]]:
        out = []
        for t in self.tracks:
            fresh = t.misses == 0 or predicted_only
            if fresh and (t.hits >= self.min_hits or self.rounds <= self.min_hits):
                out.append({"id": t.id, "box": t.kf.box.tolist(), "score": t.score, "class": t.cls,
                            "predicted": predicted_only})
        return out

    def predict(self) -> list[dict[str, Any]]:
        """Advance every track one frame without detections; their predicted boxes."""
        for t in self.tracks:
            t.kf.predict()
            t.age += 1
        return self._report(predicted_only=True)

    def update(self, boxes: np.ndarray, scores: np.ndarray | None = None,
               classes: np.ndarray | None = None) -> list[dict[str, Any]]:
        """One frame with detections (corners ``(N, 4)``): predict, match, update, start and end
        tracks; returns the reported tracks ``{"id", "box", "score", "class", "predicted"}``."""
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        scores = np.ones(len(boxes)) if scores is None else np.asarray(scores, np.float64)
        classes = np.zeros(len(boxes), np.int64) if classes is None else np.asarray(classes, np.int64)
        self.rounds += 1
        predicted = np.array([t.kf.predict() for t in self.tracks]).reshape(-1, 4)
        for t in self.tracks:
            t.age += 1
        track_cls = np.array([t.cls for t in self.tracks], np.int64)
        pairs, lost, new = associate(predicted, boxes, self.iou_threshold,
                                     track_cls if self.class_aware else None, classes if self.class_aware else None)
        for ti, di in pairs:
            t = self.tracks[ti]
            t.kf.update(boxes[di])
            t.hits, t.misses, t.score = t.hits + 1, 0, float(scores[di])
        for ti in lost:
            self.tracks[ti].misses += 1
        for di in new:
            self.tracks.append(Track(self._next_id, boxes[di], scores[di], classes[di]))
            self._next_id += 1
        self.tracks = [t for t in self.tracks if t.misses <= self.max_age]
        return self._report(predicted_only=False)


def mot_lines(frames: list[list[dict[str, Any]]]) -> str:
    """MOT Challenge text: ``frame,id,left,top,width,height,score,-1,-1,-1`` (frames from 1)."""
    lines = []
    for f, tracks in enumerate(frames, start=1):
        for t in tracks:
            x0, y0, x1, y1 = t["box"]
            lines.append(f"{f},{t['id']},{x0:.2f},{y0:.2f},{x1 - x0:.2f},{y1 - y0:.2f},{t['score']:.4f},-1,-1,-1")
    return "\n".join(lines) + ("\n" if lines else "")


def track_video(model: Any, card: Any, path: str | os.PathLike, *, every: int = 1, output: str | os.PathLike | None = None,
                tracker: SortTracker | None = None, max_frames: int | None = None, annotate: bool = True,
                gt: str | os.PathLike | None = None, gt_iou: float = 0.5) -> dict[str, Any]:
    """Detect (every ``every`` frames) and track objects through ``path`` with a foveal detector.

    Args:
        gt: a MOT ground-truth file of the video: the tracks are scored against it
            (:func:`foveal.video.mot.mot_scores`: MOTA, IDF1, ... with IoU >= ``gt_iou``).

    Returns:
        ``{"file", "frames", "every", "seconds", "fps", "detector_calls", "tracks": {id: [{frame,
        box, score, class, predicted}]}, "outputs"}`` and, with ``gt``, ``"scores"``; with
        ``output``: ``NAME.tracks.json``, ``NAME.mot.txt`` and ``NAME.tracked.mp4``.
    """
    from foveal.detection.predict import model_inputs
    from foveal.detection.scoring import check_card, split_outputs
    from foveal.video.decode import iter_frames, probe

    check_card(card)
    if every < 1:
        raise ConfigError("--every must be at least 1")
    truth = None
    if gt is not None:
        from foveal.video.mot import read_mot

        truth = read_mot(gt)  # read first: a bad file fails before the video is decoded
    info = probe(path)
    h, w, _ = card.input_shape
    keep_aspect = bool(card.training.get("keep_aspect", False))
    tracker = tracker or SortTracker()
    per_frame: list[list[dict[str, Any]]] = []
    frames_for_video: list[np.ndarray] = []
    calls, detect_s = 0, 0.0
    started = time.perf_counter()
    for index, _, frame in iter_frames(path):
        if max_frames is not None and index >= max_frames:
            break
        if index % every == 0:
            t0 = time.perf_counter()
            outputs = model.predict_on_batch(model_inputs([frame], (h, w), keep_aspect))
            outputs = {k: np.asarray(v) for k, v in outputs.items()}
            det = split_outputs(outputs, [(frame.shape[1], frame.shape[0])], (h, w), keep_aspect)[0]
            detect_s += time.perf_counter() - t0
            calls += 1
            per_frame.append(tracker.update(det.boxes, det.scores, det.classes))
        else:
            per_frame.append(tracker.predict())
        if output is not None and annotate:
            frames_for_video.append(frame)
    seconds = time.perf_counter() - started
    if not per_frame:
        raise DataError(f"{path}: no frames decoded")
    tracks: dict[int, list[dict[str, Any]]] = {}
    for f, items in enumerate(per_frame, start=1):
        for t in items:
            tracks.setdefault(t["id"], []).append({"frame": f, "box": [round(v, 2) for v in t["box"]],
                                                   "score": round(t["score"], 4), "class": card.class_names[t["class"]],
                                                   "predicted": t["predicted"]})
    result: dict[str, Any] = {"file": str(path), "frames": len(per_frame), "every": every,
                              "seconds": round(seconds, 3), "fps": round(len(per_frame) / max(seconds, 1e-9), 2),
                              "detector_calls": calls, "detector_seconds": round(detect_s, 3),
                              "tracks": tracks, "outputs": []}
    if truth is not None:
        from foveal.video.mot import frames_of_tracks, mot_scores

        last = len(per_frame)
        result["scores"] = mot_scores({f: b for f, b in truth.items() if f <= last}, frames_of_tracks(tracks),
                                      iou_threshold=gt_iou)
        result["scores"]["gt_file"] = str(gt)
    if output is not None:
        from foveal.utils_io import ensure_output_dir

        out = ensure_output_dir(output)
        stem = Path(path).stem
        result["outputs"].append(str(atomic_write_text(out / f"{stem}.tracks.json", json.dumps(result, indent=1))))
        result["outputs"].append(str(atomic_write_text(out / f"{stem}.mot.txt", mot_lines(per_frame))))
        if annotate:
            result["outputs"].append(str(_write_tracked(out / f"{stem}.tracked.mp4", frames_for_video, per_frame,
                                                        card.class_names, info.fps or 25.0)))
    return result


def _write_tracked(target: Path, frames: list[np.ndarray], per_frame: list[list[dict[str, Any]]],
                   names: list[str], fps: float) -> Path:
    import cv2

    h, w = frames[0].shape[:2]
    palette = [(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
               (70, 240, 240), (240, 50, 230)]
    with atomic_path(target) as tmp:
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
        try:
            for frame, items in zip(frames, per_frame):
                bgr = cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)
                for t in items:
                    colour = palette[t["id"] % len(palette)][::-1]
                    x0, y0, x1, y1 = (int(round(v)) for v in t["box"])
                    cv2.rectangle(bgr, (x0, y0), (x1, y1), colour, 2)
                    cv2.putText(bgr, f"#{t['id']} {names[t['class']]}", (x0, max(12, y0 - 4)),
                                cv2.FONT_HERSHEY_SIMPLEX, 0.45, colour, 1, cv2.LINE_AA)
                writer.write(bgr)
        finally:
            writer.release()
    return target


__all__ = ["KalmanBox", "SortTracker", "associate", "mot_lines", "track_video"]
