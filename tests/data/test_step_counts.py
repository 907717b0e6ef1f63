"""fit gets known step counts: no "input ran out of data" warning on TFRecord runs (issue #20)."""

from __future__ import annotations

import warnings

import numpy as np

from foveal.data.pipeline import make_pipeline
from foveal.data.readers import load_dataset
from foveal.data.readers.tfrecord import write_tfrecord
from foveal.data.source import LabeledImages


def _records(tmp_path, n=10):
    rng = np.random.default_rng(0)
    source = LabeledImages(class_names=["a", "b"], labels=(np.arange(n) % 2).astype(np.int32),
                           images=rng.integers(0, 256, (n, 8, 8, 1), dtype=np.uint8), origin="arrays")
    return load_dataset(write_tfrecord(source, tmp_path / "train.tfrecord")[0])["train"]


def test_tfrecord_pipeline_knows_its_length(tmp_path):
    import tensorflow as tf

    data = _records(tmp_path)
    for part in (data, data.subset(np.array([1, 4, 7]))):
        ds = make_pipeline(part, image_size=(8, 8), channels=1, batch_size=4, training=True)
        assert int(ds.cardinality()) == -(-len(part) // 4)
        assert int(ds.cardinality()) != int(tf.data.UNKNOWN_CARDINALITY)


def test_fit_on_tfrecords_does_not_warn(tmp_path):
    import keras

    data = _records(tmp_path)
    ds = make_pipeline(data, image_size=(8, 8), channels=1, batch_size=4, training=True)
    inputs = keras.Input((8, 8, 1))
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(keras.layers.Flatten()(inputs)))
    model.compile("sgd", "categorical_crossentropy")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(ds, validation_data=ds, epochs=2, verbose=0)
    assert not [w for w in caught if "ran out of data" in str(w.message)]


def test_detection_pipeline_knows_its_length(tmp_path):
    import json

    from PIL import Image

    from foveal.data.boxes.coco import read_coco
    from foveal.detection.pipeline import make_detection_pipeline

    images = [{"id": i, "file_name": f"{i}.png", "width": 40, "height": 30} for i in range(5)]
    for im in images:
        Image.new("RGB", (40, 30), (im["id"] * 40, 0, 0)).save(tmp_path / im["file_name"])
    anns = [{"id": i, "image_id": i, "category_id": 1, "bbox": [2, 3, 10, 12]} for i in range(5)]
    (tmp_path / "train.json").write_text(json.dumps({"images": images, "annotations": anns,
                                                     "categories": [{"id": 1, "name": "x"}]}))
    data = read_coco(tmp_path / "train.json", images=tmp_path)
    for options in ({"training": True}, {"training": False}, {"training": True, "multi_scale": [32, 64]},
                    {"training": False, "skip_invalid": True}):
        ds = make_detection_pipeline(data, image_size=32, batch_size=2, augment="none", **options)
        assert int(ds.cardinality()) == 3, options
