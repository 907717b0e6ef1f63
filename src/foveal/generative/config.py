"""``GenerateConfig``: every option of ``foveal generate train``.

Shared run options (epochs, batch size, optimizer, seed, time budget, output, ...) come from
:class:`~foveal.engine.config.RunConfig`; the fields here are the generative models' own.
``0`` for ``latent_dim`` and ``learning_rate`` means the model's usual value (see
:meth:`GenerateConfig.resolved_latent_dim` and :meth:`GenerateConfig.resolved_learning_rate`).

Example:
    >>> cfg = GenerateConfig(data="mnist", model="cgan", epochs=5)
    >>> cfg.resolved_latent_dim(), cfg.resolved_learning_rate()
    (100, 0.0002)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from foveal.configtools import option
from foveal.engine.config import RunConfig
from foveal.errors import ConfigError, require_all

GenerativeModel = Literal["vae", "dcgan", "cgan"]


@dataclass
class GenerateConfig(RunConfig):
    """All options of a generative training run (see ``foveal generate train --help``)."""

    data: str | None = option(None, "(required) the images: an image folder (one subfolder per class; cgan needs "
                              "classes), IDX/CIFAR folder, .npz, .tfrecord, or mnist / fashion_mnist", group="data")
    val_split: float = option(0.05, "seeded fraction of train held out (VAE validation ELBO; real images for the "
                              "per-epoch sample quality)", group="data")
    test_split: float = option(0.1, "seeded fraction of train held out for testing when the data has no test part",
                               group="data")
    image_size: list[int] = option([], "stretch images to SIZE or HEIGHT WIDTH, a multiple of 4 (empty: the data's "
                                   "size)", group="data")
    channels: int = option(0, "1 (gray) or 3 (RGB); 0: the data's (a folder mixing gray and colour files is refused)",
                           group="data")

    # model
    model: GenerativeModel = option("vae", "vae (variational auto-encoder), dcgan, or cgan (class-conditional GAN)",
                                    group="model")
    latent_dim: int = option(0, "size of the latent code (0: 16 for vae, 100 for GANs; 2 gives the VAE's 2-D "
                             "manifold figure)", group="model")
    width: int = option(32, "filters of the first convolution (doubled at each stride-2 stage)", group="model")
    likelihood: Literal["bernoulli", "gaussian"] = option(
        "bernoulli", "VAE decoder: bernoulli (pixels in [0, 1] as probabilities) or gaussian", group="model")
    sigma: float = option(0.0, "VAE gaussian: fixed pixel standard deviation in [0, 1] units (0: learned)",
                          group="model")
    kl_warmup_epochs: float = option(0.0, "VAE: epochs over which the KL weight rises linearly from 0 to 1",
                                     group="model")
    label_smoothing: float = option(0.0, "GANs: one-sided smoothing of the discriminator's real targets",
                                    group="model")
    dropout: float = option(0.3, "GANs: dropout after each discriminator convolution", group="model")
    conditioning: Literal["concat", "projection"] = option(
        "projection", "cgan: how the discriminator sees the class: projection (class embedding . features added "
        "to the logit, Miyato & Koyama 2018; the default: 97% requested-class accuracy on MNIST where concat had "
        "83-88%, recipes/generative.md) or concat (a learnt label plane joined to the image)", group="model")

    # training (redeclared defaults)
    batch_size: int = option(64, "images per step", group="training")
    learning_rate: float = option(0.0, "peak learning rate (0: 1e-3 for vae, 2e-4 for GANs)", group="training")
    schedule: Literal["constant", "step", "exponential", "cosine", "one-cycle"] = option(
        "constant", "learning-rate schedule", group="training")
    beta_1: float = option(0.5, "Adam's first-moment decay for GANs (0.5, Radford et al. 2016); the VAE uses 0.9",
                           group="training")
    monitor: str = option("auto", "metric that picks best.keras: auto (vae: val_loss, the negative ELBO; GANs: "
                          "frechet when a classifier judges samples, else the last epoch)", group="training")

    # sample quality
    classifier: str = option("auto", "classifier whose features judge samples: auto (train a small one on the "
                             "training images, saved as RUN/classifier.keras), none, or a foveal .keras file "
                             "trained on the same data", group="quality")
    classifier_epochs: int = option(2, "epochs of the auto classifier", group="quality")
    quality_samples: int = option(1000, "generated and real images compared each epoch and at the end "
                                  "(0: no per-epoch scores)", group="quality")
    inception_weights: str | None = option(None, "InceptionV3 weights for the standard FID at the end: a .h5 "
                                           "file from keras.applications (include_top false or true), or imagenet "
                                           "(downloaded once by Keras; offline: the file, by hand)", group="quality")

    def validate(self) -> None:
        """Check ranges that the types alone cannot express."""
        from dataclasses import replace

        replace(self, learning_rate=self.resolved_learning_rate()).validate_run()
        checks = [
            (self.latent_dim >= 0, "latent_dim must not be negative"),
            (self.width >= 1, "width must be at least 1"),
            (self.sigma >= 0 and self.kl_warmup_epochs >= 0, "sigma and kl_warmup_epochs must not be negative"),
            (0.0 <= self.label_smoothing < 1.0 and 0.0 <= self.dropout < 1.0,
             "label_smoothing and dropout must be in [0, 1)"),
            (0.0 <= self.beta_1 < 1.0, "beta_1 must be in [0, 1)"),
            (self.channels in (0, 1, 3), "channels must be 0 (the data's), 1 or 3"),
            (self.quality_samples >= 0 and self.classifier_epochs >= 1,
             "quality_samples must not be negative and classifier_epochs at least 1"),
            (len(self.image_size) in (0, 1, 2) and all(s > 0 for s in self.image_size),
             "image_size takes SIZE or HEIGHT WIDTH"),
        ]
        require_all(checks)
        if self.freeze_backbone_epochs:
            raise ConfigError("--freeze-backbone-epochs does not apply to generative models (they have no backbone)")
        if self.mixed_precision != "none":
            raise ConfigError("--mixed-precision is not available for generative models yet",
                              hint="leave out --mixed-precision (they train in float32)")

    @property
    def image_hw(self) -> tuple[int, int] | None:
        return (int(self.image_size[0]), int(self.image_size[-1])) if self.image_size else None

    @property
    def is_gan(self) -> bool:
        return self.model in ("dcgan", "cgan")

    def resolved_latent_dim(self) -> int:
        return self.latent_dim or (16 if self.model == "vae" else 100)

    def resolved_learning_rate(self) -> float:
        return self.learning_rate or (1e-3 if self.model == "vae" else 2e-4)


__all__ = ["GenerateConfig", "GenerativeModel"]
