"""Lookahead weight averaging, as airbench schedules it.

Zhang et al., "Lookahead Optimizer: k steps forward, 1 step back" (NeurIPS 2019): every ``k``
steps the slow weights move towards the fast ones, which restart from them. Jordan's airbench
(arXiv:2404.00498) uses k = 5 and a slow-weight share growing with the cube of the training
progress up to 0.95^5, batch-norm statistics averaged too, starting after 3 epochs; from then on
every epoch ends on the slow weights.

Example:
    >>> callback = Lookahead(total_steps=490)
    >>> round(callback.decay(245), 4)
    0.0967
"""

from __future__ import annotations

import keras
import numpy as np


class Lookahead(keras.callbacks.Callback):
    """Keras callback: slow weights updated every ``every`` optimizer steps (the optimizer's own
    counter, so a resumed run keeps the schedule).

    Args:
        total_steps: optimizer steps of the whole run; the model ends on the slow weights.
        peak_decay: the slow weights' share at the end of training; ``power``: how it grows.
    """

    def __init__(self, total_steps: int, every: int = 5, peak_decay: float = 0.95**5, power: float = 3.0,
                 start_step: int = 0) -> None:
        super().__init__()
        if total_steps < 1 or every < 1 or not 0.0 <= peak_decay < 1.0 or start_step < 0:
            raise ValueError("Lookahead needs total_steps >= 1, every >= 1, start_step >= 0 and 0 <= peak_decay < 1")
        self.total_steps, self.every, self.peak_decay, self.power = int(total_steps), int(every), peak_decay, power
        self.start_step = int(start_step)
        self._slow: list[np.ndarray] | None = None

    def decay(self, step: int) -> float:
        """The slow weights' share in the update at optimizer step ``step`` (the peak from the end on)."""
        return float(self.peak_decay * min(step / self.total_steps, 1.0) ** self.power)

    def _variables(self) -> list:
        return [v for v in self.model.weights if "float" in str(v.dtype)]

    def on_train_begin(self, logs=None) -> None:
        self._slow = [np.array(v.numpy()) for v in self._variables()] if self.start_step == 0 else None

    def on_train_batch_end(self, batch, logs=None) -> None:
        step = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
        if step < self.start_step or (step % self.every and step < self.total_steps):
            return
        variables = self._variables()
        if self._slow is None:  # the first update after start_step: the slow weights begin here
            self._slow = [np.array(v.numpy()) for v in variables]
            return
        # an update every `every` steps; at the last step, if it is not one, the model takes the
        # slow weights as they are (airbench94's copy at the end of the epoch)
        share = self.decay(step) if step % self.every == 0 else 1.0
        for i, (variable, slow) in enumerate(zip(variables, self._slow)):
            slow = share * slow + (1.0 - share) * variable.numpy()
            variable.assign(slow)
            self._slow[i] = slow

    def on_epoch_end(self, epoch, logs=None) -> None:
        if self._slow is not None and self.start_step > 0:
            for variable, slow in zip(self._variables(), self._slow):
                variable.assign(slow)
