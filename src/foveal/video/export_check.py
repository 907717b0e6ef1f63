"""Export and serve hooks of video clip classifiers (see :mod:`foveal.export.tasks`).

An export is **one graph** from raw frames to clip probabilities, so a runner needs nothing
else: inputs ``frames`` ``[batch, T, H, W, 3]`` **uint8** (the frames sampled from each clip as
``foveal video predict`` samples them, resized to the card's frame size, zero-padded at the end
to the model's ``T`` steps) and ``lengths`` ``[batch]`` **int32** (the real frames of each clip);
output ``probabilities`` ``[batch, classes]``. Inside:

* the feature route (``lstm``, ``gru``, ``bilstm``, ``bigru``, ``avgpool`` on per-frame CNN
  features): the frozen backbone applied to every frame (batch and time folded into one axis,
  as ``TimeDistributed`` does, then unfolded), the features of the padded steps set to zero, then
  the sequence head, whose ``Masking`` skips them (Planche & Andres ch. 8's two steps, joined);
* end-to-end models (``cnn-lstm``, ``convlstm``, ``r2plus1d``): the padded frames set to the
  models' padding value (-1), then the model itself.

The card written beside the export says the inputs (``training["export_inputs"]``).

Parity: the export runs next to the Keras route (backbone then head, as ``foveal video
predict`` runs them) on clips of different lengths (``T``, ``T - 1``, ..., 1 real frames, the
rest padding), so a wrongly masked padding step shows as a difference. Internally a batch of clips
is one float32 array with padding frames of -1 (:func:`foveal.video.endtoend.padded_input`);
:func:`split_clips` turns it into the two inputs.

Formats: SavedModel and ONNX for every model; TFLite where the converter lowers the graph:
a masked LSTM/GRU's loop over a free batch size does not lower (``TensorListReserve`` needs a
static element shape), so such a graph is converted with a batch of 1 and the runner feeds it
one clip at a time. Core ML is refused (it takes one image).

Quantization (``foveal export --quantize``), as for images (:mod:`foveal.export.formats`):
TFLite ``float16``, ``dynamic`` (int8 weights) and ``int8`` (calibrated on clips of
``--data``, a folder of class subfolders of clips: the sampled frames and their lengths, the
graph's two inputs; the int8 graph keeps in float what int8 cannot express, the uint8 -> float
cast and the lengths' mask, rather than failing; refused for a recurrent model, whose int8
conversion did not finish in 20 minutes in testing: dynamic or ONNX int8 instead). ONNX ``dynamic``
and ``int8`` (static, QDQ, calibrated on the same clips). Parity is then the label agreement and
the probability difference within the quantization's tolerance, and with ``--data`` the
accuracy of both side by side.

Example:
    >>> from foveal.export import export_model  # doctest: +SKIP
    >>> export_model("runs/fight/best.keras", "onnx", samples=8).passed  # doctest: +SKIP
    True
    >>> predict_video(load_video_model("runs/fight/best.onnx"), "street.mp4")["timeline"]  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from foveal.errors import ConfigError, DataError, FovealError, ModelError
from foveal.models.io import ModelCard

#: the exports take frame sequences and lengths, not one image (no bytes signature, no image calibration)
TAKES_IMAGES = False
INPUTS = ("frames", "lengths")
#: models whose graph holds a recurrent loop (converted to TFLite with a batch of 1)
RECURRENT = ("lstm", "gru", "bilstm", "bigru", "cnn-lstm", "convlstm")


def load_model(path: Any) -> tuple[Any, ModelCard]:
    """The video model of a ``.keras`` file with its frame backbone (:func:`~foveal.video.predict.load_video_model`)."""
    from foveal.video.predict import load_video_model

    vm = load_video_model(path)
    return vm, vm.card


def _steps_hw(card: ModelCard) -> tuple[int, int, int]:
    facts = card.training
    if "steps" not in facts:
        raise ModelError(f"the {card.architecture} model's card has no frame count (steps)",
                         hint="use a model written by `foveal video train`")
    h, w = (int(v) for v in (facts.get("frame_size") or card.input_shape[:2]))
    return int(facts["steps"]), h, w


def check_export(card: ModelCard, fmt: str, quantize: str | None) -> None:
    """Refuse what a video export cannot be: Core ML (one image input); TFLite int8 of a graph with a
    recurrent loop (not verified: its conversion did not finish in 20 minutes in testing)."""
    model = str(card.training.get("model", ""))
    if fmt == "tflite" and quantize == "int8" and model in RECURRENT:
        raise ConfigError(f"--quantize int8 with tflite is not offered for a recurrent video model ({model}: "
                          "its int8 conversion did not finish in 20 minutes on a 2-core machine in testing)",
                          hint="use --quantize dynamic (int8 weights), or --format onnx --quantize int8")
    if fmt == "coreml":
        raise ConfigError("coreml export takes one image; a video graph takes frames and lengths",
                          hint="export it as savedmodel, onnx or tflite")


def export_graph(model: Any, card: ModelCard) -> Any:
    """The Keras graph of ``model`` (a :class:`~foveal.video.predict.VideoModel`) from
    ``frames`` ``(N, T, H, W, 3)`` uint8 and ``lengths`` ``(N,)`` int32 to ``{"probabilities"}``."""
    import keras
    from keras import layers, ops

    from foveal.video.endtoend import PAD_VALUE

    steps, h, w = _steps_hw(card)
    frames = keras.Input((steps, h, w, 3), dtype="uint8", name="frames")
    lengths = keras.Input((), dtype="int32", name="lengths")

    def real_steps(n: Any) -> Any:
        return ops.arange(steps)[None, :] < ops.cast(n, "int32")[:, None]

    if card.training.get("end_to_end"):
        def padded(args: list[Any]) -> Any:
            f, n = args
            return ops.where(real_steps(n)[:, :, None, None, None], ops.cast(f, "float32"), PAD_VALUE)

        x = layers.Lambda(padded, output_shape=(steps, h, w, 3), name="padding_frames")([frames, lengths])
        probs = model.head(x, training=False)
    else:
        backbone = model.extractor.model
        dim = int(model.extractor.dim)
        x = layers.Lambda(lambda f: ops.reshape(ops.cast(f, "float32"), (-1, h, w, 3)), output_shape=(h, w, 3),
                          name="fold_time")(frames)
        feats = backbone(x, training=False)
        feats = layers.Lambda(lambda f: ops.reshape(f, (-1, steps, dim)), output_shape=(steps, dim),
                              name="unfold_time")(feats)

        def zeroed(args: list[Any]) -> Any:
            f, n = args
            return f * ops.cast(real_steps(n), f.dtype)[:, :, None]

        feats = layers.Lambda(zeroed, output_shape=(steps, dim), name="padding_steps")([feats, lengths])
        probs = model.head(feats, training=False)
    return keras.Model([frames, lengths], {"probabilities": probs}, name=f"{card.architecture}_export")


def input_signature(card: ModelCard) -> tuple[int | None, ...]:
    """Per clip: ``(T, H, W, 3)`` frames (with ``lengths``, one value per clip)."""
    steps, h, w = _steps_hw(card)
    return (steps, h, w, 3)


def export_card(model: Any, card: ModelCard) -> ModelCard:
    """The card, with the export's inputs for whoever runs it."""
    steps, h, w = _steps_hw(card)
    return dataclasses.replace(card, training={**card.training, "export_inputs": {
        "frames": {"shape": [None, steps, h, w, 3], "dtype": "uint8",
                   "layout": f"up to {steps} frames per clip sampled with {card.training.get('sampling')}, "
                             f"resized to {h}x{w}, RGB 0..255, zero-padded at the end"},
        "lengths": {"shape": [None], "dtype": "int32", "layout": "real frames of each clip (the rest is padding)"}}})


def _specs(steps: int, h: int, w: int, batch: int | None) -> list[Any]:
    import tensorflow as tf

    return [tf.TensorSpec([batch, steps, h, w, 3], tf.uint8, name="frames"),
            tf.TensorSpec([batch], tf.int32, name="lengths")]


def _write_savedmodel(graph: Any, card: ModelCard, path: Path, batch: int | None = None) -> Path:
    import keras

    archive = keras.export.ExportArchive()
    archive.track(graph)

    def serve(frames: Any, lengths: Any) -> dict[str, Any]:
        return dict(graph([frames, lengths], training=False))

    archive.add_endpoint("serving_default", serve, input_signature=_specs(*_steps_hw(card), batch))
    if path.exists():
        shutil.rmtree(path)
    archive.write_out(str(path), verbose=False)
    return path


def _calibration(representative: Any) -> Any:
    """The representative clips (float32, padding frames -1, one clip a batch, from ``foveal export
    --data``) as the graph's two named inputs."""
    if representative is None:
        return None

    def batches() -> Any:
        for clip in representative():
            frames, lengths = split_clips(clip)
            yield {"frames": frames, "lengths": lengths}

    return batches


def _write_tflite(graph: Any, card: ModelCard, path: Path, quantize: str | None = None,
                  representative: Any = None) -> Path:
    import tensorflow as tf

    from foveal.export.formats import configure_tflite_quantization

    failures = []
    # A masked recurrent loop (LSTM, GRU, ConvLSTM) lowers only with a static batch: go there directly.
    recurrent = str(card.training.get("model", "")) in RECURRENT
    for batch in ((1,) if recurrent else (None, 1)):
        with tempfile.TemporaryDirectory() as tmp:
            saved = _write_savedmodel(graph, card, Path(tmp) / "sm", batch)
            converter = tf.lite.TFLiteConverter.from_saved_model(str(saved), signature_keys=["serving_default"])
            # int8: the convolutions and dense layers in int8, what int8 cannot express (the uint8 -> float
            # cast, the lengths' int32 mask, a recurrent loop's control flow) stays float
            configure_tflite_quantization(converter, quantize, _calibration(representative), integer_only=False)
            try:
                path.write_bytes(converter.convert())
                return path
            except Exception as exc:  # the converter raises many types, all meaning "cannot convert"
                failures.append(str(exc).strip().splitlines()[-1][:300] if str(exc).strip() else type(exc).__name__)
    what = f"TFLite {quantize} quantization" if quantize else "TFLite conversion"
    raise FovealError(f"{what} failed for the {card.architecture} video graph: {failures[-1]}",
                      hint="export it as savedmodel or onnx" if not quantize else
                      "try --quantize dynamic, or onnx with --quantize dynamic|int8")


def _write_onnx(graph: Any, card: ModelCard, path: Path, quantize: str | None = None,
                representative: Any = None) -> Path:
    try:
        import onnxruntime as ort
        import tf2onnx  # noqa: F401
    except ImportError:
        raise FovealError("ONNX export needs onnx, tf2onnx and onnxruntime", hint="pip install 'foveal[export]'") from None
    from foveal.export.formats import quantize_onnx
    from foveal.export.onnx_ops import register

    register()  # ops tf2onnx lacks (Erfc: the exact GELU of an airbench backbone)
    steps, h, w = _steps_hw(card)
    graph([np.zeros((1, steps, h, w, 3), np.uint8), np.ones(1, np.int32)])  # Keras' exporter wants a called model
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "float.onnx"
        graph.export(str(raw), format="onnx", verbose=False, input_signature=[_specs(steps, h, w, None)])
        if quantize is None:
            shutil.move(raw, path)
        else:
            try:
                quantize_onnx(raw, path, quantize, _calibration(representative))
            except FovealError:
                raise
            except Exception as exc:  # onnxruntime's quantizer raises many types
                path.unlink(missing_ok=True)
                raise FovealError(f"ONNX {quantize} quantization failed for the {card.architecture} video graph: "
                                  f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1][:200] if str(exc).strip() else ''}",
                                  hint="try --quantize dynamic, or tflite") from None
    try:  # tf2onnx writes a graph with the ops it cannot convert left in: say which, in one line
        ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:
        path.unlink(missing_ok=True)
        detail = str(exc).split("Error ")[-1].strip()[:200]
        raise FovealError(f"ONNX conversion failed for the {card.architecture} video graph: {detail}",
                          hint="export as savedmodel or tflite") from None
    return path


def write_export(graph: Any, card: ModelCard, fmt: str, path: Path, quantize: str | None,
                 representative: Any = None) -> Path:
    """Write the two-input video graph as ``fmt`` (see the module docstring); ``representative``:
    int8 calibration clips (``foveal export --data``)."""
    check_export(card, fmt, quantize)
    if quantize == "int8" and representative is None:
        raise ConfigError("int8 quantization of a video model needs calibration clips",
                          hint="pass --data CLIPS/ (class subfolders of clips; --calibration N of them are used), "
                               "or use --quantize dynamic, which needs none")
    if fmt == "savedmodel":
        return _write_savedmodel(graph, card, path)
    if fmt == "tflite":
        return _write_tflite(graph, card, path, quantize, representative)
    return _write_onnx(graph, card, path, quantize, representative)


def split_clips(clips: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(frames uint8 zero-padded, lengths int32)`` of float32 clips whose padding frames are -1
    (padding at the end, as :func:`foveal.video.endtoend.padded_input` writes them)."""
    clips = np.asarray(clips, np.float32)
    real = clips.reshape(len(clips), clips.shape[1], -1).max(axis=-1) >= 0
    lengths = real.sum(axis=1).astype(np.int32)
    frames = np.where(real[:, :, None, None, None], np.clip(np.round(clips), 0, 255), 0).astype(np.uint8)
    return frames, lengths


def random_inputs(card: ModelCard, count: int, seed: int = 0) -> np.ndarray:
    """Parity clips of seeded random pixels with ``T``, ``T - 1``, ..., 1 real frames in turn
    (the rest padding frames of -1)."""
    from foveal.video.endtoend import padded_input

    steps, h, w = _steps_hw(card)
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 256, (count, steps, h, w, 3), dtype=np.uint8)
    lengths = steps - (np.arange(count) % steps)
    return padded_input(frames, lengths)


def model_input(image: np.ndarray, card: ModelCard) -> np.ndarray:
    raise ModelError("a video model takes clips, not images",
                     hint="predict with `foveal video predict MODEL VIDEO`, or POST a video to `foveal serve`")


def outputs(source: Any, card: ModelCard, inputs: np.ndarray) -> dict[str, np.ndarray]:
    """``{"probabilities": (N, C)}`` of clips (float32, padding frames -1) from an export's runner
    (its two inputs) or from the Keras :class:`~foveal.video.predict.VideoModel` (backbone, then head)."""
    from foveal.export.tasks import is_runner

    frames, lengths = split_clips(inputs)
    if is_runner(source):
        from foveal.video.predict import ExportedVideoModel

        source = ExportedVideoModel(source)
    probs = source.classify_frames([frames[i, :n] for i, n in enumerate(lengths)])
    return {"probabilities": np.asarray(probs, np.float32)}


def parity(reference: dict[str, np.ndarray], exported: dict[str, np.ndarray], card: ModelCard,
           tolerance: float) -> dict[str, Any]:
    """Largest probability difference and top-1 agreement (as for image classifiers)."""
    from foveal.export.classify import parity as classify_parity

    return classify_parity(reference, exported, card, tolerance)


@dataclass
class ClipFolder:
    """The clips of a folder of class subfolders, labelled with the model's class indices."""

    paths: list[Path]
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.paths)

    def subset(self, index: np.ndarray) -> "ClipFolder":
        return ClipFolder([self.paths[i] for i in index], self.labels[index])


def load_parts(spec: str, card: ModelCard) -> dict[str, Any]:
    """``--data``: a folder of class subfolders of clips, its classes matched to the model's."""
    from foveal.evaluation.classes import match_classes, relabel
    from foveal.video.decode import scan_video_folder

    clips, names = scan_video_folder(spec)
    mapping = match_classes(list(card.class_names), names, None, origin=str(spec))
    labels = relabel(np.array([c.label for c in clips]), mapping)
    return {"all": ClipFolder([c.path for c in clips], np.asarray(labels))}


def _decoded(part: ClipFolder, card: ModelCard) -> np.ndarray:
    """The clips' sampled frames as the model takes them (float32, padding frames -1)."""
    from foveal.video.endtoend import pad_clips, padded_input
    from foveal.video.features import clip_frames
    from foveal.video.sampling import Sampling

    steps, h, w = _steps_hw(card)
    sampling = Sampling.parse(card.training["sampling"])
    threshold = float(card.training.get("scene_threshold", 0.4))
    frames, lengths = pad_clips([clip_frames(p, sampling, (h, w), scene_threshold=threshold) for p in part.paths],
                                steps)
    return padded_input(frames, lengths)


def sample_images(part: ClipFolder, card: ModelCard, count: int) -> np.ndarray:
    """``count`` clips spread over ``part`` (every class), decoded and sampled."""
    index = np.unique(np.linspace(0, len(part) - 1, min(count, len(part))).round().astype(np.int64))
    return _decoded(part.subset(index), card)


def accuracy(source: Any, card: ModelCard, part: ClipFolder, limit: int | None) -> dict[str, Any]:
    """Clip accuracy on ``part`` (at most ``limit`` clips, spread over the folder so every class is in)."""
    spread = np.unique(np.linspace(0, len(part) - 1, min(limit or len(part), len(part))).round().astype(np.int64))
    chosen = part if limit is None or limit >= len(part) else part.subset(spread)
    if not len(chosen):
        raise DataError("no clips to score")
    hits = 0
    for start in range(0, len(chosen), 8):
        batch = chosen.subset(np.arange(start, min(start + 8, len(chosen))))
        probs = outputs(source, card, _decoded(batch, card))["probabilities"]
        hits += int(np.sum(np.argmax(probs, 1) == batch.labels))
    return {"metric": "accuracy", "value": hits / len(chosen)}


#: what ``foveal benchmark`` counts for a video classifier
BENCHMARK_UNIT = "clips"


def benchmark_end_to_end(source: Any, card: ModelCard, top_k: int = 5, *, seconds: float = 2.0,
                         size: tuple[int, int] = (120, 160), fps: float = 15.0) -> Any:
    """``foveal benchmark``'s end to end of a video classifier: a call that takes one video file
    (``seconds`` of moving shapes at ``size`` and ``fps``, written once to a private temporary
    file), decodes it, samples and resizes its frames as training did
    (:func:`foveal.video.features.clip_frames`), runs ``source`` (a runner or the Keras model) on
    the clip and returns its top-``top_k`` labels."""
    from foveal.video.features import clip_frames
    from foveal.video.sampling import Sampling
    from foveal.video.synth import _write_video, moving_shapes

    steps, h, w = _steps_hw(card)
    sampling = Sampling.parse(card.training["sampling"])
    threshold = float(card.training.get("scene_threshold", 0.4))
    folder = tempfile.TemporaryDirectory(prefix="foveal-bench-video-")  # removed with the call
    clip = Path(folder.name) / "clip.mp4"
    _write_video(clip, moving_shapes(int(seconds * fps), size, seed=0)[0], fps)
    names = list(card.class_names)

    def run() -> dict[str, Any]:
        from foveal.video.endtoend import pad_clips, padded_input

        frames, lengths = pad_clips([clip_frames(clip, sampling, (h, w), scene_threshold=threshold)], steps)
        probs = outputs(source, card, padded_input(frames, lengths))["probabilities"][0]
        ranked = np.argsort(-probs)[:top_k]
        return {"file": clip.name, "label": names[int(ranked[0])],
                "predictions": [{"label": names[int(i)], "probability": float(probs[i])} for i in ranked]}

    run.folder = folder  # type: ignore[attr-defined]  # the clip lives as long as the call
    return run


def render(row: dict[str, np.ndarray], card: ModelCard, image: tuple[int, int], top_k: int) -> dict[str, Any]:
    raise ModelError("a video model answers uploaded clips (POST /predict with a video), not images")


__all__ = ["BENCHMARK_UNIT", "INPUTS", "TAKES_IMAGES", "ClipFolder", "accuracy", "benchmark_end_to_end", "check_export", "export_card", "export_graph",
           "input_signature", "load_model", "load_parts", "model_input", "outputs", "parity", "random_inputs",
           "render", "sample_images", "split_clips", "write_export"]
