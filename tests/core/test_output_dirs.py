"""Unusable output places are refused in one line naming the path (issue #20)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from foveal.errors import FovealError
from foveal.utils_io import atomic_write_text, ensure_output_dir


@pytest.fixture
def a_file(tmp_path) -> Path:
    path = tmp_path / "taken"
    path.write_text("not a folder")
    return path


def _one_line(err: pytest.ExceptionInfo) -> str:
    assert "\n" not in err.value.message
    return err.value.message


def test_a_file_is_not_a_folder(a_file):
    with pytest.raises(FovealError) as err:
        ensure_output_dir(a_file, "--output")
    assert str(a_file) in _one_line(err) and "--output" in err.value.message


def test_a_folder_under_a_file(a_file):
    with pytest.raises(FovealError) as err:
        ensure_output_dir(a_file / "runs", "--output")
    assert str(a_file / "runs") in _one_line(err)


def test_permission_denied(tmp_path, monkeypatch):
    def refuse(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "mkdir", refuse)
    with pytest.raises(FovealError) as err:
        ensure_output_dir(tmp_path / "new", "--output")
    assert "permission" in _one_line(err).lower()


def test_an_unwritable_folder(tmp_path, monkeypatch):
    import tempfile

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    with pytest.raises(FovealError, match="cannot write"):
        ensure_output_dir(tmp_path, "--output")


def test_existing_and_new_folders_are_fine(tmp_path):
    assert ensure_output_dir(tmp_path, "--output") == tmp_path
    assert ensure_output_dir(tmp_path / "a" / "b", "--output").is_dir()


def test_atomic_write_under_a_file_is_a_user_error(a_file):
    with pytest.raises(FovealError) as err:
        atomic_write_text(a_file / "predictions.csv", "x")
    assert str(a_file) in _one_line(err)


def test_train_output_is_checked_before_anything(a_file):
    from foveal.config import TrainConfig
    from foveal.training.runs import resolve_run

    with pytest.raises(FovealError, match="--output"):
        resolve_run(TrainConfig, TrainConfig(output=str(a_file), name="r"), None, {})


def test_tfrecord_conversion_output(tmp_path, a_file):
    from foveal.data.readers import convert_to_tfrecord

    np.savez(tmp_path / "d.npz", x=np.zeros((4, 4, 4), np.uint8), y=np.array([0, 1, 0, 1]))
    with pytest.raises(FovealError, match="--output"):
        convert_to_tfrecord(str(tmp_path / "d.npz"), a_file)


def test_box_conversion_output(tmp_path, a_file):
    from foveal.data.boxes.convert import write_dataset

    with pytest.raises(FovealError, match="--output"):
        write_dataset({}, a_file, "coco")


def test_check_only_creates_nothing(tmp_path, a_file):
    assert ensure_output_dir(tmp_path / "new" / "deeper", "--output", create=False) == tmp_path / "new" / "deeper"
    assert not (tmp_path / "new").exists()
    with pytest.raises(FovealError) as err:
        ensure_output_dir(a_file / "x" / "y", "--output", create=False)
    assert "a file" in _one_line(err)


def test_export_output_under_a_file(tmp_path, a_file):
    import keras

    from foveal.export.parity import export_model
    from foveal.models.io import ModelCard, save_model

    inputs = keras.Input((8, 8, 1))
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(keras.layers.Flatten()(inputs)))
    path = save_model(model, tmp_path / "m.keras", ModelCard("tiny", ["a", "b"], (8, 8, 1)))
    with pytest.raises(FovealError) as err:
        export_model(path, "tflite", output=a_file / "m.tflite")
    assert str(a_file) in _one_line(err)
