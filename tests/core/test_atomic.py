"""Atomic writes: a failure mid-write leaves the old file intact and no temporary behind."""

from __future__ import annotations

import os
import stat

import pytest

from foveal.utils_io import atomic_path, atomic_write_text


def test_failure_keeps_previous_file(tmp_path):
    target = tmp_path / "state.json"
    atomic_write_text(target, "old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half-writ")
            raise RuntimeError("crash in the middle")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_written_file_has_normal_permissions(tmp_path):
    umask = os.umask(0o022)
    try:
        path = atomic_write_text(tmp_path / "a.txt", "x")
    finally:
        os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_model_checkpoint_is_replaced_atomically(tmp_path):
    from foveal.models import ModelCard, build_model, load_model, save_model

    model = build_model("lenet5")
    path = save_model(model, tmp_path / "last.keras", ModelCard.guess(model))
    with pytest.raises(RuntimeError):
        with atomic_path(path) as tmp:
            tmp.write_bytes(b"PK\x03\x04 partial zip")
            raise RuntimeError("killed")
    load_model(path)  # still the complete previous file
