"""--skip-invalid counts what it leaves out mid-run (issue #20): files that fail to decode only
while training (``--verify none``, or damage the header check cannot see) are named once, listed
in the data's ``info["undecodable"]`` and reported at the end of the run."""

from __future__ import annotations

import io
import json

import numpy as np
from PIL import Image

from tests.data.conftest import save_image


def _png(seed: int = 0, size: int = 32) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def _folder(root, per_class: int = 2):
    for cls in ("cat", "dog"):
        for i in range(per_class):
            save_image(root / cls / f"{i}.png", seed=i, size=(32, 32))
    data = _png()
    (root / "dog" / "cut.png").write_bytes(data[: len(data) * 2 // 3])  # no header check reads it
    return root


def test_folder_pipeline_names_and_counts_undecodable_files(tmp_path):
    from foveal.data.readers import load_dataset

    root = _folder(tmp_path / "pets")
    train = load_dataset(str(root), verify="none")["train"]
    labels = [int(y) for _, y in train.to_tf_dataset(3, skip_invalid=True)]
    assert labels == [0, 0, 1, 1]  # order kept
    assert train.info["undecodable"] == [str(root / "dog" / "cut.png")]
    list(train.to_tf_dataset(3, skip_invalid=True))  # a second epoch: named once
    assert len(train.info["undecodable"]) == 1


def test_tfrecord_records_are_named_by_file_and_index(tmp_path):
    import tensorflow as tf

    from foveal.data.readers import load_dataset

    paths = [tmp_path / "a-train.tfrecord", tmp_path / "b-train.tfrecord"]
    images = [[_png(0), _png(1)], [_png(2), _png(3)[:200], _png(4)]]
    for path, batch in zip(paths, images):
        with tf.io.TFRecordWriter(str(path)) as writer:
            for i, image in enumerate(batch):
                feature = {"image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[image])),
                           "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[i % 2]))}
                writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    train = load_dataset(str(tmp_path), verify="none")["train"]
    assert len(list(train.to_tf_dataset(3, skip_invalid=True))) == 4
    assert train.info["undecodable"] == [f"{paths[1]}#1"]


def test_box_and_mask_pipelines_count_undecodable_files(tmp_path):
    from foveal.data.boxes.source import BoxedImages
    from foveal.localization.pipeline import make_localization_pipeline
    from foveal.segmentation.data import SegmentationImages

    good, bad = tmp_path / "good.png", tmp_path / "bad.png"
    good.write_bytes(_png(1))
    bad.write_bytes(_png(2)[:-300])
    boxed = BoxedImages(paths=np.array([str(good), str(bad)]), boxes=[np.array([[2, 2, 20, 20]], np.float32)] * 2,
                        labels=[np.array([0], np.int32)] * 2, class_names=["thing"],
                        image_sizes=np.array([[32, 32], [32, 32]]), difficult=[np.array([False])] * 2)
    ds = make_localization_pipeline(boxed, image_size=(32, 32), channels=3, batch_size=4, training=False,
                                    skip_invalid=True, cache="none")
    assert sum(int(images.shape[0]) for images, _ in ds) == 1
    assert boxed.info["undecodable"] == [str(bad)]

    mask = tmp_path / "mask.png"
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(mask)
    pairs = SegmentationImages(image_paths=np.array([str(good), str(bad)]), mask_paths=np.array([str(mask)] * 2),
                               class_names=["bg", "fg"], mask_format="index")
    assert len(list(pairs.to_tf_dataset(3, skip_invalid=True))) == 1
    assert pairs.info["undecodable"] == [str(bad)]


def test_run_reports_the_files_it_left_out(tmp_path, capsys):
    from foveal.config import TrainConfig
    from foveal.training.trainer import train

    root = _folder(tmp_path / "pets", per_class=6)
    result = train(TrainConfig(data=str(root), model="lenet5", image_size=(32, 32), channels=1, epochs=1, batch_size=4,
                               verify="none", skip_invalid=True, val_split=0.0, test_split=0.25, tensorboard=False,
                               progress=False, report_misclassified=0, output=str(tmp_path / "runs"), name="r"))
    bad = str(root / "dog" / "cut.png")
    assert f"skipped 1 file(s) that could not be decoded (--skip-invalid): {bad}" in capsys.readouterr().out
    state = json.loads((result.run_dir / "state.json").read_text())
    assert state["undecodable"] == [bad] and state["status"] == "done"
    assert result.metrics["undecodable_images"] == 1
    assert json.loads((result.run_dir / "metrics.json").read_text())["undecodable_images"] == 1
