"""Truncated images are caught by the default header check; a decode failure names the file."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
from PIL import Image

from foveal.data.imagecheck import check_image_file
from foveal.data.readers import load_dataset
from foveal.errors import DataError
from tests.data.conftest import save_image


def _png(seed: int = 0) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def _jpeg() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(buf, "JPEG")
    return buf.getvalue()


def _pets(root, bad_name="cut.png", bad=None):
    for cls in ("cat", "dog"):
        for i in range(2):
            save_image(root / cls / f"{i}.png", seed=i)
    data = _png()
    (root / "dog" / bad_name).write_bytes(bad if bad is not None else data[: len(data) * 2 // 3])
    return root


@pytest.mark.parametrize("cut", [_png()[:-20], _png()[:300], _jpeg()[:-40], _jpeg()[:400]])
def test_header_check_finds_truncated_files(tmp_path, cut):
    path = tmp_path / "x.img"
    path.write_bytes(cut)
    problem = check_image_file(path, full=False)
    assert problem is not None and "truncated" in problem


@pytest.mark.parametrize("data", [_png() + b"trailing junk", _jpeg() + b"\0" * 5000, _png(), _jpeg()])
def test_whole_files_with_trailers_pass(tmp_path, data):
    path = tmp_path / "x.img"
    path.write_bytes(data)
    assert check_image_file(path, full=False) is None


def test_truncated_png_is_named_or_skipped_with_a_count(tmp_path):
    root = _pets(tmp_path / "pets")
    with pytest.raises(DataError, match=r"cut\.png.*truncated"):
        load_dataset(str(root))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train = load_dataset(str(root), skip_invalid=True)["train"]
    assert len(train) == 4 and any("skipping 1 invalid" in str(w.message) for w in caught)


def test_decode_failure_names_the_file(tmp_path):
    from foveal.data.decode import decode_errors_as_data_errors

    root = _pets(tmp_path / "pets")
    train = load_dataset(str(root), verify="none")["train"]
    with pytest.raises(DataError) as err:
        with decode_errors_as_data_errors(str(root)):
            list(train.to_tf_dataset(3).as_numpy_iterator())
    assert "cut.png" in str(err.value) and "Graph execution error" not in str(err.value)


def test_bad_tfrecord_record_is_named_by_index(tmp_path):
    import tensorflow as tf

    from foveal.data.decode import decode_errors_as_data_errors

    path = tmp_path / "train.tfrecord"
    with tf.io.TFRecordWriter(str(path)) as writer:
        for i, image in enumerate([_png(0), _png(1), _png(2)[:200], _png(3)]):
            feature = {"image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[image])),
                       "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[i % 2]))}
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    train = load_dataset(str(path))["train"]
    with pytest.raises(DataError) as err:
        with decode_errors_as_data_errors(str(path)):
            list(train.to_tf_dataset(3).as_numpy_iterator())
    assert "train.tfrecord#2" in str(err.value) and "Graph execution error" not in str(err.value)


def test_skip_invalid_drops_bad_tfrecord_records_with_a_count(tmp_path):
    import tensorflow as tf

    path = tmp_path / "train.tfrecord"
    with tf.io.TFRecordWriter(str(path)) as writer:
        for i, image in enumerate([_png(0), _png(1), _png(2)[:200], _png(3)]):
            feature = {"image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[image])),
                       "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[i % 2]))}
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train = load_dataset(str(path), skip_invalid=True)["train"]
    assert any("skipping 1 invalid" in str(w.message) for w in caught)
    assert len(train) == 3 and list(train.labels) == [0, 1, 1]
    assert list(train.info["skipped"]) == [f"{path}#2"]
    assert len(list(train.to_tf_dataset(3).as_numpy_iterator())) == 3


def test_decode_failure_inside_a_whole_file_is_found_by_a_full_recheck(tmp_path):
    from foveal.data.decode import decode_errors_as_data_errors

    data = bytearray(_png())
    middle = len(data) // 2
    data[middle:middle + 40] = bytes(40)  # damaged pixel data; the end chunk is still there
    root = _pets(tmp_path / "pets", bad_name="damaged.png", bad=bytes(data))
    assert check_image_file(root / "dog" / "damaged.png", full=False) is None
    train = load_dataset(str(root))["train"]
    with pytest.raises(DataError) as err:
        with decode_errors_as_data_errors(str(root)):
            list(train.to_tf_dataset(3).as_numpy_iterator())
    assert "damaged.png" in str(err.value)
