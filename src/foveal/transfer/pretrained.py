"""Pretrained models: keras.applications networks inside foveal's conventions, and weight files.

:data:`PRETRAINED` is a table from foveal names to ``keras.applications`` constructors with the
``Preprocess`` mode each one's ``preprocess_input`` implies, and its default and minimum input
size. :func:`build_pretrained` builds one as a flat foveal model, ``Input(0..255) ->
Preprocess(mode) -> network``: the application is called with ``input_tensor=``, which Keras
wires into the same graph (no nested sub-model), so layer-by-layer freezing, surgery and
Grad-CAM work as on foveal's own architectures.

Weights come from ImageNet (Keras downloads them once into its cache, ``$KERAS_HOME/models``,
by default ``~/.keras/models``; a file already there is used offline) or from a file:

* a foveal ``.keras`` model file: layers are copied by name where all shapes match;
* a Keras ``.weights.h5`` file or a legacy ``.h5`` weights file (as keras.applications
  downloads them), also copied by name.

:func:`load_weights_by_name` reports what was loaded and what was skipped, and why.

Example:
    >>> model = build_pretrained("resnet50", weights="imagenet", num_classes=5)  # doctest: +SKIP
    >>> [layer.name for layer in model.layers[:2]], model.output_shape  # doctest: +SKIP
    (['image', 'preprocess'], (None, 5))
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import io
import json
import logging
import os
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import keras
import numpy as np

from foveal.errors import ConfigError, ModelError
from foveal.layers.preprocess import Preprocess

log = logging.getLogger(__name__)

IMAGENET_CLASSES = 1000
_CLASS_INDEX_FILE = "imagenet_class_index.json"
_CLASS_INDEX_URL = "https://storage.googleapis.com/download.tensorflow.org/data/imagenet_class_index.json"
_CLASS_INDEX_MD5 = "c2c37ea517e94d9795004a39431a14cb"


@dataclass(frozen=True)
class PretrainedSpec:
    """One keras.applications network.

    Attributes:
        name: the foveal name.
        constructor: attribute of ``keras.applications`` that builds it.
        preprocessing: the foveal ``Preprocess`` mode equal to its ``preprocess_input``
            (``none`` where the network rescales inside itself).
        input_size: default (and, with its ImageNet classifier, required) height = width.
        min_size: smallest height/width Keras accepts.
        paper: the publication.
    """

    name: str
    constructor: str
    preprocessing: str
    input_size: int = 224
    min_size: int = 32
    paper: str = ""

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.input_size, self.input_size, 3)


_HE = "He et al., Deep Residual Learning for Image Recognition, CVPR 2016"
_HE2 = "He et al., Identity Mappings in Deep Residual Networks, ECCV 2016"
_VGG = "Simonyan & Zisserman, Very Deep Convolutional Networks for Large-Scale Image Recognition, ICLR 2015"
_DENSE = "Huang et al., Densely Connected Convolutional Networks, CVPR 2017"
_EFF = "Tan & Le, EfficientNet: Rethinking Model Scaling for CNNs, ICML 2019"
_EFF2 = "Tan & Le, EfficientNetV2: Smaller Models and Faster Training, ICML 2021"
_CONVNEXT = "Liu et al., A ConvNet for the 2020s, CVPR 2022"
_NASNET = "Zoph et al., Learning Transferable Architectures for Scalable Image Recognition, CVPR 2018"

# name, constructor, preprocessing (from each module's preprocess_input), size, min size, paper
_TABLE: list[tuple[str, str, str, int, int, str]] = [
    ("vgg16", "VGG16", "caffe", 224, 32, _VGG),
    ("vgg19", "VGG19", "caffe", 224, 32, _VGG),
    ("resnet50", "ResNet50", "caffe", 224, 32, _HE),
    ("resnet101", "ResNet101", "caffe", 224, 32, _HE),
    ("resnet152", "ResNet152", "caffe", 224, 32, _HE),
    ("resnet50v2", "ResNet50V2", "tf", 224, 32, _HE2),
    ("resnet101v2", "ResNet101V2", "tf", 224, 32, _HE2),
    ("resnet152v2", "ResNet152V2", "tf", 224, 32, _HE2),
    ("xception", "Xception", "tf", 299, 71, "Chollet, Xception: Deep Learning with Depthwise Separable "
     "Convolutions, CVPR 2017"),
    ("inception_v3", "InceptionV3", "tf", 299, 75, "Szegedy et al., Rethinking the Inception Architecture "
     "for Computer Vision, CVPR 2016"),
    ("inception_resnet_v2", "InceptionResNetV2", "tf", 299, 75, "Szegedy et al., Inception-v4, "
     "Inception-ResNet and the Impact of Residual Connections on Learning, AAAI 2017"),
    ("mobilenet", "MobileNet", "tf", 224, 32, "Howard et al., MobileNets: Efficient Convolutional Neural "
     "Networks for Mobile Vision Applications, arXiv 2017"),
    ("mobilenetv2", "MobileNetV2", "tf", 224, 32, "Sandler et al., MobileNetV2: Inverted Residuals and "
     "Linear Bottlenecks, CVPR 2018"),
    ("mobilenetv3_small", "MobileNetV3Small", "none", 224, 32, "Howard et al., Searching for "
     "MobileNetV3, ICCV 2019"),
    ("mobilenetv3_large", "MobileNetV3Large", "none", 224, 32, "Howard et al., Searching for "
     "MobileNetV3, ICCV 2019"),
    ("densenet121", "DenseNet121", "torch", 224, 32, _DENSE),
    ("densenet169", "DenseNet169", "torch", 224, 32, _DENSE),
    ("densenet201", "DenseNet201", "torch", 224, 32, _DENSE),
    ("nasnet_mobile", "NASNetMobile", "tf", 224, 32, _NASNET),
    ("nasnet_large", "NASNetLarge", "tf", 331, 32, _NASNET),
    *[(f"efficientnet_b{i}", f"EfficientNetB{i}", "none", size, 32, _EFF)
      for i, size in enumerate((224, 240, 260, 300, 380, 456, 528, 600))],
    *[(f"efficientnetv2_{v}", f"EfficientNetV2{v.upper()}", "none", size, 32, _EFF2)
      for v, size in (("b0", 224), ("b1", 240), ("b2", 260), ("b3", 300), ("s", 384), ("m", 480), ("l", 480))],
    *[(f"convnext_{v}", f"ConvNeXt{v.capitalize() if v != 'xlarge' else 'XLarge'}", "none", 224, 32, _CONVNEXT)
      for v in ("tiny", "small", "base", "large", "xlarge")],
]

PRETRAINED: dict[str, PretrainedSpec] = {row[0]: PretrainedSpec(*row) for row in _TABLE}
"""foveal name -> keras.applications network with ImageNet weights."""

# Constructor arguments build_pretrained sets itself; the others pass through (e.g. alpha).
_MANAGED = {"include_top", "weights", "input_tensor", "input_shape", "pooling", "classes",
            "classifier_activation", "name"}


# --------------------------------------------------------------------------- class names

@functools.lru_cache(maxsize=1)
def imagenet_class_names() -> tuple[str, ...]:
    """The 1,000 ImageNet class names in output order ("tench", "goldfish", ...).

    Keras' ``imagenet_class_index.json`` is itself a download (cached like the weights).
    When it cannot be had, the names are ``imagenet_0`` .. ``imagenet_999`` with a warning.
    """
    try:
        path = keras.utils.get_file(_CLASS_INDEX_FILE, _CLASS_INDEX_URL, cache_subdir="models",
                                    file_hash=_CLASS_INDEX_MD5)
        index = json.loads(Path(path).read_text(encoding="utf-8"))
        return tuple(index[str(i)][1] for i in range(IMAGENET_CLASSES))
    except Exception as exc:  # offline, or a damaged file: both leave us with indices only
        warnings.warn(f"ImageNet class names unavailable ({str(exc)[:120]}); using imagenet_0..imagenet_999. "
                      f"Put {_CLASS_INDEX_FILE} in {weights_cache_dir()} to get the names.", stacklevel=2)
        imagenet_class_names.cache_clear()  # try again next time
        return tuple(f"imagenet_{i}" for i in range(IMAGENET_CLASSES))


def decode_predictions(probabilities: Any, class_names: list[str] | tuple[str, ...] | None = None,
                       top: int = 5) -> list[list[tuple[str, float]]]:
    """The ``top`` (class name, probability) pairs of each row, best first.

    Args:
        probabilities: (N, classes) model outputs.
        class_names: names of the outputs; ImageNet's when omitted and there are 1,000.

    Example:
        >>> decode_predictions(np.array([[0.1, 0.7, 0.2]]), ["cat", "dog", "fox"], top=2)
        [[('dog', 0.7), ('fox', 0.2)]]
    """
    probs = np.asarray(probabilities, dtype=np.float64)
    if probs.ndim != 2:
        raise ValueError(f"expected (N, classes) probabilities, got shape {probs.shape}")
    if class_names is None:
        if probs.shape[1] != IMAGENET_CLASSES:
            raise ValueError("class_names are needed unless there are 1,000 ImageNet outputs")
        class_names = imagenet_class_names()
    order = np.argsort(-probs, axis=1, kind="stable")[:, :top]
    return [[(class_names[j], round(float(row[j]), 6)) for j in idx] for row, idx in zip(probs, order)]


# --------------------------------------------------------------------------- building

def weights_cache_dir() -> Path:
    """Where Keras keeps downloaded weights: ``$KERAS_HOME/models`` (default ``~/.keras/models``).

    Keras reads ``KERAS_HOME`` when it is imported and falls back to ``/tmp/.keras`` when its
    home is not writable; this mirrors both.
    """
    try:
        from keras.src.backend.config import keras_home

        home = keras_home()
    except ImportError:  # a future Keras layout
        home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    home = os.path.expanduser(home)
    if not os.access(home, os.W_OK):
        home = os.path.join("/tmp", ".keras")
    return Path(home) / "models"


def default_input_shape(name: str, builder: str | None = None) -> tuple[int, int, int]:
    """The input (H, W, C) a foveal or keras.applications architecture is built for.

    ``builder`` (``keras`` or ``foveal``) picks the table for a name both know; by default
    foveal's own architecture.
    """
    from foveal.models import MODELS

    if builder == "keras" and name.lower() in PRETRAINED:
        return PRETRAINED[name.lower()].input_shape
    if name in MODELS:
        return tuple(MODELS.get(name).meta["input_shape"])  # type: ignore[return-value]
    if name.lower() in PRETRAINED:
        return PRETRAINED[name.lower()].input_shape
    raise unknown_architecture(name)


def unknown_architecture(name: str) -> ModelError:
    import difflib

    from foveal.models import MODELS

    known = sorted(set(MODELS.names()) | set(PRETRAINED))
    close = difflib.get_close_matches(name.lower(), known, n=3, cutoff=0.5)
    return ModelError(f"unknown model {name!r}; known: {', '.join(known)}",
                      hint=f"did you mean {', '.join(close)}?" if close else None)


def builder_for(name: str, weights: str | os.PathLike | None) -> str:
    """``"keras"`` (keras.applications) or ``"foveal"`` (the registry): who builds ``name``.

    A name only one of them knows goes there. A name both know (say ``resnet50``) goes to
    keras.applications for ``imagenet`` and for weight files that came from it (legacy
    ``.h5`` downloads, or ``.keras`` files whose card says so), to the registry otherwise.
    """
    from foveal.models import MODELS

    key = name.lower()
    in_keras, in_foveal = key in PRETRAINED, key in MODELS
    if not in_keras and not in_foveal:
        raise unknown_architecture(name)
    if in_keras != in_foveal:
        return "keras" if in_keras else "foveal"
    if weights is None:
        return "foveal"
    if str(weights) == "imagenet":
        return "keras"
    path = Path(weights)
    if path.suffix == ".keras":
        from foveal.models.io import read_card

        card = read_card(path) if path.is_file() else None
        return "keras" if card is not None and card.training.get("builder") == "keras" else "foveal"
    return "foveal" if path.name.endswith(".weights.h5") else "keras"


@contextlib.contextmanager
def _recording_downloads() -> Iterator[list[dict[str, Any]]]:
    """Record the files keras.applications asks ``get_file`` for (to name them in errors).

    The applications call ``file_utils.get_file`` through their module, so wrapping that
    attribute sees every request; nothing else changes.
    """
    asked: list[dict[str, Any]] = []
    try:
        from keras.src.utils import file_utils
    except ImportError:  # a future Keras layout: errors just name fewer details
        yield asked
        return
    original = file_utils.get_file

    def recording_get_file(fname=None, origin=None, *args, **kwargs):
        entry = {"fname": fname or os.path.basename(str(origin)), "origin": origin, "ok": False}
        # Keras deletes a cached file whose checksum is wrong before it downloads again.
        folder = Path(kwargs.get("cache_dir") or weights_cache_dir().parent) / kwargs.get("cache_subdir", "datasets")
        entry["was_cached"] = (folder / entry["fname"]).is_file()
        asked.append(entry)
        result = original(fname, origin, *args, **kwargs)
        entry["ok"] = True
        entry["path"] = result
        return result

    file_utils.get_file = recording_get_file
    try:
        yield asked
    finally:
        file_utils.get_file = original


def _keras_application(spec: PretrainedSpec, x, *, shape, include_top: bool, weights: str | None,
                       options: dict[str, Any]):
    """Call the keras.applications constructor on tensor ``x``; ImageNet download errors -> ModelError."""
    constructor = getattr(keras.applications, spec.constructor)
    accepted = inspect.signature(constructor).parameters
    unknown = sorted(k for k in options if k not in accepted or k in _MANAGED)
    if unknown:
        allowed = sorted(k for k in accepted if k not in _MANAGED)
        raise ConfigError(f"model {spec.name!r} has no option(s) {', '.join(unknown)}",
                          hint=f"its options are: {', '.join(allowed) or 'none'}")
    kwargs: dict[str, Any] = dict(include_top=include_top, weights=weights, input_tensor=x, input_shape=shape,
                                  **options)
    if include_top:
        kwargs["classifier_activation"] = None  # softmax added by foveal, in float32
    with _recording_downloads() as asked:
        try:
            return constructor(**kwargs)
        except Exception as exc:
            fetched = [a for a in asked if not a["ok"]]
            if fetched:
                failed = fetched[-1]
                raise _download_error(spec.name, failed["fname"], failed["origin"], failed["was_cached"],
                                      exc) from None
            if asked:  # the file was there but Keras could not read it
                path = asked[-1].get("path")
                raise ModelError(f"the ImageNet weights file {path} of {spec.name!r} could not be read: "
                                 f"{str(exc)[:300]}",
                                 hint="delete it so it is downloaded again, or pass --weights PATH") from None
            raise ModelError(f"cannot build {spec.name!r} for input {shape}: {str(exc)[:400]}") from None


def _download_error(name: str, fname: str, origin: str | None, was_cached: bool, exc: Exception) -> ModelError:
    folder = weights_cache_dir()
    why = (f"the copy in {folder} did not match the checksum Keras expects (so Keras removed it) and "
           "downloading it again failed" if was_cached else "the download failed (offline?)")
    return ModelError(
        f"cannot get the ImageNet weights of {name!r} ({fname}): {why}: {str(exc)[:200]}",
        hint=f"put the file {fname} (from {origin}) into {folder} (Keras' download cache, "
             "$KERAS_HOME/models, by default ~/.keras/models) and run again, or pass --weights PATH "
             "with that file (or a .keras/.weights.h5 file of this architecture)")


def graft_classifier(x, num_classes: int, *, dropout: float = 0.0, pooling: str = "avg"):
    """The foveal head on a feature tensor: pool (if 4-D), dropout, ``logits``, float32 softmax."""
    from foveal.transfer.surgery import head_tensors

    return head_tensors(x, num_classes, dropout=dropout, pooling=pooling)


def build_pretrained(
    name: str,
    *,
    weights: str | os.PathLike | None = "imagenet",
    num_classes: int | None = None,
    include_top: bool = True,
    input_shape: tuple[int, int, int] | None = None,
    preprocessing: str | None = None,
    dropout: float | None = None,
    pooling: str = "avg",
    class_names: list[str] | None = None,
    builder: str = "auto",
    **options: Any,
) -> keras.Model:
    """Build ``name`` as a flat foveal model, with ImageNet weights or weights from a file.

    Args:
        name: a :data:`PRETRAINED` name (keras.applications) or a foveal architecture.
        weights: ``"imagenet"``, a path (``.keras``, ``.weights.h5`` or keras.applications
            ``.h5``), or None for random initialisation.
        num_classes: a new classifier with this many classes on the pooled features
            (``logits`` + ``probabilities``). None keeps the original one: ImageNet's 1,000
            classes, or a ``.keras`` source's own classes.
        include_top: False returns the last feature map (no pooling, no classifier).
        input_shape: (H, W, C); the network's default size with 3 channels by default.
        preprocessing: override the ``Preprocess`` mode (the weights expect the default).
        dropout: dropout before a new classifier (keras.applications), or the architecture's
            ``dropout`` option (foveal; None keeps its default).
        pooling: ``avg``, ``max`` or ``flatten`` before a new classifier.
        class_names: the new task's classes; when a ``.keras`` source has the same ones,
            its classifier is reused, otherwise the classifier starts fresh.
        builder: ``auto`` (see :func:`builder_for`), ``keras`` (keras.applications) or
            ``foveal`` (the registry), for names both know.
        **options: constructor arguments, e.g. ``alpha=0.5`` for MobileNet.

    Returns:
        An uncompiled model from raw pixels (0..255) to class probabilities (or features).

    Raises:
        ModelError: unknown name, weights that cannot be downloaded (naming the file and
            where to put it) or read.

    Example:
        >>> model = build_pretrained("mobilenet", weights=None, num_classes=3, builder="keras",
        ...                          input_shape=(128, 128, 3), alpha=0.25)
        >>> model.layers[1].name, model.output_shape
        ('preprocess', (None, 3))
    """
    if builder not in ("auto", "keras", "foveal"):
        raise ConfigError(f"builder must be auto, keras or foveal, got {builder!r}")
    builder = builder_for(name, weights) if builder == "auto" else builder
    if builder == "keras" and name.lower() not in PRETRAINED:
        raise ModelError(f"{name!r} is not a keras.applications model; those are: {', '.join(PRETRAINED)}")
    source_card = None
    if weights is not None and str(weights) != "imagenet":
        source_card = _check_weights_path(Path(weights))
        if num_classes is None and include_top and source_card is not None:
            num_classes = len(source_card.class_names)
            class_names = class_names or list(source_card.class_names)
    if builder == "foveal":
        if str(weights) == "imagenet":
            raise ModelError(f"foveal's own {name!r} has no ImageNet weights",
                             hint=f"models with ImageNet weights: {', '.join(PRETRAINED)}; "
                                  "or pass --weights PATH")
        model = _build_foveal(name, num_classes=num_classes, include_top=include_top, input_shape=input_shape,
                              preprocessing=preprocessing, dropout=dropout, options=options,
                              source_card=source_card)
    else:
        model = _build_keras(PRETRAINED[name.lower()], weights=weights, num_classes=num_classes,
                             include_top=include_top, input_shape=input_shape, preprocessing=preprocessing,
                             dropout=dropout, pooling=pooling, options=options)
    if weights is not None and str(weights) != "imagenet":
        reuse_classifier = (source_card is not None and class_names is not None
                            and list(source_card.class_names) == list(class_names))
        report = load_weights_by_name(model, weights, skip=() if reuse_classifier else (output_layer_name(model),))
        log.info("%s", report.summary())
        model._foveal_weight_transfer = report  # for callers that want the details
    return model


def _check_weights_path(path: Path):
    from foveal.models.io import read_card

    if not path.is_file():
        raise ModelError(f"weights file not found: {path}",
                         hint="pass 'imagenet', a .keras model file, or a .weights.h5/.h5 weights file")
    if path.suffix == ".keras":
        return read_card(path)
    if path.suffix not in (".h5", ".hdf5"):
        raise ModelError(f"{path}: weights must be a .keras, .weights.h5 or .h5 file")
    return None


def _build_foveal(name, *, num_classes, include_top, input_shape, preprocessing, dropout, options, source_card):
    from foveal.models import MODELS, build_model

    if include_top and num_classes is None:
        raise ConfigError(f"num_classes is needed to build foveal's {name!r} with a classifier")
    shape = input_shape or (tuple(source_card.input_shape) if source_card else MODELS.get(name).meta["input_shape"])
    if dropout is not None:
        options = {"dropout": dropout, **options}
    return build_model(name, num_classes=num_classes or 2, input_shape=shape, include_top=include_top,
                       preprocessing=preprocessing, **options)


def _build_keras(spec: PretrainedSpec, *, weights, num_classes, include_top, input_shape, preprocessing,
                 dropout, pooling, options) -> keras.Model:
    shape = tuple(int(d) for d in (input_shape or spec.input_shape))
    if len(shape) != 3:
        raise ConfigError(f"input_shape must be (height, width, channels), got {shape}")
    imagenet = weights is not None and str(weights) == "imagenet"
    if imagenet and shape[2] != 3:
        raise ConfigError(f"ImageNet weights need RGB input (3 channels), got {shape[2]}",
                          hint="use --channels 3: gray images are repeated to RGB")
    if min(shape[:2]) < spec.min_size:
        raise ConfigError(f"{spec.name!r} needs inputs of at least {spec.min_size}x{spec.min_size}, got "
                          f"{shape[0]}x{shape[1]}")
    mode = preprocessing or spec.preprocessing
    if imagenet and preprocessing and preprocessing != spec.preprocessing:
        warnings.warn(f"{spec.name}'s ImageNet weights expect preprocessing {spec.preprocessing!r}, "
                      f"not {preprocessing!r}", stacklevel=3)
    # ImageNet's own classifier when no new one is asked for; otherwise the features + a new head.
    keep_top = include_top and num_classes is None
    if keep_top and imagenet and shape[:2] != spec.input_shape[:2]:
        raise ConfigError(f"{spec.name!r} with its ImageNet classifier takes {spec.input_size}x"
                          f"{spec.input_size} images, got {shape[0]}x{shape[1]}",
                          hint="pass num_classes for a new classifier, which works at any size")
    inputs = keras.Input(shape=shape, name="image")
    x = Preprocess(mode, name="preprocess")(inputs)
    app = _keras_application(spec, x, shape=shape, include_top=keep_top,
                             weights="imagenet" if imagenet else None, options=dict(options))
    outputs = app.output
    if keep_top:
        outputs = keras.layers.Activation("softmax", dtype="float32", name="probabilities")(outputs)
    elif include_top:
        outputs = graft_classifier(outputs, num_classes, dropout=dropout or 0.0, pooling=pooling)
    # The application's graph starts at our Input, so this is one flat functional model.
    return keras.Model(inputs, outputs, name=spec.name)


def output_layer_name(model: keras.Model) -> str | None:
    """The last layer with weights: the classifier (``logits``, or keras' ``predictions``)."""
    for layer in reversed(model.layers):
        if layer.weights:
            return layer.name
    return None


def imagenet_card(model: keras.Model, name: str):
    """A :class:`~foveal.models.ModelCard` for a model with ImageNet's 1,000 outputs."""
    from foveal.models.io import ModelCard

    preprocess = next((layer for layer in model.layers if layer.name == "preprocess"), None)
    return ModelCard(architecture=name, class_names=list(imagenet_class_names()),
                     input_shape=tuple(int(d) for d in model.input_shape[1:]),  # type: ignore[arg-type]
                     preprocessing=getattr(preprocess, "mode", "none"),
                     training={"weights": "imagenet", "builder": "keras"})


# --------------------------------------------------------------------------- weight files

@dataclass
class WeightTransfer:
    """What :func:`load_weights_by_name` did.

    Attributes:
        source: the weights file.
        loaded: target layers whose weights were all set from the file.
        skipped: target layers with weights left as they were -> the reason.
        unused: layers of the file that no target layer took.
    """

    source: str
    loaded: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    unused: list[str] = field(default_factory=list)

    def summary(self) -> str:
        text = f"weights from {self.source}: {len(self.loaded)} layer(s) loaded"
        if self.skipped:
            shown = "; ".join(f"{k} ({v})" for k, v in list(self.skipped.items())[:6])
            more = f"; ... {len(self.skipped) - 6} more" if len(self.skipped) > 6 else ""
            text += f", {len(self.skipped)} kept as initialised: {shown}{more}"
        return text


def load_weights_by_name(model: keras.Model, path: str | os.PathLike, *, skip: tuple[str | None, ...] = ()
                         ) -> WeightTransfer:
    """Set the weights of ``model``'s layers from the same-named layers of a file.

    A layer is loaded only when the file has as many arrays for it and every shape matches
    (so a classifier with another number of classes, or a first convolution for another
    channel count, keeps its initial weights); ``skip`` names layers never loaded.

    Args:
        model: the target, changed in place.
        path: a ``.keras`` model file, a Keras ``.weights.h5`` file, or a legacy ``.h5``
            weights file such as keras.applications downloads.
        skip: layer names to leave alone (e.g. the classifier of another task).

    Raises:
        ModelError: the file cannot be read, or no layer at all matched.
    """
    path = Path(path)
    arrays, order = _read_layer_arrays(path)
    report = WeightTransfer(source=str(path))
    used: set[str] = set()
    for layer in model.layers:
        if not layer.weights:
            continue
        if layer.name in skip:
            report.skipped[layer.name] = "new classifier"
            continue
        values = arrays.get(layer.name)
        if values is None:
            report.skipped[layer.name] = "not in the file"
            continue
        used.add(layer.name)
        reason = _assign(layer, values, order)
        if reason:
            report.skipped[layer.name] = reason
        else:
            report.loaded.append(layer.name)
    report.unused = [name for name, values in arrays.items() if values and name not in used]
    if not report.loaded:
        raise ModelError(f"{path}: no layer of {model.name!r} matches a layer of the file by name and shape",
                         hint="the file is for another architecture (or another builder of it); "
                              f"file layers look like: {', '.join(list(arrays)[:5])}")
    return report


def _assign(layer, values: list[np.ndarray], order: str) -> str | None:
    """Set ``layer``'s weights from ``values``; None on success, else why not.

    ``order`` is ``weights`` (``layer.get_weights()`` of a same-class layer, nested
    sub-layers included) or ``variables`` (the layer's own variables as HDF5 files store them).
    """
    before = layer.get_weights()
    if len(values) != len(before):
        return f"the file has {len(values)} array(s), the layer {len(before)}"
    try:
        if order == "weights":
            layer.set_weights(values)
        else:
            layer.load_own_variables({str(i): v for i, v in enumerate(values)})
    except (ValueError, KeyError):
        layer.set_weights(before)  # a partial assignment must not stay behind
        shapes = ", ".join(str(tuple(v.shape)) for v in values)
        mine = ", ".join(str(tuple(w.shape)) for w in before)
        return f"shapes differ: file {shapes}, model {mine}"
    return None


def _read_layer_arrays(path: Path) -> tuple[dict[str, list[np.ndarray]], str]:
    """Layer name -> its arrays, and their order (see :func:`_assign`).

    A ``.keras`` file is loaded (safe mode) so that layers with nested sub-layers copy
    whole; if it cannot be rebuilt (e.g. an unknown custom layer), its weights archive is
    read directly, as ``.weights.h5`` and legacy ``.h5`` files are.
    """
    import h5py

    if not path.is_file():
        raise ModelError(f"weights file not found: {path}")
    if path.suffix == ".keras":
        from foveal.models.io import load_model

        try:
            source, _ = load_model(path)
            return {layer.name: layer.get_weights() for layer in source.layers if layer.weights}, "weights"
        except ModelError as exc:
            log.info("reading the weights of %s directly: %s", path, exc)
    try:
        if path.suffix == ".keras":
            with zipfile.ZipFile(path) as archive:
                data = archive.read("model.weights.h5")
            with h5py.File(io.BytesIO(data), "r") as f:
                return _keras3_arrays(f), "variables"
        with h5py.File(path, "r") as f:
            if "layer_names" in f.attrs:
                return _legacy_arrays(f), "variables"
            if "model_weights" in f and "layer_names" in f["model_weights"].attrs:
                return _legacy_arrays(f["model_weights"]), "variables"
            if "layers" in f:
                return _keras3_arrays(f), "variables"
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise ModelError(f"{path}: not a readable weights file ({str(exc)[:200]})") from None
    raise ModelError(f"{path}: no layer weights found in it",
                     hint="expected a .keras model, a .weights.h5 file or a keras.applications .h5 file")


def _child(group, path: str):
    """``group[path]``, refusing soft and external links (they could point outside the file)."""
    import h5py

    current = group
    for part in path.split("/"):
        if not part or part not in current:
            raise KeyError(path)
        link = current.get(part, getlink=True)
        if not isinstance(link, h5py.HardLink):
            raise KeyError(f"{path} is a link")
        current = current[part]
    return current


def _keras3_arrays(f) -> dict[str, list[np.ndarray]]:
    """Keras 3 layout: ``layers/<key>/vars/<i>`` with the layer name in the ``vars`` attributes."""
    out: dict[str, list[np.ndarray]] = {}
    layers_group = _child(f, "layers")
    for key in layers_group.keys():
        try:
            vars_group = _child(layers_group, f"{key}/vars")
        except KeyError:
            continue
        name = vars_group.attrs.get("name", key)
        name = name.decode("utf-8") if isinstance(name, bytes) else str(name)
        out[name] = [np.asarray(_child(vars_group, k)) for k in sorted(vars_group.keys(), key=int)]
    return out


def _legacy_arrays(f) -> dict[str, list[np.ndarray]]:
    """Keras 2 / keras.applications layout: ``layer_names`` and per-layer ``weight_names``."""
    def names(attrs, key: str) -> list[str]:
        values = list(attrs.get(key, []))
        chunk = 0
        while f"{key}{chunk}" in attrs:  # long lists are split into numbered chunks
            values += list(attrs[f"{key}{chunk}"])
            chunk += 1
        return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in values]

    out: dict[str, list[np.ndarray]] = {}
    for layer_name in names(f.attrs, "layer_names"):
        group = _child(f, layer_name)
        out[layer_name] = [np.asarray(_child(group, w)) for w in names(group.attrs, "weight_names")]
    return out


def classifier_card(path: str | os.PathLike) -> Any:
    """The model card of a foveal classifier given as ``--backbone-weights``."""
    from foveal.models.io import read_card

    card = read_card(path)
    if card is None:
        raise ConfigError(f"{path}: not a foveal .keras model (no model card)",
                          hint="--backbone-weights takes a classifier written by `foveal train`")
    return card


def load_backbone_weights(model: keras.Model, path: str | os.PathLike) -> None:
    """Start a detector's backbone (its nested models, else the model itself) from a foveal
    classifier of the same architecture, by layer name (``--backbone-weights``)."""
    from foveal.training.runs import say

    card = classifier_card(path)
    targets = [layer for layer in model.layers if hasattr(layer, "layers") and layer.weights] or [model]
    reports = []
    for target in targets:
        try:
            reports.append(load_weights_by_name(target, path))
        except Exception:  # noqa: BLE001 - a target without matches: try the others, fail below if none
            continue
    loaded = sum(len(r.loaded) for r in reports)
    if not loaded:
        raise ConfigError(f"{path}: none of its layers match the {model.name} backbone by name and shape",
                          hint=f"the file is a {card.architecture!r} model; use --backbone {card.architecture} "
                               "with the --backbone-options it was trained with")
    for report in reports:
        say(report.summary())


__all__ = [
    "IMAGENET_CLASSES", "PRETRAINED", "PretrainedSpec", "WeightTransfer", "build_pretrained", "builder_for",
    "classifier_card", "load_backbone_weights",
    "decode_predictions", "default_input_shape", "imagenet_card", "imagenet_class_names",
    "load_weights_by_name", "output_layer_name", "weights_cache_dir",
]
