"""Reading clips with OpenCV, bad files named in one line, features cached and reused, and the
sequence models' masking (a padded clip gives the unpadded clip's prediction)."""

from __future__ import annotations

import numpy as np
import pytest

from foveal.errors import DataError
from foveal.video.decode import ClipRef, probe, read_frames, scan_video_folder
from foveal.video.features import FeatureExtractor, clip_features, dataset_features, sampled_frames
from foveal.video.sampling import Sampling, pad_sequences
from tests.video.conftest import moving_square, write_clip


@pytest.fixture(scope="module")
def extractor():
    return FeatureExtractor.create("airbench", (16, 16), options={"width": 4, "wide": 8})


def test_decoded_frames_match_what_was_written(tmp_path):
    frames = moving_square(9, 1)
    path = write_clip(tmp_path / "a.avi", frames, fps=5.0, fourcc="MJPG")
    info = probe(path)
    assert (info.width, info.height, info.frames, info.fps) == (32, 24, 9, 5.0)
    got, times = read_frames(path)
    assert got.shape == frames.shape
    assert np.abs(got.astype(int) - frames).mean() < 6  # JPEG-coded, so close, not equal
    assert np.allclose(times, np.arange(9) / 5.0, atol=1e-3)
    small, _ = read_frames(path, size=(12, 16))
    assert small.shape == (9, 12, 16, 3)


def test_bad_files_are_refused_naming_the_file(tmp_path):
    import wave

    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    junk = tmp_path / "junk.mkv"
    junk.write_bytes(b"\x00not a video" * 50)
    sound = tmp_path / "sound.mp4"  # audio only
    with wave.open(str(sound), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(8000)
        w.writeframes(np.zeros(8000, np.int16).tobytes())
    said = {}
    for path in (empty, junk, sound):
        with pytest.raises(DataError) as err:
            read_frames(path)
        assert str(path) in err.value.message and "\n" not in err.value.message
        said[path.name] = err.value.message
    # an audio-only file is told apart from a corrupt one
    assert "no video stream (audio only" in said["sound.mp4"] and "corrupt" not in said["sound.mp4"]
    assert "corrupt" in said["junk.mkv"] and "audio" not in said["junk.mkv"]


def test_truncated_avi_keeps_its_decodable_frames(tmp_path):
    path = write_clip(tmp_path / "cut.avi", moving_square(12, 1), fourcc="MJPG")
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * 0.6)])
    frames, _ = read_frames(path)
    assert 1 <= len(frames) < 12


def test_scan_folder_classes_and_skip_invalid_counts(tmp_path, extractor):
    root = tmp_path / "set"
    write_clip(root / "a" / "1.mp4", moving_square(6, 1))
    write_clip(root / "b" / "1.mp4", moving_square(6, -1))
    (root / "b" / "2.mp4").write_bytes(b"broken")
    clips, names = scan_video_folder(root)
    assert names == ["a", "b"] and [c.label for c in clips] == [0, 1, 1]
    with pytest.raises(DataError, match="2.mp4"):
        dataset_features(extractor, clips, Sampling.parse("even:4"), cache=None, skip_invalid=False)
    feats, kept, skipped = dataset_features(extractor, clips, Sampling.parse("even:4"), cache=None,
                                            skip_invalid=True)
    assert kept == [0, 1] and len(skipped) == 1 and "2.mp4" in skipped[0]
    with pytest.raises(DataError, match="no video files"):
        scan_video_folder(tmp_path / "set" / "a")


def test_feature_cache_is_written_once_and_reused(tmp_path, extractor, clip_folder):
    clip = ClipRef(clip_folder / "up" / "c3.mp4", 0)
    sampling = Sampling.parse("even:5")
    stats: dict = {}
    first = clip_features(extractor, clip.path, sampling, cache=tmp_path, stats=stats)
    files = list(tmp_path.rglob("*.npy"))
    assert len(files) == 1 and first.shape == (5, extractor.dim) and "cached" not in stats
    second = clip_features(extractor, clip.path, sampling, cache=tmp_path, stats=stats)
    assert stats["cached"] == 1 and np.array_equal(first, second)
    # the frames the features came from are exactly the sampled ones
    frames, _ = sampled_frames(clip.path, sampling, extractor.frame_size)
    assert np.allclose(extractor(frames), first, atol=1e-5)
    # another sampling is another cache entry
    clip_features(extractor, clip.path, Sampling.parse("fps:5"), cache=tmp_path)
    assert len(list(tmp_path.rglob("*.npy"))) == 2


@pytest.mark.parametrize("spec", ["fps:4", "even:5", "even:50"])
def test_sampling_while_decoding_equals_sampling_after(clip_folder, spec):
    path = clip_folder / "down" / "c5.mp4"
    all_frames, times = read_frames(path, size=(16, 16))
    frames, picked_times = sampled_frames(path, Sampling.parse(spec), (16, 16))
    idx = Sampling.parse(spec).indices(times)
    assert np.allclose(picked_times, times[idx]) and np.array_equal(frames, all_frames[idx])


def test_backbone_file_rebuilt_for_another_frame_size_keeps_its_weights(tmp_path):
    import keras

    from foveal.models import ModelCard, build_model, save_model

    model = build_model("airbench", num_classes=3, input_shape=(16, 16, 3), width=4, wide=8)
    save_model(model, tmp_path / "cls.keras", ModelCard("airbench", ["a", "b", "c"], (16, 16, 3)))
    same = FeatureExtractor.create(str(tmp_path / "cls.keras"), (16, 16))
    bigger = FeatureExtractor.create(str(tmp_path / "cls.keras"), (32, 32))
    x = np.random.default_rng(0).integers(0, 256, (2, 16, 16, 3)).astype(np.float32)
    cut = keras.Model(model.input, model.get_layer("global_max").output)
    assert np.allclose(same(x), np.asarray(cut(x)), atol=1e-5)
    assert bigger.dim == same.dim == 8
    assert bigger.model.input_shape[1:3] == (32, 32)
    for a, b in zip(bigger.model.get_weights(), same.model.get_weights()):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("name", ["lstm", "gru", "bilstm", "avgpool"])
def test_padded_and_masked_equals_unpadded(name):
    from foveal.video.models import build_sequence_model

    rng = np.random.default_rng(1)
    seqs = [rng.normal(size=(3, 6)).astype(np.float32), rng.normal(size=(7, 6)).astype(np.float32)]
    model = build_sequence_model(name, steps=None, dim=6, num_classes=3, units=5, dense=4, deltas=name == "lstm",
                                 stats=([0.5] * 6, [2.0] * 6))
    padded, _ = pad_sequences(seqs, 9)
    together = np.asarray(model(padded, training=False))
    for i, s in enumerate(seqs):
        alone = np.asarray(model(s[None], training=False))
        assert np.allclose(together[i], alone[0], atol=1e-5)


def test_temporal_deltas_against_numpy():
    import keras

    from foveal.video.models import TemporalDeltas

    x = np.random.default_rng(2).normal(size=(2, 5, 3)).astype(np.float32)
    x[0, 3:] = 0  # padding
    inp = keras.Input((5, 3))
    out = TemporalDeltas()(keras.layers.Masking()(inp))
    got = np.asarray(keras.Model(inp, out)(x))
    ref_delta = np.concatenate([np.zeros((2, 1, 3)), np.abs(np.diff(x, axis=1))], axis=1)
    ref_delta[0, 3:] = 0
    assert np.allclose(got[..., :3], x) and np.allclose(got[..., 3:], ref_delta, atol=1e-6)


def test_standardize_uses_the_real_steps_statistics_and_keeps_the_mask():
    import keras

    from foveal.video.models import Standardize, feature_stats

    rng = np.random.default_rng(4)
    seqs = [rng.normal(3.0, 2.0, size=(n, 4)).astype(np.float32) for n in (2, 5, 3)]
    x, mask = pad_sequences(seqs)
    mean, std = feature_stats(x)
    rows = np.concatenate(seqs)
    assert np.allclose(mean, rows.mean(0)) and np.allclose(std, rows.std(0))  # padding left out
    inp = keras.Input((None, 4))
    masked = keras.layers.Masking()(inp)
    layer = Standardize(mean, std)
    out = layer(masked)
    assert np.allclose(np.asarray(keras.Model(inp, out)(x))[mask], (rows - rows.mean(0)) / rows.std(0), atol=1e-5)
    assert layer.compute_mask(x, np.asarray(mask)) is not None


def test_rotated_phone_video_is_decoded_upright(tmp_path):
    """A display matrix of 90 degrees (written into the MP4's track header, as phones do) turns the
    frames: OpenCV applies it, and probe reports the angle."""
    import struct

    frames = np.zeros((4, 16, 32, 3), np.uint8)
    frames[:, :, :8] = 255  # a white band on the left
    path = write_clip(tmp_path / "phone.mp4", frames)
    data = bytearray(path.read_bytes())
    at = data.find(b"tkhd")
    assert data[at + 4] == 0  # version 0 header: the matrix starts 40 bytes after the box's flags
    matrix = at + 8 + 20 + 8 + 8
    assert struct.unpack(">9I", data[matrix:matrix + 36])[8] == 0x40000000
    data[matrix:matrix + 36] = struct.pack(">9I", 0, 0x00010000, 0, 0xFFFF0000, 0, 0, 0, 0, 0x40000000)
    path.write_bytes(bytes(data))
    info = probe(path)
    assert info.rotation == 90 and (info.width, info.height) == (16, 32)
    got, _ = read_frames(path)
    assert got.shape == (4, 32, 16, 3)
    upright = np.rot90(frames[0], k=-1)  # clockwise: the left band becomes the top rows
    assert np.abs(got[0].astype(int) - upright).mean() < 8
