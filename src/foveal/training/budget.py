"""A wall-clock training budget: stop ``fit`` cleanly once a number of seconds has passed.

Time-to-accuracy targets ("Dice after 20 minutes", "mAP within 30 minutes") need training to
end on time rather than after a fixed number of epochs. :class:`TimeBudget` checks the clock
after every batch; when the budget is spent it sets ``model.stop_training``, so Keras finishes
the current epoch's bookkeeping (validation, checkpoint callbacks) and returns normally. The
run folder then looks like any finished run: ``best.keras`` is scored and reported.

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
    """Stop training after ``seconds`` of ``fit`` wall time (0 or None: no limit).

    Args:
        seconds: the budget, counted from ``on_train_begin``.
        spent: seconds already used by an earlier, resumed part of the same run.
        check_every_batch: stop mid-epoch (True) or only at epoch ends (False). Stopping
            mid-epoch ends the epoch early; the epoch's validation still runs.
    """

    def __init__(self, seconds: float | None, *, spent: float = 0.0, check_every_batch: bool = True) -> None:
        super().__init__()
        self.seconds = float(seconds or 0.0)
        self.spent = float(spent)
        self.check_every_batch = check_every_batch
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
        if self.check_every_batch:
            self._check()

    def on_epoch_end(self, epoch, logs=None):
        self._check()
