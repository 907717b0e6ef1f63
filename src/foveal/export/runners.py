"""Run any model artifact on a batch of raw pixels: ``.keras``, SavedModel, TFLite, ONNX.

Every runner is a callable ``runner(images) -> probabilities`` on float32 NHWC pixels 0..255
(the models carry their own preprocessing), with ``runner.kind`` and ``runner.path``;
``runner.raw(images)`` gives every named output of the exported graph (``{"box", "class"}``
of a localizer, ``{"raw_P5", ...}`` of a detector), which :mod:`foveal.export.tasks` turns
into boxes, classes or masks. A graph of
several inputs (a video classifier's ``frames`` and ``lengths``) takes a dict of named arrays
instead, each in its own dtype. The
model card is read from the artifact (``.keras``) or from the ``foveal.json`` written beside
the export. ``threads`` sets the intra-op thread count where the runtime allows.

Example:
    >>> run = open_runner("model.onnx", threads=2)  # doctest: +SKIP
    >>> probs = run(images)  # doctest: +SKIP
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import numpy as np

from foveal.errors import FovealError, ModelError
from foveal.export.trust import check_export
from foveal.models.io import ModelCard

CARD_SUFFIX = ".foveal.json"


def card_path_for(artifact: Path) -> Path:
    """Where the model card of an export lives: inside a SavedModel folder, else beside the file."""
    artifact = Path(artifact)
    return artifact / "foveal.json" if artifact.is_dir() else artifact.with_name(artifact.name + CARD_SUFFIX)


def read_export_card(artifact: Path) -> ModelCard:
    path = card_path_for(artifact)
    if not path.is_file():
        raise ModelError(f"{artifact}: no model card found at {path}",
                         hint="export with `foveal export`, which writes it beside the model")
    from foveal.models.card_check import read_card_file

    return read_card_file(path)  # types and sizes checked; export facts beside the card are kept


class Runner:
    """Base class: holds the card and the kind; subclasses implement ``__call__``."""

    kind = "base"

    def __init__(self, path: Path, card: ModelCard) -> None:
        self.path, self.card = Path(path), card

    def __call__(self, images: np.ndarray) -> np.ndarray:
        """The first (for a classifier: the only) output."""
        return next(iter(self.raw(images).values()))

    def raw(self, images: np.ndarray | dict[str, np.ndarray]) -> dict[str, np.ndarray]:  # pragma: no cover
        """Every output of the graph by name, as NumPy arrays (``images``: float32 pixels, or a
        dict of named inputs for a graph of several)."""
        raise NotImplementedError


class KerasRunner(Runner):
    """``model.predict_on_batch`` (``direct=False``) or a plain call ``model(x)`` (``direct=True``).

    The model is loaded as export and serve load it (:func:`foveal.export.tasks.load`): a video
    classifier with its frame backbone, whose ``raw`` runs the one graph of its exports."""

    def __init__(self, path: Path, threads: int | None = None, direct: bool = False) -> None:
        from foveal.export.tasks import load

        _set_tf_threads(threads)
        self.model, card = load(path)
        super().__init__(path, card)
        self.direct = direct
        self.kind = "keras-call" if direct else "keras-predict"
        self._graph = None

    def __call__(self, images: np.ndarray) -> np.ndarray:
        if self.direct:
            return np.asarray(self.model(images, training=False))
        return np.asarray(self.model.predict_on_batch(images))

    def raw(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """The named outputs of the graph that exports write (see :func:`foveal.export.tasks.export_graph`)."""
        if self._graph is None:
            from foveal.export.tasks import export_graph

            self._graph = export_graph(self.model, self.card)
        out = self._graph(images, training=False) if self.direct else self._graph.predict_on_batch(images)
        if not isinstance(out, dict):  # one output: named as the exports name it
            out = {"probabilities": out}
        return {name: np.asarray(value) for name, value in sorted(out.items())}


class SavedModelRunner(Runner):
    kind = "savedmodel"

    def __init__(self, path: Path, threads: int | None = None, trust_model: bool = False) -> None:
        import tensorflow as tf

        _set_tf_threads(threads)
        super().__init__(path, read_export_card(path))
        check_export(path, trusted=trust_model)  # before TensorFlow loads (and can run) the graph
        self._loaded = tf.saved_model.load(str(path))
        self._fn = self._loaded.signatures["serving_default"]
        self._tf = tf

    def raw(self, images: np.ndarray | dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if isinstance(images, dict):
            out = self._fn(**{name: self._tf.constant(value) for name, value in images.items()})
        else:
            out = self._fn(self._tf.constant(images, self._tf.float32))
        return {name: np.asarray(value) for name, value in sorted(out.items())}


class TFLiteRunner(Runner):
    kind = "tflite"

    def __init__(self, path: Path, threads: int | None = None, trust_model: bool = False) -> None:
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:  # pragma: no cover - depends on the environment
            raise FovealError("running TFLite models needs LiteRT", hint="pip install 'foveal[export]'") from None
        super().__init__(path, read_export_card(path))
        check_export(path, trusted=trust_model)
        self._interpreter = Interpreter(model_path=str(path), num_threads=threads)
        self._input = self._interpreter.get_input_details()[0]
        self._outputs = _named_outputs(self._interpreter)
        self._shape: tuple[int, ...] = ()

    def raw(self, images: np.ndarray | dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if isinstance(images, dict):
            return self._raw_named(images)
        it = self._interpreter
        if images.shape != self._shape:  # a new batch size (or image size, for segmenters)
            it.resize_tensor_input(self._input["index"], list(images.shape))
            it.allocate_tensors()
            self._shape = images.shape
        it.set_tensor(self._input["index"], _quantize_input(images, self._input))
        it.invoke()
        return {name: _dequantize_output(it.get_tensor(detail["index"]), detail)
                for name, detail in self._outputs.items()}


    def _raw_named(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """A graph of several named inputs, through its ``serving_default`` signature. A graph
        converted with a static batch of 1 (TFLite cannot lower a masked LSTM's loop over a free
        batch) runs one row at a time."""
        runner = self._interpreter.get_signature_runner("serving_default")
        details = runner.get_input_details()
        count = len(next(iter(inputs.values())))
        if count > 1 and all(int(d["shape_signature"][0]) == 1 for d in details.values()):
            rows = [runner(**{k: v[i:i + 1] for k, v in inputs.items()}) for i in range(count)]
            return {name: np.concatenate([np.asarray(r[name]) for r in rows]) for name in sorted(rows[0])}
        out = runner(**{k: np.asarray(v, details[k]["dtype"]) for k, v in inputs.items()})
        return {name: np.asarray(value) for name, value in sorted(out.items())}


def _named_outputs(interpreter) -> dict[str, dict]:
    """Output details by the names of the ``serving_default`` signature (sorted), so a
    multi-output model's outputs are found by name; positional names for a bare flatbuffer."""
    details = interpreter.get_output_details()
    signature = interpreter.get_signature_list().get("serving_default")
    if not signature:
        return {"probabilities": details[0]} if len(details) == 1 else {f"output_{i}": d for i, d in enumerate(details)}
    by_index = {d["index"]: d for d in details}
    named = interpreter.get_signature_runner("serving_default").get_output_details()
    return {name: by_index[named[name]["index"]] for name in sorted(named)}


def _quantize_input(images: np.ndarray, detail: dict) -> np.ndarray:
    dtype = detail["dtype"]
    if dtype == np.float32:
        return np.ascontiguousarray(images, dtype=np.float32)  # no copy when already float32
    scale, zero = detail["quantization"]
    return np.clip(np.round(images / scale + zero), np.iinfo(dtype).min, np.iinfo(dtype).max).astype(dtype)


def _dequantize_output(values: np.ndarray, detail: dict) -> np.ndarray:
    if detail["dtype"] == np.float32:
        return values
    scale, zero = detail["quantization"]
    return (values.astype(np.float32) - zero) * scale


class OnnxRunner(Runner):
    """ONNX Runtime on the CPU, every graph optimization on (QDQ int8 pairs fused into
    ``QLinearConv``/``QLinearAdd``...).

    ``spin=False`` (the default) stops the intra-op worker threads from spin-waiting for work
    between operators: on a machine whose cores other processes also use, spinning threads steal
    the cores the next operator needs (ResNet-50 at batch 1, 2 threads, load average 11 on 2
    cores: 336 ms spinning, 258 ms not; recipes/deployment.md). On a machine reserved for the
    server, ``spin=True`` cuts single-image latency (MobileNetV2 at 224, 2 threads, machine to
    itself, consecutive calls: float32 7.55 to 4.92 ms, int8 5.09 to 3.44 ms) but not batch 32
    (int8 79 to 91 ms in interleaved timing); it does not change the int8 / float32 ratio.
    """

    kind = "onnx"

    def __init__(self, path: Path, threads: int | None = None, trust_model: bool = False,
                 spin: bool = False) -> None:
        try:
            import onnxruntime as ort
        except ImportError:  # pragma: no cover - depends on the environment
            raise FovealError("running ONNX models needs onnxruntime", hint="pip install 'foveal[export]'") from None
        super().__init__(path, read_export_card(path))
        check_export(path, trusted=trust_model)
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
        self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self._input = self._session.get_inputs()[0].name
        self._types = {i.name: i.type for i in self._session.get_inputs()}
        self._names = [o.name for o in self._session.get_outputs()]
        if len(self._names) == 1 and ":" in self._names[0]:  # tf2onnx's "Identity:0": the exports' name
            self._names = ["probabilities"]

    def raw(self, images: np.ndarray | dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if isinstance(images, dict):
            feed = {name: np.asarray(value, _ONNX_TYPES.get(self._types.get(name, ""), None))
                    for name, value in images.items()}
        else:
            feed = {self._input: np.ascontiguousarray(images, dtype=np.float32)}
        values = self._session.run(None, feed)
        return dict(sorted(zip(self._names, values)))


_ONNX_TYPES = {"tensor(float)": np.float32, "tensor(uint8)": np.uint8, "tensor(int32)": np.int32,
               "tensor(int64)": np.int64}


def _set_tf_threads(threads: int | None) -> None:
    if not threads:
        return
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # already initialised in this process: keep what is set
        pass


def open_runner(path: str | Path, *, threads: int | None = None, direct: bool = False,
                trust_model: bool = False) -> Runner:
    """A runner for the artifact at ``path``, chosen by its form.

    Exports (SavedModel, TFLite, ONNX) are programs: unless ``trust_model``, their graphs are
    checked against an allow-list of inference ops first (:mod:`foveal.export.trust`).
    ``.keras`` files are always loaded in Keras safe mode.
    """
    path = Path(path)
    if not path.exists():
        raise ModelError(f"{path}: no such model file or folder")
    factories: dict[str, Callable[[], Runner]] = {
        ".keras": lambda: KerasRunner(path, threads, direct),
        ".tflite": lambda: TFLiteRunner(path, threads, trust_model),
        ".onnx": lambda: OnnxRunner(path, threads, trust_model),
    }
    if path.is_dir():
        if not (path / "saved_model.pb").is_file():
            raise ModelError(f"{path}: a folder but not a SavedModel (no saved_model.pb)")
        return _card_checked(SavedModelRunner(path, threads, trust_model))
    if path.suffix not in factories:
        raise ModelError(f"{path}: unknown model format {path.suffix!r}",
                         hint="use a .keras, .tflite or .onnx file, or a SavedModel folder")
    return _card_checked(factories[path.suffix]())


def _card_checked(runner: Runner) -> Runner:
    """An export's card against what the export computes (a ``.keras`` file was checked on load)."""
    if not isinstance(runner, KerasRunner):
        from foveal.models.card_check import check_card_against_runner

        check_card_against_runner(runner)
    return runner


def write_export_card(artifact: Path, card: ModelCard, extra: dict | None = None) -> Path:
    """Write the card (plus export facts) where :func:`read_export_card` finds it."""
    from foveal.utils_io import atomic_write_text

    data = json.loads(card.to_json())
    data.update(extra or {})
    return atomic_write_text(card_path_for(artifact), json.dumps(data, indent=2))
