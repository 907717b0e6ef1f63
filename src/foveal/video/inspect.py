"""``foveal datasets inspect`` on a folder of video clips: the texts' first look at a video set.

Per class: clip count and total duration; over all clips: frame rate, resolution, codec and
rotation tallies, duration statistics and a frame-count histogram; unreadable files named.
``full`` decodes every clip to count its frames (a header's count can be wrong, and a
truncated file shows up as a shortfall); otherwise only headers are read.

Example:
    >>> report = inspect_video_folder("../shared/datasets/fight-video")  # doctest: +SKIP
    >>> print(format_video_inspection(report))  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections import Counter
from typing import Any

import numpy as np

from foveal.errors import DataError
from foveal.utils_io import printable_path
from foveal.video.decode import probe, scan_video_folder


def _count_frames(path) -> int:
    import cv2

    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    n = 0
    try:
        while cap.grab():
            n += 1
    finally:
        cap.release()
    return n


def inspect_video_folder(path: str | os.PathLike, *, full: bool = True, bins: int = 10) -> dict[str, Any]:
    """A JSON-serialisable report of the clips under ``path`` (class subfolders)."""
    clips, names = scan_video_folder(path)
    per_class: dict[str, dict[str, Any]] = {n: {"clips": 0, "seconds": 0.0} for n in names}
    fps, res, codecs, rotations = Counter(), Counter(), Counter(), Counter()
    durations, counts, problems = [], [], []
    for clip in clips:
        try:
            info = probe(clip.path)
        except DataError as exc:
            problems.append({"file": printable_path(clip.path), "problem": exc.message.split(": ", 1)[-1]})
            continue
        frames = info.frames
        if full:
            decoded = _count_frames(clip.path)
            if decoded == 0:
                problems.append({"file": printable_path(clip.path), "problem": "no decodable frames"})
                continue
            if info.frames and decoded < info.frames - 1:
                problems.append({"file": printable_path(clip.path),
                                 "problem": f"decodes {decoded} of the {info.frames} frames its header counts "
                                            f"(truncated?)"})
            frames = decoded
        seconds = frames / info.fps if info.fps > 0 else 0.0
        entry = per_class[names[clip.label]]
        entry["clips"] += 1
        entry["seconds"] = round(entry["seconds"] + seconds, 3)
        fps[f"{info.fps:g}"] += 1
        res[f"{info.width}x{info.height}"] += 1
        codecs[info.codec] += 1
        if info.rotation:
            rotations[str(info.rotation)] += 1
        durations.append(seconds)
        counts.append(frames)
    hist = None
    if counts:
        edges = np.histogram_bin_edges(counts, bins=min(bins, max(1, len(set(counts)))))
        values, edges = np.histogram(counts, bins=edges)
        hist = {"edges": [round(float(e), 1) for e in edges], "counts": values.tolist()}
    d = np.asarray(durations) if durations else np.zeros(1)
    return {
        "spec": printable_path(path), "format": "video folder", "num_classes": len(names), "class_names": names,
        "num_clips": len(clips), "readable_clips": len(durations), "per_class": per_class,
        "duration_seconds": {"min": round(float(d.min()), 3), "mean": round(float(d.mean()), 3),
                             "max": round(float(d.max()), 3), "total": round(float(d.sum()), 3)},
        "fps": dict(fps.most_common()), "resolution": dict(res.most_common()), "codec": dict(codecs.most_common()),
        "rotation_degrees": dict(rotations), "frame_count_histogram": hist, "frames_counted": "decoded" if full
        else "header", "problems": problems, "num_problems": len(problems),
    }


def format_video_inspection(report: dict[str, Any]) -> str:
    """The report as text."""
    lines = [f"{report['spec']}: video folder, {report['num_clips']} clip(s) in {report['num_classes']} classes "
             f"({report['readable_clips']} readable)"]
    for name, c in report["per_class"].items():
        lines.append(f"  {name:20s} {c['clips']:6d} clip(s) {c['seconds']:9.1f} s")
    d = report["duration_seconds"]
    lines.append(f"duration (s): min {d['min']:.2f}, mean {d['mean']:.2f}, max {d['max']:.2f}, total {d['total']:.1f}")
    for key, title in (("fps", "frame rate"), ("resolution", "resolution"), ("codec", "codec"),
                       ("rotation_degrees", "rotated (display matrix; decoded upright)")):
        if report[key]:
            lines.append(f"{title}: " + ", ".join(f"{k} ({v})" for k, v in report[key].items()))
    hist = report["frame_count_histogram"]
    if hist:
        lines.append(f"frames per clip ({report['frames_counted']} counts):")
        top = max(hist["counts"]) or 1
        for lo, hi, n in zip(hist["edges"][:-1], hist["edges"][1:], hist["counts"]):
            lines.append(f"  {lo:8.0f} - {hi:8.0f} {n:5d} {'#' * int(round(30 * n / top))}")
    lines.append(f"problems: {report['num_problems']}")
    lines += [f"  {p['file']}: {p['problem']}" for p in report["problems"][:20]]
    return "\n".join(lines)


__all__ = ["format_video_inspection", "inspect_video_folder"]
