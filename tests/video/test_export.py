"""``foveal export`` of video classifiers: one graph from raw frames and lengths to probabilities,
checked against the Keras route (backbone, then head) on clips of different lengths, and run on a
video file exactly as ``foveal video predict`` runs the ``.keras`` model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from foveal.cli.main import main
from tests.video.conftest import moving_square, write_clip, write_video_model


@pytest.fixture(scope="module")
def feature_run(tmp_path_factory) -> Path:
    return write_video_model(tmp_path_factory.mktemp("video-export") / "run", "lstm")


@pytest.fixture(scope="module")
def onnx_export(feature_run, tmp_path_factory) -> tuple[Path, dict]:
    """The LSTM run exported through the command line (``foveal video export``), and its JSON report."""
    import contextlib
    import io

    target = feature_run.with_name("best.onnx")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = main(["video", "export", str(feature_run), "--format", "onnx", "--samples", "8", "--json"])
    assert rc == 0
    return target, json.loads(out.getvalue())


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return write_clip(tmp_path_factory.mktemp("video-export-clip") / "c.mp4", moving_square(23, 1))


@pytest.mark.slow
def test_export_report_parity_on_clips_of_different_lengths(onnx_export):
    path, report = onnx_export
    assert path.is_file() and report["passed"] and report["task"] == "video"
    assert report["samples"] == 8 and report["max_abs_diff"] < 1e-4 and report["top1_agreement"] == 1.0
    assert report["parameters"] > 0
    card = json.loads(path.with_name(path.name + ".foveal.json").read_text())
    assert card["task"] == "video"
    assert card["training"]["export_inputs"]["frames"] == {
        "shape": [None, 4, 16, 16, 3], "dtype": "uint8", "layout": card["training"]["export_inputs"]["frames"]["layout"]}
    assert card["training"]["export_inputs"]["lengths"]["dtype"] == "int32"


@pytest.mark.slow
def test_onnx_graph_takes_frames_and_lengths_and_masks_the_padding(onnx_export, feature_run):
    """The graph's padding is the lengths' business: whatever the padding frames hold, a clip's
    answer is that of its real frames, and it equals the Keras route's (backbone, then head)."""
    import onnxruntime as ort

    from foveal.video.predict import load_video_model

    path, _ = onnx_export
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    inputs = {i.name: (i.type, i.shape[1:]) for i in session.get_inputs()}
    assert inputs == {"frames": ("tensor(uint8)", [4, 16, 16, 3]), "lengths": ("tensor(int32)", [])}
    rng = np.random.default_rng(3)
    frames = rng.integers(0, 256, (3, 4, 16, 16, 3), dtype=np.uint8)
    lengths = np.array([4, 2, 1], np.int32)
    noisy = session.run(None, {"frames": frames, "lengths": lengths})[0]
    cleared = frames.copy()
    for i, n in enumerate(lengths):
        cleared[i, n:] = 0
    assert np.allclose(session.run(None, {"frames": cleared, "lengths": lengths})[0], noisy, atol=1e-6)
    keras_route = load_video_model(feature_run).classify_frames([frames[i, :n] for i, n in enumerate(lengths)])
    assert np.abs(keras_route - noisy).max() < 1e-5
    assert not np.allclose(noisy[1], noisy[2], atol=1e-4)  # the lengths change the answer


@pytest.mark.slow
def test_export_runs_on_a_video_file_as_video_predict_does(onnx_export, feature_run, clip, capsys):
    from foveal.video.predict import ExportedVideoModel, load_video_model, predict_video

    exported = load_video_model(onnx_export[0])
    assert isinstance(exported, ExportedVideoModel) and exported.steps == 4
    got = predict_video(exported, clip, window=0.8, stride=0.4)
    want = predict_video(load_video_model(feature_run), clip, window=0.8, stride=0.4)
    assert got["label"] == want["label"] and len(got["timeline"]) == len(want["timeline"]) == 5
    for a, b in zip(got["timeline"], want["timeline"]):
        assert (a["start"], a["end"], a["label"]) == (b["start"], b["end"], b["label"])
        assert max(abs(a["probabilities"][k] - b["probabilities"][k]) for k in a["probabilities"]) <= 1e-4
    # the command line takes the export too
    assert main(["video", "predict", str(onnx_export[0]), str(clip), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["label"] == want["label"]


def test_coreml_and_uncalibrated_int8_video_exports_are_refused_in_one_line(feature_run, capsys):
    assert main(["export", str(feature_run), "--format", "coreml"]) == 2
    err = capsys.readouterr().err
    assert "coreml export takes one image" in err and len(err.strip().splitlines()) <= 2
    assert main(["export", str(feature_run), "--format", "onnx", "--quantize", "int8"]) == 2
    err = capsys.readouterr().err
    assert "needs calibration clips" in err and "--data" in err and len(err.strip().splitlines()) <= 2
    assert not feature_run.with_name("best.int8.onnx").exists()
    assert main(["export", str(feature_run), "--format", "tflite", "--quantize", "int8", "--data", "x/"]) == 2
    err = capsys.readouterr().err
    assert "not offered for a recurrent video model (lstm" in err and "--format onnx --quantize int8" in err


@pytest.mark.slow  # the CLI cases of tests/video/test_cli.py time a video model in the default tier
def test_benchmark_times_clips_in_the_keras_runtimes(feature_run, capsys):
    """`foveal benchmark` on a video model: clips (frames and lengths) -> probabilities at batch 1 and
    at each batch size, and end to end a video file -> the clip's label, the same label as the Keras
    route `foveal video predict` runs on the same sampled frames."""
    from foveal.export.benchmark import benchmark, format_benchmark
    from foveal.export.tasks import load
    from foveal.video.export_check import benchmark_end_to_end
    from foveal.video.features import clip_frames

    table = benchmark(feature_run, runtimes=("keras-predict", "keras-call"), warmup=1, runs=2, batch_size=[1, 3])
    assert [r["runtime"] for r in table["results"]] == ["keras-predict", "keras-call"]
    vm, card = load(feature_run)
    assert table["parameters"] == vm.count_params() > vm.head.count_params()  # the backbone counts
    for r in table["results"]:
        assert r["task"] == "video" and r["unit"] == "clips" and set(r["throughput_by_batch_size"]) == {"1", "3"}
        assert r["batch1"]["p50_ms"] > 0 and r["batch1_end_to_end"]["p50_ms"] > 0
    assert "clip/s @3" in format_benchmark(table) and "video file decoded" in format_benchmark(table)
    e2e = benchmark_end_to_end(vm, card)
    answer = e2e()
    frames = clip_frames(Path(e2e.folder.name) / "clip.mp4", vm.sampling, vm.extractor.frame_size)
    want = vm.classify_frames([frames])[0]
    assert answer["label"] == card.class_names[int(np.argmax(want))]
    assert abs(answer["predictions"][0]["probability"] - float(want.max())) < 1e-5
    # the command line, on the model file
    assert main(["benchmark", str(feature_run), "--runtimes", "keras-call", "--runs", "2", "--warmup", "1",
                 "--batch-size", "2", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["results"][0]["unit"] == "clips"


@pytest.mark.slow
def test_benchmark_every_runtime_of_a_video_model_and_one_export(feature_run, onnx_export):
    from foveal.export.benchmark import benchmark

    table = benchmark(feature_run, warmup=1, runs=2, batch_size=[1, 2])
    assert [r["runtime"] for r in table["results"]] == ["keras-predict", "keras-call", "savedmodel", "tflite", "onnx"]
    assert all(r["unit"] == "clips" and r["throughput_by_batch_size"]["2"] > 0 for r in table["results"])
    one = benchmark(onnx_export[0], warmup=1, runs=2, batch_size=[2])
    assert one["results"][0]["runtime"] == "onnx" and one["results"][0]["batch1_end_to_end"]["p50_ms"] > 0


@pytest.mark.parametrize("model", ["gru", "r2plus1d"])
def test_export_graph_masks_the_padding_and_matches_the_keras_route(model, tmp_path):
    """The one graph (frames and lengths in) against the Keras route that `foveal video predict`
    runs (backbone on the real frames, then the head on zero-padded features; or the end-to-end
    model on frames padded with -1), on clips of 4, 3 and 1 real frames; garbage in the padding
    frames changes nothing."""
    from foveal.export.tasks import export_graph, load
    from foveal.video.export_check import random_inputs, split_clips

    vm, card = load(write_video_model(tmp_path / model, model))
    graph = export_graph(vm, card)
    assert [t.name for t in graph.inputs] == ["frames", "lengths"] and graph.inputs[0].dtype == "uint8"
    frames, lengths = split_clips(random_inputs(card, 4, seed=2)[[0, 1, 3]])
    assert lengths.tolist() == [4, 3, 1] and not frames[2, 1:].any()
    got = np.asarray(graph([frames, lengths])["probabilities"])
    want = vm.classify_frames([frames[i, :n] for i, n in enumerate(lengths)])
    assert np.abs(got - want).max() < 1e-5
    noisy = frames.copy()
    noisy[2, 1:] = 255
    assert np.abs(np.asarray(graph([noisy, lengths])["probabilities"]) - got).max() < 1e-6
    full = np.random.default_rng(5).integers(1, 256, frames.shape, dtype=np.uint8)  # the lengths change the answer
    three, four = (np.asarray(graph([full, np.array([4, n, 1], np.int32)])["probabilities"])[1] for n in (3, 4))
    assert np.abs(three - four).max() > 1e-6


@pytest.mark.slow
@pytest.mark.parametrize("model,fmt", [("lstm", "tflite"), ("r2plus1d", "onnx"), ("cnn-lstm", "savedmodel")])
def test_every_route_and_format_matches_keras(model, fmt, tmp_path, clip_folder):
    from foveal.export import export_model

    best = write_video_model(tmp_path / model, model)
    data = str(clip_folder) if model == "r2plus1d" else None  # parity on decoded clips and accuracy side by side
    report = export_model(best, fmt, samples=5, data=data)
    assert report.passed and report.max_abs_diff < 1e-4 and report.samples == 5, report.summary()
    if data:
        assert report.accuracy_metric == "accuracy" and report.accuracy["difference"] == 0.0
    from foveal.video.predict import load_video_model

    exported = load_video_model(report.path)
    frames = np.random.default_rng(1).integers(0, 256, (3, 4, 16, 16, 3), dtype=np.uint8)
    clips = [frames[0], frames[1, :3], frames[2, :1]]  # batch of 3: a batch-1 TFLite graph runs them one by one
    want = load_video_model(best).classify_frames(clips)
    assert np.abs(exported.classify_frames(clips) - want).max() < 1e-4


@pytest.mark.slow
@pytest.mark.parametrize("model", ["cnn-lstm", "convlstm", "r2plus1d"])
def test_end_to_end_models_export_to_the_formats_test_above_leaves_out(model, tmp_path):
    """With the test above, every end-to-end architecture in SavedModel, ONNX and TFLite, parity on
    clips of 4, 3, 2 and 1 real frames (TimeDistributed CNN + LSTM, ConvLSTM2D and (2+1)D)."""
    from foveal.export import export_model

    best = write_video_model(tmp_path / model, model)
    done = {"cnn-lstm": "savedmodel", "r2plus1d": "onnx"}.get(model)
    for fmt in ("savedmodel", "onnx", "tflite"):
        if fmt == done:
            continue
        report = export_model(best, fmt, samples=4)
        assert report.passed and report.max_abs_diff < 1e-4 and report.top1_agreement == 1.0, (fmt, report.summary())


@pytest.mark.slow
@pytest.mark.parametrize("model,fmt,quantize", [("lstm", "tflite", "dynamic"), ("avgpool", "tflite", "int8"),
                                                ("lstm", "onnx", "dynamic"), ("lstm", "onnx", "int8")])
def test_quantized_video_exports_agree_with_keras_on_clips(model, fmt, quantize, clip_folder, tmp_path):
    """The feature route (backbone per frame + masked LSTM, or the average) quantized: int8 calibrated on
    clips of the folder; parity on decoded clips within the quantization's tolerance, accuracy beside Keras."""
    from foveal.export import export_model

    best = write_video_model(tmp_path / model, model)
    report = export_model(best, fmt, tmp_path / f"q.{fmt}", quantize=quantize, data=str(clip_folder),
                          samples=4, calibration=4)
    assert report.passed and report.quantize == quantize and report.samples == 4, report.summary()
    assert report.top1_agreement >= 0.75 and abs(report.accuracy["difference"]) <= 1 / 6
    card = json.loads((tmp_path / f"q.{fmt}.foveal.json").read_text())
    assert card["export"]["quantize"] == quantize and card["task"] == "video"
