"""``foveal video train|evaluate|predict`` and ``foveal datasets inspect`` end to end on tiny
generated clips with a tiny random backbone (one training run shared by the file's tests)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from foveal.cli.main import main


@pytest.fixture(scope="module")
def trained(clip_folder, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("video-runs")
    rc = main(["video", "train", "--data", str(clip_folder), "--backbone", "airbench", "--backbone-options",
               "width=4,wide=8", "--frame-size", "16", "--sampling", "even:6", "--units", "8", "--dense", "8",
               "--epochs", "1", "--output", str(out), "--name", "run", "--no-progress"])
    assert rc == 0
    return out


def test_train_writes_the_run_with_baseline_and_cached_features(trained, clip_folder, capsys):
    run = trained / "run"
    for name in ("best.keras", "backbone.keras", "metrics.json", "report.html", "config.yaml"):
        assert (run / name).is_file(), name
    metrics = json.loads((run / "metrics.json").read_text())
    assert 0.0 <= metrics["accuracy"] <= 1.0 and "baseline_avgpool_accuracy" in metrics
    assert len(list((trained / "video-features").rglob("*.npy"))) == 12
    assert metrics["features_from_cache"] == 0
    # a second run with the same backbone and sampling reads every clip's features from the cache
    # (the data loading of `foveal video train`; a whole second run cost 2 s more and checked no more)
    from foveal.video.config import VideoConfig
    from foveal.video.task import load_features

    again = VideoConfig(data=str(clip_folder), backbone="airbench", backbone_options={"width": 4, "wide": 8},
                        frame_size=[16], sampling="even:6", model="avgpool", output=str(trained), progress=False)
    _, _, facts = load_features(again)
    assert facts["stats"]["cached"] == 12 and not facts["stats"].get("frames_extracted")


def test_cross_validation_reports_every_fold_and_the_mean():
    import numpy as np

    from foveal.video.config import VideoConfig
    from foveal.video.task import ClipSet, cross_validate

    rng = np.random.default_rng(0)
    y = np.array([0, 1] * 6)
    x = rng.normal(size=(12, 3, 4)).astype(np.float32) + y[:, None, None]  # separable
    clips = ClipSet(x, y, [f"c{i}" for i in range(12)])
    cfg = VideoConfig(folds=2, epochs=1, units=4, dense=0, batch_size=8, progress=False)
    result = cross_validate(cfg, clips, 2, ["avgpool"])
    scores = result["models"]["avgpool"]
    assert result["folds"] == 2 and len(scores["per_fold"]) == 2
    assert scores["mean"] == np.mean(scores["per_fold"]) and all(0 <= a <= 1 for a in scores["per_fold"])


def test_predict_timeline_csv_json_and_annotated_mp4(trained, clip_folder, tmp_path, capsys):
    from foveal.video.decode import probe

    clip = clip_folder / "up" / "c5.mp4"  # 13 frames at 10 fps
    rc = main(["predict", str(trained / "run" / "best.keras"), str(clip), "--output", str(tmp_path),
               "--window", "0.6", "--stride", "0.3", "--format", "json"])
    assert rc == 0
    rows = json.loads(capsys.readouterr().out)
    row = rows[0]
    assert row["label"] in ("up", "down") and row["frames"] == 13
    assert [w["start"] for w in row["timeline"]] == [0.0, 0.3, 0.6, 0.7]
    saved = json.loads((tmp_path / "c5.timeline.json").read_text())
    assert saved["timeline"] == row["timeline"]
    lines = (tmp_path / "c5.timeline.csv").read_text().splitlines()
    assert lines[0] == "start,end,label,probability,down,up" and len(lines) == 5
    info = probe(tmp_path / "c5.annotated.mp4")
    assert (info.width, info.height, info.frames) == (32, 24, 13)


def test_evaluate_and_bad_input_in_one_line(trained, clip_folder, tmp_path, capsys):
    model = str(trained / "run" / "best.keras")
    assert main(["video", "evaluate", model, "--data", str(clip_folder), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["num_examples"] == 12
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"nope")
    assert main(["video", "predict", model, str(bad)]) == 2
    err = capsys.readouterr().err
    assert "bad.mp4" in err and "cannot be opened" in err
    assert main(["video", "predict", model, str(bad), str(clip_folder / "up" / "c0.mp4"), "--skip-invalid"]) == 0
    assert "skipped 1" in capsys.readouterr().err


# Every mode that takes a model file, generic (`foveal MODE MODEL`) and under the task word
# (`foveal video MODE MODEL`), on a video model: it works (exit 0 and what it printed says so), or it
# is refused in one line that says what to run instead (exit 2). `serve` is tests/serve/test_video.py
# (its app, not a blocking server) and `export` tests/video/test_export.py (slow).
MODES = {
    "predict": (["predict", "{model}", "{clip}", "--format", "json"], 0, '"timeline"'),
    "evaluate": (["evaluate", "{model}", "--data", "{data}", "--json"], 0, '"num_examples": 12'),
    "benchmark": (["benchmark", "{model}", "--runtimes", "keras-call", "--runs", "2", "--warmup", "1",
                   "--batch-size", "2"], 0, "clip/s @2"),
    "video benchmark": (["video", "benchmark", "{model}", "--runtimes", "keras-predict", "--runs", "2", "--warmup",
                         "1", "--batch-size", "1", "--json"], 0, '"unit": "clips"'),
    "inspect": (["inspect", "{model}"], 2, "foveal inspect BACKBONE.keras"),
    "video inspect": (["video", "inspect", "{model}", "--json"], 2, "foveal inspect BACKBONE.keras"),
    "prune": (["prune", "{model}", "--data", "{data}"], 2, "foveal prune BACKBONE.keras"),
    "video prune": (["video", "prune", "{model}", "--data", "{data}"], 2, "foveal video train --backbone"),
    "video track": (["video", "track", "{model}", "{clip}"], 2, "not 'detect'"),
    "detect predict": (["detect", "predict", "{model}", "{clip}"], 2, "foveal video predict"),
}


@pytest.mark.parametrize("mode", list(MODES))
def test_every_model_mode_on_a_video_model_works_or_says_what_to_run(trained, clip_folder, mode, capsys):
    argv, code, said = MODES[mode]
    values = {"model": str(trained / "run" / "best.keras"), "clip": str(clip_folder / "up" / "c3.mp4"),
              "data": str(clip_folder)}
    assert main([a.format(**values) for a in argv]) == code
    out, err = capsys.readouterr()
    assert said in (out if code == 0 else err), (out, err)
    if code:
        assert len(err.strip().splitlines()) <= 2, err  # the error and its hint


def test_datasets_inspect_on_a_clip_folder(clip_folder, capsys):
    assert main(["datasets", "inspect", str(clip_folder), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["format"] == "video folder" and report["per_class"]["up"]["clips"] == 6
    assert sorted(report["frame_count_histogram"]["counts"]) and sum(report["frame_count_histogram"]["counts"]) == 12
    assert report["resolution"] == {"32x24": 12} and report["num_problems"] == 0
