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


def test_classification_has_the_time_budget_too(tmp_path, capsys):
    """--time-budget was a detect/segment option only; now every task's training has it."""
    import json

    from foveal.config import TrainConfig
    from foveal.training.trainer import train

    # batch 128: 12 steps for the one epoch the budget allows (the default 32 made 45)
    cfg = TrainConfig(data="digits", model="lenet5", epochs=20, batch_size=128, time_budget=0.001, tensorboard=False,
                      progress=False, report_misclassified=0, output=str(tmp_path), name="budget")
    result = train(cfg)
    assert len(result.history["loss"]) == 1 and result.metrics is not None
    assert "time budget of 0.001 s reached after 1 epoch(s)" in capsys.readouterr().out
    state = json.loads((result.run_dir / "state.json").read_text())
    assert state["time_budget_reached"] is True and state["status"] == "done"
    again = train(resume=result.run_dir)  # the budget is spent: score, do not train
    assert len(again.history["loss"]) == 1
    assert "already spent" in capsys.readouterr().out
