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
def test_decoder_applies_every_orientation_like_pil(orientation):
    import tensorflow as tf

    from foveal.data.decode import decode_image_bytes, exif_orientation

    data = _jpeg_bytes(orientation)
    assert int(exif_orientation(tf.constant(data))) == orientation
    image = decode_image_bytes(tf.constant(data), 3).numpy().astype(int)
    assert _close(image, _expected(data))
    gray = decode_image_bytes(tf.constant(data), 1).numpy()
    assert gray.shape == (*_expected(data).shape[:2], 1)
    stored = decode_image_bytes(tf.constant(data), 3, orient=False).numpy()
    assert stored.shape == (10, 6, 3)


def _app1_exif(tiff: bytes) -> bytes:
    body = b"Exif\x00\x00" + tiff
    return b"\xff\xe1" + (len(body) + 2).to_bytes(2, "big") + body


def test_exif_orientation_big_endian_after_other_segments_and_damage():
    """Motorola byte order, an APP0 and a comment before the EXIF block: read as PIL reads
    them; damaged or absent EXIF gives 1 and never an error."""
    import tensorflow as tf

    from foveal.data.decode import exif_orientation

    plain = io.BytesIO()
    _pattern().save(plain, "JPEG")  # no EXIF at all
    rest = _jpeg_bytes(1)
    rest = rest[rest.index(b"\xff\xdb"):]  # from the quantisation tables on
    app0 = b"\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    comment = b"\xff\xfe\x00\x08Exif\x00\x00"  # a comment holding the signature is not the EXIF block
    # IFD0 with two entries, the orientation second; values big-endian.
    ifd = (b"\x00\x02" + b"\x01\x0f\x00\x02\x00\x00\x00\x04ACME" + b"\x01\x12\x00\x03\x00\x00\x00\x01\x00\x08\x00\x00"
           + b"\x00\x00\x00\x00")
    big = b"\xff\xd8" + app0 + comment + _app1_exif(b"MM\x00\x2a\x00\x00\x00\x08" + ifd) + rest
    assert Image.open(io.BytesIO(big)).getexif().get(0x0112) == 8  # PIL agrees on the file
    assert int(exif_orientation(tf.constant(big))) == 8
    bad_offset = b"\xff\xd8" + _app1_exif(b"MM\x00\x2a\xff\xff\xff\xf0" + ifd) + rest
    out_of_range = b"\xff\xd8" + _app1_exif(b"II\x2a\x00\x08\x00\x00\x00\x01\x00\x12\x01\x03\x00\x01\x00\x00\x00\x09\x00") + rest
    buf = io.BytesIO()
    _pattern().save(buf, "PNG")
    for data in (bad_offset, out_of_range, big[:30], b"", b"\xff\xd8", buf.getvalue(), plain.getvalue()):
        assert int(exif_orientation(tf.constant(data))) == 1


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
    from foveal.data.files import load_image
    from foveal.models.io import ModelCard
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


# --- every reader decodes through the same path (issue #20: boxes, masks, TFRecord, --verify none)

def _turned_jpeg(path, orientation: int = 6) -> np.ndarray:
    """Write a 40x24 (w x h, as stored) JPEG tagged ``orientation``; return it as shown (RGB)."""
    a = np.zeros((24, 40, 3), np.uint8)
    a[:12, :20] = (255, 0, 0)
    a[:12, 20:] = (0, 255, 0)
    a[12:, :20] = (0, 0, 255)
    a[12:, 20:] = (255, 255, 0)
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(a).save(path, "JPEG", quality=100, subsampling=0, exif=exif)
    return np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB"))


def _red_box(shown: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero((shown[..., 0] > 200) & (shown[..., 1] < 60) & (shown[..., 2] < 60))
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def _mostly_red(image: np.ndarray, box) -> bool:
    h, w = image.shape[:2]
    x0, y0, x1, y1 = (int(round(v)) for v in (box[0] * w, box[1] * h, box[2] * w, box[3] * h))
    patch = image[y0 + 1:y1 - 1, x0 + 1:x1 - 1].reshape(-1, 3).astype(int)
    return patch.size > 0 and patch[:, 0].mean() > 180 and patch[:, 1:].mean() < 80


def test_folder_read_without_verification_is_turned(tmp_path):
    from foveal.data.readers import load_dataset

    for cls in ("a", "b"):
        (tmp_path / cls).mkdir()
        _turned_jpeg(tmp_path / cls / "phone.jpg")
    train = load_dataset(str(tmp_path), verify="none")["train"]  # no header is read
    assert {tuple(image.shape[:2]) for image, _ in train.to_tf_dataset(3)} == {(40, 24)}


def test_tfrecord_images_are_turned(tmp_path):
    import tensorflow as tf

    from foveal.data.readers import load_dataset

    shown = _turned_jpeg(tmp_path / "phone.jpg", 8)
    with tf.io.TFRecordWriter(str(tmp_path / "data.tfrecord")) as writer:
        for label in (0, 1):
            feature = {"image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[(tmp_path / "phone.jpg").read_bytes()])),
                       "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[label]))}
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    train = load_dataset(str(tmp_path / "data.tfrecord"))["train"]
    for image, _ in train.to_tf_dataset(3):
        assert _close(image.numpy().astype(int), shown.astype(int))
    from foveal.data.inspect import inspect_dataset

    assert inspect_dataset(str(tmp_path / "data.tfrecord"), full=False)["splits"]["train"]["exif_turned"] == 2


def _voc(root, size_as_stored: bool):
    """A VOC folder of two photos tagged 6, each annotated with the red quadrant: drawn on the
    image as shown (what EXIF-aware tools record) or, with ``size_as_stored``, as stored."""
    (root / "images").mkdir(parents=True)
    (root / "annotations").mkdir()
    for name in ("p1", "p2"):
        shown = _turned_jpeg(root / "images" / f"{name}.jpg", 6)
        if size_as_stored:
            stored = np.asarray(Image.open(root / "images" / f"{name}.jpg").convert("RGB"))
            (x0, y0, x1, y1), (w, h) = _red_box(stored), (40, 24)
        else:
            (x0, y0, x1, y1), (h, w) = _red_box(shown), shown.shape[:2]
        (root / "annotations" / f"{name}.xml").write_text(
            f"<annotation><filename>{name}.jpg</filename><size><width>{w}</width><height>{h}</height>"
            f"<depth>3</depth></size><object><name>red</name><bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin>"
            f"<xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object></annotation>")
    return root


def test_box_datasets_are_read_on_the_turned_image(tmp_path):
    from foveal.data.boxes import load_boxes
    from foveal.detection.pipeline import make_detection_pipeline
    from foveal.localization.pipeline import make_localization_pipeline

    data = load_boxes(str(_voc(tmp_path / "voc", size_as_stored=False)))["train"]
    assert data.image_sizes.tolist() == [[24, 40], [24, 40]]  # (width, height) as shown
    images, targets = next(iter(make_detection_pipeline(data, image_size=(40, 24), batch_size=2)))
    for image, box in zip(images.numpy(), targets["boxes"].numpy()[:, 0]):
        assert image.shape[:2] == (40, 24) and _mostly_red(image, box)
    located, _ = next(iter(make_localization_pipeline(data, image_size=(40, 24), channels=3, batch_size=2,
                                                      training=False)))
    assert np.array_equal(located.numpy(), images.numpy())  # the same pixels under the same boxes


def test_boxes_drawn_on_the_stored_image_are_turned_with_it(tmp_path):
    """A VOC file whose size is the image as stored came from a tool that ignored EXIF: its
    boxes land on the same pixels of the turned image."""
    from foveal.data.boxes import load_boxes

    shown = load_boxes(str(_voc(tmp_path / "shown", size_as_stored=False)))["train"]
    stored = load_boxes(str(_voc(tmp_path / "stored", size_as_stored=True)))["train"]
    assert stored.image_sizes.tolist() == shown.image_sizes.tolist() == [[24, 40], [24, 40]]
    for a, b in zip(stored.boxes, shown.boxes):
        assert np.allclose(a, b, atol=1.0)


def test_masks_stay_on_turned_images(tmp_path):
    from foveal.segmentation.data import read_mask_folder

    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    for name in ("p1", "p2"):
        shown = _turned_jpeg(tmp_path / "images" / f"{name}.jpg", 6)
        red = np.zeros(shown.shape[:2], np.uint8)
        x0, y0, x1, y1 = _red_box(shown)
        red[y0:y1, x0:x1] = 1
        Image.fromarray(red).save(tmp_path / "masks" / f"{name}.png")
    data = read_mask_folder(tmp_path, mask_format="index", class_names=["other", "red"])  # sizes checked
    for image, mask in data.to_tf_dataset(3):
        image, mask = image.numpy().astype(int), mask.numpy()
        assert image.shape[:2] == mask.shape == (40, 24)
        assert image[mask == 1][:, 0].mean() > 180 and image[mask == 1][:, 1:].mean() < 80


def test_predict_readers_turn_images(tmp_path):
    from foveal.data.files import decode_file

    shown = _turned_jpeg(tmp_path / "a.jpg", 6)
    assert _close(decode_file(tmp_path / "a.jpg", 3).astype(int), shown.astype(int))


def test_orient_box_matches_pil():
    from foveal.data.boxes.source import orient_box

    a = np.zeros((24, 40), np.uint8)
    a[3:9, 5:17] = 255  # box (5, 3, 17, 9) on the stored 40x24 image
    for orientation in range(1, 9):
        exif = Image.Exif()
        exif[0x0112] = orientation
        buf = io.BytesIO()
        Image.fromarray(a).save(buf, "PNG", exif=exif)
        shown = np.asarray(ImageOps.exif_transpose(Image.open(buf)))
        ys, xs = np.nonzero(shown)
        assert orient_box((5, 3, 17, 9), orientation, (40, 24)) == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)


def test_yolo_fractions_are_of_the_turned_image(tmp_path):
    """Ultralytics reads YOLO fractions on the image as shown (EXIF applied); so does foveal."""
    from foveal.data.boxes import load_boxes

    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    (tmp_path / "classes.txt").write_text("red\n")
    shown = _turned_jpeg(tmp_path / "images" / "p.jpg", 8)
    (x0, y0, x1, y1), (h, w) = _red_box(shown), shown.shape[:2]
    (tmp_path / "labels" / "p.txt").write_text(f"0 {(x0 + x1) / 2 / w} {(y0 + y1) / 2 / h} {(x1 - x0) / w} {(y1 - y0) / h}\n")
    data = load_boxes(str(tmp_path))["train"]
    assert data.image_sizes.tolist() == [[24, 40]]
    assert np.allclose(data.boxes[0], [[x0, y0, x1, y1]], atol=1e-3)


def test_folder_pipelines_decode_through_one_traced_decoder_with_the_same_pixels(tmp_path):
    """``dataset_from_paths`` calls a decoder traced once per channel count; its pixels are the
    eager decoder's, EXIF orientation included, in every new pipeline."""
    import tensorflow as tf

    from foveal.data.decode import _traced_decode_path, dataset_from_paths, decode_path

    paths = []
    for orientation in (1, 6, 8):
        path = tmp_path / f"o{orientation}.jpg"
        path.write_bytes(_jpeg_bytes(orientation))
        paths.append(str(path))
    Image.fromarray(np.arange(48, dtype=np.uint8).reshape(6, 8)).save(tmp_path / "gray.png")
    paths.append(str(tmp_path / "gray.png"))
    for channels in (1, 3):
        expected = [np.asarray(decode_path(tf.constant(p), channels)) for p in paths]
        for _ in range(2):  # a second pipeline reuses the traced decoder
            got = [np.asarray(x) for x, _ in dataset_from_paths(np.array(paths), np.zeros(len(paths)), channels)]
            assert all(np.array_equal(a, b) for a, b in zip(got, expected))
        assert _traced_decode_path(channels) is _traced_decode_path(channels)


def test_graph_callers_decode_bytes_through_one_traced_decoder_with_the_eager_pixels():
    """Inside a graph (a ``tf.data`` map: box, mask and record readers; the SavedModel's
    ``predict_images``), ``decode_image_bytes`` calls a decoder traced once per channel count:
    its pixels are the eager decoder's for all eight orientations, and new pipelines reuse it."""
    import tensorflow as tf

    from foveal.data.decode import _decode_and_orient, _traced_decoder, decode_image_bytes

    blobs = [_jpeg_bytes(o) for o in range(1, 9)]
    gray = io.BytesIO()
    Image.fromarray(np.arange(48, dtype=np.uint8).reshape(6, 8)).save(gray, "PNG")
    blobs.append(gray.getvalue())
    for channels in (1, 3):
        eager = [np.asarray(_decode_and_orient(tf.constant(b), channels, True)) for b in blobs]
        assert all(np.array_equal(np.asarray(decode_image_bytes(tf.constant(b), channels)), e)
                   for b, e in zip(blobs, eager))  # eager callers run the same ops directly
        traces = []
        for _ in range(2):  # a second pipeline traces nothing new
            ds = tf.data.Dataset.from_tensor_slices(blobs).map(lambda b: decode_image_bytes(b, channels))
            assert ds.element_spec.shape.as_list() == [None, None, channels]
            assert all(np.array_equal(np.asarray(x), e) for x, e in zip(ds, eager))
            traces.append(_traced_decoder(channels).experimental_get_tracing_count())
        assert _traced_decoder(channels) is _traced_decoder(channels)
        # (earlier tests in the same process may have traced it once in another context, e.g. under op determinism)
        assert traces[0] >= 1 and traces[1] == traces[0]
