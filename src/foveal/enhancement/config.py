"""``EnhanceConfig``: every option of ``foveal enhance train`` (the engine's options plus these).

Example:
    >>> cfg = EnhanceConfig(data="photos/", model="espcn", scale=3)
    >>> cfg.validate(); cfg.corruption_spec, cfg.lr_patch
    ((), 32)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from foveal.configtools import option
from foveal.engine.config import RunConfig
from foveal.errors import ConfigError, require_all

MODELS = ("denoise", "sr-upscale", "espcn", "edsr")


@dataclass
class EnhanceConfig(RunConfig):
    """All options of an enhancement training run (see ``foveal enhance train --help``)."""

    data: str | None = option(None, "(required) a folder of images (searched recursively; labels ignored) or a "
                              "dataset of arrays: an MNIST-style IDX folder, CIFAR batches, .npz, mnist, "
                              "fashion_mnist, cifar10", group="data")
    val_data: str | None = option(None, "separate validation images (else --val-split of the training images)",
                                  group="data")
    test_data: str | None = option(None, "separate test images (else the dataset's test part, else --test-split)",
                                   group="data")
    val_split: float = option(0.1, "seeded random fraction of the training images held out for validation",
                              group="data")
    test_split: float = option(0.1, "seeded random fraction held out for testing when there is no test part",
                               group="data")
    channels: int = option(0, "1 (gray) or 3 (RGB): convert every image; 0: as the images are (a folder "
                           "mixing gray and colour is refused)", group="data")
    verify: Literal["header", "full"] = option("header", "check every file's header, or decode it fully, before "
                                               "training", group="data")

    model: Literal["denoise", "sr-upscale", "espcn", "edsr"] = option(
        "denoise", "denoise (convolutional denoising auto-encoder), sr-upscale (bicubic upscaling + a "
        "U-Net-like residual FCN, the texts' route), espcn (sub-pixel convolution), edsr (EDSR-baseline)",
        group="model")
    model_options: dict[str, Any] = option({}, "builder options, e.g. width=32,depth=2,decoder=unpool (denoise; "
                                           "decoder: transposed, upsample, bilinear, unpool; encoder=resnet18 for a "
                                           "zoo encoder); blocks=8,filters=32 (edsr); levels=1,width=64 (sr-upscale)",
                                           group="model")
    scale: int = option(0, "super-resolution factor (2, 3, 4); 0: 1 for denoise, 3 for the others", group="model")
    corruption: str = option("auto", "what training undoes, in order: gaussian=SIGMA, salt-pepper=FRACTION, "
                             "jpeg=QUALITY, blur=SIGMA (a value may be a range LO-HI), or none; auto: gaussian=0.5 "
                             "for denoise, none for super-resolution", group="model")
    loss: Literal["mse", "mae"] = option("mse", "pixel loss: mean squared (PSNR's) or mean absolute error (EDSR's)",
                                         group="model")

    patch_size: int = option(96, "train on random patches of this side (of the target, high-resolution image; "
                             "a multiple of the scale); 0: whole images (all of one size)", group="data")
    patches_per_image: int = option(1, "patches cut from each image per pass", group="data")
    augment: bool = option(True, "random flips and quarter turns of the training patches", group="data")

    epochs: int = option(20, "number of epochs", group="training")
    steps_per_epoch: int = option(0, "batches per epoch (0: one patch per image per pass)", group="training")
    batch_size: int = option(16, "patches per step", group="training")
    learning_rate: float = option(1e-3, "peak learning rate", group="training")
    min_learning_rate: float = option(0.0, "the learning rate the cosine schedule ends at (ESPCN's paper: 1e-3 "
                                      "falling to 1e-4)", group="training")
    monitor: str = option("val_psnr", "metric that picks best.keras: val_psnr, val_loss, ...", group="training")

    name: str | None = option(None, "run folder name (default: enhance-MODEL-DATA-TIMESTAMP)", group="output")
    tile: int = option(512, "images with a side above this (input pixels) are enhanced in overlapping tiles",
                       group="output")
    report_images: int = option(6, "scored images shown as before/after/reference strips in the report",
                                group="output")

    def validate(self) -> None:
        """Check what the types alone cannot: ranges, the scale for the model, the corruption names."""
        from foveal.enhancement.degrade import parse_corruption
        from foveal.enhancement.models import check_options, check_scale, input_multiple

        self.validate_run()
        checks = [
            (self.channels in (0, 1, 3), "--channels must be 0 (as the images are), 1 or 3"),
            (self.patch_size >= 0 and self.patches_per_image >= 1, "--patch-size must not be negative and "
             "--patches-per-image must be at least 1"),
            (self.steps_per_epoch >= 0, "--steps-per-epoch must not be negative"),
            (self.tile >= 16, "--tile must be at least 16"),
            (0.0 <= self.min_learning_rate <= self.learning_rate,
             "--min-learning-rate must be between 0 and --learning-rate"),
            (self.report_images >= 0, "--report-images must not be negative"),
        ]
        require_all(checks)
        check_scale(self.model, self.factor)
        check_options(self.model, self.model_options)
        parse_corruption(self.corruption_text)
        step, multiple = self.patch_step, input_multiple(self.model, self.model_options)
        if self.patch_size and self.patch_size % step:
            why = f"the x{self.factor} scale" + (f" times {multiple}, what {self.model}'s input sides must be "
                                                 "multiples of" if multiple > 1 else "")
            raise ConfigError(f"--patch-size {self.patch_size} is not a multiple of {step} ({why})",
                              hint=f"use e.g. --patch-size {max(step, self.patch_size // step * step)}")

    @property
    def factor(self) -> int:
        """The scale factor (``--scale``, or the model's default)."""
        return self.scale or (1 if self.model == "denoise" else 3)

    @property
    def corruption_text(self) -> str:
        if self.corruption.strip().lower() == "auto":
            return "gaussian=0.5" if self.model == "denoise" else "none"
        return self.corruption

    @property
    def corruption_spec(self):
        from foveal.enhancement.degrade import parse_corruption

        return parse_corruption(self.corruption_text)

    @property
    def patch_step(self) -> int:
        """What the (high-resolution) patch side must be a multiple of."""
        from foveal.enhancement.models import input_multiple

        m = input_multiple(self.model, self.model_options)
        return self.factor * m

    @property
    def lr_patch(self) -> int | None:
        """The model's input patch side (None: whole images)."""
        return self.patch_size // self.factor if self.patch_size else None

    @property
    def image_hw(self) -> tuple[int, int] | None:
        return (self.lr_patch, self.lr_patch) if self.lr_patch else None


__all__ = ["MODELS", "EnhanceConfig"]
