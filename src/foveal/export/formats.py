"""Write a foveal model as SavedModel, TFLite (LiteRT) or ONNX, optionally quantized.

All exports take float32 pixels 0..255 in NHWC (the model's own ``Preprocess`` layer is inside),
with a dynamic batch size (segmenters: dynamic height and width too). What they hold and return
is the task's export graph (:func:`foveal.export.tasks.export_graph`): a classifier's
``probabilities``, a localizer's ``class`` and ``box``, a detector's raw head outputs
``raw_P3``... (decoded and suppressed by the runners), a segmenter's per-pixel
``probabilities``. The SavedModel has a second signature, ``predict_images``, that takes
encoded JPEG/PNG/BMP/GIF bytes and decodes and resizes them exactly as foveal's pipeline does.

Quantization (TFLite): ``float16`` (weights in half precision), ``dynamic`` (int8 weights,
float activations), ``int8`` (full integer: weights and activations, calibrated on a
representative sample; input and output stay float32 so the interface does not change).
ONNX: ``dynamic`` and ``int8`` (static, calibrated: uint8 activations and per-channel int8
weights in QDQ form, which ONNX Runtime fuses into ``QLinearConv``/``QLinearAdd``) through
onnxruntime's quantization tools.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable, Literal

import keras
import numpy as np

from foveal.errors import ConfigError, FovealError
from foveal.export.names import FORMATS, QUANTIZATIONS
from foveal.models.io import ModelCard

Format = Literal["savedmodel", "tflite", "onnx"]
Quantize = Literal["float16", "dynamic", "int8"]
SUFFIX = {"savedmodel": "", "tflite": ".tflite", "onnx": ".onnx", "coreml": ".mlpackage"}


def _named(out) -> dict:
    """The graph's outputs as a dict of named tensors (a single output is ``probabilities``)."""
    return dict(out) if isinstance(out, dict) else {"probabilities": out}


def write_savedmodel(model: keras.Model, card: ModelCard, path: Path,
                     shape: tuple[int | None, ...] | None = None) -> Path:
    """A SavedModel with ``serving_default`` (pixels, per-image ``shape``, default the card's
    input) and ``predict_images`` (encoded bytes, resized to the card's input)."""
    import tensorflow as tf

    from foveal.data.decode import decode_image_bytes
    from foveal.data.pipeline import resize_image

    h, w, c = card.input_shape
    archive = keras.export.ExportArchive()
    archive.track(model)

    def serve_pixels(images):
        return _named(model(images, training=False))

    def serve_bytes(encoded):
        def one(data):
            return tf.cast(resize_image(decode_image_bytes(data, c), (h, w), card.keep_aspect), tf.float32)

        images = tf.map_fn(one, encoded, fn_output_signature=tf.TensorSpec([h, w, c], tf.float32))
        return _named(model(images, training=False))

    from foveal.export.tasks import takes_images

    pixels = takes_images(card)
    archive.add_endpoint("serving_default", serve_pixels, input_signature=[
        tf.TensorSpec([None, *(shape or (h, w, c))], tf.float32, name="images" if pixels else "codes")])
    if pixels:  # a generator's input is latent codes: there are no image bytes to decode
        archive.add_endpoint("predict_images", serve_bytes,
                             input_signature=[tf.TensorSpec([None], tf.string, name="encoded")])
    if path.exists():
        shutil.rmtree(path)
    archive.write_out(str(path), verbose=False)
    return path


def write_tflite(model: keras.Model, card: ModelCard, path: Path, quantize: str | None = None,
                 representative: Callable[[], Iterable[np.ndarray]] | None = None,
                 shape: tuple[int | None, ...] | None = None) -> Path:
    """A ``.tflite`` flatbuffer converted from a temporary SavedModel (outputs keep their names
    in its ``serving_default`` signature)."""
    import tensorflow as tf

    with tempfile.TemporaryDirectory() as tmp:
        saved = write_savedmodel(model, card, Path(tmp) / "sm", shape)
        converter = tf.lite.TFLiteConverter.from_saved_model(str(saved), signature_keys=["serving_default"])
        configure_tflite_quantization(converter, quantize, representative)
        try:
            flatbuffer = converter.convert()
        except Exception as exc:  # the converter raises many types, all meaning "cannot convert"
            raise FovealError(f"TFLite conversion failed: {type(exc).__name__}: {str(exc)[:400]}") from None
    path.write_bytes(flatbuffer)
    return path


def configure_tflite_quantization(converter, quantize: str | None,
                                  representative: Callable[[], Iterable[Any]] | None,
                                  integer_only: bool = True) -> None:
    """Set a TFLite converter up for ``quantize`` (module docstring). ``representative`` yields
    calibration batches: arrays (one input) or dicts of named arrays (a graph of several inputs).
    ``integer_only=False`` lets the ops int8 cannot express stay float (TFLite's int8 with float
    fallback) instead of failing the conversion.

    Raises:
        ConfigError: int8 without a representative sample."""
    import tensorflow as tf

    if quantize:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantize == "float16":
        converter.target_spec.supported_types = [tf.float16]
    elif quantize == "int8":
        if representative is None:
            raise ConfigError("int8 quantization needs a representative sample",
                              hint="pass --data DATASET (a few hundred training images are used)")
        converter.representative_dataset = lambda: (batch if isinstance(batch, dict) else [batch]
                                                    for batch in representative())
        converter.target_spec.supported_ops = ([tf.lite.OpsSet.TFLITE_BUILTINS_INT8] if integer_only else
                                               [tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS])


def write_onnx(model: keras.Model, card: ModelCard, path: Path, quantize: str | None = None,
               representative: Callable[[], Iterable[np.ndarray]] | None = None,
               shape: tuple[int | None, ...] | None = None) -> Path:
    """An ONNX graph via Keras' exporter (tf2onnx), optionally quantized with onnxruntime.

    A graph with a dict of outputs keeps their names; ``shape`` (per image, ``None`` for free
    sides) defaults to the card's input."""
    try:
        import onnx  # noqa: F401
        import tf2onnx  # noqa: F401
    except ImportError:
        raise FovealError("ONNX export needs onnx and tf2onnx", hint="pip install 'foveal[export]'") from None
    from foveal.export.onnx_ops import register
    from foveal.export.tasks import takes_images

    register()  # ops tf2onnx lacks (Erfc: the exact GELU of airbench)
    # Keras' ONNX exporter refuses a model that was loaded but never called.
    first = card.input_shape if takes_images(card) or not shape else shape
    out = model(np.zeros((1, *first), np.float32), training=False)
    ranks = sorted(len(t.shape) for t in keras.tree.flatten(out))
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "model.onnx"
        import tensorflow as tf

        name = "images" if takes_images(card) else "codes"
        signature = [tf.TensorSpec([None, *(shape or card.input_shape)], tf.float32, name=name)]
        # tf2onnx 1.17's optimizer now and then drops a graph's closing Squeeze (about 1 export in
        # 20 of a 1-channel ESPCN: an output of rank 5, not 4), so a graph whose output ranks are
        # not the model's is converted again
        for _ in range(3):
            model.export(str(raw), format="onnx", verbose=False, input_signature=signature)
            if _onnx_output_ranks(raw) in (None, ranks):
                break
        else:
            raise FovealError(f"the ONNX converter gave outputs of rank {_onnx_output_ranks(raw)} for a model whose "
                              f"outputs have rank {ranks}, three times")
        if quantize is None:
            shutil.move(raw, path)
        else:
            quantize_onnx(raw, path, quantize, representative)
    return path


def _onnx_output_ranks(path: Path) -> list[int] | None:
    """The sorted ranks of an ONNX graph's outputs (None when a shape is not recorded)."""
    import onnx

    outputs = onnx.load(str(path), load_external_data=False).graph.output
    if not all(o.type.tensor_type.HasField("shape") for o in outputs):
        return None
    return sorted(len(o.type.tensor_type.shape.dim) for o in outputs)


def quantize_onnx(source: Path, target: Path, quantize: str, representative) -> None:
    """Quantize the ONNX graph at ``source`` into ``target`` with onnxruntime (module docstring);
    ``representative`` yields calibration batches, arrays or dicts of named inputs."""
    from onnxruntime import quantization as q

    prepared = source.with_name("prepared.onnx")
    q.quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
    if quantize == "dynamic":
        q.quantize_dynamic(str(prepared), str(target), weight_type=q.QuantType.QInt8)
        return
    if representative is None:
        raise ConfigError("int8 quantization needs a representative sample",
                          hint="pass --data DATASET (a few hundred training images are used)")
    import onnxruntime as ort

    input_name = ort.InferenceSession(str(prepared), providers=["CPUExecutionProvider"]).get_inputs()[0].name

    class Reader(q.CalibrationDataReader):
        def __init__(self) -> None:
            self._batches = iter(representative())

        def get_next(self):
            batch = next(self._batches, None)  # an array, or a dict of named inputs (a video graph's two)
            return None if batch is None else batch if isinstance(batch, dict) else {input_name: batch}

    # Unsigned activations with signed per-channel weights (U8S8): ONNX Runtime's x86 fast path.
    # With signed activations ONNX Runtime rewrites int8 to uint8 only where a QuantizeLinear has
    # one consumer; a residual block's input feeds a convolution and the skip Add, so those
    # convolutions and every Add stayed float between Q/DQ pairs, behind layout Transposes
    # (ResNet-50: 33 of 53 convolutions fused, 0 of 16 Adds, 35 Transposes; with U8S8: 53, 16, 3).
    # See recipes/deployment.md and tests/export/test_onnx_graph.py.
    q.quantize_static(str(prepared), str(target), Reader(), quant_format=q.QuantFormat.QDQ,
                      activation_type=q.QuantType.QUInt8, weight_type=q.QuantType.QInt8,
                      per_channel=True)


def write_coreml(model: keras.Model, card: ModelCard, path: Path, quantize: str | None = None) -> Path:
    """A Core ML ``.mlpackage`` (ML program) converted from the Keras model by coremltools.

    Core ML runs only on Apple systems, so foveal checks the package structurally (see
    :func:`coreml_structure`); ``float16`` sets the compute precision, else float32.
    """
    try:
        import coremltools as ct
    except ImportError:
        raise FovealError("Core ML export needs coremltools", hint="pip install 'foveal[export]'") from None
    precision = ct.precision.FLOAT16 if quantize == "float16" else ct.precision.FLOAT32
    try:
        converted = ct.convert(model, source="tensorflow", convert_to="mlprogram",
                               inputs=[ct.TensorType(name="image", shape=(1, *card.input_shape))],
                               compute_precision=precision)
    except Exception as exc:  # coremltools raises many types, all meaning "cannot convert"
        raise FovealError(f"Core ML conversion failed: {type(exc).__name__}: {str(exc)[:400]}") from None
    converted.short_description = f"foveal {card.architecture}: {len(card.class_names)} classes"
    if path.exists():
        shutil.rmtree(path)
    converted.save(str(path))
    return path


def coreml_structure(path: Path) -> dict:
    """Inputs, outputs and operation count of a saved ``.mlpackage``, read without running it."""
    import coremltools as ct

    spec = ct.utils.load_spec(str(path))
    inputs = {i.name: list(i.type.multiArrayType.shape) for i in spec.description.input}
    outputs = {o.name: list(o.type.multiArrayType.shape) for o in spec.description.output}
    functions = spec.mlProgram.functions
    ops = sum(len(block.operations) for f in functions.values() for block in f.block_specializations.values())
    return {"inputs": inputs, "outputs": outputs, "operations": ops, "spec_version": spec.specificationVersion}


def check_format(fmt: str, quantize: str | None) -> None:
    """Refuse an unknown format, or a quantization the format does not support."""
    if fmt not in FORMATS:
        raise ConfigError(f"unknown export format {fmt!r}", hint=f"choose from {', '.join(FORMATS)}")
    if quantize and quantize not in QUANTIZATIONS[fmt]:
        allowed = ", ".join(QUANTIZATIONS[fmt]) or "none"
        raise ConfigError(f"{fmt} export does not support --quantize {quantize}", hint=f"supported: {allowed}")


def write_export(model: keras.Model, card: ModelCard, fmt: str, path: Path, quantize: str | None,
                 representative=None) -> Path:
    """Write the task's export graph (:func:`foveal.export.tasks.export_graph`) of ``model`` as
    ``fmt``, after checking the quantization is supported."""
    from foveal.export.tasks import check_export, export_graph, hooks, input_signature

    check_format(fmt, quantize)
    check_export(card, fmt, quantize)
    path.parent.mkdir(parents=True, exist_ok=True)
    own = getattr(hooks(card.task), "write_export", None)
    if own is not None:  # a graph of several inputs (video: frames and lengths) is written by its task
        return own(export_graph(model, card), card, fmt, path, quantize, representative)
    graph, shape = export_graph(model, card), input_signature(card)
    if fmt == "savedmodel":
        return write_savedmodel(graph, card, path, shape)
    if fmt == "tflite":
        return write_tflite(graph, card, path, quantize, representative, shape)
    if fmt == "coreml":
        from foveal.export.tasks import takes_images

        if not takes_images(card):
            raise ConfigError(f"coreml export takes images; this {card.task} model's graph takes latent codes",
                              hint="export it as savedmodel, tflite or onnx")
        return write_coreml(graph, card, path, quantize)
    return write_onnx(graph, card, path, quantize, representative, shape)


def artifact_size(path: Path) -> int:
    """Bytes on disk of a file or a folder."""
    path = Path(path)
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


_quantize_onnx = quantize_onnx  # the former private name (tests/export/test_onnx_graph.py)
