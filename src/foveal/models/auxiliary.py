"""Models with auxiliary classifiers that only count during training (GoogLeNet's side heads).

Szegedy et al., "Going Deeper with Convolutions", CVPR 2015, section 5: small classifiers on
intermediate layers add their loss, weighted by 0.3, to the main loss during training, and are
discarded at inference. :class:`AuxiliaryClassifierModel` gives exactly that to code that only
knows single-output classifiers:

* it is a functional model from the input to the main softmax, so ``model(x)``,
  ``predict``, ``output_shape``, ``layers``, evaluation and the model card see one output;
* it also keeps ``training_model``, a functional model on the same layers with the outputs
  ``[main, aux_1, ..., aux_n]``; during ``fit`` (and only there) the forward pass goes through
  it, and the loss becomes ``main + aux_weight * sum(aux_i)``, each term computed with the loss
  given to ``compile`` on the same labels;
* validation and ``evaluate`` report the main loss only (the heads are absent at inference).

A builder asks for such a model by returning :class:`WithAuxiliary` instead of a tensor;
:func:`assemble_model` turns either into a model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import keras
from keras import ops


@dataclass(frozen=True)
class WithAuxiliary:
    """What a builder returns to get auxiliary classifiers: the main and the side outputs."""

    main: Any
    aux: tuple[Any, ...]
    aux_weight: float = 0.3


def assemble_model(inputs, outputs, name: str) -> keras.Model:
    """``keras.Model(inputs, outputs)``, or an :class:`AuxiliaryClassifierModel` for
    :class:`WithAuxiliary` outputs."""
    if isinstance(outputs, WithAuxiliary):
        return AuxiliaryClassifierModel(
            inputs, outputs.main, list(outputs.aux), aux_weight=outputs.aux_weight, name=name
        )
    return keras.Model(inputs, outputs, name=name)


@keras.saving.register_keras_serializable(package="foveal")
class AuxiliaryClassifierModel(keras.Model):
    """A single-output classifier whose training loss also includes auxiliary classifiers.

    Args:
        inputs: the model's input tensor(s).
        outputs: the main output (class probabilities).
        aux_outputs: auxiliary class-probability tensors, computed from the same inputs.
        aux_weight: weight of each auxiliary loss in the training loss (0.3 in the paper).
        name: the model's name.

    Example:
        >>> x = keras.Input((8,))
        >>> h = keras.layers.Dense(4, activation="relu")(x)
        >>> main = keras.layers.Dense(3, activation="softmax")(h)
        >>> side = keras.layers.Dense(3, activation="softmax")(x)
        >>> model = AuxiliaryClassifierModel(x, main, [side], aux_weight=0.3)
        >>> model.output_shape, model.training_model.output_shape
        ((None, 3), [(None, 3), (None, 3)])
    """

    def __init__(
        self,
        inputs,
        outputs,
        aux_outputs: Sequence[Any],
        aux_weight: float = 0.3,
        name: str | None = None,
        trainable: bool = True,
    ) -> None:
        if not aux_outputs:
            raise ValueError("AuxiliaryClassifierModel needs at least one auxiliary output")
        super().__init__(inputs=inputs, outputs=outputs, name=name, trainable=trainable)
        self.aux_weight = float(aux_weight)
        self.training_model = keras.Model(inputs, [outputs, *aux_outputs], name=f"{self.name}_with_aux")
        self._aux_in_fit = False
        self._aux_pending: tuple[Any, ...] = ()

    @property
    def aux_layers(self) -> list[keras.layers.Layer]:
        """The layers that only the auxiliary classifiers use."""
        main = {id(layer) for layer in self.layers}
        return [layer for layer in self.training_model.layers if id(layer) not in main]

    def train_step(self, *args, **kwargs):
        # The flag routes this step's forward pass through the multi-output graph; it is read
        # while the step is traced, so the auxiliary tensors live in the step's own graph.
        self._aux_in_fit = True
        try:
            return super().train_step(*args, **kwargs)
        finally:
            self._aux_in_fit = False
            self._aux_pending = ()

    def build_optimizers(self, element_spec: Any = None) -> None:
        """Build before ``fit`` (``foveal.engine.optim.build_before_fit``) what the first trace of
        :meth:`train_step` would: Keras' own step runs (on the multi-output graph), so the compiled
        loss and metrics of the main output and the optimizer over ``self.trainable_variables``
        (side heads included). One trace of the step instead of two; the same numbers."""
        from foveal.engine.optim import build_compiled

        if element_spec is None:
            if not self.optimizer.built:
                self.optimizer.build(self.trainable_variables)
            return
        build_compiled(self, element_spec)

    def call(self, inputs, training=None, mask=None, **kwargs):
        if training and self._aux_in_fit:
            main, *aux = self.training_model(inputs, training=True)
            self._aux_pending = tuple(aux)
            return main
        return super().call(inputs, training=training, mask=mask, **kwargs)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        total = super().compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=training)
        aux, self._aux_pending = self._aux_pending, ()
        if training and aux and y is not None:
            loss = self._single_loss()
            for aux_pred in aux:
                total = total + self.aux_weight * loss(y, aux_pred, sample_weight)
        return total

    def _single_loss(self):
        """The compiled loss as ``f(y_true, y_pred, sample_weight) -> scalar``."""
        loss = self.loss
        if isinstance(loss, (list, tuple)) and len(loss) == 1:
            loss = loss[0]
        elif isinstance(loss, dict) and len(loss) == 1:
            loss = next(iter(loss.values()))
        loss = keras.losses.get(loss)
        if isinstance(loss, keras.losses.Loss):
            return lambda y, p, w: loss(y, p, sample_weight=w)
        if not callable(loss):
            raise ValueError(f"{self.name}: cannot apply the compiled loss {self.loss!r} to the auxiliary outputs")

        def mean_loss(y_true, y_pred, sample_weight):
            values = loss(y_true, y_pred)
            if sample_weight is not None:
                values = values * ops.cast(sample_weight, values.dtype)
            return ops.mean(values)

        return mean_loss

    def get_config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "trainable": self.trainable,
            "aux_weight": self.aux_weight,
            "graph": self.training_model.get_config(),
        }

    @classmethod
    def from_config(cls, config: dict[str, Any], custom_objects=None) -> "AuxiliaryClassifierModel":
        graph = keras.Model.from_config(config["graph"], custom_objects=custom_objects)
        main, *aux = graph.outputs
        return cls(
            graph.input, main, aux, aux_weight=config.get("aux_weight", 0.3),
            name=config.get("name"), trainable=config.get("trainable", True),
        )


__all__ = ["AuxiliaryClassifierModel", "WithAuxiliary", "assemble_model"]
