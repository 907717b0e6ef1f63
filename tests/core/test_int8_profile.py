"""benchmarks/int8_runtimes.py's per-operator modes (``tflite-layers``, ``onnx-profile``): the
layer inventory against MobileNetV2's published structure, a one-layer model against the layer
it was cut from, the execution-plan reader on a converted one-layer TFLite model, and the ONNX
Runtime profile table on hand-made profiler events."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "int8_runtimes.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("int8_runtimes", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def specs(bench):
    from foveal.models import build_model

    model = build_model("mobilenetv2", num_classes=10, input_shape=(32, 32, 3), alpha=0.35)
    return bench.layer_specs(model)


def test_layer_inventory_matches_mobilenetv2(specs):
    counts: dict[str, int] = {}
    for spec in specs:
        counts[spec["kind"]] = counts.get(spec["kind"], 0) + spec["count"]
    # Sandler et al. 2018, Table 2: stem + 16 expand + 17 project + head = 35 convolutions,
    # 17 depthwise, and a shortcut Add in the 10 units of stride 1 with unchanged channels.
    assert counts == {"Conv2D": 35, "DepthwiseConv2D": 17, "Add": 10, "Dense": 1, "GlobalAveragePooling2D": 1}
    by_category = {s["category"]: s for s in specs}
    assert {"conv 3x3 s2 (stem)", "depthwise 3x3", "depthwise 3x3 s2", "conv 1x1 (expand)",
            "conv 1x1 (project)", "conv 1x1 (head)", "add"} <= set(by_category)
    assert by_category["conv 1x1 (expand)"]["relu6"] and not by_category["conv 1x1 (project)"]["relu6"]
    assert sum(s["count"] for s in specs if s["category"].startswith("depthwise 3x3 s2")) == 4


def test_one_layer_model_computes_the_layer(bench, specs):
    spec = next(s for s in specs if s["category"] == "depthwise 3x3" and s["relu6"])
    model = bench.one_layer_model(spec)
    x = np.random.default_rng(0).uniform(0, 6, (2, *spec["input_shapes"][0])).astype(np.float32)
    expected = np.clip(np.asarray(spec["_layer"](x)), 0, 6)  # the original layer, then ReLU6
    np.testing.assert_allclose(np.asarray(model(x)), expected, rtol=1e-5, atol=1e-5)


def test_int8_one_layer_tflite_is_that_operator_alone(bench, specs, tmp_path):
    spec = next(s for s in specs if s["category"] == "depthwise 3x3")
    path = tmp_path / "dw.int8.tflite"
    path.write_bytes(bench.convert_one_layer(bench.one_layer_model(spec), quantize=True, samples=2))
    builtin = bench.tflite_interpreter(path, "builtin", 1, 2)
    assert builtin.get_input_details()[0]["dtype"] == np.int8
    assert list(builtin.get_input_details()[0]["shape"]) == [2, *spec["input_shapes"][0]]
    plan = bench.execution_plan(builtin)
    assert plan["original_nodes"] == {"DEPTHWISE_CONV_2D": 1} and plan["delegate_partitions"] == []
    delegated = bench.execution_plan(bench.tflite_interpreter(path, "xnnpack", 1, 2))
    assert delegated["original_nodes"] == {"DEPTHWISE_CONV_2D": 1}
    assert delegated["whole_graph_in_delegate"] and len(delegated["delegate_partitions"]) == 1


def test_onnx_profile_table_splits_convolutions_and_skips_warmup(bench):
    def node(name, op, ts, dur):
        return {"cat": "Node", "name": f"{name}_kernel_time", "ts": ts, "dur": dur, "args": {"op_name": op}}

    def run(ts, dur):
        return {"cat": "Session", "name": "model_run", "ts": ts, "dur": dur}

    events = [run(0, 100), node("dw", "QLinearConv", 10, 50),  # warm-up call: left out
              run(200, 40), node("dw", "QLinearConv", 205, 20), node("pw", "QLinearConv", 226, 10),
              node("add", "QLinearAdd", 237, 2),
              run(300, 50), node("dw", "QLinearConv", 305, 22), node("pw", "QLinearConv", 328, 12),
              node("add", "QLinearAdd", 341, 2)]
    kept = bench.after_warmup(events, 1)
    assert all(e["ts"] >= 100 for e in kept) and len(kept) == 8
    table = bench.onnx_profile_table(kept, {"dw": "depthwise", "pw": "conv 1x1"})
    # per call, medians of the two profiled calls: dw 20/22, pw 10/12, add 2/2; kernels 32/36; wall 40/50
    assert table["ops"]["QLinearConv (depthwise)"] == {"us_per_call": 21.0, "share_percent": 61.8, "nodes": 1}
    assert table["ops"]["QLinearConv (conv 1x1)"]["us_per_call"] == 11.0
    assert table["kernel_us_per_call"] == 34.0 and table["profiled_calls"] == 2
    assert table["model_run_us_median"] == 45.0 and table["outside_kernels_us"] == 11.0
