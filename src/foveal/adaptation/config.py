"""``AdaptConfig``: the options of ``foveal adapt train`` (see ``--help``).

Example:
    >>> cfg = AdaptConfig(source="mnist/", target="mnist-m/", method="coral")
    >>> cfg.schedule, cfg.optimizer
    ('dann', 'sgd')
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from foveal.configtools import option
from foveal.engine.config import RunConfig
from foveal.errors import require_all

Method = Literal["dann", "coral", "mmd", "source-only"]
AdaptSchedule = Literal["dann", "constant", "step", "exponential", "cosine", "one-cycle"]


@dataclass
class AdaptConfig(RunConfig):
    """All options of a domain-adaptation run (see ``foveal adapt train --help``)."""

    # data
    source: str | None = option(None, "(required) the labelled source data: an image folder, IDX/CIFAR folder, "
                                ".npz or .tfrecord (its test split, if any, gives the source test accuracy)",
                                group="data")
    data: str | None = option(None, "the same as --source", group="data")
    target: str | None = option(None, "(required) the target data: a class folder (labels used only for "
                                "scoring and --target-labels) or a flat folder of unlabelled images; its "
                                "test split is scored", group="data")
    target_labels: int = option(0, "labelled target images per class taken from the target's training "
                                "split into the classification loss (the supervised case; 0: unsupervised)",
                                group="data")
    target_test_split: float = option(0.2, "fraction of a labelled target without a test split held out for "
                                      "scoring (never trained on with labels)", group="data")
    val_split: float = option(0.1, "fraction of the source's training images held out for validation", group="data")
    image_size: list[int] | None = option(None, "input SIZE or HEIGHT WIDTH (default: the model's)", group="data")
    channels: int | None = option(None, "1 or 3; needed when source and target differ (gray is repeated to RGB)",
                                  group="data")
    eval_images: int = option(2000, "target (and source) test images scored after every epoch for the "
                              "curves (all of them at the end)", group="data")

    # model
    model: str = option("lenet5", "classifier architecture (see `foveal models`); adaptation acts on the "
                        "input of its last dense layer", group="model")
    model_options: dict[str, Any] = option({}, "architecture options, e.g. batch_norm=true", group="model")
    preprocessing: str | None = option(None, "rescale, tf, torch, caffe or none (default: the model's)",
                                       group="model")

    # adaptation
    feature_layer: str | None = option(None, "layer whose output (feature vectors) is adapted; default: the "
                                       "architecture's choice (dann_mnist: flatten, the paper's convolutional "
                                       "features), else the input of the last dense layer", group="adaptation")
    method: Method = option("dann", "dann (gradient reversal + domain classifier, Ganin et al. 2016), coral "
                            "(Sun & Saenko 2016), mmd (Long et al. 2015) or source-only", group="adaptation")
    adapt_weight: float = option(1.0, "final weight of the adaptation term (DANN: the reversal lambda; "
                                 "CORAL/MMD: the loss weight); it ramps up as 2/(1+exp(-gamma p))-1",
                                 group="adaptation")
    gamma: float = option(10.0, "steepness of the weight ramp (the paper's 10)", group="adaptation")
    domain_units: list[int] = option([100], "hidden layer sizes of the DANN domain classifier (the paper: "
                                     "100 for MNIST, 1024 1024 for larger nets)", group="adaptation")
    per_domain_batches: bool = option(True, "run the labelled and the target batch through the network "
                                      "separately, so batch normalisation uses each domain's own batch statistics "
                                      "while training (else together)", group="adaptation")
    target_statistics: bool = option(True, "after training, re-estimate the batch-norm statistics of the saved "
                                     "classifier on target images (AdaBN, Li et al. 2017; models with batch "
                                     "normalisation only); the report gives the accuracy without it too",
                                     group="adaptation")
    baseline: bool = option(True, "also train a source-only model with the same options in the same run, "
                            "for the comparison in the report", group="adaptation")
    feature_plot: Literal["pca", "tsne", "none"] = option("pca", "picture of source and target features "
                                                          "before and after adaptation", group="adaptation")

    # optimisation (the DANN paper's: SGD, momentum 0.9, mu0 = 0.01 annealed)
    epochs: int = option(10, "number of epochs (one epoch: one pass over the labelled images)", group="training")
    batch_size: int = option(64, "labelled images per step (as many target images join them)", group="training")
    optimizer: Literal["sgd", "adam", "adamw", "nadam", "rmsprop"] = option("sgd", "optimizer", group="training")
    momentum: float = option(0.9, "momentum of sgd", group="training")
    learning_rate: float = option(0.01, "peak learning rate", group="training")
    schedule: AdaptSchedule = option("dann", "learning-rate schedule; dann: mu0/(1+10p)^0.75 (Ganin et al.)",
                                     group="training")
    monitor: str = option("progress", "metric that picks best.keras: progress (the last epoch, as the paper "
                          "does: the target has no labels to choose by), val_accuracy (source validation), ...",
                          group="training")

    # outputs
    name: str | None = option(None, "run folder name (default: adapt-MODEL-DATA-TIMESTAMP)", group="output")

    def validate(self) -> None:
        """Check ranges that the types alone cannot express."""
        self.validate_run()
        checks = [
            (self.target_labels >= 0 and self.eval_images >= 1, "target_labels must be >= 0 and eval_images >= 1"),
            (0.0 <= self.val_split < 1.0 and 0.0 < self.target_test_split < 1.0,
             "val_split must be in [0, 1) and target_test_split in (0, 1)"),
            (self.image_size is None or (len(self.image_size) in (1, 2) and min(self.image_size) >= 8),
             "image_size must be SIZE or HEIGHT WIDTH, at least 8"),
            (self.channels in (None, 1, 3), "channels must be 1 or 3"),
            (self.adapt_weight >= 0 and self.gamma >= 0, "adapt_weight and gamma must not be negative"),
            (all(u >= 1 for u in self.domain_units), "domain_units must be positive"),
            (self.mixed_precision == "none", "adaptation trains in float32 only (leave out --mixed-precision)"),
        ]
        require_all(checks)

    @property
    def image_hw(self) -> tuple[int, int] | None:
        if not self.image_size:
            return None
        return (int(self.image_size[0]), int(self.image_size[-1]))


__all__ = ["AdaptConfig"]
