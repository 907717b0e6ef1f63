"""Lookahead (Zhang et al. 2019, airbench's schedule): the callback against the same averaging
written out by hand over single training steps, and its decay schedule."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from foveal.training.lookahead import Lookahead


def _model() -> keras.Model:
    keras.utils.set_random_seed(3)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, activation="relu"), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(0.05, momentum=0.9), "mse")
    return model


def test_callback_matches_the_averaging_by_hand():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 3)).astype("float32"), rng.normal(size=(40, 1)).astype("float32")
    callback = Lookahead(total_steps=10, every=5, peak_decay=0.5, power=1.0)
    fitted = _model()
    fitted.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0, callbacks=[callback])

    by_hand = _model()
    slow = [w.copy() for w in by_hand.get_weights()]
    for step in range(1, 11):
        by_hand.train_on_batch(x[(step - 1) * 4: step * 4], y[(step - 1) * 4: step * 4])
        if step % 5 == 0:
            share = 0.5 * step / 10  # the paper's share also at the last step
            slow = [share * s + (1 - share) * w for s, w in zip(slow, by_hand.get_weights())]
            by_hand.set_weights(slow)
    for got, expected in zip(fitted.get_weights(), by_hand.get_weights()):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    plain = _model()
    plain.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    assert not np.allclose(plain.get_weights()[0], fitted.get_weights()[0])  # the averaging did something


def test_decay_grows_cubically_to_the_peak_and_ends_at_one():
    callback = Lookahead(total_steps=100)
    assert callback.decay(0) == 0.0
    assert callback.decay(50) == pytest.approx(0.95**5 / 8)
    assert callback.decay(99) < 0.95**5 and callback.decay(100) == pytest.approx(0.95**5)
    with pytest.raises(ValueError):
        Lookahead(total_steps=0)
