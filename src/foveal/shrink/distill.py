"""Knowledge distillation: a student learns from a teacher's temperature-softened outputs.

Hinton, Vinyals, Dean, "Distilling the Knowledge in a Neural Network", NIPS workshop 2014.
Loss = ``alpha * CE(y, student) + (1 - alpha) * T^2 * KL(softmax(t/T) || softmax(s/T))`` where
``t`` and ``s`` are the teacher's and student's logits; the ``T^2`` keeps the soft term's
gradients on the same scale as the hard term's when ``T`` changes.

foveal classifiers end in a ``logits`` Dense layer followed by the ``probabilities`` softmax,
so :func:`logits_model` can expose the logits of any of them.

Example:
    >>> distiller = Distiller(student, teacher, temperature=4.0, alpha=0.1)  # doctest: +SKIP
    >>> distiller.compile(optimizer="adam")  # doctest: +SKIP
    >>> distiller.fit(train_ds, epochs=5)  # doctest: +SKIP
    >>> distiller.student.save("student.keras")  # doctest: +SKIP
"""

from __future__ import annotations

import keras
from keras import ops

from foveal.errors import ModelError


def logits_model(model: keras.Model) -> keras.Model:
    """A model sharing ``model``'s layers whose output is the pre-softmax ``logits`` layer."""
    try:
        logits = model.get_layer("logits").output
    except ValueError:
        raise ModelError(f"model {model.name!r} has no layer named 'logits'",
                         hint="distillation needs a foveal classifier (Dense 'logits' then softmax)") from None
    return keras.Model(model.inputs, logits, name=f"{model.name}_logits")


class Distiller(keras.Model):
    """Trains ``student`` against labels and a frozen ``teacher``; predicts with the student.

    Labels are one-hot (foveal pipelines). ``self.student`` is the trained model to save.
    """

    def __init__(self, student: keras.Model, teacher: keras.Model, temperature: float = 4.0,
                 alpha: float = 0.1, **kwargs) -> None:
        super().__init__(**kwargs)
        if temperature <= 0 or not 0.0 <= alpha <= 1.0:
            raise ValueError("temperature must be positive and alpha in [0, 1]")
        self.student = student
        self.teacher_logits = logits_model(teacher)
        self.teacher_logits.trainable = False
        self.temperature, self.alpha = float(temperature), float(alpha)
        self.hard_loss_tracker = keras.metrics.Mean(name="hard_loss")
        self.soft_loss_tracker = keras.metrics.Mean(name="soft_loss")
        self.accuracy = keras.metrics.CategoricalAccuracy(name="accuracy")

    def call(self, inputs, training=False):
        return self.student(inputs, training=training)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        t = self.temperature
        # log(p) differs from the logits by a per-row constant, which softmax ignores, so the
        # student needs no second forward pass to expose its logits.
        student_log_probs = ops.log(ops.clip(y_pred, 1e-12, 1.0))
        teacher_logits = ops.stop_gradient(self.teacher_logits(x, training=False))
        hard = ops.mean(keras.losses.categorical_crossentropy(y, y_pred))
        soft_targets = ops.softmax(teacher_logits / t, axis=-1)
        soft = ops.sum(soft_targets * (ops.log_softmax(teacher_logits / t, axis=-1)
                                       - ops.log_softmax(student_log_probs / t, axis=-1)), axis=-1)
        soft = ops.mean(soft) * (t * t)
        self.hard_loss_tracker.update_state(hard)
        self.soft_loss_tracker.update_state(soft)
        self.accuracy.update_state(y, y_pred)
        return self.alpha * hard + (1.0 - self.alpha) * soft

    @property
    def metrics(self):
        return [*super().metrics, self.hard_loss_tracker, self.soft_loss_tracker, self.accuracy]
