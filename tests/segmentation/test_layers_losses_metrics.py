"""Decoder layers, losses and metrics against NumPy and scikit-learn."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from sklearn.metrics import confusion_matrix as sk_confusion
from sklearn.metrics import f1_score, jaccard_score

from foveal.layers.decoder import DilatedConvBlock, MaxPoolingWithArgmax, MaxUnpooling, upsample
from foveal.segmentation.losses import CrossEntropyDice, PixelCrossEntropy, SoftDiceLoss, pack_target, unet_weight_map
from foveal.segmentation.metrics import StreamingConfusion, segmentation_scores


def test_unpool_places_values_at_argmax():
    x = np.random.default_rng(0).random((2, 6, 4, 3)).astype("float32")
    pooled, where = MaxPoolingWithArgmax(2)(x)
    out = MaxUnpooling(2)([pooled, where]).numpy()
    expected = np.zeros_like(x)
    for n in range(2):
        for i in range(3):
            for j in range(2):
                for c in range(3):
                    win = x[n, 2 * i:2 * i + 2, 2 * j:2 * j + 2, c]
                    a, b = np.unravel_index(win.argmax(), (2, 2))
                    expected[n, 2 * i + a, 2 * j + b, c] = win.max()
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(pooled.numpy(), x.reshape(2, 3, 2, 2, 2, 3).max(axis=(2, 4)))


def test_decoder_layers_serialise(tmp_path):
    inputs = keras.Input((8, 8, 3))
    pooled, where = MaxPoolingWithArgmax(name="pool")(inputs)
    x = DilatedConvBlock(4, rates=(1, 2), batch_norm=True, name="dil")(pooled)
    x = MaxUnpooling(name="unpool")([keras.layers.Conv2D(3, 1)(x), where, inputs])
    x = upsample(x, 2, "transposed", name="up")
    model = keras.Model(inputs, x)
    path = tmp_path / "m.keras"
    model.save(path)
    again = keras.models.load_model(path, safe_mode=True)
    data = np.random.default_rng(1).random((2, 8, 8, 3)).astype("float32")
    np.testing.assert_allclose(again.predict(data, verbose=0), model.predict(data, verbose=0), atol=1e-6)
    assert again.output_shape == (None, 16, 16, 3)


def test_transposed_upsample_starts_bilinear():
    x = np.random.default_rng(2).random((1, 4, 4, 2)).astype("float32")
    inputs = keras.Input((4, 4, 2))
    up = keras.Model(inputs, upsample(inputs, 2, "transposed"))(x).numpy()
    # away from the border a bilinear x2 interpolates neighbours with weights 3/4 and 1/4
    expected = 0.75 * x[0, 1, 1] + 0.25 * x[0, 2, 1]
    np.testing.assert_allclose(up[0, 3, 2] * 1, 0.75 * expected + 0.25 * (0.75 * x[0, 1, 0] + 0.25 * x[0, 2, 0]), atol=1e-6)


RNG = np.random.default_rng(3)
LABELS = RNG.integers(0, 3, (2, 5, 6))
LABELS[0, 0, :3] = 255
LOGITS = RNG.normal(size=(2, 5, 6, 3))
PROBS = (np.exp(LOGITS) / np.exp(LOGITS).sum(-1, keepdims=True)).astype("float32")


def numpy_ce(labels, probs, class_weights, pixel_weights):
    valid = labels != 255
    y = np.where(valid, labels, 0)
    p = np.take_along_axis(probs, y[..., None], -1)[..., 0]
    return (-np.log(p) * class_weights[y] * pixel_weights * valid).sum() / valid.sum()


def test_cross_entropy_matches_numpy():
    cw = np.array([1.0, 2.0, 0.5])
    pw = RNG.random(LABELS.shape) + 0.5
    got = PixelCrossEntropy(class_weights=cw)(pack_target(LABELS, pw), PROBS)
    np.testing.assert_allclose(float(got), numpy_ce(LABELS, PROBS, cw, pw), rtol=1e-5)
    plain = PixelCrossEntropy()(LABELS, PROBS)
    np.testing.assert_allclose(float(plain), numpy_ce(LABELS, PROBS, np.ones(3), 1.0), rtol=1e-5)


def test_dice_matches_numpy_and_sum():
    valid = (LABELS != 255)[..., None]
    onehot = np.eye(3)[np.where(LABELS == 255, 0, LABELS)] * valid
    p = PROBS * valid
    dice = (2 * (p * onehot).sum((0, 1, 2)) + 1e-3) / (p.sum((0, 1, 2)) + onehot.sum((0, 1, 2)) + 1e-3)
    np.testing.assert_allclose(float(SoftDiceLoss(3, eps=1e-3)(LABELS, PROBS)), 1 - dice.mean(), rtol=1e-5)
    total = CrossEntropyDice(3, dice_weight=0.5, eps=1e-3)(LABELS, PROBS)
    np.testing.assert_allclose(float(total), numpy_ce(LABELS, PROBS, np.ones(3), 1.0) + 0.5 * (1 - dice.mean()), rtol=1e-5)


def test_unet_weight_map_matches_brute_force():
    mask = np.zeros((12, 14), np.uint8)
    mask[1:5, 1:6] = 1
    mask[1:5, 8:13] = 1
    mask[8:11, 2:10] = 1
    mask[11, 0] = 255
    w = unet_weight_map(mask, w0=10, sigma=5)
    objects = [(slice(1, 5), slice(1, 6)), (slice(1, 5), slice(8, 13)), (slice(8, 11), slice(2, 10))]
    pts = [np.argwhere(np.pad(np.zeros((12, 14), bool), 0) | _box(o)) for o in objects]
    valid = mask != 255
    counts = np.bincount(mask[valid], minlength=2)
    cw = valid.sum() / (2 * counts)
    for (i, j), value in np.ndenumerate(mask):
        if value == 255:
            assert w[i, j] == 0
            continue
        expected = cw[value]
        if value == 0:
            d = sorted(np.sqrt(((p - [i, j]) ** 2).sum(1)).min() for p in pts)
            expected += 10 * np.exp(-((d[0] + d[1]) ** 2) / 50)
        assert w[i, j] == pytest.approx(expected, rel=1e-5)


def _box(sl):
    out = np.zeros((12, 14), bool)
    out[sl] = True
    return out


def test_metrics_match_scikit_learn():
    rng = np.random.default_rng(4)
    t = rng.integers(0, 4, (3, 9, 11))
    p = rng.integers(0, 4, (3, 9, 11))
    t[0, :2] = 255
    s = segmentation_scores(t, p, num_classes=4)
    keep = t.ravel() != 255
    tf_, pf = t.ravel()[keep], p.ravel()[keep]
    np.testing.assert_array_equal(s["confusion_matrix"], sk_confusion(tf_, pf, labels=range(4)))
    assert abs(s["pixel_accuracy"] - (tf_ == pf).mean()) < 1e-12
    np.testing.assert_allclose(s["iou"], jaccard_score(tf_, pf, average=None, labels=range(4)), atol=1e-12, rtol=0)
    np.testing.assert_allclose(s["dice"], f1_score(tf_, pf, average=None, labels=range(4)), atol=1e-12, rtol=0)
    assert abs(s["mean_iou"] - jaccard_score(tf_, pf, average="macro")) < 1e-12
    probs = np.eye(4)[p]
    assert segmentation_scores(t, probs, 4)["mean_iou"] == s["mean_iou"]
    metric = StreamingConfusion(4, "mean_iou")
    metric.update_state(t[:1], probs[:1])
    metric.update_state(t[1:], probs[1:])
    assert float(metric.result()) == pytest.approx(s["mean_iou"], rel=1e-6)
    dice1 = StreamingConfusion(4, "dice_1")
    dice1.update_state(t, probs)
    assert float(dice1.result()) == pytest.approx(s["dice"][1], rel=1e-6)
