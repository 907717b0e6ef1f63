"""The generative models: a convolutional VAE, DCGAN and a conditional GAN, each training itself.

Every model is a Keras 3 ``Model`` subclass that owns its ``train_step`` (and the VAE its
``test_step``), so Keras' ``fit`` is the only loop and the run engine's checkpoints, resume,
seeds and time budget apply unchanged. They take raw pixels 0..255 (as every foveal model does)
and give images in [0, 1] from :meth:`generate`.

* :class:`VAE` (Kingma & Welling 2014): encoder -> ``(mean, log_var)``; a reparameterised sample
  ``z``; decoder -> Bernoulli logits or Gaussian means. Loss: reconstruction NLL + ``beta`` * KL,
  with ``beta`` rising linearly from 0 to 1 over ``kl_warmup_steps`` optimizer steps (Bowman et
  al. 2016); validation always uses ``beta = 1``, so ``val_loss`` is the negative ELBO in nats.
  The Gaussian likelihood learns one sigma for all pixels (Rybkin et al. 2021, "sigma-VAE")
  unless a fixed one is given.
* :class:`GAN` (Radford et al. 2016, DCGAN): strided transposed convolutions with batch norm in
  the generator, strided convolutions with leaky ReLU in the discriminator; per batch one
  discriminator step then one generator step with the non-saturating loss
  (:mod:`foveal.generative.losses`). Two optimizers: ``optimizer`` (generator) and
  ``d_optimizer`` (discriminator); both are saved in ``.keras`` files and restored on load.
* :class:`ConditionalGAN` (Mirza & Osindero 2014): the class label is embedded and joined to the
  noise in the generator; the discriminator sees it through a projection (its logit gains the
  inner product of a class embedding with the image features, Miyato & Koyama 2018) or, as in
  the texts, as an extra image plane joined to its input (``conditioning="concat"``).

Example:
    >>> gan = build_generative("dcgan", image_shape=(28, 28, 1), latent_dim=64)  # doctest: +SKIP
    >>> gan.compile(optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5),
    ...             d_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5))  # doctest: +SKIP
    >>> gan.fit(images_0_255_and_labels, epochs=5)  # doctest: +SKIP
    >>> gan.generate(keras.random.normal((16, 64))).shape  # doctest: +SKIP
    TensorShape([16, 28, 28, 1])
"""

from __future__ import annotations

import math
from typing import Any

import keras
from keras import layers, ops

from foveal.errors import ConfigError
from foveal.generative import losses

PACKAGE = "foveal"
MODEL_NAMES = ("vae", "dcgan", "cgan")


def _stages(image_shape: tuple[int, int, int]) -> int:
    """Stride-2 stages between the base grid and the image: as many as 4, keeping the base >= 4 pixels."""
    h, w = image_shape[:2]
    if h % 4 or w % 4:
        raise ConfigError(f"image size {h}x{w} is not a multiple of 4, which the generative models need",
                          hint="pass --image-size 28, 32, 64, ... (a multiple of 4)")
    k = 2
    while k < 4 and h % 2 ** (k + 1) == 0 and w % 2 ** (k + 1) == 0 and min(h, w) // 2 ** (k + 1) >= 4:
        k += 1
    return k


def _filters(width: int, stage: int) -> int:
    return width * 2 ** stage


# ---------------------------------------------------------------------------- network builders
def vae_encoder(image_shape: tuple[int, int, int], latent_dim: int, width: int = 32) -> keras.Model:
    """Images in [0, 1] -> ``[mean, log_var]`` of the approximate posterior."""
    x = inputs = keras.Input(image_shape, name="image")
    for i in range(_stages(image_shape)):
        x = layers.Conv2D(_filters(width, i), 3, strides=2, padding="same", activation="relu", name=f"conv{i + 1}")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(max(128, 4 * latent_dim), activation="relu", name="hidden")(x)
    mean = layers.Dense(latent_dim, name="z_mean")(x)
    log_var = layers.Dense(latent_dim, name="z_log_var")(x)
    return keras.Model(inputs, [mean, log_var], name="encoder")


def vae_decoder(image_shape: tuple[int, int, int], latent_dim: int, width: int = 32) -> keras.Model:
    """Latent codes -> per-pixel parameters (Bernoulli logits or Gaussian means), no activation."""
    k = _stages(image_shape)
    h, w, c = image_shape
    z = inputs = keras.Input((latent_dim,), name="z")
    top = _filters(width, k - 1)
    x = layers.Dense((h >> k) * (w >> k) * top, activation="relu", name="project")(z)
    x = layers.Reshape((h >> k, w >> k, top), name="grid")(x)
    for i in reversed(range(k)):
        x = layers.Conv2DTranspose(_filters(width, i), 3, strides=2, padding="same", activation="relu",
                                   name=f"up{k - i}")(x)
    x = layers.Conv2D(c, 3, padding="same", name="pixels", dtype="float32")(x)
    return keras.Model(inputs, x, name="decoder")


def gan_generator(image_shape: tuple[int, int, int], latent_dim: int, width: int = 32,
                  num_classes: int = 0, embedding: int = 50) -> keras.Model:
    """Noise (and a class id) -> images in [-1, 1] (tanh), DCGAN style."""
    k = _stages(image_shape)
    h, w, c = image_shape
    z = keras.Input((latent_dim,), name="z")
    inputs: list[Any] = [z]
    x = z
    if num_classes:
        label = keras.Input((), dtype="int32", name="label")
        inputs.append(label)
        e = layers.Embedding(num_classes, embedding, name="label_embedding")(label)
        x = layers.Concatenate(name="z_and_label")([z, e])
    top = _filters(width, k)
    x = layers.Dense((h >> k) * (w >> k) * top, use_bias=False, name="project")(x)
    x = layers.BatchNormalization(name="project_bn")(x)
    x = layers.ReLU(name="project_relu")(x)
    x = layers.Reshape((h >> k, w >> k, top), name="grid")(x)
    for i in reversed(range(1, k)):
        x = layers.Conv2DTranspose(_filters(width, i), 4, strides=2, padding="same", use_bias=False,
                                   name=f"up{k - i}")(x)
        x = layers.BatchNormalization(name=f"up{k - i}_bn")(x)
        x = layers.ReLU(name=f"up{k - i}_relu")(x)
    x = layers.Conv2DTranspose(c, 4, strides=2, padding="same", activation="tanh", name="image",
                               dtype="float32")(x)
    return keras.Model(inputs if num_classes else z, x, name="generator")


def gan_discriminator(image_shape: tuple[int, int, int], width: int = 32, num_classes: int = 0,
                      dropout: float = 0.3, conditioning: str = "concat") -> keras.Model:
    """Images in [-1, 1] (and a class id) -> one logit: real (large) or generated (small).

    A conditional discriminator sees the class either as an extra learnt image plane joined to
    its input (``concat``, Mirza & Osindero 2014) or through a projection: the logit gains the
    inner product of a learnt class embedding with the image's features (``projection``,
    Miyato & Koyama 2018, "cGANs with Projection Discriminator")."""
    if conditioning not in ("concat", "projection"):
        raise ConfigError(f"unknown conditioning {conditioning!r}", hint="use concat or projection")
    k = _stages(image_shape)
    h, w, _ = image_shape
    image = keras.Input(image_shape, name="image")
    inputs: list[Any] = [image]
    x = image
    label = None
    if num_classes:
        label = keras.Input((), dtype="int32", name="label")
        inputs.append(label)
    if num_classes and conditioning == "concat":
        plane = layers.Embedding(num_classes, h * w, name="label_embedding")(label)
        plane = layers.Reshape((h, w, 1), name="label_plane")(plane)
        x = layers.Concatenate(name="image_and_label")([image, plane])
    for i in range(k):
        x = layers.Conv2D(_filters(width, i + 1), 4, strides=2, padding="same", name=f"conv{i + 1}")(x)
        x = layers.LeakyReLU(0.2, name=f"conv{i + 1}_lrelu")(x)
        if dropout:
            x = layers.Dropout(dropout, name=f"conv{i + 1}_dropout")(x)
    features = layers.Flatten(name="flatten")(x)
    x = layers.Dense(1, name="logit", dtype="float32")(features)
    if num_classes and conditioning == "projection":
        embedded = layers.Embedding(num_classes, int(features.shape[-1]), name="label_projection")(label)
        x = layers.Add(name="logit_plus_projection")([x, layers.Dot(axes=1, name="projection")([embedded, features])])
    return keras.Model(inputs if num_classes else image, x, name="discriminator")


# ---------------------------------------------------------------------------- models
class _Generative(keras.Model):
    """What every generative model shares: its image shape, latent size, classes and a seeded
    noise source that is part of its saved state."""

    conditional = False

    def __init__(self, *, image_shape: tuple[int, int, int], latent_dim: int, num_classes: int = 0,
                 seed: int = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.image_shape = tuple(int(d) for d in image_shape)
        self.latent_dim = int(latent_dim)
        self.num_classes = int(num_classes)
        self.seed = int(seed)
        self.noise = keras.random.SeedGenerator(seed, name="noise")

    @property
    def input_shape(self) -> tuple[Any, ...]:
        """``(None, H, W, C)``: the images the model learns from (a generator's card describes them)."""
        return (None, *self.image_shape)

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "trainable": self.trainable, "image_shape": list(self.image_shape),
                "latent_dim": self.latent_dim, "num_classes": self.num_classes, "seed": self.seed}

    def _trackers(self, *names: str) -> None:
        self._tracked = {n: keras.metrics.Mean(name=n) for n in names}

    @property
    def metrics(self) -> list[Any]:
        return list(self._tracked.values())

    def _results(self, **values: Any) -> dict[str, Any]:
        for name, value in values.items():
            self._tracked[name].update_state(value)
        return {m.name: m.result() for m in self.metrics}

    def generate(self, z: Any, labels: Any = None, training: bool = False) -> Any:
        """Images in [0, 1] from latent codes ``z`` (and class ids for a conditional model)."""
        raise NotImplementedError

    def inspection_parts(self) -> dict[str, keras.Model]:
        """The networks ``foveal inspect`` lists one by one (each is one graph; the model is not)."""
        raise NotImplementedError


def _sub(config: dict[str, Any], key: str) -> keras.Model:
    return keras.saving.deserialize_keras_object(config.pop(key))


@keras.saving.register_keras_serializable(PACKAGE)
class VAE(_Generative):
    """A convolutional variational auto-encoder (see the module docstring).

    Args:
        encoder, decoder: the networks of :func:`vae_encoder` / :func:`vae_decoder`.
        likelihood: ``bernoulli`` (pixels in [0, 1] as probabilities) or ``gaussian``.
        sigma: the Gaussian's fixed standard deviation in [0, 1] pixel units; 0 learns it.
        kl_warmup_steps: optimizer steps over which the KL weight rises linearly to 1 (0: always 1).
    """

    def __init__(self, encoder: keras.Model, decoder: keras.Model, *, likelihood: str = "bernoulli",
                 sigma: float = 0.0, kl_warmup_steps: int = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if likelihood not in ("bernoulli", "gaussian"):
            raise ConfigError(f"unknown likelihood {likelihood!r}", hint="use bernoulli or gaussian")
        self.encoder, self.decoder = encoder, decoder
        self.likelihood, self.sigma, self.kl_warmup_steps = likelihood, float(sigma), int(kl_warmup_steps)
        learned = likelihood == "gaussian" and not sigma
        self.log_sigma = self.add_weight(shape=(), initializer="zeros", trainable=learned, name="log_sigma")
        if likelihood == "gaussian" and sigma:
            self.log_sigma.assign(math.log(sigma))
        self._trackers("loss", "reconstruction", "kl", "neg_elbo", "kl_weight")
        self.built = True

    def get_config(self) -> dict[str, Any]:
        return super().get_config() | {
            "encoder": keras.saving.serialize_keras_object(self.encoder),
            "decoder": keras.saving.serialize_keras_object(self.decoder),
            "likelihood": self.likelihood, "sigma": self.sigma, "kl_warmup_steps": self.kl_warmup_steps}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "VAE":
        config = dict(config)
        return cls(_sub(config, "encoder"), _sub(config, "decoder"), **config)

    def encode(self, x01: Any, training: bool = False) -> tuple[Any, Any]:
        mean, log_var = self.encoder(x01, training=training)
        return mean, log_var

    def _nll(self, x01: Any, out: Any) -> Any:
        if self.likelihood == "bernoulli":
            return losses.bernoulli_nll(x01, out)
        return losses.gaussian_nll(x01, out, self.log_sigma)

    def kl_weight(self) -> Any:
        """beta: ``min(1, step / kl_warmup_steps)`` of the optimizer's step counter (resumes with it)."""
        if not self.kl_warmup_steps or getattr(self, "optimizer", None) is None:
            return ops.convert_to_tensor(1.0)
        step = ops.cast(self.optimizer.iterations, "float32")
        return ops.minimum(1.0, step / float(self.kl_warmup_steps))

    def terms(self, x: Any, training: bool = False) -> tuple[Any, Any]:
        """Per-example (reconstruction NLL, KL) in nats of raw images ``x`` (0..255), one z sample."""
        x01 = ops.cast(x, "float32") / 255.0
        mean, log_var = self.encode(x01, training=training)
        z = losses.reparameterize(mean, log_var, seed=self.noise)
        out = self.decoder(z, training=training)
        return self._nll(x01, out), losses.kl_divergence(mean, log_var)

    def train_step(self, data: Any) -> dict[str, Any]:
        import tensorflow as tf

        x = data[0] if isinstance(data, (tuple, list)) else data
        beta = self.kl_weight()
        with tf.GradientTape() as tape:
            nll, kl = self.terms(x, training=True)
            loss = ops.mean(nll + beta * kl)
        variables = self.trainable_variables
        self.optimizer.apply(tape.gradient(loss, variables), variables)
        return self._results(loss=loss, reconstruction=ops.mean(nll), kl=ops.mean(kl),
                             neg_elbo=ops.mean(nll + kl), kl_weight=beta)

    def build_optimizers(self, element_spec: Any = None) -> None:
        """Create the optimizer's variables before ``fit``: :meth:`train_step` updates
        ``self.trainable_variables``."""
        if not self.optimizer.built:
            self.optimizer.build(self.trainable_variables)

    def test_step(self, data: Any) -> dict[str, Any]:
        x = data[0] if isinstance(data, (tuple, list)) else data
        nll, kl = self.terms(x)
        neg_elbo = ops.mean(nll + kl)
        return self._results(loss=neg_elbo, reconstruction=ops.mean(nll), kl=ops.mean(kl), neg_elbo=neg_elbo,
                             kl_weight=1.0)

    def decode(self, z: Any) -> Any:
        """The decoder's mean image in [0, 1] for latent codes ``z``."""
        out = self.decoder(z, training=False)
        return ops.sigmoid(out) if self.likelihood == "bernoulli" else ops.clip(out, 0.0, 1.0)

    def generate(self, z: Any, labels: Any = None, training: bool = False) -> Any:
        return self.decode(z)

    def inspection_parts(self) -> dict[str, keras.Model]:
        return {"encoder": self.encoder, "decoder": self.decoder}

    def call(self, x: Any, training: bool = False) -> Any:
        """The reconstruction (decoded posterior mean) in [0, 1] of raw images ``x``."""
        mean, _ = self.encode(ops.cast(x, "float32") / 255.0, training=training)
        return self.decode(mean)


@keras.saving.register_keras_serializable(PACKAGE)
class GAN(_Generative):
    """DCGAN with the non-saturating generator loss (see the module docstring).

    Compile with ``optimizer`` (the generator's) and ``d_optimizer`` (the discriminator's).

    Args:
        generator, discriminator: the networks of :func:`gan_generator` / :func:`gan_discriminator`.
        label_smoothing: one-sided smoothing of the discriminator's real targets.
    """

    def __init__(self, generator: keras.Model, discriminator: keras.Model, *, label_smoothing: float = 0.0,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.generator, self.discriminator = generator, discriminator
        self.label_smoothing = float(label_smoothing)
        self.d_optimizer: keras.optimizers.Optimizer | None = None
        self._trackers("d_loss", "g_loss", "d_real", "d_fake")
        self.built = True

    def get_config(self) -> dict[str, Any]:
        return super().get_config() | {
            "generator": keras.saving.serialize_keras_object(self.generator),
            "discriminator": keras.saving.serialize_keras_object(self.discriminator),
            "label_smoothing": self.label_smoothing}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "GAN":
        config = dict(config)
        return cls(_sub(config, "generator"), _sub(config, "discriminator"), **config)

    # -- two optimizers, saved and restored together
    def compile(self, optimizer: Any = "adam", d_optimizer: Any = None, **kwargs: Any) -> None:
        """``optimizer`` trains the generator, ``d_optimizer`` (default: a copy of it) the discriminator."""
        optimizer = keras.optimizers.get(optimizer)
        if d_optimizer is None:
            d_optimizer = optimizer.__class__.from_config(optimizer.get_config())
        super().compile(optimizer=optimizer, **kwargs)
        self.d_optimizer = keras.optimizers.get(d_optimizer)

    def get_compile_config(self) -> dict[str, Any]:
        if getattr(self, "optimizer", None) is None:
            return {}
        return {"optimizer": keras.saving.serialize_keras_object(self.optimizer),
                "d_optimizer": keras.saving.serialize_keras_object(self.d_optimizer)}

    def compile_from_config(self, config: dict[str, Any]) -> None:
        if not config:
            return
        self.compile(optimizer=keras.saving.deserialize_keras_object(config["optimizer"]),
                     d_optimizer=keras.saving.deserialize_keras_object(config["d_optimizer"]))
        self.build_optimizers()  # so that load_model restores their slots

    def build_optimizers(self, element_spec: Any = None) -> None:
        """Create both optimizers' variables, on the variables their steps update: before ``fit``
        (``foveal.engine.optim.build_before_fit``, one trace of :meth:`train_step` instead of
        two) and when a saved GAN is loaded."""
        if not self.optimizer.built:
            self.optimizer.build(self.generator.trainable_variables)
        if not self.d_optimizer.built:
            self.d_optimizer.build(self.discriminator.trainable_variables)

    # -- the step
    def _noise(self, batch: Any) -> Any:
        return keras.random.normal((batch, self.latent_dim), seed=self.noise)

    def _g(self, z: Any, labels: Any, training: bool) -> Any:
        return self.generator(z, training=training)

    def _d(self, images: Any, labels: Any, training: bool) -> Any:
        return self.discriminator(images, training=training)

    def train_step(self, data: Any) -> dict[str, Any]:
        import tensorflow as tf

        x, labels = (data[0], data[1]) if isinstance(data, (tuple, list)) else (data, None)
        real = ops.cast(x, "float32") / 127.5 - 1.0
        batch = ops.shape(real)[0]
        d_vars, g_vars = self.discriminator.trainable_variables, self.generator.trainable_variables
        fake = self._g(self._noise(batch), labels, True)
        with tf.GradientTape() as tape:
            real_logits = self._d(real, labels, True)
            fake_logits = self._d(fake, labels, True)
            d_loss = losses.discriminator_loss(real_logits, fake_logits, label_smoothing=self.label_smoothing)
        self.d_optimizer.apply(tape.gradient(d_loss, d_vars), d_vars)
        with tf.GradientTape() as tape:
            g_loss = losses.generator_loss(self._d(self._g(self._noise(batch), labels, True), labels, True))
        self.optimizer.apply(tape.gradient(g_loss, g_vars), g_vars)
        return self._results(d_loss=d_loss, g_loss=g_loss, d_real=ops.mean(ops.sigmoid(real_logits)),
                             d_fake=ops.mean(ops.sigmoid(fake_logits)))

    def generate(self, z: Any, labels: Any = None, training: bool = False) -> Any:
        return (self._g(z, labels, training) + 1.0) / 2.0

    def inspection_parts(self) -> dict[str, keras.Model]:
        return {"generator": self.generator, "discriminator": self.discriminator}

    def call(self, z: Any, training: bool = False) -> Any:
        """Images in [0, 1] from noise ``z``."""
        return self.generate(z, training=training)


@keras.saving.register_keras_serializable(PACKAGE)
class ConditionalGAN(GAN):
    """A GAN whose generator and discriminator both see the class label (see the module docstring)."""

    conditional = True

    def _g(self, z: Any, labels: Any, training: bool) -> Any:
        return self.generator([ops.convert_to_tensor(z, "float32"), ops.cast(labels, "int32")], training=training)

    def _d(self, images: Any, labels: Any, training: bool) -> Any:
        return self.discriminator([ops.convert_to_tensor(images, "float32"), ops.cast(labels, "int32")],
                                  training=training)

    def call(self, inputs: Any, training: bool = False) -> Any:
        """Images in [0, 1] from ``[z, labels]``."""
        z, labels = inputs
        return self.generate(z, labels, training=training)


def build_generative(name: str, *, image_shape: tuple[int, int, int], latent_dim: int, num_classes: int = 0,
                     width: int = 32, likelihood: str = "bernoulli", sigma: float = 0.0, kl_warmup_steps: int = 0,
                     label_smoothing: float = 0.0, dropout: float = 0.3, conditioning: str = "projection",
                     seed: int = 0) -> keras.Model:
    """A new model ``vae``, ``dcgan`` or ``cgan`` (uncompiled) for images of ``image_shape``."""
    common = dict(image_shape=image_shape, latent_dim=latent_dim, seed=seed)
    if name == "vae":
        return VAE(vae_encoder(image_shape, latent_dim, width), vae_decoder(image_shape, latent_dim, width),
                   likelihood=likelihood, sigma=sigma, kl_warmup_steps=kl_warmup_steps, name="vae", **common)
    if name == "dcgan":
        return GAN(gan_generator(image_shape, latent_dim, width), gan_discriminator(image_shape, width, dropout=dropout),
                   label_smoothing=label_smoothing, name="dcgan", **common)
    if name == "cgan":
        if num_classes < 2:
            raise ConfigError(f"cgan needs labelled data with at least two classes (found {num_classes})",
                              hint="use --model dcgan for unlabelled images")
        return ConditionalGAN(gan_generator(image_shape, latent_dim, width, num_classes),
                              gan_discriminator(image_shape, width, num_classes, dropout=dropout,
                                                conditioning=conditioning),
                              label_smoothing=label_smoothing, name="cgan", num_classes=num_classes, **common)
    raise ConfigError(f"unknown generative model {name!r}", hint=f"use one of {', '.join(MODEL_NAMES)}")


__all__ = ["GAN", "MODEL_NAMES", "VAE", "ConditionalGAN", "build_generative", "gan_discriminator", "gan_generator",
           "vae_decoder", "vae_encoder"]
