"""Match a dataset's classes to a model's classes by name, for every task's evaluation.

A model knows its classes by name (its card); a dataset names its own (folder names, a
``classes.txt``, COCO categories, a ``palette.txt``). Scoring one against the other by index
alone puts numbers under the wrong names when the two lists differ in order or spelling, so
every evaluation goes through :func:`match_classes`:

* the same names in any order, or a subset of the model's names: the dataset's labels are
  re-indexed to the model's order;
* any dataset class the model does not know: a :class:`~foveal.errors.DataError` that lists
  both sets, unless an explicit class map says which model class each dataset class is.

A class map is ``DATASET=MODEL`` pairs separated by commas (``0=zero,1=one``), a YAML or JSON
file holding such a mapping, or the word ``order`` (the dataset's classes are the model's,
position by position: for datasets whose classes are only numbered). A pair may also be
written ``MODEL=DATASET``: the names say which side is which; a pair that reads both ways is
taken as ``DATASET=MODEL``.

Example:
    >>> match_classes(["cat", "dog"], ["dog", "cat"]).tolist()
    [1, 0]
    >>> match_classes(["zero", "one"], ["0", "1"], parse_class_map("zero=0,one=1")).tolist()
    [0, 1]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Union

import numpy as np

from foveal.errors import ConfigError, DataError

if TYPE_CHECKING:
    from foveal.data.boxes import BoxedImages

#: ``order``, a mapping of dataset names to model names, or None (match by name only).
ClassMap = Union[str, Mapping[str, str], None]

BY_ORDER = "order"
CLASS_MAP_HELP = ("say which model class each dataset class is: DATASET=MODEL pairs (e.g. 0=zero,1=one), "
                  "a YAML/JSON file of such a mapping, or 'order' (same classes, same order, names aside); "
                  "default: match by name")
_SHOWN = 12


def parse_class_map(spec: str | Mapping[str, str] | None) -> ClassMap:
    """Read a ``--class-map`` value: inline pairs, a YAML/JSON file, ``order`` or None.

    Args:
        spec: ``"a=b,c=d"``, the path of a ``.yaml``/``.yml``/``.json`` file holding a mapping,
            ``"order"``, a mapping already, or None.

    Returns:
        A ``{name: name}`` dict, ``"order"``, or None.

    Raises:
        ConfigError: a pair without ``=``, an empty name, a name mapped twice, or a file that
            is not a mapping of names.
    """
    if spec is None or isinstance(spec, Mapping):
        return _check_pairs(dict(spec), "the class map") if spec is not None else None
    text = str(spec).strip()
    if text == BY_ORDER:
        return BY_ORDER
    path = Path(text)
    if path.suffix.lower() in (".yaml", ".yml", ".json"):
        return _read_file(path)
    pairs: dict[str, str] = {}
    for item in (p.strip() for p in text.split(",")):
        if not item:
            continue
        left, sep, right = (s.strip() for s in item.partition("="))
        if not sep or not left or not right:
            raise ConfigError(f"--class-map: {item!r} is not a NAME=NAME pair", hint=CLASS_MAP_HELP)
        if left in pairs:
            raise ConfigError(f"--class-map: {left!r} is mapped twice", hint=CLASS_MAP_HELP)
        pairs[left] = right
    if not pairs:
        raise ConfigError("--class-map is empty", hint=CLASS_MAP_HELP)
    return pairs


def _read_file(path: Path) -> dict[str, str]:
    import json

    import yaml

    if not path.is_file():
        raise ConfigError(f"--class-map: file not found: {path}", hint=CLASS_MAP_HELP)
    try:
        text = path.read_text(encoding="utf-8")
        content = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: not a readable class map ({type(exc).__name__}: {exc})".splitlines()[0],
                          hint=CLASS_MAP_HELP) from None
    if not isinstance(content, Mapping) or not content:
        raise ConfigError(f"{path}: a class map file must hold a mapping of DATASET: MODEL names",
                          hint=CLASS_MAP_HELP)
    return _check_pairs({str(k): str(v) for k, v in content.items()}, str(path))


def _check_pairs(pairs: dict, where: str) -> dict[str, str]:
    for key, value in pairs.items():
        if not str(key).strip() or not str(value).strip():
            raise ConfigError(f"{where}: empty class name in {key!r}: {value!r}", hint=CLASS_MAP_HELP)
    return {str(k).strip(): str(v).strip() for k, v in pairs.items()}


def _shown(names: Sequence[str]) -> str:
    head = ", ".join(names[:_SHOWN])
    return f"[{head}{f', ... ({len(names)} in all)' if len(names) > _SHOWN else ''}]"


def _oriented(pairs: Mapping[str, str], model: set[str], data: set[str], origin: str) -> dict[str, str]:
    """The pairs as dataset name -> model name, each pair turned the way its names read."""
    out: dict[str, str] = {}
    unknown = []
    for left, right in pairs.items():
        if left in data and right in model:
            dataset_name, model_name = left, right
        elif right in data and left in model:
            dataset_name, model_name = right, left
        else:
            unknown.append(f"{left}={right}")
            continue
        if dataset_name in out and out[dataset_name] != model_name:
            raise DataError(f"{origin}: the class map sends dataset class {dataset_name!r} to both "
                            f"{out[dataset_name]!r} and {model_name!r}", hint=CLASS_MAP_HELP)
        out[dataset_name] = model_name
    if unknown:
        raise DataError(f"{origin}: class map pairs {_shown(unknown)} do not pair a dataset class with a model "
                        f"class (dataset: {_shown(sorted(data))}; model: {_shown(sorted(model))})",
                        hint="write each pair as DATASET=MODEL with names from those lists")
    return out


def match_classes(model_names: Sequence[str], data_names: Sequence[str], class_map: ClassMap = None, *,
                  origin: str = "dataset") -> np.ndarray:
    """Which model class each dataset class is, by name (see the module docstring).

    Args:
        model_names: the model's classes, in its output order.
        data_names: the dataset's classes, in its label order.
        class_map: None (names must match), ``"order"``, or dataset name -> model name pairs
            (:func:`parse_class_map`); classes the map leaves out are matched by name.
        origin: the dataset, for messages.

    Returns:
        An int64 array ``m`` of ``len(data_names)``: dataset label ``i`` is model class ``m[i]``.

    Raises:
        DataError: a dataset class the model does not know (both sets listed), or a class map
            that names classes of neither side.
    """
    model_names, data_names = [str(n) for n in model_names], [str(n) for n in data_names]
    if class_map == BY_ORDER:
        if len(data_names) != len(model_names):
            raise DataError(f"{origin}: --class-map order needs as many dataset classes as model classes, "
                            f"got {len(data_names)} {_shown(data_names)} and {len(model_names)} "
                            f"{_shown(model_names)}", hint="list the pairs instead: --class-map DATASET=MODEL,...")
        return np.arange(len(data_names), dtype=np.int64)
    if isinstance(class_map, str):
        raise ConfigError(f"unknown class map {class_map!r}", hint=CLASS_MAP_HELP)
    renamed = _oriented(class_map or {}, set(model_names), set(data_names), origin)
    index = {name: i for i, name in enumerate(model_names)}
    targets = [renamed.get(name, name) for name in data_names]
    missing = [name for name, target in zip(data_names, targets) if target not in index]
    if missing:
        raise DataError(
            f"{origin}: the dataset's classes are not the model's: dataset {_shown(data_names)}, "
            f"model {_shown(model_names)}; unknown to the model: {_shown(missing)}",
            hint=f"evaluate on data with the model's classes, or pass --class-map: {CLASS_MAP_HELP}")
    return np.asarray([index[t] for t in targets], dtype=np.int64)


def relabel(labels: np.ndarray, mapping: np.ndarray) -> np.ndarray:
    """Dataset labels -> model labels (same dtype); ``mapping`` from :func:`match_classes`."""
    labels = np.asarray(labels)
    return mapping[labels].astype(labels.dtype) if labels.size else labels.copy()


def mask_lookup(mapping: np.ndarray, ignore_label: int) -> np.ndarray:
    """A 256-entry table: mask value (dataset class) -> model class; other values -> ignore."""
    table = np.full(256, ignore_label, dtype=np.uint8)
    table[: len(mapping)] = mapping
    return table


def align_boxes(data: BoxedImages, model_names: Sequence[str], class_map: ClassMap = None) -> BoxedImages:
    """``data`` (box annotations) relabelled to the model's classes by :func:`match_classes`.

    COCO category ids (``info["category_ids"]``) follow the classes: a model class keeps the
    id of the dataset class matched to it, so written detections name the dataset's ids;
    model classes the dataset lacks get new ids after the largest.
    """
    from dataclasses import replace

    names = [str(n) for n in model_names]
    class_map = parse_class_map(class_map)
    if list(data.class_names) == names and not class_map:
        return data
    mapping = match_classes(names, data.class_names, class_map, origin=data.origin or "box data")
    old_ids = data.info.get("category_ids") or list(range(1, len(data.class_names) + 1))
    ids: dict[int, int] = {}
    for d, m in enumerate(mapping.tolist()):
        ids.setdefault(m, int(old_ids[d]))
    spare = iter(range(max(ids.values(), default=0) + 1, 1 << 31))
    category_ids = [ids[m] if m in ids else next(spare) for m in range(len(names))]
    return replace(data, labels=[relabel(lab, mapping) for lab in data.labels], class_names=names,
                   info={**data.info, "category_ids": category_ids})


__all__ = ["BY_ORDER", "CLASS_MAP_HELP", "ClassMap", "align_boxes", "mask_lookup", "match_classes", "parse_class_map", "relabel"]
