"""Freeze and unfreeze layers chosen by a small spec language, and show what is trainable.

A spec is one or more terms separated by commas; a layer is selected if any term selects it:

* ``all`` / ``none``: every layer / no layer;
* ``base`` / ``head``: the feature extractor (up to the last 4-D feature map) / what follows
  it (see :mod:`foveal.transfer.surgery`);
* ``START:STOP``: a Python slice of ``model.layers`` (``:-10``, ``0:100``, ``-30:``);
* ``re:REGEX``: layer names where the regular expression matches (``re.search``);
* a glob with ``*``, ``?`` or ``[``: whole layer names (``block5*``, ``conv5_block?_*``);
* anything else: a layer name, or a block/stage prefix of names up to a separator
  (``block5`` selects ``block5_conv1`` but not ``block50_conv1``; ``stage4``, ``conv5``).

A term that selects nothing is an error naming close layer names, so a typo never freezes
nothing silently.

Batch normalisation: in Keras 3 a ``BatchNormalization`` layer with ``trainable = False``
runs in inference mode (it uses, and no longer updates, its moving mean and variance), which
is what fine-tuning wants; an unfrozen one trains and updates them again.

**Recompile after changing trainable flags**: until ``compile`` is called again, ``fit`` may
keep using the train step traced before the change, so a frozen layer can go on training.
:func:`foveal.training.trainer.train` does this at every phase change.

Example:
    >>> from foveal.models import build_model
    >>> model = build_model("lenet5", num_classes=10)
    >>> freeze(model, "base")
    ['preprocess', 'c1', 's2', 'c3', 's4']
    >>> unfreeze(model, "c3,s4")
    ['c3', 's4']
"""

from __future__ import annotations

import difflib
import fnmatch
import re
from dataclasses import dataclass

import keras

from foveal.errors import ConfigError
from foveal.transfer.surgery import base_layers, head_layers

_SLICE = re.compile(r"^\s*(-?\d+)?\s*:\s*(-?\d+)?\s*$")
_SEPARATORS = "_./-"


def _own_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """The model's layers without its input layer(s)."""
    return [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]


def select_layers(model: keras.Model, spec: str) -> list[keras.layers.Layer]:
    """The layers of ``model`` (in graph order, input layers excluded) that ``spec`` selects.

    Raises:
        ConfigError: an empty spec, a bad slice or regex, or a term that selects nothing.
    """
    terms = [t.strip() for t in str(spec).split(",")]
    if not any(terms):
        raise ConfigError("a layer spec must not be empty", hint="e.g. base, all, :-10, block5*, re:conv[45]")
    layers_ = _own_layers(model)
    index_of = {id(layer): i for i, layer in enumerate(model.layers)}
    chosen: set[int] = set()
    for term in filter(None, terms):
        picked = _select_term(model, layers_, term)
        if picked is None:
            continue  # "none"
        if not picked:
            raise _nothing_selected(model, term)
        chosen.update(id(layer) for layer in picked)
    return [layer for layer in layers_ if id(layer) in chosen and id(layer) in index_of]


def _select_term(model: keras.Model, layers_: list, term: str) -> list | None:
    low = term.lower()
    if low == "none":
        return None
    if low == "all":
        return list(layers_)
    if low in ("base", "head"):
        part = base_layers(model) if low == "base" else head_layers(model)
        return [layer for layer in part if not isinstance(layer, keras.layers.InputLayer)]
    match = _SLICE.match(term)
    if match:
        start, stop = (int(g) if g is not None else None for g in match.groups())
        return [layer for layer in model.layers[start:stop] if not isinstance(layer, keras.layers.InputLayer)]
    if term.startswith("re:"):
        try:
            pattern = re.compile(term[3:])
        except re.error as exc:
            raise ConfigError(f"layer spec {term!r}: bad regular expression ({exc})") from None
        return [layer for layer in layers_ if pattern.search(layer.name)]
    if any(c in term for c in "*?["):
        return [layer for layer in layers_ if fnmatch.fnmatchcase(layer.name, term)]
    return [layer for layer in layers_
            if layer.name == term or (layer.name.startswith(term) and layer.name[len(term)] in _SEPARATORS)]


def _nothing_selected(model: keras.Model, term: str) -> ConfigError:
    names = [layer.name for layer in _own_layers(model)]
    prefixes = sorted({re.split(r"[_./-]", n)[0] for n in names})
    close = difflib.get_close_matches(term.strip("*?[]re:"), names + prefixes, n=4, cutoff=0.5)
    return ConfigError(
        f"layer spec {term!r} selects no layer of {model.name!r}",
        hint=(f"did you mean {', '.join(close)}? " if close else "")
        + "terms: all, none, base, head, START:STOP, re:REGEX, a glob like block5*, or a name prefix",
    )


def _set(model: keras.Model, spec: str, trainable: bool, *, batch_norm: bool = True) -> list[str]:
    changed = []
    for layer in select_layers(model, spec):
        if not batch_norm and isinstance(layer, keras.layers.BatchNormalization):
            continue
        if layer.trainable != trainable:
            layer.trainable = trainable
            changed.append(layer.name)
    return changed


def freeze(model: keras.Model, spec: str = "all") -> list[str]:
    """Set ``trainable = False`` on the layers ``spec`` selects; return the names changed.

    Recompile the model before training again.
    """
    return _set(model, spec, False)


def unfreeze(model: keras.Model, spec: str = "all", *, batch_norm: bool = True) -> list[str]:
    """Set ``trainable = True`` on the layers ``spec`` selects; return the names changed.

    Args:
        batch_norm: also unfreeze batch-norm layers (they then train and update their
            moving statistics). False keeps them frozen in inference mode, the usual advice
            when fine-tuning a large pretrained network on a small dataset.
    """
    return _set(model, spec, True, batch_norm=batch_norm)


@dataclass
class TrainableCounts:
    """Parameters the optimizer updates or not (batch-norm moving statistics are never
    trained), and layers with weights that are trainable or frozen."""

    trainable_params: int
    frozen_params: int
    trainable_layers: int
    frozen_layers: int


def trainable_counts(model: keras.Model) -> TrainableCounts:
    """How many parameters and weighted layers are trainable and frozen."""
    def size(variables) -> int:
        return sum(_numel(v.shape) for v in variables)

    weighted = [layer for layer in model.layers if layer.weights]
    trainable = [layer for layer in weighted if layer.trainable]
    # Frozen = variables the optimizer does not update (a frozen BN's moving stats count here).
    return TrainableCounts(
        trainable_params=size(model.trainable_weights),
        frozen_params=size(model.non_trainable_weights),
        trainable_layers=len(trainable),
        frozen_layers=len(weighted) - len(trainable),
    )


def _numel(shape) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n


def trainable_summary(model: keras.Model) -> str:
    """Which layers train, as runs of consecutive layers with the same state, and totals.

    Example output::

        layers 1-141   frozen     23,534,592 params  (preprocess .. conv5_block3_out)
        layers 142-145 trainable      10,245 params  (head_avg_pool .. probabilities)
        trainable: 10,245 parameters in 1 layer(s); not trained: 23,587,712 parameters; frozen layers: 106
    """
    rows: list[list] = []
    for i, layer in enumerate(model.layers):
        if isinstance(layer, keras.layers.InputLayer):
            continue
        state = "trainable" if layer.trainable else "frozen"
        params = sum(_numel(w.shape) for w in layer.weights)
        if rows and rows[-1][2] == state:
            rows[-1][1], rows[-1][3], rows[-1][5] = i, rows[-1][3] + params, layer.name
        else:
            rows.append([i, i, state, params, layer.name, layer.name])
    lines = []
    for first, last, state, params, start, end in rows:
        span = f"{first}" if first == last else f"{first}-{last}"
        names = start if start == end else f"{start} .. {end}"
        lines.append(f"layers {span:<9} {state:<9} {params:>12,} params  ({names})")
    c = trainable_counts(model)
    lines.append(f"trainable: {c.trainable_params:,} parameters in {c.trainable_layers} layer(s); "
                 f"not trained: {c.frozen_params:,} parameters; frozen layers: {c.frozen_layers}")
    return "\n".join(lines)




HEAD_PREFIXES = ("head_", "neck_", "output_")  # a task model's own layers; the rest is its backbone


def set_backbone_trainable(model: keras.Model, trainable: bool,
                           head_prefixes: tuple[str, ...] = HEAD_PREFIXES) -> int:
    """Freeze or unfreeze a task model's backbone (every layer with weights whose name does not
    start with one of ``head_prefixes``); returns how many layers changed.

    While frozen, batch-norm layers of the backbone run in inference mode (Keras does so for
    non-trainable BatchNormalization), which keeps pretrained statistics intact. Recompile after.
    """
    count = 0
    for layer in model.layers:
        if layer.weights and not layer.name.startswith(head_prefixes):
            layer.trainable = trainable
            count += 1
    return count


__all__ = ["HEAD_PREFIXES", "TrainableCounts", "freeze", "select_layers", "set_backbone_trainable",
           "trainable_counts", "trainable_summary", "unfreeze"]
