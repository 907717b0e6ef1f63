"""Domain adaptation of a detector to unlabelled target images (``foveal detect train --adapt-target``).

A detector trained on one domain (e.g. composited cut-outs from ``foveal datasets synth
composite``) is adapted to another (real photos) whose images have no boxes: every training
step also runs a batch of target images through the backbone, and a domain loss on the
backbone's feature map pulls the two domains' features together. The detection loss still
comes from the labelled source batch only.

* ``coral``: Deep CORAL (Sun & Saenko, ECCV 2016 workshops), ``||C_s - C_t||_F^2 / (4 d^2)``
  between the covariances of the source and target features
  (:func:`foveal.ops.domain.coral_loss`, shared with ``foveal adapt``), added to the
  detection loss times the adaptation weight. ``--adapt-normalize`` divides it by the fourth
  power of the features' scale (their mean variance over both batches, not differentiated):
  the raw CORAL of a backbone map grows as the fourth power of its activations, so a weight
  that means something on one backbone means nothing on another; the normalised one is the
  same for any scale of the features.
* ``dann``: a domain classifier behind a gradient-reversal layer (Ganin et al., JMLR 2016;
  :func:`foveal.layers.reversal.domain_classifier`, shared with ``foveal adapt``) on the
  backbone map, one "source or target?" logit per feature-map position: the image-level
  adaptation of Chen et al., "Domain Adaptive Faster R-CNN for Object Detection in the Wild",
  CVPR 2018. Its cross-entropy (the mean of the two domains' means) is added to the loss;
  the reversal layer multiplies the gradient that reaches the backbone by ``-lambda``.

* ``adabn``: no training-time loss; after training, the batch-norm layers' moving mean and
  variance are re-estimated on the target images (Li et al., "Revisiting Batch Normalization for
  Practical Domain Adaptation", ICLR workshop 2017; :func:`foveal.adaptation.statistics.target_statistics`,
  shared with ``foveal adapt``) and ``best.keras`` is saved with them. ``--target-statistics``
  does the same after ``coral`` or ``dann``.

Both losses read the feature map the detector's head reads (YOLO: the coarsest backbone level;
Faster R-CNN: ``--rcnn-level``) either per position (``positions``: every cell of every image
is one sample, Chen et al.'s choice) or averaged over the image (``pooled``: one vector per
image, as Deep CORAL's fc features). The weight ramps up as in the DANN paper,
``lambda_p = weight * (2 / (1 + exp(-10 p)) - 1)`` with ``p`` the training progress (the
adapter's own step counter over ``--epochs`` worth of steps, saved with the model so a
resumed run continues the ramp). Source and target go through the network one after the
other, so batch normalisation normalises each domain with its own batch statistics.

The adapter (:class:`DomainAdapter`: method, weights, step counter, domain classifier) is part
of the saved detector, so ``last.keras`` resumes it; ``predict``, scoring and export see the
plain detector.

Example:
    >>> from foveal.detection.train import train_detector
    >>> train_detector(data="raccoon-synth/annotations/instances_train.json",  # doctest: +SKIP
    ...                adapt_target="../shared/datasets/raccoon", adapt_method="dann")
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import keras
import numpy as np
import tensorflow as tf

from foveal.detection.postprocess import as_list
from foveal.errors import ConfigError, DataError
from foveal.layers.reversal import domain_classifier, reversal_weight
from foveal.ops.domain import coral_loss

METHODS = ("coral", "dann")  # the methods with a training-time domain loss (a DomainAdapter)
ALL_METHODS = (*METHODS, "adabn")  # --adapt-method
FEATURES = ("positions", "pooled")
#: the adaptation weight when --adapt-weight is not given: Chen et al.'s lambda = 0.1 for the
#: domain classifier; 1 for CORAL (Deep CORAL weights it so both losses end up comparable)
DEFAULT_WEIGHTS = {"coral": 1.0, "dann": 0.1}
GAMMA = 10.0  # the DANN paper's ramp steepness
#: target images AdaBN reads at most (a seeded sample of a larger target), decoded at the input size
ADABN_IMAGES = 500
#: source and target images of the report's feature picture, at most
PICTURE_IMAGES = 200
#: the logs of an adapted training step (none of them is computed on validation data)
ADAPT_LOGS = ("adapt_loss", "adapt_weight", "domain_accuracy")


def feature_rows(feature_map, features: str = "positions"):
    """``[B, H, W, C]`` -> float32 ``[B * H * W, C]`` (``positions``) or ``[B, C]`` (``pooled``)."""
    x = tf.cast(feature_map, tf.float32)
    if features == "pooled":
        return tf.reduce_mean(x, axis=[1, 2])
    return tf.reshape(x, [-1, tf.shape(x)[-1]])


@keras.saving.register_keras_serializable(package="foveal")
class DomainAdapter(keras.layers.Layer):
    """The domain loss between a source and a target feature map (see the module docstring).

    Args:
        method: ``coral`` or ``dann``.
        channels: channels of the feature map (the domain classifier's input).
        weight: the adaptation weight the ramp ends at (None: :data:`DEFAULT_WEIGHTS`).
        features: ``positions`` or ``pooled``.
        normalize: coral: divide the distance by the features' scale^4 (see the module docstring).
        units: hidden ReLU layers of the domain classifier (dann).
        total_steps: training steps over which the weight ramps up.
        gamma: the ramp's steepness.

    Calling it on ``(source_map, target_map)`` returns ``(term, loss, weight, accuracy)``: the
    term to add to the detection loss, the raw domain loss, the current weight and (dann) the
    domain classifier's accuracy; each call advances the step counter.

    Example:
        >>> adapter = DomainAdapter("coral", 4, total_steps=10)
        >>> x = np.random.default_rng(0).normal(size=(2, 3, 3, 4)).astype("float32")
        >>> term, loss, weight, _ = adapter(x, x)
        >>> float(loss), float(weight)
        (0.0, 0.0)
    """

    def __init__(self, method: str, channels: int, *, weight: float | None = None, features: str = "positions",
                 units: Sequence[int] = (256,), total_steps: int = 1, gamma: float = GAMMA,
                 normalize: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if method not in METHODS:
            raise ConfigError(f"unknown adaptation method {method!r}", hint=f"methods: {', '.join(METHODS)}")
        if features not in FEATURES:
            raise ConfigError(f"unknown adaptation features {features!r}", hint=f"one of {', '.join(FEATURES)}")
        self.method, self.channels, self.features = method, int(channels), features
        self.normalize = bool(normalize)
        self.weight = float(DEFAULT_WEIGHTS[method] if weight is None else weight)
        self.units = [int(u) for u in units]
        self.total_steps, self.gamma = int(total_steps), float(gamma)
        self.step = self.add_weight(name="step", shape=(), dtype="float32", trainable=False,
                                    initializer="zeros")
        self.head = (domain_classifier(self.channels, self.units, name="domain_head") if method == "dann"
                     else None)

    def progress(self):
        """Training progress p in [0, 1]: the adapter's steps / ``total_steps``."""
        return tf.minimum(tf.convert_to_tensor(self.step) / float(max(self.total_steps, 1)), 1.0)

    def call(self, source_map, target_map):
        weight = self.weight * reversal_weight(self.progress(), self.gamma)
        source, target = feature_rows(source_map, self.features), feature_rows(target_map, self.features)
        accuracy = tf.constant(0.0)
        if self.method == "coral":
            loss = coral_loss(source, target, normalize=self.normalize)
            term = weight * loss
        else:
            self.head.get_layer("gradient_reversal").scale.assign(weight)
            logits = tf.cast(self.head(tf.concat([source, target], axis=0)), tf.float32)[:, 0]
            n = tf.shape(source)[0]
            truth = tf.concat([tf.zeros([n]), tf.ones([tf.shape(target)[0]])], axis=0)
            bce = tf.nn.sigmoid_cross_entropy_with_logits(labels=truth, logits=logits)
            loss = 0.5 * (tf.reduce_mean(bce[:n]) + tf.reduce_mean(bce[n:]))  # each domain counts the same
            term = loss  # the reversal layer scales the backbone's share of its gradient
            accuracy = tf.reduce_mean(tf.cast(tf.equal(tf.cast(logits > 0, tf.float32), truth), tf.float32))
        self.step.assign_add(1.0)
        return term, loss, weight, accuracy

    def describe(self) -> str:
        what = (("normalised CORAL" if self.normalize else "CORAL") if self.method == "coral" else
                f"DANN (domain classifier {' -> '.join(map(str, [*self.units, 1]))} behind gradient reversal)")
        return f"{what} on the backbone map ({self.features}), weight ramping to {self.weight:g}"

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "method": self.method, "channels": self.channels, "weight": self.weight,
                "features": self.features, "units": self.units, "total_steps": self.total_steps,
                "gamma": self.gamma, "normalize": self.normalize}


class DomainAdaptiveDetector:
    """What a detector model needs to train with a :class:`DomainAdapter` (mixed into the YOLO
    and Faster R-CNN models). Without an adapter, training is Keras' own.

    A subclass implements :meth:`outputs_and_features` (source images -> the outputs its
    ``compute_loss`` takes and the backbone map) and :meth:`feature_map` (target images -> the
    backbone map), and keeps its adapter settings in ``get_config()["adaptation"]``.
    """

    adapter: DomainAdapter | None = None

    def outputs_and_features(self, images) -> tuple[Any, tf.Tensor]:
        raise NotImplementedError

    def feature_map(self, images, training: bool = True) -> tf.Tensor:
        raise NotImplementedError

    def batch_norm_model(self) -> keras.Model:
        """The functional model (raw images in) whose batch-norm statistics AdaBN re-estimates."""
        return self  # type: ignore[return-value]

    def feature_channels(self) -> int:
        raise NotImplementedError

    def enable_adaptation(self, method: str, *, weight: float | None = None, features: str = "positions",
                          units: Sequence[int] = (256,), total_steps: int = 1,
                          normalize: bool = False) -> DomainAdapter:
        """Add a :class:`DomainAdapter` on the backbone map; training then expects
        ``({"images": source, "target": target images}, targets)`` batches."""
        self.adapter = DomainAdapter(method, self.feature_channels(), weight=weight, features=features,
                                     units=units, total_steps=total_steps, normalize=normalize,
                                     name="domain_adapter")
        self.adapt_loss_tracker = keras.metrics.Mean(name="adapt_loss")
        self.adapt_weight_tracker = keras.metrics.Mean(name="adapt_weight")
        if method == "dann":
            self.domain_accuracy_tracker = keras.metrics.Mean(name="domain_accuracy")
        return self.adapter

    def adaptation_config(self) -> dict[str, Any] | None:
        """The adapter's settings (what ``from_config`` rebuilds it from), or None."""
        if self.adapter is None:
            return None
        config = self.adapter.get_config()
        return {k: config[k] for k in ("method", "weight", "features", "units", "total_steps", "normalize")}

    def build_optimizers(self, element_spec: Any = None) -> None:
        """Create the optimizer's variables before ``fit`` (``foveal.engine.optim.build_before_fit``):
        both steps, Keras' own and the adapter's below, update ``self.trainable_variables``."""
        if not self.optimizer.built:
            self.optimizer.build(self.trainable_variables)

    def train_step(self, data):
        if self.adapter is None:
            return super().train_step(data)  # type: ignore[misc]
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        if not isinstance(x, dict) or "target" not in x:
            raise ConfigError("this detector adapts to target images: its training batches must be "
                              "({'images': ..., 'target': ...}, targets)",
                              hint="train it through foveal detect train --adapt-target")
        images, target = x["images"], tf.cast(x["target"], x["images"].dtype)
        with tf.GradientTape() as tape:
            y_pred, source_map = self.outputs_and_features(images)
            loss = self.compute_loss(x=images, y=y, y_pred=y_pred, sample_weight=sample_weight, training=True)
            term, domain_loss, weight, accuracy = self.adapter(source_map, self.feature_map(target))
            total = loss + tf.cast(term, loss.dtype)
            self._loss_tracker.update_state(total, sample_weight=tf.shape(images)[0])
            scaled = self.optimizer.scale_loss(total)
        variables = self.trainable_variables
        gradients = tape.gradient(scaled, variables)
        self.optimizer.apply_gradients(zip(gradients, variables))
        self.adapt_loss_tracker.update_state(domain_loss)
        self.adapt_weight_tracker.update_state(weight)
        if self.adapter.method == "dann":
            self.domain_accuracy_tracker.update_state(accuracy)
        return self.compute_metrics(images, y, y_pred, sample_weight)

    def test_step(self, data):
        logs = super().test_step(data)  # type: ignore[misc]
        for key in ADAPT_LOGS:
            logs.pop(key, None)
        return logs


class LayerFeaturesDetector(DomainAdaptiveDetector):
    """A functional detector (YOLO) whose head reads the output of its layer ``self.feature_layer``."""

    def _feature_tensor(self):
        if not self.feature_layer:
            raise ConfigError(f"{self.name}: this detector does not record which backbone map its head reads "
                              "(saved by an older foveal)", hint="train a new detector to adapt it")
        return self.get_layer(self.feature_layer).output

    def feature_channels(self) -> int:
        return int(self._feature_tensor().shape[-1])

    def _graphs(self) -> tuple[keras.Model, keras.Model]:
        """(image -> raw outputs and the backbone map, image -> the map): the detector's own layers,
        kept out of Keras' tracking (they add no weights)."""
        graphs = self.__dict__.get("_adapt_graphs")
        if graphs is None:
            feature = self._feature_tensor()
            graphs = (keras.Model(self.input, [*as_list(self.outputs), feature], name=f"{self.name}_with_features"),
                      keras.Model(self.input, feature, name=f"{self.name}_features"))
            object.__setattr__(self, "_adapt_graphs", graphs)
        return graphs

    def outputs_and_features(self, images):
        *outputs, feature = self._graphs()[0](images, training=True)
        return outputs, feature

    def feature_map(self, images, training: bool = True):
        return self._graphs()[1](images, training=training)


TARGET_SEED = 15_485_863  # the target images' streams in a training pipeline: apart from the source's


def target_pairing(target_epoch: Any, as_input: Any, *, images: int, targets: int, batch_size: int) -> Any:
    """``pair(batches, seed, epoch)`` for :func:`~foveal.detection.pipeline.make_detection_pipeline`:
    each source batch of an epoch of ``images`` images as ``({"images", "target"}, targets)``, the
    target batches drawn from ``targets`` images in as many passes as needed, each in an order of its
    own (``target_epoch(seed, epoch)``: one pass of ``(image, boxes, classes)``)."""
    per_epoch = -(-images // batch_size) * batch_size
    repeats = -(-per_epoch // targets)

    def pair(ds: tf.data.Dataset, s: Any, epoch: Any) -> tf.data.Dataset:
        passes = tf.data.Dataset.range(repeats).flat_map(
            lambda r: target_epoch(tf.cast(s, tf.int64) + TARGET_SEED + r * 104_729, epoch))
        more = passes.map(lambda image, b, c: as_input(image), num_parallel_calls=tf.data.AUTOTUNE)
        more = more.take(per_epoch).batch(batch_size, num_parallel_calls=tf.data.AUTOTUNE)
        return tf.data.Dataset.zip((ds, more)).map(lambda batch, t: ({"images": batch[0], "target": t}, batch[1]))

    return pair


# ------------------------------------------------------------------------------ AdaBN, features


def uses_adapter(cfg: Any) -> bool:
    """Whether the run trains with a :class:`DomainAdapter` (``--adapt-method coral|dann``)."""
    return bool(getattr(cfg, "adapt_target", None)) and cfg.adapt_method in METHODS


def uses_adabn(cfg: Any) -> bool:
    """Whether the run re-estimates batch-norm statistics on the target at the end."""
    return bool(getattr(cfg, "adapt_target", None)) and (cfg.adapt_method == "adabn"
                                                         or bool(getattr(cfg, "target_statistics", False)))


def model_inputs(images: Any, card: Any, *, limit: int | None = None, seed: int = 0,
                 batch_size: int = 16) -> np.ndarray:
    """uint8 ``[N, H, W, C]``: up to ``limit`` images of ``images`` (a BoxedImages; a seeded sample
    when it has more) decoded and resized as scoring does (the card's input size and letterbox)."""
    from foveal.detection.pipeline import images_only, make_detection_pipeline

    if limit is not None and len(images) > limit:
        images = images.subset(np.sort(np.random.default_rng(seed).choice(len(images), limit, replace=False)))
    h, w, c = card.input_shape
    ds = make_detection_pipeline(images, image_size=(h, w), channels=c, batch_size=batch_size, training=False,
                                 augment="none", keep_aspect=bool(card.training.get("keep_aspect", False)),
                                 cache="none", max_boxes=None)
    batches = [np.asarray(batch) for batch in ds.map(images_only).as_numpy_iterator()]
    return np.concatenate(batches).astype(np.uint8)


def adapt_batch_norm(model: Any, pixels: np.ndarray, batch_size: int = 16) -> int:
    """AdaBN on a detector: every batch-norm layer's moving mean and variance set to those of its
    inputs on ``pixels`` (raw images at the input size); returns how many layers changed."""
    from foveal.adaptation.statistics import target_statistics

    network = model.batch_norm_model() if hasattr(model, "batch_norm_model") else model
    return target_statistics(network, pixels, batch_size=batch_size)


def pooled_features(model: Any, pixels: np.ndarray, batch_size: int = 16) -> np.ndarray:
    """float ``[N, C]``: the backbone map the head reads, averaged over its positions, per image
    (inference mode: the moving batch-norm statistics)."""
    rows = [tf.reduce_mean(tf.cast(model.feature_map(pixels[i:i + batch_size].astype(np.float32), training=False),
                                   tf.float32), axis=[1, 2]).numpy() for i in range(0, len(pixels), batch_size)]
    return np.concatenate(rows) if rows else np.zeros((0, 0), np.float32)


def feature_panels(models: dict[str, Any], source: np.ndarray, target: np.ndarray) -> dict[str, tuple]:
    """``title -> (source features, target features)`` of each detector, for
    :func:`foveal.visualize.features.feature_picture` (the "before and after" picture)."""
    return {title: (pooled_features(model, source), pooled_features(model, target))
            for title, model in models.items()}


# ------------------------------------------------------------------------------ target images


def load_target(spec: str, *, seed: int = 0, skip_invalid: bool = False,
                tolerance: float = 3.0) -> tuple[Any, Any | None]:
    """``(images the adaptation reads, labelled target test images or None)`` of ``--adapt-target``.

    A folder with images and no sub-folders is an unlabelled target: every image is read. Anything
    else is read as a box dataset (VOC, COCO, YOLO, CSV): its train split feeds the adaptation
    (its boxes are never read), and its test split, when it has one, is scored after every
    ``--eval-every`` epochs and at the end (``target_map50``: reported, never used to pick
    ``best.keras``).

    Raises:
        DataError: the folder has no images, or the dataset cannot be read.
    """
    from foveal.data.boxes import BoxedImages
    from foveal.data.readers.folder import IMAGE_EXTENSIONS
    from foveal.utils_io import printable_path

    path = Path(spec)
    if not path.exists():
        raise DataError(f"{spec}: no such file or folder (--adapt-target)",
                        hint="--adapt-target takes a folder of images or a box dataset")
    if path.is_dir() and not any(p.is_dir() and not p.name.startswith(".") for p in path.iterdir()):
        files = sorted(str(p) for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
        if not files:
            raise DataError(f"{printable_path(path)}: the --adapt-target folder has no images "
                            f"(looked for {', '.join(sorted(IMAGE_EXTENSIONS))})",
                            hint="--adapt-target takes a folder of images or a box dataset")
        n = len(files)
        return BoxedImages(paths=np.array(files), boxes=[np.zeros((0, 4), np.float32)] * n,
                           labels=[np.zeros(0, np.int32)] * n, class_names=["object"],
                           image_sizes=np.ones((n, 2), np.int64), origin=printable_path(path)), None
    from foveal.data.boxes.splits import load_box_splits

    parts = load_box_splits(spec, test_data=None, val_split=0.0, test_split=0.0, seed=seed,
                            skip_invalid=skip_invalid, tolerance=tolerance)
    train = parts["train"]
    if len(train) == 0:
        raise DataError(f"{spec}: the --adapt-target dataset has no training images")
    test = parts.get("test")
    return train, (test if test is not None and len(test) and test.num_boxes else None)


__all__ = ["ADABN_IMAGES", "ADAPT_LOGS", "ALL_METHODS", "DEFAULT_WEIGHTS", "FEATURES", "METHODS", "PICTURE_IMAGES",
           "DomainAdapter", "DomainAdaptiveDetector", "LayerFeaturesDetector", "adapt_batch_norm", "feature_panels",
           "feature_rows", "load_target", "model_inputs", "pooled_features", "target_pairing", "uses_adabn",
           "uses_adapter"]
