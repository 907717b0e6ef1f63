"""Transfer learning works, shown with weights made here: a small CNN learns MNIST digits 0-4,
then its frozen features let a new classifier learn digits 5-9 from 50 images far better
than the same network trained from scratch with the same images, epochs and seed (the
exercise of Géron, *Hands-On Machine Learning*, 2nd ed., ch. 11, with a CNN)."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import SHARED_DATASETS, requires_shared

MNIST = SHARED_DATASETS / "mnist"
ARCH = dict(width=8)  # geron_cnn at 1/8 width: 7x7x8, 2x16, 2x32 convolutions, dense 128/64
SHAPE = (28, 28, 1)


def _digits(images, labels, classes, per_class, offset=0):
    from foveal.data.source import LabeledImages

    idx = np.concatenate([np.flatnonzero(labels == c)[offset:offset + per_class] for c in classes])
    return LabeledImages(class_names=[str(c) for c in classes], labels=(labels[idx] - classes[0]).astype(np.int32),
                         images=images[idx][..., None], origin=f"mnist {classes[0]}-{classes[-1]}")


def _pipeline(data, training, seed=0, batch_size=10):
    from foveal.data.pipeline import make_pipeline

    return make_pipeline(data, image_size=SHAPE[:2], channels=1, batch_size=batch_size, training=training, seed=seed)


def _compile(model, learning_rate):
    import keras

    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="categorical_crossentropy",
                  metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")])


def _accuracy(model, data):
    return model.evaluate(_pipeline(data, training=False, batch_size=200), verbose=0)[1]


@pytest.mark.slow  # pretrains on 15,000 digits; transfer's default path: test_finetune_training.py, test_pretrained.py
@requires_shared("mnist", "train-images-idx3-ubyte.gz")
def test_transfer_beats_training_from_scratch(tmp_path):
    from foveal.data.readers.idx import read_idx
    from foveal.models import ModelCard, build_model, save_model
    from foveal.training.runs import set_determinism
    from foveal.transfer import Phases, build_pretrained, two_phase_fit

    images = read_idx(MNIST / "train-images-idx3-ubyte.gz", 3)
    labels = read_idx(MNIST / "train-labels-idx1-ubyte.gz", 1)
    test_images = read_idx(MNIST / "t10k-images-idx3-ubyte.gz", 3)
    test_labels = read_idx(MNIST / "t10k-labels-idx1-ubyte.gz", 1)

    # 1. Pretrain on digits 0-4 (15,000 images, one epoch) and save a foveal model file.
    set_determinism(0, True)
    source = build_model("geron_cnn", num_classes=5, input_shape=SHAPE, **ARCH)
    _compile(source, 1e-3)
    source.fit(_pipeline(_digits(images, labels, range(5), 3000), training=True, batch_size=64), epochs=1, verbose=0)
    assert _accuracy(source, _digits(test_images, test_labels, range(5), 100)) > 0.9
    weights = tmp_path / "digits0to4.keras"
    save_model(source, weights, ModelCard(architecture="geron_cnn", class_names=list("01234"), input_shape=SHAPE))

    # 2. Digits 5-9 with a tiny budget: 10 images per class, 5 epochs, same seed for both.
    target, test = _digits(images, labels, range(5, 10), 10), _digits(test_images, test_labels, range(5, 10), 200)
    results = {}
    for seed in (1, 2):
        set_determinism(seed, True)
        scratch = build_model("geron_cnn", num_classes=5, input_shape=SHAPE, **ARCH)
        _compile(scratch, 3e-3)
        scratch.fit(_pipeline(target, training=True, seed=seed), epochs=5, verbose=0)

        set_determinism(seed, True)
        transfer = build_pretrained("geron_cnn", weights=weights, num_classes=5, class_names=target.class_names,
                                    input_shape=SHAPE, **ARCH)
        assert transfer._foveal_weight_transfer.skipped == {"logits": "new classifier"}  # other classes
        two_phase_fit(transfer, _pipeline(target, training=True, seed=seed),
                      phases=Phases(freeze="base", epochs=5), compile=_compile_at)
        results[seed] = (_accuracy(scratch, test), _accuracy(transfer, test))

    print("accuracy on 1,000 test images of digits 5-9 (scratch, transfer):", results)
    for seed, (from_scratch, transferred) in results.items():
        assert transferred > from_scratch + 0.1, (seed, results)
    mean_scratch, mean_transfer = np.mean(list(results.values()), axis=0)
    assert mean_transfer > 0.55 and mean_transfer - mean_scratch > 0.15, results


def _compile_at(model, learning_rate):
    _compile(model, 3e-3)
