"""The training options: one dataclass behind the YAML file (``batch_size: 64``), the CLI
(``--batch-size 64``) and the Python API; the run folder's ``config.yaml`` is what ``--resume`` reads.

Example:
    >>> cfg = TrainConfig(data="digits", model="lenet5", epochs=3)
    >>> cfg.optimizer
    'adam'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from foveal.configtools import option
from foveal.engine.config import DistributionOptions, JitCompile, MixedPrecision, Optimizer
from foveal.errors import require_all
from foveal.training.recipes import check_recipe, recipe_help

Schedule = Literal["constant", "step", "exponential", "cosine", "one-cycle", "triangle", "plateau"]


@dataclass
class TrainConfig(DistributionOptions):
    """All options of a classification training run (see ``foveal train --help``)."""

    # data
    data: str = option("digits", "dataset: an image folder, IDX/CIFAR folder, .npz, .tfrecord, "
                       "tfds:NAME, or 'digits' (scikit-learn, ships offline)", group="data")
    val_data: str | None = option(None, "a separate validation dataset (else split from train)", group="data")
    test_data: str | None = option(None, "a separate test dataset (else the dataset's own test split, "
                                   "or --test-split of train)", group="data")
    extra_data: str | None = option(None, "a second source of labelled training images mixed into every epoch, "
                                    "e.g. synthetic or generated images (its train split, or its only part; its "
                                    "classes must be among --data's, matched by name); validation and test stay "
                                    "--data's", group="data")
    extra_ratio: float = option(0.5, "fraction of each epoch's training images drawn from --extra-data: every "
                                "--data training image once plus ratio/(1-ratio) times as many extra ones",
                                group="data")
    val_split: float = option(0.1, "fraction of train held out for validation, stratified", group="data")
    test_split: float = option(0.1, "fraction of train held out for testing when the dataset has "
                               "no test split", group="data")
    image_size: list[int] | None = option(None, "input HEIGHT WIDTH (default: the model's)", group="data")
    channels: int | None = option(None, "1 (gray) or 3 (RGB); default: the data's for arrays, "
                                  "else the model's", group="data")
    keep_aspect: bool = option(False, "resize with padding to keep the aspect ratio", group="data")
    cache: Literal["auto", "memory", "none"] = option("auto", "cache decoded images in memory "
                                                       "('auto': only for in-memory datasets)", group="data")
    augment: str = option("none", "augmentation preset (none, light, standard, heavy, digits) or "
                          "ops like 'flip,rotate=10,zoom=0.1,jpeg=70'", group="data")
    class_weight: Literal["none", "balanced"] = option("none", "weight the loss by inverse class "
                                                      "frequency", group="data")
    oversample: bool = option(False, "repeat minority-class images until classes are even", group="data")
    shuffle_buffer: int = option(10_000, "shuffle buffer size (images)", group="data")
    skip_invalid: bool = option(False, "skip unreadable images with a warning instead of stopping", group="data")
    verify: Literal["header", "full", "none"] = option("header", "check image files before training: "
                                                       "headers only, full decode, or not at all", group="data")
    max_image_pixels: int = option(89_478_485, "refuse images with more pixels (decompression bombs)", group="data")

    # model
    model: str = option("lenet5", "architecture name (see `foveal models`), or a keras.applications network "
                        "such as resnet50, xception, mobilenetv2, efficientnet_b0 (for --weights imagenet)",
                        group="model")
    model_options: dict[str, Any] = option({}, "architecture options, e.g. stem=cifar,width=32", group="model")
    preprocessing: str | None = option(None, "rescale, tf, torch, caffe, standardize or none "
                                       "(default: the model's)", group="model")
    dropout: float | None = option(None, "dropout rate for models that have dropout", group="model")
    l1: float = option(0.0, "L1 penalty on every kernel", group="model")
    l2: float = option(0.0, "L2 penalty on every kernel", group="model")

    # transfer learning
    weights: str | None = option(None, "initial weights: 'imagenet' (keras.applications models such as "
                                 "resnet50, xception, mobilenetv2; downloaded once into ~/.keras/models), "
                                 "a .keras model file or a .weights.h5/.h5 weights file (layers copied by "
                                 "name where shapes match; a classifier for other classes starts fresh), "
                                 "or none for random initialisation", group="transfer learning")
    freeze: str | None = option(None, "layers frozen during the first --epochs: 'base' (everything before "
                                "the classifier head), 'all', a slice ':-10', a glob 'block5*', 're:REGEX' "
                                "or a block prefix like 'conv4'; terms combine with commas", group="transfer learning")
    fine_tune: str | None = option(None, "layers to unfreeze for the fine-tuning phase, same syntax as --freeze "
                                   "(e.g. 'conv5*', 'block5,head', or --fine-tune=-30: for the last 30 layers; "
                                   "default: all)", group="transfer learning")
    fine_tune_epochs: int = option(0, "epochs of a second, fine-tuning phase after --epochs: unfreeze the "
                                   "--fine-tune layers, recompile with --fine-tune-learning-rate and train on "
                                   "(0: no second phase)", group="transfer learning")
    fine_tune_learning_rate: float | None = option(None, "peak learning rate of the fine-tuning phase "
                                                   "(unset: --learning-rate / 10)", group="transfer learning")
    freeze_batchnorm: bool = option(False, "keep batch-norm layers frozen (inference mode) while fine-tuning, "
                                    "as advised for large pretrained bases on small datasets",
                                    group="transfer learning")
    bottleneck: bool = option(False, "train the first phase on cached features of the frozen base: one "
                              "forward pass over the data (kept in OUTPUT/.cache/bottleneck), then fast "
                              "epochs of the head only (implies --freeze base; no augmentation in that "
                              "phase)", group="transfer learning")

    # knowledge distillation
    distill_from: str | None = option(None, "teacher .keras model: train this model (the student) on "
                                      "the labels and the teacher's temperature-softened outputs "
                                      "(Hinton et al. 2015)", group="distillation")
    distill_temperature: float = option(4.0, "softmax temperature of the soft targets", group="distillation")
    distill_alpha: float = option(0.1, "weight of the hard-label loss (the soft loss gets 1 - alpha)",
                                  group="distillation")

    # speed
    recipe: str | None = option(None, "named preset filling every option not given explicitly (command "
                                "line, YAML and keyword arguments win) -- " + recipe_help(), group="training")
    mixed_precision: MixedPrecision = option(
        "none", "mixed precision: compute in bfloat16 or float16 with float32 weights and softmax "
        "(float16 adds loss scaling); saved models are float32", group="training")
    jit_compile: JitCompile = option(
        "auto", "XLA compilation of the training step (on CPU it can take longer to compile than it "
        "saves; see recipes/fast-training.md)", group="training")

    # optimisation
    epochs: int = option(10, "number of epochs", group="training")
    batch_size: int = option(64, "images per step", group="training")
    optimizer: Optimizer = option("adam", "optimizer", group="training")
    learning_rate: float = option(1e-3, "peak learning rate", group="training")
    momentum: float = option(0.9, "momentum for sgd and rmsprop", group="training")
    nesterov: bool = option(False, "Nesterov momentum for sgd", group="training")
    weight_decay: float | None = option(None, "decoupled weight decay (adamw; default 0.004)", group="training")
    bias_lr_scale: float = option(1.0, "sgd: learning-rate multiplier for the batch-norm shifts (airbench "
                                  "uses 64: with the scale fixed they are the only free BN parameters)",
                                  group="training")
    schedule: Schedule = option("constant", "learning-rate schedule", group="training")
    warmup_epochs: float = option(0.0, "linear warm-up epochs (step, exponential, cosine)", group="training")
    step_epochs: int = option(10, "step schedule: epochs between drops", group="training")
    gamma: float = option(0.1, "step: drop factor; exponential: decay per epoch; plateau: factor", group="training")
    plateau_patience: int = option(3, "plateau: epochs without improvement before the drop", group="training")
    min_learning_rate: float = option(0.0, "floor for cosine and plateau", group="training")
    label_smoothing: float = option(0.0, "label smoothing of the cross-entropy", group="training")
    lookahead: bool = option(False, "Lookahead weight averaging every 5 steps with a share that grows "
                             "to 0.77 by the end (Zhang et al. 2019, as airbench schedules it)", group="training")
    early_stopping: int = option(0, "stop after this many epochs without improvement of --monitor "
                                 "and restore the best weights (0: off)", group="training")
    monitor: str = option("val_loss", "metric watched by early stopping, plateau and best.keras", group="training")
    time_budget: float = option(0.0, "stop training after this many seconds (summed over resumes) and score the "
                                "best weights (0: no limit)", group="training")
    seed: int = option(42, "random seed for splits, shuffling, augmentation and initialisation", group="training")
    deterministic: bool = option(True, "make runs repeatable on CPU (TensorFlow op determinism)", group="training")

    # outputs
    output: str = option("runs", "folder that receives the run folder", group="output")
    name: str | None = option(None, "run folder name (default: MODEL-DATA-TIMESTAMP)", group="output")
    tensorboard: bool = option(True, "write TensorBoard logs to RUN/tensorboard", group="output")
    top_k: int = option(5, "k of the top-k accuracy", group="output")
    tta: Literal["none", "flip", "flip-shift"] = option(
        "none", "test-time augmentation of the final test evaluation: average over the mirror image "
        "(flip) and one-pixel shifts (flip-shift)", group="output")
    report_misclassified: int = option(32, "misclassified test images shown in the report", group="output")
    recalibrate_bn: int = option(0, "after training, recompute the batch-norm moving statistics of best.keras "
                                 "over this many training batches with the final weights (precise BN; "
                                 "for short, fast runs whose inference predicts one class); 0: off",
                                 group="output")
    progress: bool = option(True, "show progress bars", group="output")

    def validate(self) -> None:
        """Check ranges that the types alone cannot express."""
        checks = [
            (0.0 <= self.val_split < 1.0, "val_split must be in [0, 1)"),
            (0.0 <= self.test_split < 1.0, "test_split must be in [0, 1)"),
            (self.val_split + self.test_split < 1.0, "val_split + test_split must be below 1"),
            (self.epochs >= 1, "epochs must be at least 1"),
            (self.batch_size >= 1, "batch_size must be at least 1"),
            (self.learning_rate > 0, "learning_rate must be positive"),
            (self.bias_lr_scale > 0, "bias_lr_scale must be positive"),
            (self.bias_lr_scale == 1.0 or self.optimizer == "sgd", "bias_lr_scale is for --optimizer sgd (the airbench recipe sets it to 64; "
             "give --bias-lr-scale 1 to use another optimizer with that recipe)"),
            (0.0 <= self.label_smoothing < 1.0, "label_smoothing must be in [0, 1)"),
            (self.dropout is None or 0.0 <= self.dropout < 1.0, "dropout must be in [0, 1)"),
            (self.l1 >= 0 and self.l2 >= 0, "l1 and l2 must not be negative"),
            (self.channels in (None, 1, 3), "channels must be 1 or 3"),
            (self.image_size is None or (len(self.image_size) in (1, 2) and min(self.image_size) > 0),
             "image_size must be SIZE or HEIGHT WIDTH, positive"),
            (self.early_stopping >= 0, "early_stopping must not be negative"),
            (self.time_budget >= 0, "time_budget must not be negative"),
            (self.top_k >= 1, "top_k must be at least 1"),
            (self.recalibrate_bn >= 0, "recalibrate_bn must not be negative"),
            (self.max_image_pixels > 0, "max_image_pixels must be positive"),
            (self.fine_tune_epochs >= 0, "fine_tune_epochs must not be negative"),
            (self.fine_tune_learning_rate is None or self.fine_tune_learning_rate > 0,
             "fine_tune_learning_rate must be positive"),
            (self.fine_tune is None or self.fine_tune_epochs > 0,
             "fine_tune names the layers of a second phase: give fine_tune_epochs too"),
            (not self.bottleneck or self.freeze in (None, "base"),
             "bottleneck trains the head on features of the frozen base: use freeze 'base' or leave it out"),
            (self.distill_temperature > 0, "distill_temperature must be positive"),
            (0.0 <= self.distill_alpha <= 1.0, "distill_alpha must be in [0, 1]"),
            (not (self.distill_from and self.bottleneck), "distillation needs images, not bottleneck features: "
             "drop --bottleneck or --distill-from"),
            (self.distribute == "none" or not self.bottleneck,
             "--bottleneck is not supported with --distribute (train the head on one process)"),
            (self.distribute == "none" or not self.distill_from,
             "--distill-from is not supported with --distribute (distil on one process)"),
            (0.0 < self.extra_ratio < 1.0, "extra_ratio must be in (0, 1)"),
            (not (self.extra_data and self.bottleneck), "extra_data is not supported with --bottleneck (its "
             "features are cached from --data's images only)"),
            (not (self.extra_data and self.oversample), "extra_data is not supported with --oversample"),
            (not self.extra_data or self.distribute == "none",
             "extra_data is not supported with --distribute yet (its batch plan counts --data's images only)"),
        ]
        require_all(checks)
        if self.image_hw is not None:
            from foveal.memcheck import check_input_batch

            check_input_batch(self.batch_size, self.image_hw, self.channels or 3)
        check_recipe(self.recipe)
        self.validate_distribution()

    @property
    def explicit_options(self) -> frozenset[str]:
        """The fields given to the constructor (what a recipe must not override)."""
        return self.__dict__.get("_explicit", frozenset())

    @property
    def image_hw(self) -> tuple[int, int] | None:
        if self.image_size is None:
            return None
        return (self.image_size[0], self.image_size[-1])


def _recording_init(init):
    """Wrap the dataclass ``__init__`` to remember which fields were passed: the YAML loader and
    the CLI pass only the options the user gave, so this is what ``--recipe`` must leave alone."""
    names = [n for n, f in TrainConfig.__dataclass_fields__.items() if not f.kw_only]  # positional order

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        self.__dict__["_explicit"] = frozenset(names[:len(args)]) | frozenset(kwargs)

    __init__.__doc__ = init.__doc__
    return __init__


TrainConfig.__init__ = _recording_init(TrainConfig.__init__)  # type: ignore[method-assign]
