"""Export a foveal model (SavedModel, TFLite, ONNX), check it against Keras, and measure it.

Example:
    >>> report = export_model("runs/digits/best.keras", "tflite", quantize="int8", data="digits")  # doctest: +SKIP
    >>> report.passed, report.max_abs_diff, report.accuracy  # doctest: +SKIP
"""

from foveal._lazy import lazy_getattr
from foveal.export.names import FORMATS, QUANTIZATIONS, RUNTIMES

_LAZY = {"ExportReport": "foveal.export.parity", "export_model": "foveal.export.parity",
         "open_runner": "foveal.export.runners", "benchmark": "foveal.export.benchmark"}


__getattr__ = lazy_getattr("foveal.export", _LAZY)


__all__ = ["FORMATS", "QUANTIZATIONS", "RUNTIMES", *_LAZY]
