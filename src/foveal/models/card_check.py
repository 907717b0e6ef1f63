"""Check a model card before anything trusts it: its own fields, then against the model.

The card (``foveal.json``) is what ``predict``, ``evaluate``, exports and the server use to size
inputs and name outputs, so a wrong card means silent nonsense or a crash far from the cause: a
card claiming 6000x6000 inputs made ``evaluate`` allocate 18.8 GB; a card with fewer class
names than model outputs made every ``/predict`` fail with an IndexError. Here a card is
refused, in one line, when:

* its JSON is not an object, a field has the wrong type (``input_shape`` must be three positive
  integers, ``class_names`` a list of strings, ...) or a required field is missing;
* the input size is absurd (over :data:`MAX_SIDE` per side or :data:`MAX_PIXELS` per image),
  checked before the model is even loaded;
* it does not fit the model: input size (where the model fixes it) or class count where the
  task ties it to an output (classify and segment: the last output axis; localize: the class
  head, 1 for a presence head; detect: the detector's ``num_classes``);
* it has fields this foveal does not know, or is from a newer foveal and fails a check: the
  message then says so and suggests upgrading.

Example:
    >>> card = parse_card(text, source="model.keras")  # doctest: +SKIP
    >>> check_card_against_model(card, model, "model.keras")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import re
import zipfile
from dataclasses import fields
from pathlib import Path
from typing import Any

from foveal.errors import ModelError

MAX_SIDE = 8192  # pixels per side of the model input
MAX_PIXELS = 4096 * 4096  # pixels per model input image (6000x6000 is refused)
MAX_CHANNELS = 4
MAX_CLASSES = 100_000
MAX_CARD_BYTES = 4 * 2**20  # a card is a few kB; do not read a huge member into memory
# Written by `foveal export` beside the card's own fields (see export.runners.write_export_card).
EXPORT_FIELDS = frozenset({"channel_order", "export"})
_HINT = "the card does not describe this model; save the model again with foveal (foveal.save_model)"
_UPGRADE = "upgrade foveal (pip install -U foveal) to use this model"


def _version_tuple(version: str) -> tuple[int, ...] | None:
    match = re.match(r"^\s*(\d+(?:\.\d+)*)", version or "")
    return tuple(int(p) for p in match.group(1).split(".")) if match else None


def is_newer(version: str) -> bool:
    """Whether ``version`` (a card's ``foveal_version``) is newer than this foveal."""
    from foveal import __version__

    theirs, ours = _version_tuple(version), _version_tuple(__version__)
    return theirs is not None and ours is not None and theirs > ours


def _shape_text(shape: Any) -> str:
    return "x".join("?" if d is None else str(d) for d in shape)


def check_card_data(data: Any) -> None:
    """Types and ranges of a card's fields (no model needed).

    Raises:
        ModelError: the first problem found, in one line without the file name.
    """
    if not isinstance(data, dict):
        raise ModelError(f"the model card is not a JSON object (it is a {type(data).__name__})")
    for name in ("architecture", "class_names", "input_shape"):
        if name not in data:
            raise ModelError(f"the model card has no {name!r}")
    if not isinstance(data["architecture"], str):
        raise ModelError("the model card's 'architecture' must be a string")
    names = data["class_names"]
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise ModelError("the model card's 'class_names' must be a non-empty list of strings")
    if len(names) > MAX_CLASSES:
        raise ModelError(f"the model card lists {len(names):,} class names (at most {MAX_CLASSES:,})")
    shape = data["input_shape"]
    if (not isinstance(shape, (list, tuple)) or len(shape) != 3
            or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape)):
        raise ModelError(f"the model card's 'input_shape' must be three positive integers "
                         f"(height, width, channels), got {json.dumps(shape)[:80]}")
    h, w, c = shape
    if max(h, w) > MAX_SIDE or h * w > MAX_PIXELS:
        raise ModelError(f"the model card's input size {h}x{w} is too large (at most {MAX_SIDE} pixels a side "
                         f"and {MAX_PIXELS:,} pixels an image)")
    if c > MAX_CHANNELS:
        raise ModelError(f"the model card's input has {c} channels (at most {MAX_CHANNELS})")
    for name, kind, label in (("preprocessing", str, "a string"), ("task", str, "a string"),
                              ("foveal_version", str, "a string"), ("keep_aspect", bool, "true or false"),
                              ("training", dict, "an object")):
        if name in data and not isinstance(data[name], kind):
            raise ModelError(f"the model card's {name!r} must be {label}")


def parse_card(text: str | bytes, source: str | Path, *, allow_extra: bool = False):
    """The :class:`~foveal.models.io.ModelCard` in ``text``, checked.

    Args:
        text: the card's JSON.
        source: the file it came from (named in errors).
        allow_extra: accept fields this foveal does not know (export cards carry export facts).

    Raises:
        ModelError: one line naming ``source`` and the problem.
    """
    from foveal.models.io import ModelCard

    try:
        data = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ModelError(f"{source}: the model card is not valid JSON ({exc})", hint=_HINT) from None
    version = data.get("foveal_version", "") if isinstance(data, dict) else ""
    newer = isinstance(version, str) and is_newer(version)
    try:
        check_card_data(data)
    except ModelError as exc:
        if newer:
            raise ModelError(f"{source}: the model card was written by foveal {version}, newer than this foveal "
                             f"({_ours()}), and is not understood here: {exc.message}", hint=_UPGRADE) from None
        raise ModelError(f"{source}: {exc.message}", hint=_HINT) from None
    known = {f.name for f in fields(ModelCard)} | EXPORT_FIELDS
    unknown = sorted(set(data) - known)
    if unknown and not allow_extra:
        listed = ", ".join(unknown[:8])
        if newer:
            raise ModelError(f"{source}: the model card was written by foveal {version}, newer than this foveal "
                             f"({_ours()}), and has fields this version does not know: {listed}", hint=_UPGRADE)
        raise ModelError(f"{source}: the model card has fields foveal {_ours()} does not know: {listed}",
                         hint="a newer foveal may have written it (" + _UPGRADE + "), or the card was edited")
    return ModelCard.from_json(json.dumps(data))


def _ours() -> str:
    from foveal import __version__

    return __version__


def card_from_archive(archive: zipfile.ZipFile, member: str, source: str | Path):
    """The checked card stored as ``member`` of a ``.keras`` zip (size checked before reading)."""
    info = archive.getinfo(member)
    if info.file_size > MAX_CARD_BYTES:
        raise ModelError(f"{source}: the model card is {info.file_size:,} bytes (a card is a few kB)", hint=_HINT)
    return parse_card(archive.read(member).decode("utf-8"), source)


def read_card_file(path: Path, *, allow_extra: bool = True):
    """The checked card in the JSON file ``path`` (an export's card)."""
    size = path.stat().st_size
    if size > MAX_CARD_BYTES:
        raise ModelError(f"{path}: the model card is {size:,} bytes (a card is a few kB)", hint=_HINT)
    return parse_card(path.read_bytes(), path, allow_extra=allow_extra)


def _class_outputs(card, model) -> int | None:
    """How many classes the model's output says, for the tasks whose outputs tie it; else None."""
    if card.task in ("classify", "segment"):
        shape = getattr(model, "output_shape", None)
        if isinstance(shape, tuple) and shape and isinstance(shape[-1], int):
            return shape[-1]
        return None
    if card.task == "localize":
        try:
            return int(model.get_layer("class").units)
        except (ValueError, AttributeError):
            return None
    if card.task == "detect":
        value = getattr(model, "num_classes", None)
        return int(value) if isinstance(value, int) else None
    return None


def check_card_against_model(card, model, source: str | Path) -> None:
    """Refuse a card whose input size or class count contradicts ``model``.

    Input: every side the model fixes must equal the card's. Classes: see the module
    docstring (a localizer's presence head has 1 output for its 1 class name).

    Raises:
        ModelError: one line naming ``source``, the card's value and the model's.
    """
    shape = getattr(model, "input_shape", None)
    if isinstance(shape, tuple) and len(shape) == 4:
        expected = shape[1:]
        if any(m is not None and m != c for m, c in zip(expected, card.input_shape)):
            raise ModelError(f"{source}: the model card says the input is {_shape_text(card.input_shape)} but the "
                             f"model takes {_shape_text(expected)}", hint=_HINT)
    outputs = _class_outputs(card, model)
    names = len(card.class_names)
    if outputs is None or outputs == names:
        return
    what = {"classify": "outputs", "segment": "output channels", "localize": "class-head outputs",
            "detect": "classes in the detector"}[card.task]
    raise ModelError(f"{source}: the model card has {names} class names but the model has {outputs} {what}",
                     hint=_HINT)


def check_card_against_runner(runner: Any) -> None:
    """Run an export once on a blank image of its card's input size and check the answer's shape.

    The export's file has no Keras model to compare with, so the runtime tells: the export must
    take the card's input, and a classifier's (or segmenter's) ``probabilities`` must have one
    value per class name. Other tasks' exports hold raw heads that their own checks decode.

    Raises:
        ModelError: one line naming the export, the card's value and what the export did.
    """
    import numpy as np

    card = runner.card
    if card.task not in ("classify", "segment"):
        return
    try:
        outputs = runner.raw(np.zeros((1, *card.input_shape), np.float32))
    except Exception as exc:  # each runtime raises its own types for a wrong input shape
        raise ModelError(f"{runner.path}: the export does not run on the input its card gives, "
                         f"{_shape_text(card.input_shape)} ({type(exc).__name__})", hint=_HINT) from None
    values = outputs.get("probabilities", next(iter(outputs.values()), None)) if outputs else None
    size = int(np.shape(values)[-1]) if values is not None and np.ndim(values) else None
    if size is not None and size != len(card.class_names):
        raise ModelError(f"{runner.path}: the model card has {len(card.class_names)} class names but the export "
                         f"gives {size} {'outputs' if card.task == 'classify' else 'output channels'}", hint=_HINT)
