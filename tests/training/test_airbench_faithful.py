"""airbench94 as the paper trains it (Jordan, arXiv:2404.00498): each piece of foveal's recipe
against the paper's definition written out independently (parameter arithmetic, NumPy)."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from foveal.data.augment import RandomShift, alternating_flip
from foveal.evaluation.tta import predict_tta
from foveal.models import build_model
from foveal.models.classification.airbench import WhiteningConv, whitening_weights
from foveal.training.schedules import Triangle, make_schedule
from foveal.training.whitening import FreezeWhiteningBias


def _paper_trainable_parameters(widths=(64, 256, 256), classes=10, whiten_bias=True) -> int:
    """The PyTorch airbench94's parameters with requires_grad: whitening bias (kernel frozen),
    bias-free 3x3 convs, BatchNorm biases (weights frozen at 1), bias-free linear head."""
    total, cin = (24 if whiten_bias else 0), 24
    for w in widths:
        total += 9 * cin * w + 9 * w * w + 2 * w  # conv1, conv2, two BN biases
        cin = w
    return total + cin * classes


def test_parameter_count_is_the_papers():
    model = build_model("airbench", num_classes=10, whiten=True)
    trainable = sum(int(np.prod(v.shape)) for v in model.trainable_weights)
    assert trainable == _paper_trainable_parameters() == 1_971_352
    model.get_layer("whiten").freeze_bias()
    trainable = sum(int(np.prod(v.shape)) for v in model.trainable_weights)
    assert trainable == _paper_trainable_parameters(whiten_bias=False) == 1_971_328
    bn = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert all(layer.epsilon == 1e-12 and layer.momentum == 0.6 and not layer.scale for layer in bn)


def test_triangle_is_the_papers_piecewise_linear_schedule():
    s = make_schedule("triangle", learning_rate=1.5, steps_per_epoch=48, epochs=10)
    assert isinstance(s, Triangle)
    steps = np.arange(481)
    expected = 1.5 * np.interp(steps, [0, int(0.23 * 480), 480], [0.2, 1.0, 0.07])
    np.testing.assert_allclose(np.asarray(s(steps)), expected, rtol=1e-5)
    assert keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(s)).get_config() == s.get_config()


def test_whitening_is_uncentred_and_whitens_the_second_moment():
    rng = np.random.default_rng(0)
    patches = rng.normal(0.3, 1.0, (4000, 2, 2, 3)) @ rng.normal(size=(3, 3))
    kernel, bias = whitening_weights(patches, eps=0.0)
    flat = patches.reshape(len(patches), -1)
    filters = kernel.transpose(3, 0, 1, 2).reshape(24, 12)
    out = flat @ filters[:12].T
    np.testing.assert_allclose(out.T @ out / len(flat), np.eye(12), atol=1e-3)
    np.testing.assert_array_equal(bias, 0.0)
    np.testing.assert_allclose(filters[12:], -filters[:12])


@pytest.mark.slow
def test_whitening_bias_trains_for_its_epochs_then_freezes():
    keras.utils.set_random_seed(0)
    model = build_model("airbench", num_classes=3, whiten=True, width=8, wide=8, whiten_bias_epochs=1)
    model.compile(keras.optimizers.SGD(0.5, momentum=0.9), "sparse_categorical_crossentropy")
    layer = model.get_layer("whiten")
    seen = []
    record = keras.callbacks.LambdaCallback(on_epoch_end=lambda e, logs: seen.append(
        [np.array(layer.kernel.numpy()), np.array(layer.bias.numpy())]))
    rng = np.random.default_rng(1)
    x, y = rng.uniform(0, 255, (16, 32, 32, 3)).astype("float32"), rng.integers(0, 3, 16)
    start = [np.array(layer.kernel.numpy()), np.array(layer.bias.numpy())]
    model.fit(x, y, batch_size=8, epochs=3, verbose=0, callbacks=[FreezeWhiteningBias(), record])
    assert not np.allclose(seen[0][1], start[1])  # epoch 1: the bias trained
    np.testing.assert_array_equal(seen[2][1], seen[0][1])  # then frozen (no momentum carry-over)
    for kernel, _ in seen:
        np.testing.assert_array_equal(kernel, start[0])
    restored = WhiteningConv.from_config(layer.get_config())
    assert restored.train_bias is False and restored.bias_epochs == 1


def test_random_shift_is_a_whole_pixel_crop_of_the_reflected_image():
    images = np.random.default_rng(0).random((64, 6, 6, 1)).astype("float32")
    out = RandomShift(2, seed=3)(images, training=True).numpy()
    padded = np.pad(images, ((0, 0), (2, 2), (2, 2), (0, 0)), mode="reflect")
    found = set()
    for img, got in zip(padded, out):
        match = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
                 if np.array_equal(img[2 - dy: 8 - dy, 2 - dx: 8 - dx], got)]
        assert match, "not a whole-pixel crop"
        found.add(match[0])
    assert len(found) >= 15  # draws spread over the 25 shifts


def test_alternating_flip_mirrors_each_image_every_other_epoch():
    images = np.random.default_rng(0).integers(0, 256, (32, 4, 5, 1)).astype("float32")
    ds = alternating_flip(tf.data.Dataset.from_tensor_slices((images, np.arange(32))).shuffle(32, seed=1).batch(8))
    flipped = []
    for _ in range(3):
        state = np.zeros(32, bool)
        for x, idx in ds:
            for image, i in zip(x.numpy(), idx.numpy()):
                assert np.array_equal(image, images[i]) or np.array_equal(image, images[i][:, ::-1])
                state[i] = not np.array_equal(image, images[i])
        flipped.append(state)
    assert 8 <= flipped[0].sum() <= 24  # about half in the first epoch
    np.testing.assert_array_equal(flipped[1], ~flipped[0])
    np.testing.assert_array_equal(flipped[2], flipped[0])


def test_alternating_flip_follows_fits_epochs_in_the_pipeline():
    """Through make_pipeline, the flip follows the epoch that AugmentationEpoch sets at each
    epoch's start (Keras' fit makes a spare iterator at each epoch's end, so counting iterators
    would not do)."""
    from foveal.data.augment import AugmentationEpoch
    from foveal.data.pipeline import make_pipeline
    from foveal.data.source import LabeledImages

    images = np.random.default_rng(1).integers(0, 256, (24, 4, 4, 3)).astype(np.uint8)
    data = LabeledImages(["a", "b", "c"], (np.arange(24) % 3).astype(np.int32), images=images, origin="test")
    ds = make_pipeline(data, image_size=(4, 4), channels=3, batch_size=8, training=True, augment="altflip",
                       cache="memory", seed=0, one_hot=False)
    callback = AugmentationEpoch()
    flipped = []
    for epoch in range(3):
        callback.on_epoch_begin(epoch)
        iter(ds)  # a spare iterator, as fit makes one, changes nothing
        state = {}
        for x, _ in ds:
            for image in x.numpy().astype(np.uint8):
                i = next(j for j in range(24) if np.array_equal(image, images[j])
                         or np.array_equal(image, images[j][:, ::-1]))
                state[i] = not np.array_equal(image, images[i])
        flipped.append(np.array([state[i] for i in range(24)]))
    assert 4 <= flipped[0].sum() <= 20
    np.testing.assert_array_equal(flipped[1], ~flipped[0])
    np.testing.assert_array_equal(flipped[2], flipped[0])


def test_flip_shift_tta_is_the_papers_weighted_logit_average():
    keras.utils.set_random_seed(2)
    inputs = keras.Input((6, 6, 1))
    logits = keras.layers.Dense(4)(keras.layers.Flatten()(inputs))
    model = keras.Model(inputs, keras.layers.Softmax()(logits))
    logit_model = keras.Model(inputs, logits)
    x = np.random.default_rng(0).random((5, 6, 6, 1)).astype("float32")
    pad = lambda a: np.pad(a, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="reflect")  # noqa: E731
    z = lambda a: logit_model.predict(a, verbose=0).astype(np.float64)  # noqa: E731
    # the paper: 0.5 * mirror average + 0.5 * mean of the mirror averages of the two 1-pixel shifts
    mirror = lambda a: 0.5 * z(a) + 0.5 * z(a[:, :, ::-1])  # noqa: E731
    shifted = [pad(x)[:, :6, :6], pad(x)[:, 2:, 2:]]
    paper = 0.5 * mirror(x) + 0.5 * np.mean([mirror(s) for s in shifted], axis=0)
    expected = np.exp(paper - paper.max(-1, keepdims=True))
    expected /= expected.sum(-1, keepdims=True)
    np.testing.assert_allclose(predict_tta(model, x, "flip-shift"), expected, rtol=1e-4, atol=1e-6)


def test_lookahead_starts_late_and_restores_the_slow_weights_each_epoch():
    from foveal.training.lookahead import Lookahead

    keras.utils.set_random_seed(3)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(keras.optimizers.SGD(0.1), "mse")
    x, y = np.random.default_rng(0).normal(size=(12, 3)), np.zeros((12, 2))
    callback = Lookahead(total_steps=12, every=2, start_step=6)
    seen = []
    model.fit(x, y, batch_size=4, epochs=4, shuffle=False, verbose=0,
              callbacks=[callback, keras.callbacks.LambdaCallback(on_epoch_end=lambda e, logs: seen.append(
                  (model.get_weights()[0].copy(), None if callback._slow is None else callback._slow[0].copy())))])
    assert seen[0][1] is None and seen[1][1] is not None  # the slow weights begin at step 6 (end of epoch 2)
    # epoch 3 ends at step 9, one fast step after the update at step 8: the model is put back on the slow weights
    np.testing.assert_array_equal(seen[2][0], seen[2][1])
    np.testing.assert_allclose(model.get_weights()[0], callback._slow[0], rtol=1e-6)


def test_alternating_flip_is_refused_by_the_distributed_pipeline():
    from foveal.errors import ConfigError
    from foveal.training.distribute import _finisher

    with pytest.raises(ConfigError, match="altflip"):
        _finisher(10, (32, 32), 3, "altflip,crop=2", 0, None, False)
