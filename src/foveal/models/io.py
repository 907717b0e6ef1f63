"""Save and load self-describing ``.keras`` model files.

A foveal model file is a normal Keras 3 ``.keras`` archive (loadable with
``keras.models.load_model`` once ``foveal`` is imported) plus one extra member,
``foveal.json``: the :class:`ModelCard` with class names, input size, channel order,
preprocessing and resize policy, so ``predict`` needs nothing else. Files are written
atomically.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import keras

from foveal.errors import ModelError
from foveal.utils_io import atomic_path

CARD_MEMBER = "foveal.json"


@dataclass
class ModelCard:
    """What a model needs to be used: labels, input geometry, preprocessing, provenance.

    Attributes:
        architecture: registry name the model was built from.
        class_names: output index -> class name.
        input_shape: (height, width, channels) of the raw pixel input.
        preprocessing: mode of the model's own ``Preprocess`` layer (already inside the model).
        keep_aspect: resize with padding to keep the aspect ratio (else stretch).
        task: ``classify``, ``localize``, ``segment`` or ``detect``.
        training: facts about how it was trained (dataset, epochs, metrics), free-form.
    """

    architecture: str
    class_names: list[str]
    input_shape: tuple[int, int, int]
    preprocessing: str = "rescale"
    keep_aspect: bool = False
    task: str = "classify"
    training: dict[str, Any] = field(default_factory=dict)
    foveal_version: str = ""

    @property
    def channel_order(self) -> str:
        return {1: "gray", 3: "rgb", 4: "rgba"}.get(self.input_shape[-1], "unknown")

    def to_json(self) -> str:
        data = asdict(self)
        data["channel_order"] = self.channel_order
        return json.dumps(data, indent=2)

    @classmethod
    def from_json(cls, text: str) -> "ModelCard":
        data = json.loads(text)
        data.pop("channel_order", None)
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        known["input_shape"] = tuple(known["input_shape"])
        return cls(**known)

    @classmethod
    def guess(cls, model: keras.Model) -> "ModelCard":
        """A card for a plain Keras model without one (class names become '0', '1', ...)."""
        shape = tuple(int(d) for d in model.input_shape[1:])
        classes = int(model.output_shape[-1])
        preprocess = next((layer for layer in model.layers if layer.name == "preprocess"), None)
        return cls(
            architecture=model.name,
            class_names=[str(i) for i in range(classes)],
            input_shape=shape,  # type: ignore[arg-type]
            preprocessing=getattr(preprocess, "mode", "none"),
        )


def save_model(model: keras.Model, path: str | Path, card: ModelCard, include_optimizer: bool = True) -> Path:
    """Write ``model`` and its ``card`` to ``path`` (a ``.keras`` file) atomically."""
    from foveal import __version__

    path = Path(path)
    if path.suffix != ".keras":
        raise ModelError(f"model files must end in .keras, got {path}")
    card.foveal_version = __version__
    with atomic_path(path) as tmp:
        tmp.unlink()  # Keras refuses to overwrite without asking
        model.save(tmp, include_optimizer=include_optimizer) if _accepts_include_optimizer() else model.save(tmp)
        with zipfile.ZipFile(tmp, "a") as archive:
            archive.writestr(CARD_MEMBER, card.to_json())
    return path


def replace_card(path: str | Path, card: ModelCard) -> Path:
    """Write ``card`` into the ``.keras`` file at ``path`` in place of its card (the weights and
    every other member copied unchanged), atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        with zipfile.ZipFile(path) as source, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as target:
            for item in source.infolist():
                if item.filename != CARD_MEMBER:
                    target.writestr(item, source.read(item.filename))
            target.writestr(CARD_MEMBER, card.to_json())
    return path


def _accepts_include_optimizer() -> bool:
    import inspect

    return "include_optimizer" in inspect.signature(keras.Model.save).parameters


def read_card(path: str | Path) -> ModelCard | None:
    """The card stored in a ``.keras`` file, or None when it has none."""
    try:
        with zipfile.ZipFile(path) as archive:
            if CARD_MEMBER not in archive.namelist():
                return None
            from foveal.models.card_check import card_from_archive

            return card_from_archive(archive, CARD_MEMBER, path)  # checked, before the model is loaded
    except (zipfile.BadZipFile, KeyError, ValueError, TypeError) as exc:
        raise ModelError(f"{path}: not a readable .keras model file ({exc})") from None


def load_model(path: str | Path, compile: bool = False) -> tuple[keras.Model, ModelCard]:
    """Load a ``.keras`` file in safe mode and return the model with its card.

    Raises:
        ModelError: the file is missing, not a ``.keras`` archive, or cannot be rebuilt.
    """
    import foveal.layers  # noqa: F401  registers custom layers before deserialising

    path = Path(path)
    if not path.is_file():
        raise ModelError(f"model file not found: {path}", hint="pass the path of a .keras file, e.g. runs/NAME/best.keras")
    if not zipfile.is_zipfile(path):
        raise ModelError(f"{path}: not a .keras model file (it is not a zip archive)",
                         hint="the file may be truncated; use the run's best.keras or last.keras")
    card = read_card(path)
    if card is not None:
        from foveal.tasks import task_of_card_task

        task_of_card_task(card.task).register_objects()  # the task's layers, losses and models
    try:
        model = keras.models.load_model(path, compile=compile, safe_mode=True)
    except Exception as exc:  # Keras raises many types for a damaged file
        from foveal.models.load_errors import explain_load_error

        raise explain_load_error(path, exc) from None
    if card is not None:
        from foveal.models.card_check import check_card_against_model

        check_card_against_model(card, model, path)
    return model, card or ModelCard.guess(model)


def preprocessing_of(model: keras.Model) -> str:
    """The mode of the model's ``Preprocess`` layer (searched in nested models too), else "none"."""
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if type(layer).__name__ == "Preprocess":
            return str(getattr(layer, "mode", "none"))
    return "none"
