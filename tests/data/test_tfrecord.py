"""TFRecord writing and reading: exact round trips, record selection, class names, errors."""

from __future__ import annotations

import numpy as np
import pytest

from foveal.data.readers import convert_to_tfrecord, load_dataset
from foveal.data.readers.tfrecord import records_dataset, write_tfrecord
from foveal.data.source import LabeledImages
from foveal.errors import DataError


def _arrays(n=9, channels=1, classes=("zero", "one", "two")):
    rng = np.random.default_rng(5)
    return LabeledImages(
        class_names=list(classes),
        labels=(np.arange(n) % len(classes)).astype(np.int32),
        images=rng.integers(0, 256, (n, 6, 7, channels), dtype=np.uint8),
        origin="test arrays",
    )


def _decoded(data, channels):
    pairs = list(data.to_tf_dataset(channels).as_numpy_iterator())
    return np.stack([x for x, _ in pairs]), np.array([y for _, y in pairs])


def _write_examples(path, items):
    """Write records by hand: items of (image bytes, label, class name or None)."""
    import tensorflow as tf

    with tf.io.TFRecordWriter(str(path)) as writer:
        for image, label, name in items:
            feature = {
                "image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[image])),
                "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
            }
            if name is not None:
                feature["class_name"] = tf.train.Feature(
                    bytes_list=tf.train.BytesList(value=[name.encode()])
                )
            example = tf.train.Example(features=tf.train.Features(feature=feature))
            writer.write(example.SerializeToString())


@pytest.mark.parametrize("channels", [1, 3])
def test_array_round_trip_is_pixel_exact(tmp_path, channels):
    source = _arrays(channels=channels)
    files = write_tfrecord(source, tmp_path / "out" / "train.tfrecord")
    assert files == [str(tmp_path / "out" / "train.tfrecord")]
    data = load_dataset(files[0])["train"]
    assert data.tfrecord is not None and data.class_names == source.class_names
    np.testing.assert_array_equal(data.labels, source.labels)
    images, labels = _decoded(data, channels)
    np.testing.assert_array_equal(images, source.images)
    np.testing.assert_array_equal(labels, source.labels)


def test_shards_keep_the_record_order(tmp_path):
    source = _arrays(n=10)
    files = write_tfrecord(source, tmp_path / "train.tfrecord", shards=3)
    assert [f.rsplit("/", 1)[1] for f in files] == [
        f"train-0000{i}-of-00003.tfrecord" for i in range(3)
    ]
    data = load_dataset(str(tmp_path))["train"]  # a folder of shards
    assert sum(data.info["records_per_file"].values()) == 10
    images, _ = _decoded(data, 1)
    np.testing.assert_array_equal(images, source.images)
    assert len(load_dataset(str(tmp_path / "train-*.tfrecord"))["train"]) == 10  # a glob


def test_record_indices_select_exactly(tmp_path):
    source = _arrays(n=10)
    write_tfrecord(source, tmp_path / "a.tfrecord", shards=2)
    data = load_dataset(str(tmp_path / "a-*.tfrecord"))["train"]
    subset = data.subset(np.array([7, 2, 5]))
    np.testing.assert_array_equal(subset.tfrecord.record_indices, [2, 5, 7])
    np.testing.assert_array_equal(subset.labels, source.labels[[2, 5, 7]])  # labels follow the stream
    images, labels = _decoded(subset, 1)
    # Records stream in file order: 2, 5, 7.
    np.testing.assert_array_equal(images, source.images[[2, 5, 7]])
    np.testing.assert_array_equal(labels, source.labels[[2, 5, 7]])
    # A nested subset composes, and a repeated index yields the record twice.
    nested = subset.subset(np.array([1, 1]))
    assert list(nested.tfrecord.record_indices) == [5, 5]
    images, _ = _decoded(nested, 1)
    np.testing.assert_array_equal(images, source.images[[5, 5]])
    empty = records_dataset(data.subset(np.array([], np.int64)).tfrecord, 1)
    assert len(list(empty)) == 0


def test_image_files_are_copied_byte_for_byte(tmp_path, two_class_folder):
    import tensorflow as tf

    folder = load_dataset(str(two_class_folder()))["train"]
    [path] = write_tfrecord(folder, tmp_path / "pets.tfrecord")
    features = {"image": tf.io.FixedLenFeature([], tf.string)}
    stored = [
        tf.io.parse_single_example(r, features)["image"].numpy()
        for r in tf.data.TFRecordDataset(path)
    ]
    assert stored == [open(p, "rb").read() for p in folder.paths]
    again = load_dataset(path)["train"]
    assert again.class_names == ["cat", "dog"] and list(again.labels) == list(folder.labels)


def test_class_names_from_records_or_numbered(tmp_path):
    source = _arrays(n=6)
    write_tfrecord(source, tmp_path / "named" / "data.tfrecord")
    (tmp_path / "named" / "classes.txt").unlink()  # names now come from class_name features
    assert load_dataset(str(tmp_path / "named"))["train"].class_names == ["zero", "one", "two"]

    png = (tmp_path / "named" / "data.tfrecord").read_bytes()  # any bytes: labels only
    _write_examples(tmp_path / "plain.tfrecord", [(png, 0, None), (png, 3, None)])
    plain = load_dataset(str(tmp_path / "plain.tfrecord"))["train"]
    assert plain.class_names == ["0", "1", "2", "3"]

    _write_examples(tmp_path / "clash.tfrecord", [(png, 0, "cat"), (png, 0, "dog")])
    with pytest.raises(DataError, match="clash.tfrecord: label 0 has several class names"):
        load_dataset(str(tmp_path / "clash.tfrecord"))


def test_convert_any_dataset_with_splits(tmp_path):
    rng = np.random.default_rng(6)
    x = rng.integers(0, 256, (8, 4, 4, 3), dtype=np.uint8)
    y = np.array([0, 1] * 4)
    np.savez(tmp_path / "src.npz", x_train=x[:6], y_train=y[:6], x_test=x[6:], y_test=y[6:])
    written = convert_to_tfrecord(str(tmp_path / "src.npz"), tmp_path / "records")
    assert sorted(written) == ["test", "train"]
    splits = load_dataset(str(tmp_path / "records"))
    assert list(splits) == ["train", "test"] and splits["test"].class_names == ["0", "1"]
    images, labels = _decoded(splits["test"], 3)
    np.testing.assert_array_equal(images, x[6:])
    np.testing.assert_array_equal(labels, y[6:])


def test_bad_record_files_name_the_file(tmp_path):
    good = write_tfrecord(_arrays(), tmp_path / "ok" / "train.tfrecord")[0]
    data = open(good, "rb").read()
    cut = tmp_path / "cut.tfrecord"
    cut.write_bytes(data[: len(data) - 20])
    with pytest.raises(DataError, match="cut.tfrecord: not a TFRecord file, or a corrupt or truncated one"):
        load_dataset(str(cut))

    _write_examples(tmp_path / "nolabel.tfrecord", [])
    with pytest.raises(DataError, match="nolabel.tfrecord: no records"):
        load_dataset(str(tmp_path / "nolabel.tfrecord"))

    mixed = tmp_path / "mixed"
    write_tfrecord(_arrays(), mixed / "train.tfrecord")
    write_tfrecord(_arrays(), mixed / "extra.tfrecord")
    with pytest.raises(DataError, match="extra.tfrecord: has no train/val/test in its name"):
        load_dataset(str(mixed))


def test_missing_label_feature(tmp_path):
    import tensorflow as tf

    path = tmp_path / "unlabelled.tfrecord"
    with tf.io.TFRecordWriter(str(path)) as writer:
        feature = {"image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"x"]))}
        example = tf.train.Example(features=tf.train.Features(feature=feature))
        writer.write(example.SerializeToString())
    with pytest.raises(DataError, match="unlabelled.tfrecord: records without an int64 'label'"):
        load_dataset(str(path))
