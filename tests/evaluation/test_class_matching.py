"""Datasets are matched to a model's classes by name: re-indexed when the order differs, an
error listing both sets when the names differ, and an explicit --class-map to say which is which."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from foveal.errors import ConfigError, DataError
from foveal.evaluation.classes import mask_lookup, match_classes, parse_class_map, relabel

WORDS = ["zero", "one", "two", "three", "four"]
LEVELS = [20, 70, 120, 170, 220]  # the gray level of every image of class k


# ------------------------------------------------------------------------------------------ unit


def test_same_names_in_another_order_are_reindexed():
    assert match_classes(["cat", "dog", "fox"], ["fox", "cat"]).tolist() == [2, 0]
    assert relabel(np.array([0, 1, 1], np.int32), np.array([2, 0])).tolist() == [2, 0, 0]


def test_unknown_names_are_an_error_listing_both_sets():
    with pytest.raises(DataError) as info:
        match_classes(WORDS, [str(i) for i in range(5)], origin="digits/")
    message = str(info.value)
    assert "digits/" in message and "zero" in message and "[0, 1, 2, 3, 4]" in message
    assert "--class-map" in info.value.hint
    assert "\n" not in info.value.message


def test_class_map_either_way_round_and_files(tmp_path):
    data = [str(i) for i in range(5)]
    assert match_classes(WORDS, data, parse_class_map("0=zero,1=one,2=two,3=three,4=four")).tolist() == [0, 1, 2, 3, 4]
    assert match_classes(WORDS, data, parse_class_map("zero=4,one=3,two=2,three=1,four=0")).tolist() == [4, 3, 2, 1, 0]
    (tmp_path / "map.yaml").write_text("'0': zero\n'1': one\n'2': two\n'3': three\n'4': four\n")
    (tmp_path / "map.json").write_text(json.dumps(dict(zip(data, WORDS))))
    for name in ("map.yaml", "map.json"):
        assert match_classes(WORDS, data, parse_class_map(str(tmp_path / name))).tolist() == [0, 1, 2, 3, 4]
    # a map may leave out classes whose names already match, and a partial dataset is fine
    assert match_classes(WORDS, ["one", "x"], parse_class_map("x=four")).tolist() == [1, 4]


def test_bad_class_maps_are_refused():
    for spec in ("zero", "=one", "a=b,a=c", " , "):
        with pytest.raises(ConfigError):
            parse_class_map(spec)
    with pytest.raises(ConfigError, match="not found"):
        parse_class_map("missing.yaml")
    with pytest.raises(DataError, match="do not pair"):
        match_classes(WORDS, ["0"], parse_class_map("0=zer0"))
    with pytest.raises(DataError, match="as many"):
        match_classes(WORDS, ["0", "1"], "order")
    assert match_classes(WORDS, list("abcde"), parse_class_map("order")).tolist() == [0, 1, 2, 3, 4]


def test_mask_lookup_sends_other_values_to_ignore():
    table = mask_lookup(np.array([2, 0, 1]), 255)
    assert table[[0, 1, 2, 3, 255]].tolist() == [2, 0, 1, 255, 255]


# ------------------------------------------------------------------- classification end to end


def _gray_level_model(path: Path) -> Path:
    """A classifier that is always right on the folders below: class k <=> gray level LEVELS[k].

    Dense logits ``2 c_k x - c_k^2`` pick the level nearest to the image mean ``x``.
    """
    import keras

    from foveal.models.io import ModelCard, save_model

    inputs = keras.Input((8, 8, 1))
    mean = keras.layers.GlobalAveragePooling2D()(inputs)
    dense = keras.layers.Dense(len(WORDS), activation="softmax")
    model = keras.Model(inputs, dense(mean))
    levels = np.asarray(LEVELS, np.float32) / 100.0
    dense.set_weights([(2 * levels / 100.0)[None, :], -(levels ** 2)])
    card = ModelCard(architecture="gray-level", class_names=list(WORDS), input_shape=(8, 8, 1), preprocessing="none")
    return save_model(model, path, card)


def _folder(root: Path, names: dict[str, int]) -> Path:
    """``root/<name>/i.png`` images of the gray level of model class ``names[name]``."""
    for name, k in names.items():
        (root / name).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(np.full((8, 8), LEVELS[k], np.uint8)).save(root / name / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def gray_model(tmp_path_factory) -> Path:
    return _gray_level_model(tmp_path_factory.mktemp("model") / "gray.keras")


def test_numbered_dataset_is_refused_then_scored_with_a_class_map(gray_model, tmp_path, capsys):
    from foveal.cli.main import main
    from foveal.evaluation.run import evaluate

    data = _folder(tmp_path / "numbered", {str(k): k for k in range(5)})
    # Before: accuracy by position under the wrong names, no warning.
    assert main(["evaluate", str(gray_model), "--data", str(data)]) == 2
    err = capsys.readouterr().err
    assert "zero" in err and "[0, 1, 2, 3, 4]" in err and "--class-map" in err
    assert "Traceback" not in err

    pairs = ",".join(f"{k}={w}" for k, w in enumerate(WORDS))
    assert main(["evaluate", str(gray_model), "--data", str(data), "--class-map", pairs, "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["accuracy"] == 1.0 and metrics["num_examples"] == 15

    # A crossed map is applied as written: every image is then "wrong".
    crossed = ",".join(f"{k}={WORDS[4 - k]}" for k in range(5))
    assert evaluate(gray_model, str(data), class_map=crossed)["accuracy"] == pytest.approx(3 / 15)


def test_subset_in_another_order_is_reindexed_not_refused(gray_model, tmp_path):
    from foveal.evaluation.run import evaluate

    # Folder order is alphabetical (four, one, three): not the model's order.
    data = _folder(tmp_path / "subset", {"three": 3, "one": 1, "four": 4})
    metrics = evaluate(gray_model, str(data))
    assert metrics["accuracy"] == 1.0
    matrix = np.asarray(metrics["confusion_matrix"])
    assert matrix.shape == (5, 5) and matrix[1, 1] == matrix[3, 3] == matrix[4, 4] == 3
