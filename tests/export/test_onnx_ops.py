"""Ops foveal teaches tf2onnx: the exact GELU's ``Erfc`` (airbench) as ``1 - Erf``, checked against TensorFlow."""

from __future__ import annotations

import numpy as np


def test_exact_gelu_converts_to_onnx_and_matches_tensorflow(tmp_path):
    import keras
    import onnx
    import onnxruntime as ort

    from foveal.export.onnx_ops import register

    register()
    register()  # idempotent
    inputs = keras.Input((8,))
    model = keras.Model(inputs, keras.layers.Activation("gelu")(inputs))
    model(np.zeros((1, 8), np.float32))
    model.export(str(tmp_path / "gelu.onnx"), format="onnx", verbose=False)
    ops = {node.op_type for node in onnx.load(str(tmp_path / "gelu.onnx")).graph.node}
    assert "Erf" in ops and "Erfc" not in ops
    session = ort.InferenceSession(str(tmp_path / "gelu.onnx"), providers=["CPUExecutionProvider"])
    x = np.linspace(-12, 12, 4000, dtype=np.float32).reshape(-1, 8)
    got = session.run(None, {session.get_inputs()[0].name: x})[0]
    want = np.asarray(model(x))
    assert np.abs(got - want).max() < 2e-6
    exact = 0.5 * x.astype(np.float64) * (1 + np.vectorize(__import__("math").erf)(x / np.sqrt(2)))
    assert np.abs(got - exact).max() < 2e-6  # and against the definition, in float64
