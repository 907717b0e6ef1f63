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
    The teacher's layers are set non-trainable (in place: pass a copy to keep yours trainable).
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


# --- Distillation as a training option -------------------------------------------------------
# `foveal train --distill-from TEACHER.keras` keeps the trained model the plain student (so
# checkpoints, resume and early stopping work unchanged): the teacher's softened outputs ride
# along with the labels through tf.data, and DistillationLoss splits them off again.


@keras.saving.register_keras_serializable(package="foveal")
class DistillationLoss(keras.losses.Loss):
    """``alpha * CE(hard, p) + (1 - alpha) * T^2 * KL(soft || softmax(log p / T))``.

    ``y_true`` is ``[one-hot labels | teacher's softmax at temperature T]`` (2K columns);
    ``y_pred`` is the student's probabilities (K columns).
    """

    def __init__(self, temperature: float = 4.0, alpha: float = 0.1, label_smoothing: float = 0.0,
                 name: str = "distillation", **kwargs) -> None:
        super().__init__(name=name, **kwargs)
        self.temperature, self.alpha, self.label_smoothing = float(temperature), float(alpha), float(label_smoothing)

    def call(self, y_true, y_pred):
        k = ops.shape(y_pred)[-1]
        hard, soft = y_true[..., :k], y_true[..., k:]
        hard_loss = keras.losses.categorical_crossentropy(hard, y_pred, label_smoothing=self.label_smoothing)
        t = self.temperature
        log_p_t = ops.log_softmax(ops.log(ops.clip(y_pred, 1e-12, 1.0)) / t, axis=-1)
        soft_loss = ops.sum(soft * (ops.log(ops.clip(soft, 1e-12, 1.0)) - log_p_t), axis=-1) * (t * t)
        return self.alpha * hard_loss + (1.0 - self.alpha) * soft_loss

    def get_config(self):
        return {**super().get_config(), "temperature": self.temperature, "alpha": self.alpha,
                "label_smoothing": self.label_smoothing}


@keras.saving.register_keras_serializable(package="foveal")
class HardLabelAccuracy(keras.metrics.Metric):
    """Top-k accuracy against the one-hot half of distillation targets."""

    def __init__(self, k: int = 1, name: str = "accuracy", **kwargs) -> None:
        super().__init__(name=name, **kwargs)
        self.k = int(k)
        self.hits = self.add_variable(shape=(), initializer="zeros", name="hits")
        self.count = self.add_variable(shape=(), initializer="zeros", name="count")

    def update_state(self, y_true, y_pred, sample_weight=None):
        k = ops.shape(y_pred)[-1]
        labels = ops.argmax(y_true[..., :k], axis=-1)
        true_score = ops.take_along_axis(y_pred, ops.expand_dims(labels, -1), axis=-1)
        rank = ops.sum(ops.cast(y_pred > true_score, "float32"), axis=-1)  # classes scored higher
        hits = ops.cast(rank < self.k, "float32")
        self.hits.assign_add(ops.sum(hits))
        self.count.assign_add(ops.cast(ops.shape(hits)[0], "float32"))

    def result(self):
        return self.hits / ops.maximum(self.count, 1.0)

    def reset_state(self):
        self.hits.assign(0.0)
        self.count.assign(0.0)

    def get_config(self):
        return {**super().get_config(), "k": self.k}


def with_teacher_targets(dataset, teacher: keras.Model, temperature: float):
    """Map batches ``(x, one_hot)`` to ``(x, [one_hot | softmax(teacher_logits(x) / T)])``.

    Images are resized to the teacher's input size if it differs from the student's.
    """
    import tensorflow as tf

    teacher_logits = logits_model(teacher)
    size = tuple(teacher.input_shape[1:3])

    def add(x, y):
        xt = x if tuple(x.shape[1:3]) == size else tf.image.resize(x, size, antialias=True)
        if teacher.input_shape[-1] != x.shape[-1]:
            xt = tf.image.grayscale_to_rgb(xt) if x.shape[-1] == 1 else tf.image.rgb_to_grayscale(xt)
        soft = tf.nn.softmax(tf.cast(teacher_logits(xt, training=False), tf.float32) / temperature, axis=-1)
        return x, tf.concat([tf.cast(y, tf.float32), soft], axis=-1)

    return dataset.map(add, num_parallel_calls=tf.data.AUTOTUNE)
