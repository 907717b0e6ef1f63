"""Which frames of a clip to use: the texts' three sampling strategies, and padding with a mask.

* ``even:N`` - N frames spread evenly over the clip (Planche & Andres ch. 8), first and last
  included; a clip with fewer than N frames gives all of them (a shorter sequence, masked).
* ``fps:R`` - R frames per second of video, chosen by time stamp (the first frame at or after
  each tick k/R), so variable frame rates are sampled by time, not by index.
* ``scene:N`` - N frames spread evenly inside each scene; scenes are cut where the colour
  histograms of consecutive frames differ by more than a threshold (a simple histogram
  difference detector: the total-variation distance of 16-bin per-channel histograms, not a
  learned shot-boundary model).

Sequences of different lengths are padded with zero vectors up to a common length and come
with a mask (True for real frames); the models' ``Masking`` layer skips the padded steps.

Example:
    >>> even_indices(10, 4).tolist()
    [0, 3, 6, 9]
    >>> fps_indices(np.arange(10) / 5.0, 2.0).tolist()
    [0, 3, 5, 8]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from foveal.errors import ConfigError

STRATEGIES = ("even", "fps", "scene")


@dataclass(frozen=True)
class Sampling:
    """A parsed sampling spec such as ``even:16``."""

    strategy: str
    amount: float

    @classmethod
    def parse(cls, spec: str) -> "Sampling":
        strategy, _, amount = str(spec).partition(":")
        try:
            value = float(amount)
        except ValueError:
            value = -1.0
        if strategy not in STRATEGIES or value <= 0 or (strategy != "fps" and value != int(value)):
            raise ConfigError(f"--sampling {spec!r} is not STRATEGY:N",
                              hint="use even:16 (16 frames spread evenly), fps:4 (4 frames a second) or scene:4 "
                                   "(4 frames in each detected scene)")
        return cls(strategy, value)

    def __str__(self) -> str:
        amount = int(self.amount) if self.amount == int(self.amount) else self.amount
        return f"{self.strategy}:{amount}"

    def indices(self, times: np.ndarray, frames: np.ndarray | None = None, *, scene_threshold: float = 0.4
                ) -> np.ndarray:
        """The frame indices this spec takes from a clip with frame ``times`` (and ``frames``,
        needed by ``scene``)."""
        if self.strategy == "even":
            return even_indices(len(times), int(self.amount))
        if self.strategy == "fps":
            return fps_indices(times, self.amount)
        if frames is None:
            raise ValueError("scene sampling needs the frames")
        cuts = scene_cuts(frames, scene_threshold)
        return scene_indices(len(frames), cuts, int(self.amount))


def even_indices(count: int, n: int) -> np.ndarray:
    """``n`` indices spread evenly over ``count`` frames (all of them when ``count <= n``)."""
    if count <= 0:
        return np.zeros(0, np.int64)
    if count <= n:
        return np.arange(count)
    return np.round(np.linspace(0, count - 1, n)).astype(np.int64)


def fps_indices(times: np.ndarray, rate: float) -> np.ndarray:
    """The first frame at or after each tick ``k / rate`` seconds (from the first frame's time)."""
    times = np.asarray(times, np.float64)
    if times.size == 0:
        return np.zeros(0, np.int64)
    rel = times - times[0]
    ticks = np.arange(0.0, rel[-1] + 1e-9, 1.0 / rate)
    picked = np.searchsorted(rel, ticks - 1e-9, side="left")
    picked = picked[picked < len(times)]
    return np.unique(picked)


def colour_histograms(frames: np.ndarray, bins: int = 16) -> np.ndarray:
    """Per-frame normalised histograms of each channel, concatenated: ``(N, C * bins)``."""
    frames = np.asarray(frames)
    n, channels = frames.shape[0], frames.shape[-1]
    flat = frames.reshape(n, -1, channels).astype(np.int64) * bins // 256
    hist = np.zeros((n, channels, bins), np.float64)
    for c in range(channels):
        offsets = flat[:, :, c] + np.arange(n)[:, None] * bins
        hist[:, c] = np.bincount(offsets.ravel(), minlength=n * bins).reshape(n, bins)
    hist /= flat.shape[1]
    return hist.reshape(n, channels * bins)


def scene_cuts(frames: np.ndarray, threshold: float = 0.4) -> np.ndarray:
    """Indices where a new scene starts (frame 0 excluded): the total-variation distance between
    consecutive frames' channel histograms (0 = same, 1 = disjoint, averaged over channels)
    exceeds ``threshold``."""
    if len(frames) < 2:
        return np.zeros(0, np.int64)
    hist = colour_histograms(frames)
    channels = frames.shape[-1]
    distance = 0.5 * np.abs(np.diff(hist, axis=0)).sum(axis=1) / channels
    return np.flatnonzero(distance > threshold) + 1


def scene_indices(count: int, cuts: np.ndarray, n: int) -> np.ndarray:
    """``n`` frames spread evenly in each scene delimited by ``cuts``."""
    bounds = [0, *[int(c) for c in cuts], count]
    parts = [start + even_indices(end - start, n) for start, end in zip(bounds[:-1], bounds[1:]) if end > start]
    return np.concatenate(parts) if parts else np.zeros(0, np.int64)


def pad_sequences(sequences: list[np.ndarray], length: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Stack ``(T_i, D)`` sequences into ``(N, T, D)`` zero-padded at the end, with the
    ``(N, T)`` mask of real steps; longer sequences are cut to ``length`` (default: the longest)."""
    if not sequences:
        raise ValueError("no sequences to pad")
    dim = sequences[0].shape[-1]
    length = int(length or max(len(s) for s in sequences))
    out = np.zeros((len(sequences), length, dim), np.float32)
    mask = np.zeros((len(sequences), length), bool)
    for i, seq in enumerate(sequences):
        t = min(len(seq), length)
        out[i, :t] = seq[:t]
        mask[i, :t] = True
    return out, mask


__all__ = ["STRATEGIES", "Sampling", "colour_histograms", "even_indices", "fps_indices", "pad_sequences",
           "scene_cuts", "scene_indices"]
