"""The domain-adapted classifier: a plain classifier for inference, adapted while it trains.

:class:`AdaptModel` is a functional model from the image to the class probabilities, so
``model(x)``, ``predict``, evaluation and the model card see an ordinary classifier (like
GoogLeNet's :class:`~foveal.models.auxiliary.AuxiliaryClassifierModel`). It also keeps, for
training only:

* ``training_model``: the same layers with a second output, the feature vector (the input of
  the classifier's last dense layer);
* for ``dann``, ``domain_head``: a gradient-reversal layer, dense layers and one logit,
  "source (0) or target (1)?" (Ganin et al., JMLR 2016).

Its ``train_step`` takes ``({"image": labelled, "domain": their domains, "target": unlabelled
target images}, one-hot labels)``: one forward pass over both batches (batch-norm statistics
see both domains), the compiled classification loss on the labelled images, plus

* ``dann``: the domain classifier's cross-entropy on all images; the reversal layer's weight
  follows ``adapt_weight * (2 / (1 + exp(-gamma p)) - 1)``, ``p`` = step / ``total_steps``;
* ``coral`` / ``mmd``: that weight times CORAL or MMD between the source and target features;
* ``source-only``: nothing (the target batch is not even computed): the baseline.

With ``per_domain_batches`` (the default) the labelled and the target batch go through the
network one after the other, so batch normalisation normalises each domain with its own batch
statistics during training (as public DANN re-implementations do; the moving averages used at
inference blend both); otherwise they go through together.

Example:
    >>> from foveal.models import build_model
    >>> model = adapt_model(build_model("lenet5", num_classes=10), "dann", total_steps=100)
    >>> model.output_shape, model.training_model.output_shape
    ((None, 10), [(None, 10), (None, 84)])
"""

from __future__ import annotations

from typing import Any, Sequence

import keras
import tensorflow as tf

from foveal.errors import ModelError
from foveal.layers.reversal import GradientReversal, domain_classifier, reversal_weight
from foveal.ops.domain import coral_loss, mmd_loss

METHODS = ("dann", "coral", "mmd", "source-only")


def feature_tensor(model: keras.Model, layer_name: str | None = None):
    """The classifier's feature vector: the output of layer ``layer_name``, by default the input
    of the dense layer that makes its class scores (behind weightless activation layers at the end).

    Raises:
        ModelError: no such layer, its output is not a vector, or the output does not come from a
            dense layer on vectors.
    """
    if layer_name:
        try:
            named = model.get_layer(layer_name)
        except ValueError:
            raise ModelError(f"model {model.name!r} has no layer {layer_name!r}",
                             hint=f"its layers: {', '.join(layer.name for layer in model.layers)}") from None
        if len(named.output.shape) != 2:
            raise ModelError(f"model {model.name!r}: layer {layer_name!r} gives {tuple(named.output.shape[1:])}, "
                             "not feature vectors", hint="name a flatten or global-pooling layer, or a dense layer")
        return named.output
    layer = model.layers[-1]
    seen = 0
    while not isinstance(layer, keras.layers.Dense) and not layer.weights and seen < 4:
        inbound = layer._inbound_nodes[0].parent_nodes if layer._inbound_nodes else []
        if len(inbound) != 1:
            break
        layer, seen = inbound[0].operation, seen + 1
    if not isinstance(layer, keras.layers.Dense) or len(layer.input.shape) != 2:
        raise ModelError(f"model {model.name!r}: its output does not come from a dense layer on feature vectors",
                         hint="adaptation needs a classifier whose last layers are Dense (+ softmax)")
    return layer.input


@keras.saving.register_keras_serializable(package="foveal")
class AdaptModel(keras.Model):
    """A classifier trained with domain adaptation; see the module docstring.

    Args:
        inputs, outputs: the classifier's input and class-probability tensors.
        features: its feature-vector tensor (on the same graph).
        method: ``dann``, ``coral``, ``mmd`` or ``source-only``.
        total_steps: training steps over which the adaptation weight ramps up.
        adapt_weight: the weight the ramp ends at.
        gamma: the ramp's steepness (10 in the paper).
        domain_units: hidden layer sizes of the domain classifier (dann).
        domain_head: a built domain head (when loading); else one is built.
    """

    def __init__(self, inputs, outputs, features, *, method: str = "dann", total_steps: int = 1,
                 adapt_weight: float = 1.0, gamma: float = 10.0, domain_units: Sequence[int] = (100,),
                 domain_head: keras.Model | None = None, per_domain_batches: bool = True, name: str | None = None,
                 trainable: bool = True) -> None:
        if method not in METHODS:
            raise ModelError(f"unknown adaptation method {method!r}", hint=f"methods: {', '.join(METHODS)}")
        super().__init__(inputs=inputs, outputs=outputs, name=name, trainable=trainable)
        self.method, self.total_steps = method, int(total_steps)
        self.adapt_weight, self.gamma = float(adapt_weight), float(gamma)
        self.domain_units = [int(u) for u in domain_units]
        self.per_domain_batches = bool(per_domain_batches)
        self.training_model = keras.Model(inputs, [outputs, features], name=f"{self.name}_with_features")
        if method == "dann" and domain_head is None:
            domain_head = domain_classifier(int(features.shape[-1]), self.domain_units)
        self.domain_head = domain_head if method == "dann" else None
        self.adapt_loss_tracker = keras.metrics.Mean(name="adapt_loss")
        self.domain_accuracy_tracker = keras.metrics.Mean(name="domain_accuracy")
        self.weight_tracker = keras.metrics.Mean(name="adapt_weight")

    @property
    def reversal(self) -> GradientReversal | None:
        return self.domain_head.get_layer("gradient_reversal") if self.domain_head is not None else None

    def progress(self):
        """Training progress p in [0, 1]: optimizer steps / ``total_steps``."""
        step = tf.cast(self.optimizer.iterations, tf.float32)
        return tf.minimum(step / float(max(self.total_steps, 1)), 1.0)

    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        images = x["image"]
        n = tf.shape(images)[0]
        weight = self.adapt_weight * reversal_weight(self.progress(), self.gamma)
        adapt = self.method != "source-only"
        target = tf.cast(x["target"], images.dtype) if adapt else None
        with tf.GradientTape() as tape:
            if not adapt:
                probs, features = self.training_model(images, training=True)
            elif self.per_domain_batches:
                probs, features = self.training_model(images, training=True)
                features = tf.concat([features, self.training_model(target, training=True)[1]], axis=0)
            else:
                probs, features = self.training_model(tf.concat([images, target], axis=0), training=True)
            loss = self.compute_loss(x=images, y=y, y_pred=probs[:n], sample_weight=sample_weight, training=True)
            extra = tf.constant(0.0)
            if self.method == "dann":
                self.reversal.scale.assign(weight)
                logits = tf.cast(self.domain_head(features, training=True), tf.float32)[:, 0]
                truth = tf.concat([tf.cast(tf.reshape(x["domain"], [-1]), tf.float32),
                                   tf.ones([tf.shape(features)[0] - n], tf.float32)], axis=0)
                extra = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=truth, logits=logits))
                self.domain_accuracy_tracker.update_state(
                    tf.reduce_mean(tf.cast(tf.equal(tf.cast(logits > 0, tf.float32), truth), tf.float32)))
                total = loss + extra  # the reversal layer scales the features' share of its gradient
            elif adapt:
                source = tf.boolean_mask(features[:n], tf.equal(tf.reshape(x["domain"], [-1]), 0))
                statistic = coral_loss if self.method == "coral" else mmd_loss
                extra = statistic(source, features[n:])
                total = loss + tf.cast(weight, loss.dtype) * tf.cast(extra, loss.dtype)
            else:
                total = loss
        variables = self.trainable_variables
        gradients = tape.gradient(total, variables)
        self.optimizer.apply(gradients, variables)
        self._loss_tracker.update_state(total, sample_weight=n)
        self.adapt_loss_tracker.update_state(extra)
        self.weight_tracker.update_state(weight if adapt else 0.0)
        logs = self.compute_metrics(images, y, probs[:n], sample_weight)
        for key, used in (("domain_accuracy", self.method == "dann"), ("adapt_loss", adapt), ("adapt_weight", adapt)):
            if not used:
                logs.pop(key, None)
        return logs

    def test_step(self, data):
        logs = super().test_step(data)
        for key in ("adapt_loss", "domain_accuracy", "adapt_weight"):
            logs.pop(key, None)
        return logs

    def classifier(self) -> keras.Model:
        """The inference graph as a plain functional classifier (shares the layers)."""
        return keras.Model(self.input, self.output, name=self.name)

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "trainable": self.trainable, "method": self.method,
                "total_steps": self.total_steps, "adapt_weight": self.adapt_weight, "gamma": self.gamma,
                "domain_units": self.domain_units, "per_domain_batches": self.per_domain_batches,
                "graph": self.training_model.get_config(),
                "domain_head": None if self.domain_head is None else self.domain_head.get_config()}

    @classmethod
    def from_config(cls, config: dict[str, Any], custom_objects=None) -> "AdaptModel":
        graph = keras.Model.from_config(config["graph"], custom_objects=custom_objects)
        head = (keras.Model.from_config(config["domain_head"], custom_objects=custom_objects)
                if config.get("domain_head") else None)
        probs, features = graph.outputs
        return cls(graph.input, probs, features, method=config["method"], total_steps=config["total_steps"],
                   adapt_weight=config["adapt_weight"], gamma=config["gamma"], domain_units=config["domain_units"],
                   domain_head=head, per_domain_batches=config.get("per_domain_batches", True), name=config.get("name"),
                   trainable=config.get("trainable", True))


def adapt_model(classifier: keras.Model, method: str, *, total_steps: int, adapt_weight: float = 1.0,
                gamma: float = 10.0, domain_units: Sequence[int] = (100,), feature_layer: str | None = None,
                per_domain_batches: bool = True) -> AdaptModel:
    """Wrap a built classifier (any zoo model) for adaptation training with ``method``; the
    adaptation acts on the output of ``feature_layer`` (default: the input of the last dense layer)."""
    return AdaptModel(classifier.input, classifier.output, feature_tensor(classifier, feature_layer), method=method,
                      total_steps=total_steps, adapt_weight=adapt_weight, gamma=gamma, domain_units=domain_units,
                      per_domain_batches=per_domain_batches, name=classifier.name)


__all__ = ["METHODS", "AdaptModel", "adapt_model", "feature_tensor"]
