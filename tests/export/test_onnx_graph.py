"""The ONNX graphs foveal writes, checked by structure (no timings): a float export keeps the
convolutions in one layout (no Transpose between them) with BatchNorm folded, and an int8 export
is one that ONNX Runtime turns into integer kernels (every Conv a QLinearConv, every residual Add
a QLinearAdd) instead of float kernels between Quantize/Dequantize pairs and layout Transposes.

The int8 check is the regression test for the slow int8 ONNX of recipes/deployment.md: with
signed int8 activations, ONNX Runtime left the convolutions after each residual Add, and the Adds
themselves, in float.
"""

from __future__ import annotations

import shutil
from collections import Counter

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")


def _ops(graph) -> Counter:
    return Counter(node.op_type for node in graph.node)


def _after_conv(graph) -> set[str]:
    """Names of the nodes downstream of any Conv (the graph's nodes are in topological order)."""
    tainted_tensors: set[str] = set()
    nodes = set()
    for node in graph.node:
        if node.op_type in ("Conv", "QLinearConv") or any(name in tainted_tensors for name in node.input):
            nodes.add(node.name)
            tainted_tensors.update(node.output)
    return nodes


@pytest.fixture(scope="module")
def onnx_files(tmp_path_factory):
    """A width-8 ResNet-18 (CIFAR stem, 32x32; residual Adds, projection shortcuts) with
    non-trivial BatchNorm statistics, exported to float ONNX and to int8 ONNX calibrated on 8
    seeded random images, plus the int8 graph as ONNX Runtime optimizes it."""
    import keras

    from foveal.export.formats import _quantize_onnx, write_export
    from foveal.models import ModelCard, build_model

    root = tmp_path_factory.mktemp("onnx_graph")
    model = build_model("resnet18", num_classes=10, input_shape=(32, 32, 3), stem="cifar", width=8)
    rng = np.random.default_rng(0)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([rng.uniform(0.5, 1.5, gamma.shape), rng.normal(0, 0.1, beta.shape),
                               rng.normal(0, 0.1, mean.shape), rng.uniform(0.5, 1.5, var.shape)])
    card = ModelCard("resnet18", [str(i) for i in range(10)], (32, 32, 3))
    float_path = write_export(model, card, "onnx", root / "float.onnx", None)
    # Quantize a copy of the float file: the same code path as write_onnx(quantize="int8"),
    # without converting the Keras model a second time.
    raw = root / "raw" / "model.onnx"
    raw.parent.mkdir()
    shutil.copy(float_path, raw)
    calibration = [rng.uniform(0, 255, (1, 32, 32, 3)).astype(np.float32) for _ in range(8)]
    int8_path = root / "int8.onnx"
    _quantize_onnx(raw, int8_path, "int8", lambda: iter(calibration))
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.optimized_model_filepath = str(root / "int8.optimized.onnx")
    ort.InferenceSession(str(int8_path), options, providers=["CPUExecutionProvider"])
    return {"float": onnx.load(str(float_path)), "int8": onnx.load(str(int8_path)),
            "int8_optimized": onnx.load(str(root / "int8.optimized.onnx")), "float_path": float_path,
            "int8_path": int8_path, "probe": rng.uniform(0, 255, (2, 32, 32, 3)).astype(np.float32)}


def test_float_onnx_has_no_transpose_between_convolutions(onnx_files):
    graph = onnx_files["float"].graph
    ops = _ops(graph)
    assert ops["Conv"] == 20, ops  # 1 stem + 16 in 8 basic blocks + 3 projections
    assert ops["BatchNormalization"] == 0, "BatchNorm must be folded into the convolutions"
    downstream = _after_conv(graph)
    late = [n.name for n in graph.node if n.op_type == "Transpose" and n.name in downstream]
    assert not late, f"layout Transposes after the first convolution: {late}"
    assert ops["Transpose"] <= 2, ops  # the NHWC input to NCHW, nothing else


def test_int8_onnx_is_u8s8_per_channel_qdq(onnx_files):
    graph = onnx_files["int8"].graph
    initializers = {t.name: t for t in graph.initializer}
    quantize_types = {initializers[n.input[2]].data_type for n in graph.node if n.op_type == "QuantizeLinear"}
    assert quantize_types == {onnx.TensorProto.UINT8}, "activations are quantized to uint8"
    weight_dq = [n for n in graph.node if n.op_type == "DequantizeLinear" and n.input[0] in initializers
                 and initializers[n.input[0]].data_type == onnx.TensorProto.INT8
                 and len(initializers[n.input[0]].dims) == 4]
    assert len(weight_dq) == 20  # every convolution kernel, int8
    assert all(len(initializers[n.input[1]].dims) == 1 and initializers[n.input[1]].dims[0] > 1
               for n in weight_dq), "per-channel weight scales"


def test_onnx_runtime_fuses_every_int8_convolution_and_add(onnx_files):
    ops = _ops(onnx_files["int8_optimized"].graph)
    float_ops = _ops(onnx_files["float"].graph)
    assert ops["QLinearConv"] == 20 and ops["Conv"] == 0, ops
    assert ops["QLinearAdd"] == float_ops["Add"] == 8 and ops["Add"] == 0, ops
    # The runtime may move the integer convolutions to NHWC, but then with one Transpose at the
    # input, not one around each convolution that stayed float.
    assert ops["Transpose"] <= float_ops["Transpose"] + 2, ops
    assert ops["QuantizeLinear"] + ops["DequantizeLinear"] <= 4, ops


def test_int8_onnx_runs_close_to_float(onnx_files):
    from foveal.export.runners import OnnxRunner, write_export_card
    from foveal.models import ModelCard

    card = ModelCard("resnet18", [str(i) for i in range(10)], (32, 32, 3))
    for key in ("float_path", "int8_path"):
        write_export_card(onnx_files[key], card)
    x = onnx_files["probe"]
    reference = OnnxRunner(onnx_files["float_path"], threads=1)(x)
    runner = OnnxRunner(onnx_files["int8_path"], threads=1)
    assert runner._session.get_session_options().get_session_config_entry(
        "session.intra_op.allow_spinning") == "0"
    assert np.allclose(runner(x).sum(axis=1), 1.0, atol=0.02)  # outputs in steps of 1/255
    assert np.abs(runner(x) - reference).max() < 0.2
