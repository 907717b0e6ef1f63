"""Run-folder rules shared by every trainer: names stay inside --output, resume cleans up."""

from __future__ import annotations

import json

import pytest

from foveal import configtools
from foveal.config import TrainConfig
from foveal.errors import ConfigError
from foveal.training.runs import resolve_run


@pytest.mark.parametrize("name", ["../x", "a/../../x", "/tmp/elsewhere", ".", "..", ""])
def test_name_that_leaves_output_is_refused(tmp_path, name):
    out = tmp_path / "runs"
    with pytest.raises(ConfigError, match="--name"):
        resolve_run(TrainConfig, TrainConfig(output=str(out), name=name), None, {})
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("name", ["run-1.b", "exp/run"])
def test_name_inside_output_is_accepted(tmp_path, name):
    _, run_dir, state = resolve_run(TrainConfig, TrainConfig(output=str(tmp_path), name=name), None, {})
    assert run_dir == tmp_path / name and state is None


def _fake_run(run_dir):
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text(configtools.to_yaml(TrainConfig(output=str(run_dir.parent), name=run_dir.name)))
    (run_dir / "state.json").write_text(json.dumps({"epoch": 1, "history": {}}))
    (run_dir / "last.keras").write_bytes(b"x")


def test_resume_removes_temporary_files_left_by_a_kill(tmp_path):
    run_dir = tmp_path / "r"
    _fake_run(run_dir)
    leftovers = [run_dir / ".last.keras.k2j3.tmp.keras", run_dir / ".state.json.x8.tmp.json",
                 run_dir / ".history.csv.q.tmp.csv"]
    for path in leftovers:
        path.write_bytes(b"")
    keep = run_dir / "notes.tmp.txt"  # not one of ours: a user's file stays
    keep.write_text("mine")
    resolve_run(TrainConfig, None, run_dir, {})
    assert not [p for p in leftovers if p.exists()]
    assert keep.exists() and (run_dir / "last.keras").exists()
