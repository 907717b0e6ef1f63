"""The export formats, quantizations and benchmark runtimes (kept free of heavy imports so the
command line can list them without loading TensorFlow)."""

FORMATS: tuple[str, ...] = ("savedmodel", "tflite", "onnx", "coreml")
QUANTIZATIONS: dict[str, tuple[str, ...]] = {
    "savedmodel": (),
    "tflite": ("float16", "dynamic", "int8"),
    "onnx": ("dynamic", "int8"),
    "coreml": ("float16",),
}
RUNTIMES: tuple[str, ...] = ("keras-predict", "keras-call", "savedmodel", "tflite", "onnx")
