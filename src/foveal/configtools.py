"""Typed option sets shared by YAML files and the command line.

An option set is a dataclass whose fields carry their help text in ``metadata["help"]``.
From it we derive the argparse options (``--batch-size``; booleans get ``--no-...``) and a
strict YAML loader: unknown keys and values of the wrong type are refused with a message that
names the key. Precedence: dataclass defaults < YAML file < command line.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin

import yaml

from foveal.errors import ConfigError

C = TypeVar("C")


def option(default: Any, help: str, **kw: Any) -> Any:
    """A dataclass field with help text (mutable defaults are copied per instance)."""
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata={"help": help, **kw})
    return dataclasses.field(default=default, metadata={"help": help, **kw})


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in get_args(tp))
    if origin is not None:
        return f"{origin.__name__}[{', '.join(_type_name(a) for a in get_args(tp))}]"
    return "null" if tp is type(None) else getattr(tp, "__name__", str(tp))


def coerce(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against annotation ``tp`` (converting CLI strings); raise ConfigError."""
    origin = get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        if isinstance(value, str) and value.lower() in ("null", "none") and type(None) in args:
            return None
        for arg in (a for a in args if a is not type(None)):
            try:
                return coerce(value, arg, key)
            except ConfigError:
                continue
        raise _type_error(key, value, tp)
    if origin is Literal:
        choices = get_args(tp)
        if value in choices:
            return value
        close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1)
        raise ConfigError(
            f"option {key!r}: {value!r} is not one of {', '.join(map(str, choices))}",
            hint=f"did you mean {close[0]!r}?" if close else None,
        )
    if origin is list:
        (item,) = get_args(tp) or (Any,)
        if isinstance(value, str):
            value = [v for v in value.replace(",", " ").split() if v]
        if not isinstance(value, (list, tuple)):
            raise _type_error(key, value, tp)
        return [coerce(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if isinstance(value, str):
            value = _parse_mapping(value, key)
        if not isinstance(value, dict):
            raise _type_error(key, value, tp)
        return dict(value)
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "yes", "1", "false", "no", "0"):
            return value.lower() in ("true", "yes", "1")
        raise _type_error(key, value, tp)
    if tp in (int, float):
        # bool is an int subclass, and 2.5 must not pass silently as int 2.
        if isinstance(value, bool) or (tp is int and isinstance(value, float)):
            raise _type_error(key, value, tp)
        if isinstance(value, (int, float)):
            return tp(value)
        if isinstance(value, str):
            try:
                return tp(value)
            except ValueError:
                pass
        raise _type_error(key, value, tp)
    if tp is str:
        if isinstance(value, (str, Path)):
            return str(value)
        raise _type_error(key, value, tp)
    raise TypeError(f"unsupported option type {tp!r} for {key}")  # a bug in foveal, not user error


def _parse_mapping(text: str, key: str) -> dict[str, Any]:
    """``"a=1,b=two"`` or a YAML/JSON mapping -> dict."""
    text = text.strip()
    if text.startswith("{"):
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"option {key!r}: not a valid mapping: {exc}") from None
        if not isinstance(value, dict):
            raise ConfigError(f"option {key!r}: expected a mapping like a=1,b=2")
        return value
    result: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, raw = part.partition("=")
        if not sep:
            raise ConfigError(f"option {key!r}: expected key=value pairs, got {part!r}")
        result[name.strip()] = yaml.safe_load(raw)
    return result


def _type_error(key: str, value: Any, tp: Any) -> ConfigError:
    return ConfigError(f"option {key!r}: expected {_type_name(tp)}, got {value!r} ({type(value).__name__})")


def fields_of(cls: type) -> dict[str, tuple[dataclasses.Field, Any]]:
    hints = typing.get_type_hints(cls, include_extras=False)
    return {f.name: (f, hints[f.name]) for f in dataclasses.fields(cls)}


def from_mapping(cls: type[C], values: dict[str, Any], source: str = "config") -> C:
    """Build ``cls`` from a mapping, refusing unknown keys and wrong types."""
    known = fields_of(cls)
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        norm = key.replace("-", "_")
        if norm not in known:
            close = difflib.get_close_matches(norm, known, n=1)
            raise ConfigError(
                f"{source}: unknown option {key!r}",
                hint=f"did you mean {close[0]!r}?" if close else "see `foveal train --help` for the options",
            )
        kwargs[norm] = coerce(value, known[norm][1], norm)
    instance = cls(**kwargs)
    validate = getattr(instance, "validate", None)
    if validate:
        validate()
    return instance


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML config file that must hold a mapping."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config file must be a mapping of option: value")
    return data


def resolve(cls: type[C], config_file: str | Path | None, overrides: dict[str, Any]) -> C:
    """Defaults < YAML file < ``overrides`` (the command line), validated."""
    values: dict[str, Any] = {}
    if config_file:
        values.update(load_yaml(config_file))
    values.update(overrides)
    return from_mapping(cls, values, source=str(config_file) if config_file else "options")


def to_yaml(instance: Any) -> str:
    """The resolved options as YAML, one documented key per line."""
    return yaml.safe_dump(dataclasses.asdict(instance), sort_keys=False)


_LAST_GROUPS = ("distribution",)  # shown after a config's own groups (its fields come from a base class)


def add_arguments(parser: argparse.ArgumentParser, cls: type, groups: dict[str, str] | None = None) -> None:
    """Add one ``--option`` per field; defaults are suppressed so only given options appear."""
    arg_groups: dict[str, Any] = {}
    found = [f.metadata.get("group", "options") for f, _ in fields_of(cls).values()]
    for group_name in sorted(dict.fromkeys(found), key=lambda g: g in _LAST_GROUPS):  # stable: the rest in order
        arg_groups[group_name] = parser.add_argument_group(group_name)
    for name, (f, tp) in fields_of(cls).items():
        group_name = f.metadata.get("group", "options")
        if group_name not in arg_groups:
            arg_groups[group_name] = parser.add_argument_group(group_name)
        target = arg_groups[group_name]
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        # argparse %-formats help strings: a literal '%' in an option's help (or default) must be doubled
        help_text = f"{f.metadata.get('help', '')} (default: {default!r})".replace("%", "%%")
        flag = "--" + name.replace("_", "-")
        kw: dict[str, Any] = {"dest": name, "default": argparse.SUPPRESS, "help": help_text}
        base = tp
        if get_origin(tp) in (typing.Union, types.UnionType):
            non_none = [a for a in get_args(tp) if a is not type(None)]
            base = non_none[0] if len(non_none) == 1 else tp
        if base is bool:
            target.add_argument(flag, action=argparse.BooleanOptionalAction, **kw)
            continue
        if get_origin(base) is Literal:
            kw["metavar"] = "{" + ",".join(str(a) for a in get_args(base)) + "}"
        elif get_origin(base) is list:
            kw["nargs"] = "+"
            kw["metavar"] = "N"
        elif get_origin(base) is dict:
            kw["metavar"] = "K=V,..."
        else:
            kw["metavar"] = _type_name(base).upper()
        target.add_argument(flag, **kw)
