"""Reading video clips: folders of class subfolders, probing and decoding with OpenCV.

foveal decodes video with OpenCV (``opencv-python-headless``, its FFmpeg back end). On the
Surveillance Camera Fight clips (H.264, 480x360 and others) it decoded 1,123-1,184 frames/s to
RGB arrays against PyAV's 649-736 on the same 40 clips on a quiet 2-core machine; under load the
two traded places (``recipes/video.md``; ``benchmarks/video_fight.py`` measures both). OpenCV
applies a phone video's display matrix (rotation) itself
(``CAP_PROP_ORIENTATION_AUTO``, on by default), and reports the angle
(``CAP_PROP_ORIENTATION_META``), so a rotated clip is decoded upright.

Bad files are refused in one line naming the file: a file OpenCV cannot open (corrupt, not a
video), one with zero decodable frames, an audio-only file (told apart from a corrupt one by
PyAV's demuxer, which lists the container's streams: "has no video stream (audio only ...)"). A truncated file whose first frames
decode is used with the frames it has (the count is in ``Clip.frames`` and ``inspect`` reports
the shortfall against the header's count).

Example:
    >>> clips, names, skipped = scan_video_folder("fight-video")  # doctest: +SKIP
    >>> frames, times = read_frames(clips[0].path, size=(64, 64))  # doctest: +SKIP
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from foveal.errors import DataError

VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg")


def _cv2():
    # FFmpeg's own complaints about a bad file go to stderr; foveal says it in one line instead.
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
    try:
        import cv2
    except ImportError:  # pragma: no cover - a dependency of foveal
        raise DataError("reading video needs OpenCV", hint="pip install opencv-python-headless") from None
    return cv2


@dataclass(frozen=True)
class ClipRef:
    """One clip of a video folder: its file and class index."""

    path: Path
    label: int


def is_video_file(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def is_video_folder(path: str | os.PathLike) -> bool:
    """True when ``path`` is a folder whose class subfolders hold video files (and no images)."""
    root = Path(path)
    if not root.is_dir():
        return False
    for sub in sorted(root.iterdir()):
        if sub.is_dir() and any(is_video_file(f) for f in sub.iterdir() if f.is_file()):
            return True
    return False


def scan_video_folder(path: str | os.PathLike) -> tuple[list[ClipRef], list[str]]:
    """The clips of a folder of class subfolders (sorted), and the class names.

    Raises:
        DataError: ``path`` is not a folder, or has no class subfolder with video files.
    """
    root = Path(path)
    if not root.is_dir():
        raise DataError(f"{path}: not a folder", hint="pass a folder with one subfolder of clips per class")
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    clips: list[ClipRef] = []
    names: list[str] = []
    for name in classes:
        files = sorted(f for f in (root / name).rglob("*") if f.is_file() and is_video_file(f))
        if not files:
            continue
        names.append(name)
        clips += [ClipRef(f, len(names) - 1) for f in files]
    if not clips:
        raise DataError(f"{path}: no video files ({', '.join(VIDEO_SUFFIXES)}) in class subfolders",
                        hint="lay the clips out as FOLDER/CLASS/clip.mp4")
    if len(names) < 2:
        raise DataError(f"{path}: only one class ({names[0]}) has clips", hint="a classifier needs two classes or more")
    return clips, names


@dataclass
class VideoInfo:
    """A clip's header facts (``frames`` is the container's count, which may be approximate)."""

    path: Path
    width: int
    height: int
    fps: float
    frames: int
    codec: str
    rotation: int

    @property
    def duration(self) -> float:
        return self.frames / self.fps if self.fps > 0 else 0.0


def _open(path: str | os.PathLike):
    cv2 = _cv2()
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: video file not found")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: empty file (0 bytes)")
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    if not cap.isOpened():
        cap.release()
        streams = container_streams(path)
        if streams is not None and streams["video"] == 0:
            what = (f"has no video stream (audio only: {streams['audio']} audio stream(s), {streams['format']})"
                    if streams["audio"] else f"has no video stream ({streams['format']} container)")
            raise DataError(f"{path}: {what}", hint="pass --skip-invalid to leave it out")
        raise DataError(f"{path}: cannot be opened as a video (corrupt or not a video file)",
                        hint="re-encode it (ffmpeg -i IN -c:v libx264 OUT.mp4) or pass --skip-invalid")
    return cap


def container_streams(path: str | os.PathLike) -> dict[str, Any] | None:
    """``{"format", "video", "audio"}`` stream counts of a media file read by PyAV (FFmpeg's
    demuxer, without decoding), or None when PyAV cannot open it (corrupt, not a media file) or is
    not installed. OpenCV only says "cannot open", so this tells an audio-only file from a corrupt one.
    """
    try:
        import av
    except ImportError:  # pragma: no cover - a dependency of foveal
        return None
    try:
        with av.open(str(path)) as container:
            return {"format": container.format.name, "video": len(container.streams.video),
                    "audio": len(container.streams.audio)}
    except (av.error.FFmpegError, OSError, ValueError):
        return None


def probe(path: str | os.PathLike) -> VideoInfo:
    """Header facts of a clip, without decoding it (raises DataError for unreadable files)."""
    cv2 = _cv2()
    cap = _open(path)
    try:
        fourcc = int(cap.get(cv2.CAP_PROP_FOURCC))
        codec = "".join(chr((fourcc >> (8 * i)) & 0xFF) for i in range(4)).strip("\x00 ") or "?"
        info = VideoInfo(Path(path), int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)),
                         float(cap.get(cv2.CAP_PROP_FPS) or 0.0), int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0), codec,
                         int(cap.get(cv2.CAP_PROP_ORIENTATION_META) or 0))
    finally:
        cap.release()
    if info.width <= 0 or info.height <= 0:
        raise DataError(f"{path}: has no video stream (audio only?)", hint="pass --skip-invalid to leave it out")
    return info


def iter_frames(path: str | os.PathLike, size: tuple[int, int] | None = None,
                keep: Any = None) -> Iterator[tuple[int, float, np.ndarray | None]]:
    """Decode ``path`` frame by frame: ``(index, time in seconds, RGB uint8 frame)``.

    Args:
        size: (height, width) to resize each frame to (area interpolation); None keeps it.
        keep: a function ``(index, seconds) -> bool``; frames it rejects are decoded but not
            converted (``frame`` is None), which saves the colour conversion and resize.

    Times come from the container (``CAP_PROP_POS_MSEC``), so variable frame rates are honoured.

    Raises:
        DataError: the file cannot be opened, has no video stream, or no frame decodes.
    """
    cv2 = _cv2()
    cap = _open(path)
    fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
    index = 0
    try:
        while cap.grab():
            msec = cap.get(cv2.CAP_PROP_POS_MSEC)
            seconds = msec / 1000.0 if msec > 0 or index == 0 else (index / fps if fps > 0 else float(index))
            frame = None
            if keep is None or keep(index, seconds):
                ok, bgr = cap.retrieve()
                if not ok or bgr is None:
                    break
                if bgr.ndim == 2:
                    bgr = cv2.cvtColor(bgr, cv2.COLOR_GRAY2BGR)
                if size is not None and bgr.shape[:2] != tuple(size):
                    bgr = cv2.resize(bgr, (size[1], size[0]), interpolation=cv2.INTER_AREA)
                frame = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            yield index, seconds, frame
            index += 1
    finally:
        cap.release()
    if index == 0:
        width = cap.get(cv2.CAP_PROP_FRAME_WIDTH)
        what = "has no video stream (audio only?)" if not width else "has no decodable frames (truncated or corrupt)"
        raise DataError(f"{path}: {what}", hint="pass --skip-invalid to leave it out")


def read_frames(path: str | os.PathLike, size: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Every frame of ``path``: ``(frames (N, H, W, 3) uint8 RGB, times (N,) seconds)``."""
    frames, times = [], []
    for _, t, frame in iter_frames(path, size):
        frames.append(frame)
        times.append(t)
    return np.stack(frames), np.asarray(times, np.float64)


__all__ = ["VIDEO_SUFFIXES", "ClipRef", "VideoInfo", "container_streams", "is_video_file", "is_video_folder",
           "iter_frames", "probe", "read_frames", "scan_video_folder"]
