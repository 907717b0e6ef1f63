"""Labels outside the class range are refused with the file, index and value (issue #20)."""

from __future__ import annotations

import numpy as np
import pytest

from foveal.data.readers import load_dataset
from foveal.errors import DataError
from tests.data.conftest import write_idx_file


def _labels(n: int = 30, stray: int | None = None, at: int = 17) -> np.ndarray:
    y = np.arange(n) % 10
    if stray is not None:
        y[at] = stray
    return y


def test_npz_stray_label_does_not_add_classes(tmp_path):
    x = np.zeros((30, 4, 4), np.uint8)
    np.savez(tmp_path / "d.npz", x=x, y=_labels(stray=253))
    with pytest.raises(DataError) as err:
        load_dataset(str(tmp_path / "d.npz"))
    text = str(err.value)
    assert "d.npz" in text and "index 17" in text and "253" in text


def test_npz_label_beyond_class_names(tmp_path):
    x = np.zeros((30, 4, 4), np.uint8)
    np.savez(tmp_path / "d.npz", x=x, y=_labels(stray=12, at=5), class_names=np.array([str(i) for i in range(10)]))
    with pytest.raises(DataError, match=r"index 5.*12|12.*index 5"):
        load_dataset(str(tmp_path / "d.npz"))


def test_idx_stray_label_is_refused(tmp_path):
    folder = tmp_path / "mnist"
    write_idx_file(folder / "train-images-idx3-ubyte", np.zeros((30, 4, 4), np.uint8))
    write_idx_file(folder / "train-labels-idx1-ubyte", _labels(stray=253, at=21).astype(np.uint8))
    with pytest.raises(DataError) as err:
        load_dataset(str(folder))
    text = str(err.value)
    assert "train-labels-idx1-ubyte" in text and "index 21" in text and "253" in text


def test_contiguous_labels_still_define_the_classes(tmp_path):
    x = np.zeros((30, 4, 4), np.uint8)
    np.savez(tmp_path / "d.npz", x=x, y=_labels() + 1)  # 1..10: class 0 unused (EMNIST-letters style)
    assert len(load_dataset(str(tmp_path / "d.npz"))["train"].class_names) == 11
    y = _labels()
    y[y == 9] = 11  # a gap without a class list is ambiguous: refused
    np.savez(tmp_path / "g.npz", x=x, y=y)
    with pytest.raises(DataError, match="11"):
        load_dataset(str(tmp_path / "g.npz"))
