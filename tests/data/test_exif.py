"""EXIF orientation is applied the same way in training, prediction and serving (issue #20)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageOps

from foveal.data.imagecheck import probe_image


def _pattern() -> Image.Image:
    """A 6x10 (w x h) image with a distinct colour in each corner region."""
    a = np.zeros((10, 6, 3), np.uint8)
    a[:5, :3] = (255, 0, 0)
    a[:5, 3:] = (0, 255, 0)
    a[5:, :3] = (0, 0, 255)
    a[5:, 3:] = (255, 255, 0)
    return Image.fromarray(a)


def _jpeg_bytes(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    _pattern().save(buf, "JPEG", quality=100, subsampling=0, exif=exif)
    return buf.getvalue()


def _expected(data: bytes) -> np.ndarray:
    return np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB")).astype(int)


def _close(image: np.ndarray, expected: np.ndarray) -> bool:
    """Same pixels up to JPEG decoders' ringing at colour edges; a wrong turn differs by ~255."""
    return image.shape == expected.shape and np.abs(image - expected).mean() < 6


@pytest.mark.parametrize("orientation", range(1, 9))
def test_decode_applies_every_orientation_like_pil(orientation):
    import tensorflow as tf

    from foveal.data.decode import decode_image_bytes, orient_image

    data = _jpeg_bytes(orientation)
    image = orient_image(decode_image_bytes(tf.constant(data), 3), orientation).numpy().astype(int)
    expected = _expected(data)
    assert image.shape == expected.shape
    assert _close(image, expected)


def test_header_probe_reads_orientation(tmp_path):
    (tmp_path / "a.jpg").write_bytes(_jpeg_bytes(6))
    _pattern().save(tmp_path / "b.png")
    assert probe_image(tmp_path / "a.jpg", full=False).orientation == 6
    assert probe_image(tmp_path / "b.png", full=False).orientation == 1


def _folder(root):
    for cls in ("cat", "dog"):
        (root / cls).mkdir(parents=True)
        (root / cls / "phone.jpg").write_bytes(_jpeg_bytes(6))
        _pattern().save(root / cls / "plain.png")
    return root


def test_training_pipeline_rotates_only_oriented_files(tmp_path):
    from foveal.data.readers import load_dataset

    train = load_dataset(str(_folder(tmp_path / "pets")))["train"]
    shapes = {p.rsplit("/", 1)[-1]: None for p in train.paths}
    for (image, _), path in zip(train.to_tf_dataset(3), train.paths):
        shapes[path.rsplit("/", 1)[-1]] = image.shape[:2]
    assert shapes == {"phone.jpg": (6, 10), "plain.png": (10, 6)}
    subset = train.subset(np.array([0]))  # splits keep the orientations
    image, _ = next(iter(subset.to_tf_dataset(3)))
    assert image.shape[:2] == (6, 10)


def test_predict_and_serve_see_what_training_sees(tmp_path):
    from foveal.models.io import ModelCard
    from foveal.predict import load_image
    from foveal.serve.app import load_image_bytes

    data = _jpeg_bytes(6)
    (tmp_path / "a.jpg").write_bytes(data)
    card = ModelCard("x", ["a", "b"], (6, 10, 3))  # stretch-resize to the rotated size: no change
    expected = _expected(data)
    assert _close(load_image(tmp_path / "a.jpg", card).astype(int), expected)
    served, _ = load_image_bytes(data, card)
    assert _close(served.astype(int), expected)


@pytest.mark.parametrize("cache", ["auto", "memory"])
def test_distributed_loader_turns_the_same_files(tmp_path, cache):
    import tensorflow as tf

    from foveal.data.readers import load_dataset
    from foveal.training.distribute import _IndexedImages

    train = load_dataset(str(_folder(tmp_path / "pets")))["train"]
    phone = [i for i, p in enumerate(train.paths) if p.endswith("phone.jpg")]
    loader = _IndexedImages(train, image_size=(6, 10), channels=3, keep_aspect=False, cache=cache)
    loader.build()
    images = loader.load(tf.constant(phone)).numpy().astype(int)
    expected = _expected(_jpeg_bytes(6))
    for image in images:
        assert _close(image, expected)


def test_inspect_reports_how_many_images_are_turned(tmp_path):
    from foveal.data.inspect import format_inspection, inspect_dataset

    report = inspect_dataset(str(_folder(tmp_path / "pets")), full=False)
    assert report["splits"]["train"]["exif_turned"] == 2
    assert "EXIF orientation: 2 images are turned upright" in format_inspection(report)
