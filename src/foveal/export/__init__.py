"""Export a foveal model (SavedModel, TFLite, ONNX), check it against Keras, and measure it.

Example:
    >>> report = export_model("runs/digits/best.keras", "tflite", quantize="int8", data="digits")  # doctest: +SKIP
    >>> report.passed, report.max_abs_diff, report.accuracy  # doctest: +SKIP
"""

from foveal.export.names import FORMATS, QUANTIZATIONS, RUNTIMES

_LAZY = {"ExportReport": "foveal.export.parity", "export_model": "foveal.export.parity",
         "open_runner": "foveal.export.runners", "benchmark": "foveal.export.benchmark"}


def __getattr__(name: str):
    """Load the TensorFlow-backed parts only when used."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'foveal.export' has no attribute {name!r}")


__all__ = ["FORMATS", "QUANTIZATIONS", "RUNTIMES", *_LAZY]
