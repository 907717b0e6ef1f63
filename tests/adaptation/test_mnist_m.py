"""MNIST-M-style generation: the blend formula, determinism, the reader, bad backgrounds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from foveal.data.synth.mnist_m import blend, make_mnist_m
from foveal.errors import DataError


def test_blend_is_the_absolute_difference():
    digit = np.array([[0, 128], [255, 10]], np.uint8)
    patch = np.array([[[10, 200, 255], [0, 128, 255]], [[255, 0, 100], [5, 10, 20]]], np.uint8)
    expected = np.abs(patch.astype(int) - digit.astype(int)[..., None]).astype(np.uint8)
    np.testing.assert_array_equal(blend(digit, patch), expected)
    binarized = np.abs(patch.astype(int) - np.where(digit > 0, 255, 0)[..., None]).astype(np.uint8)
    np.testing.assert_array_equal(blend(digit, patch, binarize=True), binarized)


def write_inputs(root: Path, n: int = 12, size: int = 8, bg: tuple[int, int] = (20, 14)) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    digits = root / "digits.npz"
    np.savez(digits, x_train=rng.integers(0, 256, (n, size, size), dtype=np.uint8), y_train=np.arange(n) % 3,
             x_test=rng.integers(0, 256, (4, size, size), dtype=np.uint8), y_test=np.arange(4) % 3)
    photos = root / "photos"
    (photos / "sub").mkdir(parents=True)
    for i, folder in enumerate((photos, photos / "sub")):
        Image.fromarray(rng.integers(0, 256, (bg[1], bg[0], 3), dtype=np.uint8)).save(folder / f"p{i}.png")
    return digits, photos


def test_generation_is_deterministic_readable_and_blended(tmp_path):
    from foveal.data.readers import load_dataset

    digits, photos = write_inputs(tmp_path)
    a = make_mnist_m(str(digits), photos, tmp_path / "a", seed=3)
    make_mnist_m(str(digits), photos, tmp_path / "b", seed=3)
    make_mnist_m(str(digits), photos, tmp_path / "c", seed=4)
    assert a["counts"] == {"train": 12, "test": 4} and a["photos"] == 2
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.png"))
    assert files == sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*.png"))
    assert all((tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes() for f in files)
    assert any((tmp_path / "a" / f).read_bytes() != (tmp_path / "c" / f).read_bytes() for f in files)

    parts = load_dataset(str(tmp_path / "a"))
    assert set(parts) == {"train", "test"} and len(parts["train"]) == 12 and parts["train"].class_names == ["0", "1", "2"]
    # every output is |patch - digit| for some 8x8 patch of one of the photos
    source = np.load(digits)
    backgrounds = [np.asarray(Image.open(p).convert("RGB")).astype(int) for p in sorted(photos.rglob("*.png"))]
    for i in (0, 5, 11):
        out = np.asarray(Image.open(tmp_path / "a" / "train" / str(i % 3) / f"{i:06d}.png")).astype(int)
        digit = source["x_train"][i].astype(int)[..., None]
        found = any(np.array_equal(np.abs(bg[y:y + 8, x:x + 8] - digit), out)
                    for bg in backgrounds for y in range(bg.shape[0] - 7) for x in range(bg.shape[1] - 7))
        assert found, f"image {i} is not a blend of a background patch"


def test_bad_backgrounds_are_named(tmp_path):
    digits, photos = write_inputs(tmp_path, bg=(20, 6))  # 6 pixels high: smaller than the 8x8 digits
    with pytest.raises(DataError, match=r"p0\.png: background 20x6 is smaller than the 8x8 patch"):
        make_mnist_m(str(digits), photos, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="empty: no photos found"):
        make_mnist_m(str(digits), tmp_path / "empty", tmp_path / "out")


def test_cli_writes_and_refuses_a_full_folder(tmp_path, capsys):
    from foveal.cli.main import main

    digits, photos = write_inputs(tmp_path)
    out = tmp_path / "mm"
    assert main(["datasets", "synth", "mnist-m", "--data", str(digits), "--backgrounds", str(photos),
                 "--output", str(out), "--limit", "5", "--seed", "1"]) == 0
    assert "wrote 9 images (train 5, test 4)" in capsys.readouterr().out
    assert main(["datasets", "synth", "mnist-m", "--digits", str(digits), "--backgrounds", str(photos),
                 "--output", str(out)]) == 2
    assert "exists and is not empty" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["adapt", "train"], ["adapt", "evaluate"], ["adapt", "predict"],
                                  ["datasets", "synth", "mnist-m"], ["datasets", "synth", "composite"],
                                  ["datasets", "synth", "render"], ["datasets", "synth", "grabcut"]])
def test_help_has_examples(argv, capsys):
    from foveal.cli.main import main

    with pytest.raises(SystemExit) as stop:
        main([*argv, "--help"])
    assert stop.value.code == 0 and "examples:" in capsys.readouterr().out
