"""The benchmark scripts' defaults name things that exist: a wrong default model name once made
`benchmarks/zoo_throughput.py` fail after minutes of measuring."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from foveal.models.registry import MODELS

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_zoo_throughput_defaults_are_registered_models():
    zoo = _load("zoo_throughput")
    assert [zoo.parse_model(spec)[0] for spec in zoo.DEFAULT_MODELS if zoo.parse_model(spec)[0] not in MODELS] == []


def test_zoo_throughput_rejects_unknown_models_before_measuring(capsys):
    zoo = _load("zoo_throughput")
    with pytest.raises(SystemExit) as exit_info:
        zoo.main(["--models", "mobilenet_v2:224"])
    assert exit_info.value.code == 2
    assert "unknown models" in capsys.readouterr().err
