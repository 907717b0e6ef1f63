"""End-to-end video models on raw frames: the (2+1)D parameter count against the 3D convolution's,
padding masked away exactly, the frozen-backbone phase, the frame pipeline (in memory, cached on
disk, or decoded every epoch) and the options that cannot apply said in one line."""

from __future__ import annotations

import numpy as np
import pytest

from foveal.video.endtoend import (
    FRAME_CNN,
    PAD_VALUE,
    build_end_to_end,
    pad_clips,
    padded_input,
    r2plus1d_mid_channels,
)


@pytest.mark.parametrize("n_in,n_out,t,d", [(64, 64, 3, 3), (3, 45, 3, 7), (128, 256, 3, 3), (16, 16, 5, 3)])
def test_r2plus1d_mid_channels_match_the_3d_convolution_parameter_count(n_in, n_out, t, d):
    full = t * d * d * n_in * n_out
    mid = r2plus1d_mid_channels(n_in, n_out, t, d)
    pair = d * d * n_in * mid + t * mid * n_out
    one_more = d * d * n_in * (mid + 1) + t * (mid + 1) * n_out
    assert pair <= full < one_more  # the largest M whose pair does not exceed the 3D convolution
    assert full - pair < d * d * n_in + t * n_out


def test_r2plus1d_blocks_hold_as_many_weights_as_the_3d_convolutions_they_replace():
    import keras

    model = build_end_to_end("r2plus1d", steps=4, frame_hw=(16, 16), num_classes=2, filters=8)
    channels = 3
    for stage, out in enumerate((8, 16, 32), start=1):
        pair = sum(int(np.prod(model.get_layer(f"r21d_{stage}_{half}").kernel.shape))
                   for half in ("spatial", "temporal"))
        conv3d = keras.layers.Conv3D(out, 3, use_bias=False)
        conv3d.build((None, 4, 8, 8, channels))
        full = conv3d.count_params()
        assert full - (9 * channels + 3 * out) < pair <= full, (stage, pair, full)
        channels = out


@pytest.fixture(scope="module")
def frame_backbone():
    from foveal.video.features import FeatureExtractor

    return FeatureExtractor.create("airbench", (16, 16), options={"width": 4, "wide": 8}).model


@pytest.mark.parametrize("name", ["cnn-lstm", "convlstm", "r2plus1d"])
def test_a_padded_clip_gets_the_unpadded_clips_prediction(name, frame_backbone):
    import keras

    keras.utils.set_random_seed(0)
    short = build_end_to_end(name, steps=3, frame_hw=(16, 16), num_classes=3, backbone=frame_backbone, units=4,
                             dense=4, filters=4)
    long = build_end_to_end(name, steps=6, frame_hw=(16, 16), num_classes=3, backbone=frame_backbone, units=4,
                            dense=4, filters=4)
    long.set_weights(short.get_weights())
    clip = np.random.default_rng(2).integers(0, 256, (1, 3, 16, 16, 3)).astype(np.uint8)
    padded, lengths = pad_clips([clip[0]], 6)
    alone = np.asarray(short(padded_input(clip, [3]), training=False))
    together = np.asarray(long(padded_input(padded, lengths), training=False))
    assert np.allclose(alone, together, atol=1e-5)
    unmasked = np.asarray(long(padded.astype(np.float32), training=False))  # zero frames taken as real
    assert np.abs(unmasked - together).max() > 1e-6


def test_pad_clips_and_model_input():
    clips = [np.full((2, 4, 4, 3), 7, np.uint8), np.full((5, 4, 4, 3), 9, np.uint8)]
    x, lengths = pad_clips(clips, 4)
    assert x.shape == (2, 4, 4, 4, 3) and lengths.tolist() == [2, 4]
    assert (x[0, 2:] == 0).all() and (x[1] == 9).all()  # the longer clip is cut
    inputs = padded_input(x, lengths)
    assert (inputs[0, 2:] == PAD_VALUE).all() and (inputs[0, :2] == 7).all() and (inputs[1] == 9).all()


def test_frozen_phase_freezes_the_frame_cnn_only_and_options_that_cannot_apply_say_so(frame_backbone, capsys):
    from foveal.video.config import VideoConfig
    from foveal.video.task import VideoTask

    task = VideoTask()
    model = build_end_to_end("cnn-lstm", steps=3, frame_hw=(16, 16), num_classes=2, backbone=frame_backbone, units=4)
    frozen, whole = task.phases(VideoConfig(model="cnn-lstm", epochs=3, freeze_backbone_epochs=1))
    assert (frozen.epochs, whole.epochs) == (1, 2)
    cnn = {id(v) for v in model.get_layer(FRAME_CNN).weights}
    frozen.trainable(model)
    assert model.trainable_weights and not any(id(v) in cnn for v in model.trainable_weights)
    whole.trainable(model)
    learned = {id(v) for v in model.get_layer(FRAME_CNN).trainable_weights}
    assert learned and learned <= {id(v) for v in model.trainable_weights}
    capsys.readouterr()
    for name in ("lstm", "r2plus1d"):
        assert len(task.phases(VideoConfig(model=name, epochs=3, freeze_backbone_epochs=1))) == 1
        out = capsys.readouterr().out.strip().splitlines()
        assert len(out) == 1 and "--freeze-backbone-epochs 1" in out[0] and "ignored" in out[0]
    task.check(VideoConfig(model="convlstm", deltas=True))
    assert "--deltas" in capsys.readouterr().out


def test_frames_are_decoded_once_cached_on_disk_or_streamed_every_epoch(clip_folder, tmp_path):
    from foveal.video.config import VideoConfig
    from foveal.video.task import VideoTask, load_frames

    cfg = VideoConfig(data=str(clip_folder), model="r2plus1d", frame_size=[8], sampling="even:4",
                      output=str(tmp_path), val_split=0.25, batch_size=4, progress=False)
    clips, names, facts = load_frames(cfg)
    assert clips.x.shape == (12, 4, 8, 8, 3) and clips.x.dtype == np.uint8 and not facts["stats"].get("cached")
    assert len(list((tmp_path / "video-features").rglob("*.npy"))) == 12
    again, _, facts2 = load_frames(cfg)
    assert facts2["stats"]["cached"] == 12 and np.array_equal(again.x, clips.x)
    task = VideoTask()
    data = task.load_data(cfg)
    _, val = task.pipelines(cfg, data, seed=0)
    in_memory = np.concatenate([np.asarray(b[0]) for b in val])
    cfg.cache = "none"
    streamed = task.load_data(cfg)
    assert streamed.extra["stream"] and streamed.train.x is None and streamed.extra["steps"] == 4
    _, val = task.pipelines(cfg, streamed, seed=0)
    assert np.array_equal(np.concatenate([np.asarray(b[0]) for b in val]), in_memory)
    assert np.array_equal(in_memory, data.val.inputs())


@pytest.mark.slow
def test_cnn_lstm_end_to_end_from_the_cli_frozen_phase_mixed_precision_predict(clip_folder, tmp_path, capsys):
    import json

    from foveal.cli.main import main

    args = ["video", "train", "--data", str(clip_folder), "--model", "cnn-lstm", "--backbone", "airbench",
            "--backbone-options", "width=4,wide=8", "--frame-size", "16", "--sampling", "even:4", "--units", "4",
            "--dense", "0", "--epochs", "2", "--freeze-backbone-epochs", "1", "--mixed-precision", "bfloat16",
            "--jit-compile", "off", "--time-budget", "300", "--output", str(tmp_path), "--name", "run",
            "--no-progress"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "phase 1: backbone frozen" in out and "phase 2: the whole model trains" in out
    run = tmp_path / "run"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["frames_from_cache"] == 0 and "baseline_avgpool_accuracy" in metrics
    assert not (run / "backbone.keras").exists()  # the CNN is inside the model
    assert main(["video", "evaluate", str(run / "best.keras"), "--data", str(clip_folder), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["num_examples"] == 12
    assert main(["video", "predict", str(run / "best.keras"), str(clip_folder / "up" / "c5.mp4"), "--format", "json",
                 "--window", "0.6", "--stride", "0.3"]) == 0
    row = json.loads(capsys.readouterr().out)[0]
    assert row["label"] in ("up", "down") and len(row["timeline"]) == 4


def test_feature_models_with_cache_none_neither_read_nor_write_the_feature_cache(clip_folder, tmp_path, capsys):
    from foveal.video.config import VideoConfig
    from foveal.video.task import load_features

    cfg = VideoConfig(data=str(clip_folder), backbone="airbench", backbone_options={"width": 4, "wide": 8},
                      frame_size=[16], sampling="even:3", output=str(tmp_path), cache="none", progress=False)
    clips, _, facts = load_features(cfg)
    assert clips.x.shape[:2] == (12, 3) and facts["cache"] is None and not facts["stats"].get("cached")
    assert not (tmp_path / "video-features").exists()
    assert "feature cache not used" in capsys.readouterr().out
