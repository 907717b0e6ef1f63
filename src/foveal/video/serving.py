"""What ``foveal serve`` does with an uploaded video: check it, sample it, answer its label and timeline.

The upload is written to a private temporary file (OpenCV decodes files, not bytes), checked
from its header, then run through :func:`foveal.video.predict.predict_video`, the function
behind ``foveal video predict``, so the server samples frames and slides its windows exactly as
the command line does, for a ``.keras`` model and for its exports alike. The answer::

    {"task": "video", "file": "clip.mp4", "model": "video_lstm",
     "video": {"width", "height", "fps", "frames", "duration", "codec"},
     "label": "fight", "probability": 0.91, "predictions": [{"label", "probability"}, ...],
     "probabilities": {"fight": 0.91, "noFight": 0.09},
     "window": 2.0, "stride": 1.0, "sampling": "even:16",
     "timeline": [{"start", "end", "label", "probability", "probabilities"}, ...]}

Bad uploads are refused in one line with an HTTP status (:class:`RejectedVideo`): not a video
or audio only (no video stream): 415; empty, truncated with no decodable frame: 422; longer
than the server's ``max_seconds`` (from the header, and again while decoding) or frames of more
than ``max_pixels``: 413.

Example:
    >>> answerer = VideoAnswerer(load_video_model("runs/fight/best.keras"), max_seconds=60)  # doctest: +SKIP
    >>> answerer.answer(open("clip.mp4", "rb").read(), "clip.mp4")["timeline"]  # doctest: +SKIP
"""

from __future__ import annotations

import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from foveal.errors import DataError
from foveal.video.decode import VIDEO_SUFFIXES

#: default longest video the server takes, in seconds
MAX_SECONDS = 600.0


class RejectedVideo(DataError):
    """An upload that cannot be answered; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def _status(message: str) -> int:
    """HTTP status of a decoding problem named by :mod:`foveal.video.decode`."""
    if "no video stream" in message or "cannot be opened" in message:
        return 415  # not a video, or audio only: a media type the server does not take
    return 422  # empty, truncated, no decodable frame


class VideoAnswerer:
    """Answers uploaded videos with one model, one request at a time on its own thread.

    Args:
        vm: a :class:`~foveal.video.predict.VideoModel` (``.keras``) or
            :class:`~foveal.video.predict.ExportedVideoModel` (an export's runner).
        max_seconds: longer videos are refused with 413.
        max_pixels: videos whose frames have more pixels are refused with 413.
        window, stride: the timeline's defaults, in seconds (as ``foveal video predict``).
    """

    def __init__(self, vm: Any, *, max_seconds: float = MAX_SECONDS, max_pixels: int = 40_000_000,
                 window: float = 2.0, stride: float = 1.0) -> None:
        self.vm, self.card = vm, vm.card
        self.max_seconds, self.max_pixels, self.window, self.stride = max_seconds, max_pixels, window, stride
        self.thread = ThreadPoolExecutor(1, thread_name_prefix="foveal-serve-video")

    def describe(self) -> dict[str, Any]:
        """What ``/health`` says about the video model and the limits."""
        return {"steps": self.vm.steps, "sampling": str(self.vm.sampling),
                "frame_size": list(self.vm.extractor.frame_size), "max_seconds": self.max_seconds,
                "window": self.window, "stride": self.stride, "formats": list(VIDEO_SUFFIXES)}

    def warm_up(self) -> None:
        """Run the model once on a blank clip, so the first request does not trace it."""
        h, w = self.vm.extractor.frame_size
        self.vm.classify_frames([np.zeros((self.vm.steps, h, w, 3), np.uint8)])

    def answer(self, data: bytes, name: str, *, window: float | None = None, stride: float | None = None,
               top_k: int = 5) -> dict[str, Any]:
        """The answer for one uploaded video (module docstring).

        Raises:
            RejectedVideo: the upload is not a readable video, or over the limits.
        """
        from foveal.video.decode import probe
        from foveal.video.predict import VideoTooLong, predict_video

        suffix = Path(name).suffix.lower()
        suffix = suffix if suffix in VIDEO_SUFFIXES else ".mp4"
        with tempfile.TemporaryDirectory(prefix="foveal-serve-") as tmp:
            path = Path(tmp) / f"upload{suffix}"
            path.write_bytes(data)

            def named(message: str) -> str:
                return message.replace(str(path), name)

            try:
                info = probe(path)
            except DataError as exc:
                raise RejectedVideo(named(exc.message), _status(exc.message)) from None
            if info.width * info.height > self.max_pixels:
                raise RejectedVideo(f"{name}: frames of {info.width}x{info.height} = {info.width * info.height} "
                                    f"pixels, over the limit of {self.max_pixels}", 413)
            if info.duration > self.max_seconds:
                raise RejectedVideo(f"{name}: {info.duration:.1f} s long, over the limit of {self.max_seconds:g} s",
                                    413)
            try:
                row = predict_video(self.vm, path, window=window or self.window, stride=stride or self.stride,
                                    max_seconds=self.max_seconds)
            except VideoTooLong as exc:
                raise RejectedVideo(named(exc.message), 413) from None
            except DataError as exc:
                raise RejectedVideo(named(exc.message), _status(exc.message)) from None
        ranked = sorted(row["probabilities"].items(), key=lambda kv: -kv[1])[:top_k]
        return {"task": "video", "file": name, "model": self.card.architecture,
                "video": {"width": info.width, "height": info.height, "fps": row["fps"], "frames": row["frames"],
                          "duration": row["duration"], "codec": info.codec},
                "label": row["label"], "probability": row["probability"],
                "predictions": [{"label": k, "probability": v} for k, v in ranked],
                "probabilities": row["probabilities"], "window": row["window"], "stride": row["stride"],
                "sampling": str(self.vm.sampling), "timeline": row["timeline"]}

    def close(self) -> None:
        self.thread.shutdown(wait=False, cancel_futures=True)


__all__ = ["MAX_SECONDS", "RejectedVideo", "VideoAnswerer"]
