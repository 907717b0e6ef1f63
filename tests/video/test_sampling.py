"""Frame sampling (even, per second by time stamp, per scene) and padding with a mask."""

from __future__ import annotations

import numpy as np
import pytest

from foveal.errors import ConfigError
from foveal.video.sampling import (
    Sampling,
    colour_histograms,
    even_indices,
    fps_indices,
    pad_sequences,
    scene_cuts,
    scene_indices,
)


def test_even_indices_spread_over_the_clip_first_and_last_included():
    assert even_indices(10, 4).tolist() == [0, 3, 6, 9]
    assert even_indices(100, 5).tolist() == np.round(np.linspace(0, 99, 5)).astype(int).tolist()
    assert even_indices(3, 8).tolist() == [0, 1, 2]  # short clips give every frame (masked later)
    assert even_indices(0, 4).size == 0


def test_fps_indices_follow_time_stamps_so_variable_frame_rates_are_sampled_by_time():
    assert fps_indices(np.arange(10) / 5.0, 2.0).tolist() == [0, 3, 5, 8]  # ticks 0, .5, 1, 1.5 s
    # 30 fps for the first second, then 5 fps: 2 frames a second regardless of the rate
    times = np.concatenate([np.arange(30) / 30.0, 1.0 + np.arange(10) / 5.0])
    picked = fps_indices(times, 2.0)
    assert np.allclose(times[picked], [0.0, 0.5, 1.0, 1.6, 2.0, 2.6], atol=1e-9)
    # brute force: the first frame at or after each tick
    for tick, idx in zip(np.arange(0, times[-1] + 1e-9, 0.5), picked):
        assert idx == np.flatnonzero(times >= tick - 1e-9)[0]


def test_colour_histograms_match_numpy_histogram():
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (3, 5, 7, 3), dtype=np.uint8)
    hist = colour_histograms(frames, bins=16).reshape(3, 3, 16)
    for f in range(3):
        for c in range(3):
            ref, _ = np.histogram(frames[f, ..., c], bins=16, range=(0, 256))
            assert np.allclose(hist[f, c], ref / 35)


def test_scene_cuts_at_a_hard_cut_and_frames_per_scene():
    dark = np.full((5, 8, 8, 3), 20, np.uint8)
    bright = np.full((7, 8, 8, 3), 230, np.uint8)
    frames = np.concatenate([dark, bright, dark[:3]])
    cuts = scene_cuts(frames, 0.4)
    assert cuts.tolist() == [5, 12]
    idx = scene_indices(len(frames), cuts, 2)
    assert idx.tolist() == [0, 4, 5, 11, 12, 14]
    assert Sampling.parse("scene:2").indices(np.arange(15) / 10, frames).tolist() == idx.tolist()


def test_sampling_specs_parse_and_refuse_in_one_line():
    assert str(Sampling.parse("even:16")) == "even:16" and Sampling.parse("fps:2.5").amount == 2.5
    for bad in ("even", "even:0", "uniform:4", "scene:1.5", "fps:x"):
        with pytest.raises(ConfigError, match="STRATEGY:N"):
            Sampling.parse(bad)


def test_pad_sequences_zero_pads_cuts_and_masks():
    a, b = np.ones((3, 2), np.float32), np.full((5, 2), 2, np.float32)
    x, mask = pad_sequences([a, b])
    assert x.shape == (2, 5, 2) and mask.tolist() == [[1, 1, 1, 0, 0], [1] * 5]
    assert np.all(x[0, 3:] == 0) and np.all(x[1] == 2)
    x, mask = pad_sequences([a, b], 4)
    assert x.shape == (2, 4, 2) and mask[1].all()


def test_timeline_windows_cover_the_video_tail_included():
    from foveal.video.predict import _window_starts

    assert _window_starts(1.3, 2.0, 1.0).tolist() == [0.0]  # shorter than a window: one window
    assert _window_starts(5.0, 2.0, 1.0).tolist() == [0.0, 1.0, 2.0, 3.0]
    assert np.allclose(_window_starts(5.5, 2.0, 1.0), [0.0, 1.0, 2.0, 3.0, 3.5])


def test_video_config_refuses_bad_options_in_one_line():
    from foveal.video.config import VideoConfig

    for bad in (dict(sampling="every:3"), dict(folds=1), dict(frame_size=[4]), dict(dropout=1.0),
                dict(val_split=0.6, test_split=0.5)):
        with pytest.raises(ConfigError):
            VideoConfig(**bad).validate()
    VideoConfig(data="x", sampling="scene:3", folds=5).validate()


def test_keras_applications_backbone_offline_fails_in_one_line(monkeypatch):
    import keras

    from foveal.errors import ModelError
    from foveal.video.features import FeatureExtractor

    def offline(**kwargs):
        raise Exception("URL fetch failure on https://storage.googleapis.com/...: None -- [Errno -3] "
                        "Temporary failure in name resolution")

    monkeypatch.setattr(keras.applications, "MobileNetV2", offline)
    with pytest.raises(ModelError, match="cannot be downloaded"):
        FeatureExtractor.create("keras:MobileNetV2", (96, 96))
    with pytest.raises(ConfigError, match="no such network"):
        FeatureExtractor.create("keras:NoSuchNet", (96, 96))
