"""foveal.predict refuses bad options and reads files whatever their names (issue #20)."""

from __future__ import annotations

import os

import pytest
from PIL import Image

from foveal.errors import ConfigError
from foveal.models.io import ModelCard


@pytest.fixture(scope="module")
def tiny():
    import keras

    inputs = keras.Input((8, 8, 3))
    x = keras.layers.GlobalAveragePooling2D()(inputs)
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x))
    return model, ModelCard("tiny", ["a", "b", "c"], (8, 8, 3))


@pytest.mark.parametrize("options", [{"top_k": 0}, {"top_k": -2}, {"batch_size": 0}])
def test_bad_counts_are_refused(tmp_path, tiny, options):
    from foveal.predict import predict

    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    with pytest.raises(ConfigError):
        predict(*tiny, [tmp_path / "a.png"], **options)


def test_non_utf8_file_name_is_read(tmp_path, tiny):
    from foveal.predict import format_table, predict, to_csv, to_json

    name = os.path.join(os.fsencode(tmp_path), b"caf\xe9.png")
    Image.new("RGB", (8, 8), (200, 10, 10)).save(tmp_path / "x.png")
    os.rename(tmp_path / "x.png", name)
    rows = predict(*tiny, [tmp_path], top_k=2)
    assert len(rows) == 1 and len(rows[0]["predictions"]) == 2
    assert "caf\\xe9.png" in rows[0]["file"]
    for text in (format_table(rows), to_csv(rows), to_json(rows)):
        text.encode("utf-8")


@pytest.mark.parametrize("options", [{"batch_size": -1}, {"top_k": 0}])
def test_evaluate_refuses_bad_counts_before_loading(tmp_path, options):
    from foveal.evaluation.run import evaluate

    with pytest.raises(ConfigError, match="at least 1"):
        evaluate(tmp_path / "missing.keras", "digits", **options)
