"""A wall-clock training budget (time-to-accuracy targets): once the seconds are spent,
``model.stop_training`` is set, so Keras finishes the epoch's bookkeeping (validation,
checkpoints) and the run ends like any finished one.

Example:
    >>> budget = TimeBudget(20 * 60)
    >>> model.fit(ds, epochs=1000, callbacks=[budget])  # doctest: +SKIP
    >>> budget.exhausted  # doctest: +SKIP
    True
"""

from __future__ import annotations

import time

import keras


class TimeBudget(keras.callbacks.Callback):
    """Stop ``fit`` after ``seconds`` of wall time (0 or None: no limit), ``spent`` of them by
    earlier, resumed parts of the run; the epoch in progress ends early (its validation runs)."""

    def __init__(self, seconds: float | None, *, spent: float = 0.0) -> None:
        super().__init__()
        self.seconds, self.spent = float(seconds or 0.0), float(spent)
        self.exhausted = False
        self._start = 0.0

    @property
    def elapsed(self) -> float:
        """Seconds used so far, including ``spent``."""
        return self.spent + (time.perf_counter() - self._start if self._start else 0.0)

    def _check(self) -> None:
        if self.seconds > 0 and self.elapsed >= self.seconds and not self.exhausted:
            self.exhausted = True
            self.model.stop_training = True

    def on_train_begin(self, logs=None):
        self._start = time.perf_counter()
        self._check()

    def on_train_batch_end(self, batch, logs=None):
        self._check()

    def on_epoch_end(self, epoch, logs=None):
        self._check()
