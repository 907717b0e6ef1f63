"""load_dataset: every supported format, the split keys, and errors that name the file."""

from __future__ import annotations

import gzip
import os
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import shared_dataset
from foveal.data.readers import describe_formats, load_dataset
from foveal.data.readers.cifar import load_cifar
from foveal.errors import ConfigError, DataError

from .conftest import MIXED, cifar_rows


def _take(data, channels):
    """All (images, labels) of ``data.to_tf_dataset(channels)`` as lists of numpy arrays."""
    pairs = list(data.to_tf_dataset(channels).as_numpy_iterator())
    return [x for x, _ in pairs], np.array([y for _, y in pairs])


# ------------------------------------------------------------------------- dispatch


def test_unknown_spec_lists_supported_formats(tmp_path):
    with pytest.raises(DataError) as err:
        load_dataset(str(tmp_path / "nowhere"))
    assert "nowhere" in err.value.message and "no such file" in err.value.message
    assert "tfds:NAME" in err.value.hint and "digits" in describe_formats()
    odd = tmp_path / "notes.txt"
    odd.write_text("x")
    with pytest.raises(DataError, match="notes.txt"):
        load_dataset(str(odd))


def test_bad_verify_mode_is_a_config_error():
    with pytest.raises(ConfigError, match="verify"):
        load_dataset("digits", verify="sometimes")


def test_tfds_without_the_package_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)  # makes the import fail
    with pytest.raises(DataError) as err:
        load_dataset("tfds:mnist")
    assert "pip install foveal[tfds]" in str(err.value)


def test_digits():
    from sklearn.datasets import load_digits

    splits = load_dataset("sklearn:digits")
    assert list(splits) == ["train"]
    data = splits["train"]
    assert data.images.shape == (1797, 8, 8, 1) and data.images.dtype == np.uint8
    assert data.class_names == [str(i) for i in range(10)]
    raw = load_digits()
    np.testing.assert_array_equal(data.images[5, ..., 0], np.round(raw.images[5] * 255 / 16))
    np.testing.assert_array_equal(data.labels, raw.target)
    assert data.images.max() == 255


# ------------------------------------------------------------------------- image folders


def test_mixed_folder_decodes_every_format_and_mode(mixed_folder):
    splits = load_dataset(str(mixed_folder), verify="full")
    data = splits["train"]
    assert list(splits) == ["train"] and data.class_names == ["a", "b"]
    assert len(data) == 2 * len(MIXED) and data.streams_from_disk and data.images is None
    assert list(data.paths) == sorted(data.paths)  # sorted: a/... before b/...
    assert data.counts() == {"a": len(MIXED), "b": len(MIXED)}
    images, labels = _take(data, 3)
    assert all(x.shape == (8, 8, 3) and x.dtype == np.uint8 for x in images)
    np.testing.assert_array_equal(labels, data.labels)


def test_gray_png_decodes_to_its_own_pixels(mixed_folder):
    data = load_dataset(str(mixed_folder))["train"]
    index = [i for i, p in enumerate(data.paths) if p.endswith(os.path.join("a", "gray.png"))]
    gray = data.subset(np.array(index))
    expected = np.array(Image.open(gray.paths[0]))
    [one], _ = _take(gray, 1)
    [three], _ = _take(gray, 3)
    np.testing.assert_array_equal(one[..., 0], expected)
    for c in range(3):
        np.testing.assert_array_equal(three[..., c], expected)


def test_split_folder_layout(tmp_path, write_image):
    root = tmp_path / "split"
    for split in ("train", "validation", "test"):
        for cls in ("cat", "dog"):
            write_image(root / split / cls / "0.PNG", "RGB")
    write_image(root / "train" / "cat" / "nested" / "1.jpg", "RGB")
    (root / "train" / "cat" / ".DS_Store").write_bytes(b"\0junk")  # hidden: ignored
    splits = load_dataset(str(root))
    assert list(splits) == ["train", "val", "test"]
    assert splits["train"].counts() == {"cat": 2, "dog": 1}
    assert splits["val"].class_names == ["cat", "dog"] and len(splits["test"]) == 2


def test_bad_files_raise_naming_them_or_are_skipped(two_class_folder, write_image):
    root = two_class_folder()
    (root / "cat" / "broken.jpg").write_bytes(b"not a jpeg at all")
    (root / "dog" / "readme.txt").write_text("hello")
    with pytest.raises(DataError) as err:
        load_dataset(str(root))
    assert "broken.jpg" in err.value.message and "readme.txt" in err.value.message
    assert "2 file(s)" in err.value.message and "--skip-invalid" in err.value.hint
    with pytest.warns(UserWarning, match="skipping 2 invalid"):
        data = load_dataset(str(root), skip_invalid=True)["train"]
    assert len(data) == 6
    assert sorted(Path(p).name for p in data.info["skipped"]) == ["broken.jpg", "readme.txt"]


def test_truncated_image_found_by_header_verify(two_class_folder):
    root = two_class_folder()
    big = Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), np.uint8))
    big.save(root / "dog" / "cut.png")
    data = (root / "dog" / "cut.png").read_bytes()
    (root / "dog" / "cut.png").write_bytes(data[: len(data) // 2])
    for verify in ("header", "full"):
        with pytest.raises(DataError, match="cut.png: truncated or corrupt"):
            load_dataset(str(root), verify=verify)
    assert len(load_dataset(str(root), verify="none")["train"]) == 7


def test_many_problems_are_listed_ten_at_a_time(two_class_folder):
    root = two_class_folder()
    for i in range(13):
        (root / "cat" / f"bad{i:02d}.png").write_bytes(b"")
    with pytest.raises(DataError) as err:
        load_dataset(str(root))
    assert "13 file(s)" in err.value.message and "... and 3 more" in err.value.message
    assert "bad00.png: empty file" in err.value.message


def test_decompression_bomb_in_folder(two_class_folder, write_image):
    root = two_class_folder()
    write_image(root / "cat" / "huge.png", "L", size=(40, 40))
    with pytest.raises(DataError, match="huge.png: image has 1600 pixels"):
        load_dataset(str(root), max_image_pixels=1000)


def test_folder_structure_errors(tmp_path, two_class_folder, write_image):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="empty.*the folder is empty"):
        load_dataset(str(empty))

    flat = tmp_path / "flat"
    write_image(flat / "x.png")
    with pytest.raises(DataError, match="flat: no class subfolders"):
        load_dataset(str(flat))

    single = tmp_path / "single"
    write_image(single / "cat" / "x.png")
    with pytest.raises(DataError, match="single-class folder.*at least two classes") as err:
        load_dataset(str(single))
    assert "single" in err.value.message

    root = two_class_folder("holes")
    (root / "bird").mkdir()
    with pytest.raises(DataError, match="class folder 'bird' has no image files"):
        load_dataset(str(root), skip_invalid=True)


def test_class_with_only_bad_images_is_not_skippable(two_class_folder):
    root = two_class_folder()
    for f in (root / "dog").iterdir():
        f.write_bytes(b"broken")
    with pytest.raises(DataError, match="'dog' has no valid images"):
        load_dataset(str(root), skip_invalid=True)


# ------------------------------------------------------------------------- IDX


@pytest.mark.parametrize("gz", [False, True])
def test_idx_round_trip(idx_dataset, gz):
    folder, arrays = idx_dataset(gz=gz)
    splits = load_dataset(str(folder))
    assert list(splits) == ["train", "test"]
    for split, (x, y) in arrays.items():
        np.testing.assert_array_equal(splits[split].images[..., 0], x)
        np.testing.assert_array_equal(splits[split].labels, y)
        assert splits[split].images.flags.writeable
    assert splits["train"].class_names == [str(i) for i in range(10)]


def test_idx_class_names_fashion_and_classes_txt(idx_dataset):
    folder, _ = idx_dataset(name="my-Fashion-set", test=False)
    data = load_dataset(str(folder))
    assert list(data) == ["train"] and data["train"].class_names[0] == "T-shirt/top"
    (folder / "classes.txt").write_text("\n".join(f"c{i}" for i in range(10)) + "\n")
    assert load_dataset(str(folder))["train"].class_names[9] == "c9"


def test_idx_single_image_file(idx_dataset):
    folder, arrays = idx_dataset(gz=True)
    splits = load_dataset(str(folder / "t10k-images-idx3-ubyte.gz"))
    assert list(splits) == ["test"]
    np.testing.assert_array_equal(splits["test"].labels, arrays["test"][1])


def _idx_error(folder: Path, name: str) -> str:
    with pytest.raises(DataError) as err:
        load_dataset(str(folder))
    assert name in err.value.message
    return err.value.message


def test_idx_header_mismatches_name_the_file(idx_dataset, write_idx):
    folder, _ = idx_dataset(test=False)
    labels = folder / "train-labels-idx1-ubyte"
    good = labels.read_bytes()

    labels.write_bytes(b"\x08\x03" + good[2:])
    assert "not an IDX file (magic number" in _idx_error(folder, labels.name)

    write_idx(labels, np.zeros((12, 2), np.uint8))  # 2 dimensions where 1 is expected
    assert "declares 2 dimensions" in _idx_error(folder, labels.name)

    labels.write_bytes(good[:-3])  # 12 labels declared, 9 present
    assert "holds 9 bytes" in _idx_error(folder, labels.name)

    write_idx(labels, np.zeros(11, np.uint8))
    message = _idx_error(folder, "train-images-idx3-ubyte")
    assert "12 images" in message and "11 labels" in message and labels.name in message

    labels.write_bytes(gzip.compress(good)[:-10])  # a gzip stream cut short
    assert "corrupt gzip data" in _idx_error(folder, labels.name)


def test_idx_missing_label_file(idx_dataset):
    folder, _ = idx_dataset(test=False)
    (folder / "train-labels-idx1-ubyte").unlink()
    with pytest.raises(DataError, match="train-images-idx3-ubyte but no train-labels"):
        load_dataset(str(folder))


def test_real_fashion_mnist():
    folder = shared_dataset("fashion-mnist")
    splits = load_dataset(str(folder))
    assert (len(splits["train"]), len(splits["test"])) == (60_000, 10_000)
    assert splits["train"].images.shape[1:] == (28, 28, 1)
    with gzip.open(folder / "train-labels-idx1-ubyte.gz") as f:
        first_label = f.read(9)[8]  # after the 8-byte header
    assert splits["train"].labels[0] == first_label
    assert splits["train"].class_names[0] == "T-shirt/top"


# ------------------------------------------------------------------------- CIFAR


def test_cifar10_batches(cifar10_dir):
    parent, arrays = cifar10_dir
    splits = load_dataset(str(parent))  # the folder holding cifar-10-batches-py
    assert list(splits) == ["train", "test"]
    for split, (x, y) in arrays.items():
        assert splits[split].images.shape == (len(x), 32, 32, 3)
        np.testing.assert_array_equal(splits[split].images, x)
        np.testing.assert_array_equal(splits[split].labels, y)
    assert splits["train"].class_names[1] == "automobile"


def test_cifar100_fine_and_coarse(cifar100_dir):
    folder, arrays = cifar100_dir
    splits = load_dataset(str(folder))
    np.testing.assert_array_equal(splits["train"].labels, arrays["fine"][:4])
    np.testing.assert_array_equal(splits["test"].images, arrays["x"][4:])
    assert splits["train"].num_classes == 100 and splits["train"].class_names[99] == "fine99"
    coarse = load_cifar(folder, label_mode="coarse")
    np.testing.assert_array_equal(coarse["test"].labels, arrays["coarse"][4:])
    assert coarse["test"].num_classes == 20


class _Sneaky:
    def __reduce__(self):
        return (os.getcwd, ())


def test_cifar_pickles_cannot_run_code(cifar10_dir):
    parent, _ = cifar10_dir
    batch = parent / "cifar-10-batches-py" / "data_batch_2"
    batch.write_bytes(pickle.dumps({b"data": _Sneaky()}))
    with pytest.raises(DataError, match="data_batch_2: not a CIFAR python batch.*refusing"):
        load_dataset(str(parent))


def test_cifar_bad_data_shape(cifar10_dir):
    parent, arrays = cifar10_dir
    batch = parent / "cifar-10-batches-py" / "test_batch"
    rows = cifar_rows(arrays["test"][0])[:, :100]
    batch.write_bytes(pickle.dumps({b"data": rows, b"labels": [0, 1]}))
    with pytest.raises(DataError, match="test_batch: 'data' is uint8 \\(2, 100\\)"):
        load_dataset(str(parent))


# ------------------------------------------------------------------------- npz


def test_npz_variants(tmp_path):
    rng = np.random.default_rng(4)
    x = rng.integers(0, 256, (6, 5, 4, 3), dtype=np.uint8)
    y = np.array([0, 1, 2, 0, 1, 2])
    path = tmp_path / "splits.npz"
    np.savez(path, x_train=x[:4], y_train=y[:4], x_test=x[4:], y_test=y[4:],
             class_names=np.array(["r", "g", "b"]))
    splits = load_dataset(str(path))
    assert list(splits) == ["train", "test"] and splits["test"].class_names == ["r", "g", "b"]
    np.testing.assert_array_equal(splits["test"].images, x[4:])

    np.savez(tmp_path / "xy.npz", x=x[..., 0], y=y.reshape(-1, 1))
    data = load_dataset(str(tmp_path / "xy.npz"))["train"]
    assert data.images.shape == (6, 5, 4, 1) and data.class_names == ["0", "1", "2"]

    np.savez(tmp_path / "il.npz", images=x, labels=y)
    assert len(load_dataset(str(tmp_path / "il.npz"))["train"]) == 6


def test_npz_float_images_in_unit_range_are_scaled(tmp_path):
    path = tmp_path / "float.npz"
    np.savez(path, x=np.array([[[0.0, 0.5], [1.0, 0.2]]] * 2, np.float32), y=np.array([0, 1]))
    with pytest.warns(UserWarning, match="scaling to uint8"):
        data = load_dataset(str(path))["train"]
    np.testing.assert_array_equal(data.images[0, ..., 0], [[0, 128], [255, 51]])


@pytest.mark.parametrize(
    "arrays,message",
    [
        ({"x": np.full((2, 3, 3), 2.0), "y": np.array([0, 1])}, "float images must lie in"),
        ({"x": np.zeros((2, 3, 3), np.int64), "y": np.array([0, 1])}, "has dtype int64"),
        ({"x": np.zeros((2, 3, 3), np.uint8), "y": np.array([0, 1, 1])}, "2 images but 'y' 3"),
        ({"x": np.zeros((2, 3, 3), np.uint8)}, "has 'x' but no 'y'"),
        ({"a": np.zeros(3)}, "no image/label arrays found"),
        ({"x": np.zeros((2, 3, 3), np.uint8), "y": np.array([0, -1])}, "labels span -1..0"),
    ],
)
def test_npz_errors_name_the_file(tmp_path, arrays, message):
    path = tmp_path / "bad_arrays.npz"
    np.savez(path, **arrays)
    with pytest.raises(DataError, match=message) as err:
        load_dataset(str(path))
    assert "bad_arrays.npz" in err.value.message


def test_keras_dataset_names_download_or_say_how_to_use_a_local_copy(monkeypatch):
    """`--data mnist` goes through keras.datasets (online users); offline it fails in one line."""
    import keras

    from foveal.data.readers import detect_format, load_dataset
    from foveal.errors import DataError

    assert detect_format("mnist") == ("keras", "mnist")
    assert detect_format("keras:Fashion-MNIST") == ("keras", "fashion_mnist")

    def offline():
        raise Exception("URL fetch failure on https://storage.googleapis.com/...: None -- [Errno -3]")

    monkeypatch.setattr(keras.datasets.mnist, "load_data", offline)
    with pytest.raises(DataError, match="could not download") as info:
        load_dataset("mnist")
    assert "--data DIR" in info.value.hint

    rng = np.random.default_rng(0)
    fake = ((rng.integers(0, 255, (12, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, (12, 1))),
            (rng.integers(0, 255, (4, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, (4, 1))))
    monkeypatch.setattr(keras.datasets.cifar10, "load_data", lambda: fake)
    parts = load_dataset("cifar10")
    assert parts["train"].class_names[0] == "airplane" and len(parts["test"]) == 4
    assert parts["train"].labels.shape == (12,) and parts["train"].images.shape == (12, 32, 32, 3)
