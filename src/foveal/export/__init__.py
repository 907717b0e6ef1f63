"""Export a foveal model (SavedModel, TFLite, ONNX), check it against Keras, and measure it.

Example:
    >>> report = export_model("runs/digits/best.keras", "tflite", quantize="int8", data="digits")  # doctest: +SKIP
    >>> report.passed, report.max_abs_diff, report.accuracy  # doctest: +SKIP
"""

from foveal.export.formats import FORMATS, QUANTIZATIONS
from foveal.export.parity import ExportReport, export_model
from foveal.export.runners import open_runner

__all__ = ["FORMATS", "QUANTIZATIONS", "ExportReport", "export_model", "open_runner"]
