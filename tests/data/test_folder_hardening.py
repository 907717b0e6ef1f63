"""Folder scans: symlink loops and non-UTF-8 file names are named, never followed or crashed on."""

from __future__ import annotations

import os
import warnings

import pytest

from foveal.data.inspect import format_inspection, inspect_dataset
from foveal.data.readers.folder import load_folder
from foveal.errors import DataError
from tests.data.conftest import save_image


def _two_classes(root):
    save_image(root / "cat" / "a.png")
    save_image(root / "cat" / "b.png", seed=1)
    save_image(root / "dog" / "c.png", seed=2)
    return root


def test_symlink_loop_is_followed_once_and_reported(tmp_path):
    root = _two_classes(tmp_path / "pets")
    os.symlink(root / "cat", root / "cat" / "again")  # cat/again -> cat: a loop
    with pytest.raises(DataError) as err:
        load_folder(root)
    assert "symlink loop" in str(err.value) and "no extension" not in str(err.value)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        splits = load_folder(root, skip_invalid=True)
    assert sorted(map(os.path.basename, splits["train"].paths)) == ["a.png", "b.png", "c.png"]
    assert any("skipping 1" in str(w.message) for w in caught)
    report = inspect_dataset(str(root))
    assert report["num_problems"] == 1
    assert "symlink loop" in report["splits"]["train"]["problems"][0]["problem"]


def test_link_to_a_folder_already_read_is_not_read_twice(tmp_path):
    root = _two_classes(tmp_path / "pets")
    (root / "cat" / "more").mkdir()
    save_image(root / "cat" / "more" / "d.png", seed=3)
    os.symlink(root / "cat" / "more", root / "cat" / "same")
    splits = load_folder(root, skip_invalid=True)
    assert sorted(map(os.path.basename, splits["train"].paths)) == ["a.png", "b.png", "c.png", "d.png"]


def test_non_utf8_file_name_is_a_named_problem(tmp_path):
    root = _two_classes(tmp_path / "pets")
    bad = os.path.join(os.fsencode(root / "dog"), b"caf\xe9.png")
    with open(bad, "wb") as f:
        f.write((root / "dog" / "c.png").read_bytes())
    with pytest.raises(DataError) as err:
        load_folder(root)
    text = str(err.value)
    text.encode("utf-8")  # printable: no lone surrogates in the message
    assert "UTF-8" in text and "caf" in text
    splits = load_folder(root, skip_invalid=True)
    assert len(splits["train"]) == 3
    for path in splits["train"].paths:
        path.encode("utf-8")
    report = inspect_dataset(str(root))
    assert report["num_problems"] == 1
    format_inspection(report).encode("utf-8")


def test_non_utf8_class_folder_is_a_named_problem(tmp_path):
    root = _two_classes(tmp_path / "pets")
    folder = os.path.join(os.fsencode(root), b"\xff\xfe")
    os.mkdir(folder)
    with open(os.path.join(folder, b"x.png"), "wb") as f:
        f.write((root / "dog" / "c.png").read_bytes())
    with pytest.raises(DataError) as err:
        load_folder(root, skip_invalid=True)
    str(err.value).encode("utf-8")
    assert "UTF-8" in str(err.value)
    report = inspect_dataset(str(root))
    assert report["num_problems"] >= 1
    format_inspection(report).encode("utf-8")  # the class table prints the folder's name
