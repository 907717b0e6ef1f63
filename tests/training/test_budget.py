"""TimeBudget stops fit once its seconds are spent, and not before."""

from __future__ import annotations

import time

import keras
import numpy as np

from foveal.training.budget import TimeBudget


class _Slow(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        time.sleep(0.02)


def _fit(budget: TimeBudget, epochs: int = 50) -> int:
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    x = np.zeros((40, 2), "float32")
    history = model.fit(x, x[:, :1], batch_size=4, epochs=epochs, verbose=0, callbacks=[_Slow(), budget])
    return len(history.history["loss"])


def test_budget_stops_training_early():
    budget = TimeBudget(0.5)
    epochs = _fit(budget)
    assert budget.exhausted and 1 <= epochs < 50


def test_no_budget_runs_every_epoch():
    budget = TimeBudget(0)
    assert _fit(budget, epochs=3) == 3 and not budget.exhausted


def test_spent_time_counts():
    budget = TimeBudget(10.0, spent=10.0)
    assert _fit(budget) == 1 and budget.exhausted
