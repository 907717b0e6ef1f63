"""A resumed run trains on the batches an uninterrupted one would (foveal.data.epochs): epoch
``e`` of every task's training pipeline depends only on ``(seed, e)``."""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest
from localization.conftest import write_rectangles

from foveal.data.source import LabeledImages


def _epoch(ds, steps: int, epoch: int) -> list:
    """The batches of ``epoch`` of a dataset of epochs that starts at epoch 0."""
    batches = list(ds.take(steps * (epoch + 1)).as_numpy_iterator())
    return batches[steps * epoch:]


def _flat(batch) -> list[np.ndarray]:
    import tensorflow as tf

    return [np.asarray(t) for t in tf.nest.flatten(batch)]


def _assert_same(a: list, b: list) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        for u, v in zip(_flat(x), _flat(y)):
            np.testing.assert_array_equal(u, v)


@pytest.fixture(scope="module")
def rectangles(tmp_path_factory):
    return write_rectangles(tmp_path_factory.mktemp("resume_rects"), 12, size=32)


def test_epoch_seeds_differ_per_epoch_and_repeat_per_seed():
    from foveal.data.epochs import epoch_seed

    seeds = [int(epoch_seed(42, e)) for e in range(50)]
    assert len(set(seeds)) == 50 and all(0 <= s < 2**31 - 1 for s in seeds)
    assert int(epoch_seed(42, 7)) == seeds[7] and int(epoch_seed(43, 7)) != seeds[7]


def test_classification_epoch_two_is_the_same_when_resumed_there():
    """Shuffle and airbench's epoch-keyed flip: epoch 2 of a run from 0 = the first epoch of a
    pipeline that resumes at 2; epochs differ from each other."""
    from foveal.data.pipeline import make_pipeline

    rng = np.random.default_rng(0)
    data = LabeledImages(["a", "b", "c"], rng.integers(0, 3, 10), images=rng.integers(0, 255, (10, 8, 8, 1), np.uint8))
    common = dict(image_size=(8, 8), channels=1, batch_size=4, training=True, augment="altflip", seed=7)
    steps = 3
    whole = _epoch(make_pipeline(data, start_epoch=0, **common), steps, 2)
    resumed = list(make_pipeline(data, start_epoch=2, **common).take(steps).as_numpy_iterator())
    _assert_same(whole, resumed)
    first = _epoch(make_pipeline(data, start_epoch=0, **common), steps, 1)
    assert not all(np.array_equal(a[1], b[1]) for a, b in zip(first, whole))  # another order
    assert [len(b[1]) for b in whole] == [4, 4, 2]  # each epoch ends with its own short batch


# detect: interleaved file reads and multi-scale batches (about a minute on the loaded CI machine)
@pytest.mark.parametrize("task", ["localize", pytest.param("detect", marks=pytest.mark.slow)])
def test_box_task_epoch_two_is_the_same_when_resumed_there(rectangles, task):
    """Files streamed (no cache) and randomly augmented: the same batches, file order included."""
    from foveal.data.boxes import load_boxes

    data = next(iter(load_boxes(str(rectangles)).values()))
    if task == "localize":
        from foveal.localization.pipeline import make_localization_pipeline as make
        extra = {}
    else:
        from foveal.detection.pipeline import make_detection_pipeline as make
        extra = {"max_boxes": 2, "multi_scale": [32, 64]}
    common = dict(image_size=(32, 32), channels=3, batch_size=5, training=True, augment="flip", seed=3,
                  cache="none", **extra)
    whole = _epoch(make(data, start_epoch=0, **common), 3, 2)
    resumed = list(make(data, start_epoch=2, **common).take(3).as_numpy_iterator())
    _assert_same(whole, resumed)


def test_epoch_seeds_make_dropout_masks_depend_on_the_epoch_only():
    import keras

    from foveal.training.callbacks import EpochSeeds

    model = keras.Sequential([keras.Input((64,)), keras.layers.Dropout(0.5), keras.layers.Dropout(0.5)])
    seeds = EpochSeeds(42)
    seeds.set_model(model)
    x = np.ones((4, 64), np.float32)

    def mask(epoch: int) -> np.ndarray:
        seeds.on_epoch_begin(epoch)
        return np.asarray(model(x, training=True))

    second = mask(2)
    assert not np.array_equal(mask(1), second)
    np.testing.assert_array_equal(mask(2), second)  # whatever ran before


def _signal_after_first_epoch():
    import keras

    class Stop(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 0:
                os.kill(os.getpid(), signal.SIGTERM)  # the engine's guard stops before epoch 2

    return Stop()


@pytest.mark.slow  # three short runs (whole, stopped, resumed) of a tiny localizer
def test_interrupted_run_resumes_to_the_weights_of_an_uninterrupted_one(rectangles, tmp_path):
    """A tiny localize run stopped by SIGTERM after epoch 1 and resumed ends with the same
    weights as the run that was never stopped (op determinism on; random augmentation and dropout)."""
    from foveal.localization.train import LocalizeConfig
    from foveal.models import load_model
    from foveal.tasks import run_train

    kw = dict(data=str(rectangles), output=str(tmp_path), image_size=[32], model_options={"width": 16}, batch_size=6,
              epochs=2, progress=False, report_images=0, val_split=0.0, test_split=0.0, augment="flip", dropout=0.3,
              monitor="loss", cache="none")
    whole = run_train("localize", LocalizeConfig(name="whole", **kw))
    stopped = run_train("localize", LocalizeConfig(name="stopped", **kw), callbacks=[_signal_after_first_epoch()])
    assert stopped.interrupted and len(stopped.history["loss"]) == 1
    resumed = run_train("localize", resume=stopped.run_dir)
    assert resumed.history["loss"] == whole.history["loss"]
    a, b = (load_model(r.run_dir / "last.keras")[0] for r in (whole, resumed))
    for u, v in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(u, v)



def test_epochs_trace_under_a_global_seed_of_zero():
    """``tf.random.set_seed(0)`` (``--seed 0``) made TensorFlow's seed check use the per-epoch seed
    tensor as a Python bool, and every epoch stream failed to trace."""
    import tensorflow as tf

    from foveal.data.epochs import shuffled_epochs

    tf.random.set_seed(0)
    try:
        whole = shuffled_epochs(tf.data.Dataset.range(6), 6, seed=1, start_epoch=0, then=lambda d, s, e: d.batch(6))
        epochs = [b.numpy().tolist() for b in whole.take(3)]
        resumed = shuffled_epochs(tf.data.Dataset.range(6), 6, seed=1, start_epoch=2, then=lambda d, s, e: d.batch(6))
        assert next(iter(resumed)).numpy().tolist() == epochs[2]
        assert all(sorted(e) == list(range(6)) for e in epochs) and epochs[0] != epochs[1]
    finally:
        tf.random.set_seed(42)
