"""TensorFlow ops that tf2onnx does not convert, taught to it in ONNX ops (registered once, before a conversion).

* ``Erfc``: TensorFlow's exact GELU (``keras.activations.gelu``, the airbench zoo model's
  activation) is ``0.5 x erfc(-x / sqrt 2)``; ONNX has ``Erf`` (opset 9) but no ``Erfc``, so
  tf2onnx 1.17 left the op in and ONNX Runtime refused the graph ("No Op registered for Erfc").
  It is written as ``1 - Erf(x)``: the absolute error stays at float32 rounding (tested against
  TensorFlow), which is what GELU's output needs (its ``x * erfc`` product vanishes where
  ``erfc`` loses relative precision).

Example:
    >>> register()  # doctest: +SKIP
"""

from __future__ import annotations

_REGISTERED = False


def register() -> None:
    """Teach tf2onnx the ops above (idempotent; a no-op without tf2onnx)."""
    global _REGISTERED
    if _REGISTERED:
        return
    try:
        import numpy as np
        from tf2onnx import utils
        from tf2onnx.handler import tf_op
    except ImportError:  # the export itself says what to install
        return

    @tf_op("Erfc")
    class Erfc:  # noqa: F841 - registered by the decorator
        @classmethod
        def version_9(cls, ctx, node, **kwargs):
            dtype = utils.map_onnx_to_numpy_type(ctx.get_dtype(node.input[0]))
            one = ctx.make_const(utils.make_name(f"{node.name}_one"), np.array(1, dtype))
            erf = ctx.make_node("Erf", [node.input[0]], op_name_scope=node.name)
            node.type = "Sub"
            ctx.replace_inputs(node, [one.output[0], erf.output[0]])

    _REGISTERED = True


__all__ = ["register"]
