"""The benchmark scripts' defaults name things that exist: a wrong default model name once made
`benchmarks/zoo_throughput.py` fail after minutes of measuring."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from foveal.models.registry import MODELS

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_zoo_throughput_defaults_are_registered_models():
    zoo = _load("zoo_throughput")
    assert [zoo.parse_model(spec)[0] for spec in zoo.DEFAULT_MODELS if zoo.parse_model(spec)[0] not in MODELS] == []


def test_zoo_throughput_rejects_unknown_models_before_measuring(capsys):
    zoo = _load("zoo_throughput")
    with pytest.raises(SystemExit) as exit_info:
        zoo.main(["--models", "mobilenet_v2:224"])
    assert exit_info.value.code == 2
    assert "unknown models" in capsys.readouterr().err


def test_throughput_profile_defaults_are_registered_models():
    profile = _load("throughput_profile")
    names = [profile.parse_spec(spec)[0] for spec in profile.DEFAULT_MODELS]
    assert names == ["resnet18", "resnet50", "airbench"] and all(n in MODELS for n in names)
    assert profile.parse_spec("airbench:32@256") == ("airbench", (32, 32, 3), 256, {})
    assert profile.parse_spec('airbench28:28x1@256/{"stem": 0, "widths": [32, 64, 128]}') == (
        "airbench28", (28, 28, 1), 256, {"stem": 0, "widths": [32, 64, 128]})
    assert profile.VARIANTS["bfloat16+xla"] == ("bfloat16", True) and profile.VARIANTS["float32"] == ("none", False)


def test_throughput_profile_sums_op_types_from_a_trace(tmp_path):
    """The op table is read from the profiler's XSpace: op events `name:Type` summed per type,
    framework and tf.data events left out."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    profile = _load("throughput_profile")
    space = xplane_pb2.XSpace()
    plane = space.planes.add(name="/host:CPU")
    names = {1: "model/conv/Conv2D:_MklNativeConv2D", 2: "model/conv2/Conv2D:_MklNativeConv2D",
             3: "ExecutorState::Process", 4: "Iterator::Prefetch", 5: "gradient/Mul:Mul", 6: "x: MakeIterator"}
    for key, name in names.items():
        plane.event_metadata[key].id = key
        plane.event_metadata[key].name = name
    line = plane.lines.add(name="tf_Compute/1")
    for key, ps in [(1, 3e12), (2, 1e12), (3, 9e12), (4, 9e12), (5, 1e12), (6, 9e12)]:
        line.events.add(metadata_id=key, duration_ps=int(ps))
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "host.xplane.pb").write_bytes(space.SerializeToString())
    assert profile.op_type_totals(str(tmp_path)) == {"_MklNativeConv2D": 4.0, "Mul": 1.0}


def test_time_to_accuracy_cifar10_runs_the_faithful_airbench_recipe():
    tta = _load("time_to_accuracy")
    args = tta.parse_args(["--dataset", "cifar10", "--seeds", "0", "1", "2", "--data-root", "data"])
    assert (args.recipe, args.model, args.model_options, args.epochs) == ("airbench", None, None, None)
    assert args.only == "foveal" and args.cache == "memory" and args.seeds == [0, 1, 2]
    fashion = tta.parse_args(["--dataset", "fashion", "--data-root", "data"])
    assert (fashion.recipe, fashion.model, fashion.epochs) == ("fast-fashion", None, None)
    mnist = tta.parse_args(["--dataset", "mnist", "--data-root", "data"])
    assert (mnist.recipe, mnist.model, mnist.epochs) == ("fast-mnist", None, None)
    runs = [{"reached_target": True, "seconds_to_target": s, "final_test_accuracy": a, "best_test_accuracy": a,
             "images_per_second": 500.0} for s, a in [(100.0, 0.94), (300.0, 0.95), (200.0, 0.941)]]
    summary = tta.median_summary(runs, {"bfloat16": 200.0})
    assert summary["median_seconds_to_target"] == 200.0 and summary["median_seconds_to_target_at_400_gflops"] == 100.0
    assert tta.median_summary(runs[:2] + [runs[2] | {"reached_target": False}], None)["median_seconds_to_target"] is None


def test_benchmarks_take_the_shared_datasets_as_an_argument(capsys):
    """No benchmark defaults to a folder outside the repository: the data path is required."""
    tta = _load("time_to_accuracy")
    with pytest.raises(SystemExit) as exit_info:
        tta.parse_args(["--dataset", "mnist"])
    assert exit_info.value.code == 2 and "--data-root" in capsys.readouterr().err
    outside = [p.name for p in sorted(BENCHMARKS.glob("*.py")) if '"shared" / "datasets"' in p.read_text()]
    assert outside == []
