"""One dispatch for what export, benchmark and serve need to know about a model's task.

Each task keeps its deployment knowledge in its own package, as plain module-level functions
with the same names (``foveal.export.classify``, ``foveal.localization.export_check``,
``foveal.detection.export_check``, ``foveal.segmentation.export_check``); this module only
maps the card's ``task`` to that module and forwards. The hooks:

* ``export_graph(model, card) -> keras.Model``: the graph the exports hold, with named outputs
  (the runners' ``raw`` returns them by those names).
* ``check_export(card, fmt, quantize)`` (optional): refuse, in one line, a format or a
  quantization this model cannot have (a Faster R-CNN or Mask R-CNN: SavedModel and ONNX, float only).
* ``input_signature(card) -> (H, W, C)``: the per-image input shape of the exports (``None``
  for sides the export leaves free, as segmenters do).
* ``export_card(model, card) -> ModelCard``: the card written beside an export (a detector
  adds its post-processing settings, which the runners need to decode).
* ``model_input(image, card) -> array``: one decoded uint8 image (its own size) resized to
  the model's input as the task's ``predict`` does (a detector letterboxes like its training
  pipeline); serve and benchmark prepare uploads with it.
* ``outputs(source, card, images) -> dict``: what the task predicts for a batch, from a Keras
  model or from any runner: ``probabilities`` (classify); ``class`` and normalised corner
  ``box`` (localize); ``boxes``, ``scores``, ``classes``, ``num_detections`` after NMS
  (detect); per-pixel ``probabilities`` (segment); a Mask R-CNN's detections and ``masks``, or a U-Net +
  watershed's ``probabilities`` (instance).
* ``postprocess(out, card) -> Any`` (optional): the per-image work after ``outputs`` that makes
  the task's answer at the model's input size (an instance model's masks pasted, or its marker
  watershed); ``foveal benchmark`` times it with the model, so "the model alone" is the whole
  inference of an image and not only the network.
* ``parity(reference, exported, card, tolerance) -> dict``: compares two ``outputs``; has
  ``passed``, ``max_abs_diff``, ``agreement`` (and its ``agreement_name``) and task figures.
* ``TAKES_IMAGES`` (optional, default True): False for a graph whose input is not pixels (a
  generator's latent codes); such a task also has ``random_inputs(card, count, seed)`` (parity
  inputs) and ``calibration_inputs(card, count)`` (int8 calibration batches).
* ``PER_IMAGE`` (optional, default False): True where ``outputs`` runs each image on its own
  (an enhancer tiles each upload at its own size), so the server does not pad its batches;
  ``output_scale(card)`` (optional): how many times larger than the upload the answer image is.
* ``load_model(path) -> (model, card)`` (optional): what export and serve load from a ``.keras``
  file, where the file alone is not the model (a video classifier on per-frame features: its
  sequence head with the frame backbone saved beside it); default :func:`foveal.models.io.load_model`.
* ``write_export(graph, card, fmt, path, quantize)`` (optional): the task writes the formats
  itself (a video graph takes two inputs, ``frames`` and ``lengths``).
* ``decode_channels(card)`` (optional, default: the card's channels): the channels an upload
  is decoded with before ``model_input`` (a luma enhancer takes colour, to answer in colour).
* ``load_parts(spec, card[, model_path])``, ``sample_images(parts, card, split, count)``: the task's
  data (a generator's: real images and the judge classifier that scores samples).
* ``accuracy(source, card, part, limit) -> {"metric", "value"}``: the task's own score
  (top-1 accuracy, mean IoU, mAP@0.5, mean IoU of masks) through the task's scoring code.
* ``render(row, card, image, top_k) -> dict``: the ``/predict`` JSON of one image's outputs
  (``image``: the upload's ``(width, height)``).

Example:
    >>> from foveal.export import tasks  # doctest: +SKIP
    >>> out = tasks.outputs(open_runner("det.onnx"), card, images)  # doctest: +SKIP
    >>> out["boxes"].shape  # doctest: +SKIP
    (8, 100, 4)
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from foveal.errors import ModelError

if TYPE_CHECKING:
    from foveal.models.io import ModelCard

#: task name -> module holding its hooks (the lead's task table can take this mapping over).
TASK_MODULES: dict[str, str] = {
    "classify": "foveal.export.classify",
    "localize": "foveal.localization.export_check",
    "detect": "foveal.detection.export_check",
    "segment": "foveal.segmentation.export_check",
    "instance": "foveal.instance.export_check",
    "enhance": "foveal.enhancement.export_check",
    "generate": "foveal.generative.export_check",
    "video": "foveal.video.export_check",
}


def hooks(task: str) -> ModuleType:
    """The module of ``task``'s hooks.

    Raises:
        ModelError: a task foveal cannot export or serve.
    """
    if task not in TASK_MODULES:
        raise ModelError(f"foveal cannot export or serve models of the task {task!r}",
                         hint=f"known tasks: {', '.join(TASK_MODULES)}")
    return importlib.import_module(TASK_MODULES[task])


def load(path: Any) -> tuple[Any, ModelCard]:
    """The model of a ``.keras`` file as export and serve use it: the task's ``load_model`` hook
    (a video model with its frame backbone), else :func:`foveal.models.io.load_model`."""
    from foveal.models.io import load_model, read_card

    try:
        card = read_card(path)
    except (OSError, ModelError):  # missing or not a model file: load_model says so in its own words
        card = None
    own = getattr(hooks(card.task), "load_model", None) if card is not None and card.task in TASK_MODULES else None
    return own(path) if own is not None else load_model(path)


def check_export(card: ModelCard, fmt: str, quantize: str | None) -> None:
    """The task's own refusal of a format or quantization (optional hook ``check_export``)."""
    check = getattr(hooks(card.task), "check_export", None)
    if check is not None:
        check(card, fmt, quantize)


def export_graph(model: Any, card: ModelCard) -> Any:
    return hooks(card.task).export_graph(model, card)


def input_signature(card: ModelCard) -> tuple[int | None, ...]:
    return hooks(card.task).input_signature(card)


def export_card(model: Any, card: ModelCard) -> ModelCard:
    return hooks(card.task).export_card(model, card)


def model_input(image: np.ndarray, card: ModelCard) -> np.ndarray:
    return hooks(card.task).model_input(image, card)


def decode_channels(card: ModelCard) -> int:
    """The channels an upload is decoded with (the task's ``decode_channels``, else the card's)."""
    own = getattr(hooks(card.task), "decode_channels", None)
    return int(own(card)) if own is not None else int(card.input_shape[-1])


def outputs(source: Any, card: ModelCard, images: np.ndarray) -> dict[str, np.ndarray]:
    return hooks(card.task).outputs(source, card, np.asarray(images, np.float32))


def inference(source: Any, card: ModelCard, images: np.ndarray) -> Any:
    """``outputs`` followed by the task's ``postprocess`` hook where it has one: what one
    prediction of a batch costs (``foveal benchmark``'s "model alone")."""
    out = outputs(source, card, images)
    own = getattr(hooks(card.task), "postprocess", None)
    return own(out, card) if own is not None else out


def parity(reference: dict[str, np.ndarray], exported: dict[str, np.ndarray], card: ModelCard,
           tolerance: float) -> dict[str, Any]:
    return hooks(card.task).parity(reference, exported, card, tolerance)


def takes_images(card: ModelCard) -> bool:
    """Whether the task's exports take pixels (else, e.g., a generator's latent codes)."""
    return bool(getattr(hooks(card.task), "TAKES_IMAGES", True))


def output_scale(card: ModelCard) -> int:
    """How many times larger than the upload a task's answer image is (a super-resolver's scale; else 1)."""
    own = getattr(hooks(card.task), "output_scale", None)
    return int(own(card)) if own is not None else 1


def random_inputs(card: ModelCard, count: int, seed: int = 0) -> np.ndarray:
    """Parity inputs without a dataset: seeded uniform pixels 0..255 of the card's input, or the
    task's own (a generator's seeded latent codes)."""
    own = getattr(hooks(card.task), "random_inputs", None)
    if own is not None:
        return own(card, count, seed)
    return np.random.default_rng(seed).uniform(0, 255, (count, *card.input_shape)).astype(np.float32)


def load_parts(spec: str, card: ModelCard, model_path: Any = None) -> dict[str, Any]:
    """The task's data for ``spec``; ``model_path`` reaches a hook that takes it (a generator's judge
    classifier is found beside its model file)."""
    import inspect

    load = hooks(card.task).load_parts
    if model_path is not None and "model_path" in inspect.signature(load).parameters:
        return load(spec, card, model_path=model_path)
    return load(spec, card)


def sample_images(parts: dict[str, Any], card: ModelCard, split: str, count: int) -> np.ndarray:
    """Parity inputs from the data: images of the split, or (a task whose exports take no images) the
    task's own seeded inputs."""
    if not takes_images(card):
        return random_inputs(card, count)
    return hooks(card.task).sample_images(pick_part(parts, split), card, count)


def accuracy(source: Any, card: ModelCard, part: Any, limit: int | None) -> dict[str, Any]:
    return hooks(card.task).accuracy(source, card, part, limit)


def render(row: dict[str, np.ndarray], card: ModelCard, image: tuple[int, int], top_k: int) -> dict[str, Any]:
    return hooks(card.task).render(row, card, image, top_k)


def pick_part(parts: dict[str, Any], split: str) -> Any:
    """The split named ``split``, else the first one (a source without splits)."""
    return parts.get(split) or next(iter(parts.values()))


def is_runner(source: Any) -> bool:
    """Whether ``source`` is an export runner (else a Keras model)."""
    from foveal.export.runners import Runner

    return isinstance(source, Runner)


class OutputsModel:
    """A runner dressed as the Keras model a task's scoring code expects.

    The scorers (``detect_dataset``, ``score_localizer``, ``score_segmenter``) call
    ``model.predict(dataset)``, ``model.predict_on_batch(x)`` or ``model(x)``; this answers
    them with ``fn(images)`` so the export is scored by the very same code as the Keras model.

    Args:
        fn: a batch of float32 pixels -> an array or a dict of arrays.
        input_shape: what ``model.input_shape`` should say (``(None, H, W, C)``).
    """

    def __init__(self, fn: Callable[[np.ndarray], Any], input_shape: tuple[int | None, ...]) -> None:
        self._fn = fn
        self.input_shape = input_shape

    def __call__(self, images: Any, training: bool = False) -> Any:
        return self._fn(np.asarray(images, np.float32))

    def predict_on_batch(self, images: Any) -> Any:
        return self._fn(np.asarray(images, np.float32))

    def predict(self, data: Any, verbose: int = 0, batch_size: int = 32) -> Any:
        """Every batch of a ``tf.data`` dataset of images (or an array), joined."""
        if isinstance(data, np.ndarray):
            batches = (data[i:i + batch_size] for i in range(0, len(data), batch_size))
        else:
            batches = (np.asarray(batch) for batch in data)
        results = [self._fn(np.asarray(batch, np.float32)) for batch in batches]
        if not results:
            return {}
        if isinstance(results[0], dict):
            return {k: np.concatenate([r[k] for r in results]) for k in results[0]}
        return np.concatenate(results)


__all__ = ["OutputsModel", "TASK_MODULES", "accuracy", "decode_channels", "export_card", "export_graph", "hooks",
           "input_signature", "is_runner", "load", "load_parts", "output_scale", "random_inputs", "takes_images",
           "model_input", "outputs", "parity", "pick_part", "render", "sample_images"]
