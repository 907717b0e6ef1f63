"""``DetectConfig``: every option of ``foveal detect train`` (and ``foveal train --task detect``).

One dataclass drives the command-line options, the YAML file and the ``config.yaml`` written
into each run folder (see :mod:`foveal.configtools`).

Example:
    >>> cfg = DetectConfig(data="boxes/annotations.json", epochs=40, image_size=[320])
    >>> cfg.validate()
    >>> cfg.image_hw
    (320, 320)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from foveal.configtools import option
from foveal.engine.config import RunConfig
from foveal.errors import ConfigError, require_all

DEFAULT_BACKBONE_OPTIONS = {"width": 16}
STRIDE = 32  # the coarsest grid: every input side must be a multiple of it


@dataclass
class DetectConfig(RunConfig):
    """All options of a detector training run (see ``foveal detect train --help``)."""

    # data
    data: str | None = option(None, "box annotations (required): a Pascal VOC folder (annotations/, images/, optional "
                       "train.txt/val.txt/test.txt), a COCO JSON, a YOLO folder or a CSV file", group="data")
    test_data: str | None = option(None, "separate test annotations (else the dataset's test split, or "
                                   "--test-split of train)", group="data")
    extra_data: str | None = option(None, "a second source of training boxes mixed into every epoch, e.g. "
                                    "composites from `foveal datasets synth composite` (its train split; its "
                                    "classes must be among --data's); validation and test stay --data's",
                                    group="data")
    extra_ratio: float = option(0.5, "fraction of each epoch's training images drawn from --extra-data: every "
                                "real training image once plus ratio/(1-ratio) times as many extra ones",
                                group="data")
    val_split: float = option(0.1, "fraction of train held out for validation when the dataset has no val split",
                              group="data")
    adapt_target: str | None = option(None, "adapt the detector to these unlabelled target images: a folder of "
                                      "images, or a box dataset whose train split is read without its boxes (its "
                                      "test split, if any, is scored as target_map50 for the report only)",
                                      group="adaptation")
    adapt_method: Literal["coral", "dann", "adabn"] = option(
        "coral", "with --adapt-target: coral (Deep CORAL between the backbone map's source and target "
        "covariances), dann (a domain classifier behind gradient reversal on the backbone map, Chen et al. "
        "2018's image-level adaptation) or adabn (no domain loss: the batch-norm statistics re-estimated on the "
        "target images after training, Li et al. 2017)", group="adaptation")
    target_statistics: bool = option(False, "with --adapt-method coral or dann: also re-estimate the batch-norm "
                                      "statistics on the target images after training (AdaBN; adabn always does); "
                                      "best.keras keeps them, the report gives the target mAP before and after",
                                      group="adaptation")
    feature_plot: Literal["pca", "tsne", "none"] = option(
        "pca", "with --adapt-target: the report's picture of the source and target images' pooled backbone "
        "features (before and after AdaBN, or beside --adapt-baseline's)", group="adaptation")
    adapt_baseline: str | None = option(None, "with --adapt-target: a source-only detector (.keras) whose features "
                                        "the report's picture shows beside the adapted ones (\"before\")",
                                        group="adaptation")
    adapt_weight: float | None = option(None, "the adaptation weight, reached by the DANN paper's ramp "
                                        "2/(1+exp(-10p))-1 (default: 1 for coral, 0.1 for dann)", group="adaptation")
    adapt_features: Literal["positions", "pooled"] = option(
        "positions", "the backbone map's samples: every position of every image (positions) or one mean vector "
        "per image (pooled)", group="adaptation")
    adapt_normalize: bool = option(False, "coral: divide the CORAL distance by the fourth power of the features' "
                                   "scale (their mean variance, both domains), so --adapt-weight does not depend on "
                                   "the backbone's activation scale", group="adaptation")
    adapt_units: list[int] = option([256], "dann: hidden ReLU layers of the domain classifier", group="adaptation")
    test_split: float = option(0.2, "fraction of train held out for testing when there is no test split", group="data")
    image_size: list[int] = option([256], "input SIZE or HEIGHT WIDTH, multiples of 32", group="data")
    multi_scale: list[int] = option([], "training sizes drawn per batch (YOLOv2 multi-scale), e.g. "
                                    "'224 256 288 320'; empty: train at --image-size only", group="data")
    keep_aspect: bool = option(False, "letterbox (pad) images to the input instead of stretching them", group="data")
    channels: int = option(3, "1 (gray) or 3 (RGB)", group="data")
    augment: str = option("detect", "box-aware augmentation: none, light, detect, or a list like "
                          "'flip,crop=0.5,min_visible=0.3,translate=0.1,brightness=0.2'", group="data")
    max_boxes: int = option(100, "boxes kept per image (more are dropped with a warning)", group="data")
    clip_tolerance: float = option(3.0, "pixels a box may stick out of its image and be clipped (with a "
                                   "warning) rather than refused", group="data")

    # model
    detector: Literal["yolo", "faster-rcnn"] = option("yolo", "detector kind: yolo (one stage, YOLOv2/v3 heads) or "
                                                      "faster-rcnn (region proposals + RoI head, two stages)",
                                                      group="model")
    backbone: str = option("resnet18", "backbone architecture (see `foveal models`)", group="model")
    backbone_options: dict[str, Any] = option(DEFAULT_BACKBONE_OPTIONS, "backbone options (the default suits "
                                              "resnet18; use {} for others)", group="model")
    backbone_weights: str | None = option(None, "a .keras classifier of the same backbone trained by "
                                          "`foveal train` (e.g. on CIFAR-10): its weights start the "
                                          "backbone; matched by layer name and shape", group="model")
    preprocessing: str | None = option(None, "rescale, tf, torch, caffe or none (default: the backbone's, or "
                                       "the --backbone-weights model's)", group="model")
    scales: int = option(1, "1 (YOLOv2: one grid at stride 32) or 3 (YOLOv3: strides 8, 16, 32)", group="model")
    anchors: int = option(5, "anchor boxes per scale, chosen by k-means with the IoU distance on the training "
                          "boxes", group="model")
    head_width: int | None = option(None, "YOLO: channels of the head's convolutions (default: the model's); "
                                    "Faster R-CNN: units of the two fully connected layers (default: 256)",
                                    group="model")

    # Faster R-CNN
    rcnn_level: str = option("P4", "Faster R-CNN: the backbone feature map the RPN and RoI pooling read "
                             "(P4: stride 16, as VGG-16's conv5 in the paper)", group="faster-rcnn")
    fpn: bool = option(False, "Faster R-CNN: a feature pyramid (FPN, Lin et al. 2017) on the backbone's P2..P5: "
                       "the RPN on P2..P6 with one anchor size per level times --anchor-scales, RoIs pooled from "
                       "the level their size picks (for small objects), the RPN box term divided by the sampled "
                       "anchors (--rcnn-options rpn_box_norm=locations: by the anchor positions, as the single "
                       "map); default: the one map --rcnn-level", group="faster-rcnn")
    fpn_width: int = option(256, "Faster R-CNN with --fpn: channels of the pyramid's maps (the paper: 256)",
                            group="faster-rcnn")
    anchor_sizes: list[float] = option([], "Faster R-CNN: anchor sizes in input pixels (square roots of the "
                                       "areas), e.g. '32 64 128'; empty: three chosen from the training boxes "
                                       "(their sqrt(area) at the 1/6, 1/2 and 5/6 quantiles), or with --fpn one "
                                       "per level P2..P6, 4 x stride: 16 32 64 128 256 (RetinaNet's)",
                                       group="faster-rcnn")
    anchor_scales: list[float] = option([], "Faster R-CNN: factors applied to every anchor size, e.g. '1 1.26 "
                                        "1.587' (RetinaNet's 2^0, 2^(1/3), 2^(2/3)); empty: 1, or with --fpn and "
                                        "no --anchor-sizes those three", group="faster-rcnn")
    anchor_ratios: list[float] = option([0.5, 1.0, 2.0], "Faster R-CNN: anchor aspect ratios (height / width)",
                                        group="faster-rcnn")
    roi_pool: Literal["align", "max"] = option("align", "Faster R-CNN: RoI Align (bilinear) or RoI max pooling "
                                               "(Fast R-CNN, the texts' figure)", group="faster-rcnn")
    rpn_batch: int = option(256, "Faster R-CNN: anchors sampled per image for the RPN loss (at most half "
                            "positive)", group="faster-rcnn")
    roi_batch: int = option(512, "Faster R-CNN: RoIs sampled per image for the second stage (a quarter "
                            "foreground)", group="faster-rcnn")
    rpn_lambda: float = option(10.0, "Faster R-CNN: weight of the RPN box term (the paper's lambda)",
                               group="faster-rcnn")
    rcnn_training: Literal["joint", "alternating"] = option(
        "joint", "Faster R-CNN: joint (approximate joint training: one fit of all four losses) or alternating "
        "(the paper's 4 steps, --epochs split in four: RPN; detection head on its proposals; RPN layers on the "
        "frozen backbone; head layers on the frozen backbone)", group="faster-rcnn")
    rcnn_options: dict[str, Any] = option({}, "Faster R-CNN: other settings, e.g. 'post_nms_train=1000,"
                                          "post_nms_test=300,rpn_positive_iou=0.7,roi_positive_fraction=0.25' "
                                          "(see foveal.detection.faster_rcnn.RCNNSettings)", group="faster-rcnn")

    # loss
    lambda_coord: float = option(5.0, "weight of the box term (YOLO: 5)", group="loss")
    lambda_noobj: float = option(0.5, "weight of the no-object term (YOLO: 0.5)", group="loss")
    ignore_threshold: float = option(0.5, "predictions overlapping a true box above this IoU add no "
                                     "no-object loss (YOLOv3)", group="loss")

    # post-processing
    score_threshold: float = option(0.25, "detections scoring below this are dropped", group="postprocess")
    iou_threshold: float = option(0.45, "non-max suppression overlap", group="postprocess")
    max_detections: int = option(100, "detections kept per image", group="postprocess")
    class_aware_nms: bool = option(True, "suppress overlaps only within a class", group="postprocess")

    # optimisation
    epochs: int = option(60, "number of epochs", group="training")
    batch_size: int = option(8, "images per step", group="training")
    learning_rate: float = option(1e-3, "peak learning rate", group="training")
    warmup_epochs: float = option(1.0, "linear warm-up epochs", group="training")
    eval_every: int = option(1, "compute the validation mAP@0.5 every N epochs (it picks best.keras)",
                             group="training")
    monitor: str = option("val_map50", "metric that picks best.keras: val_map50 or val_loss", group="training")

    # outputs
    name: str | None = option(None, "run folder name (default: detect-BACKBONE-DATA-TIMESTAMP)", group="output")
    report_images: int = option(12, "test images drawn in the report", group="output")

    def validate(self) -> None:
        """Check ranges that the types alone cannot express."""
        from foveal.data.box_augment import parse_box_augment

        self.validate_run()
        sizes = [*self.image_size, *self.multi_scale]
        checks = [
            (0.0 <= self.val_split < 1.0 and 0.0 <= self.test_split < 1.0, "val_split and test_split must be in [0, 1)"),
            (self.val_split + self.test_split < 1.0, "val_split + test_split must be below 1"),
            (len(self.image_size) in (1, 2), "image_size must be SIZE or HEIGHT WIDTH"),
            (0.0 < self.extra_ratio < 1.0, "extra_ratio must be in (0, 1)"),
            (not self.extra_data or self.distribute == "none", "extra_data is not supported with --distribute yet"),
            (not self.adapt_target or self.distribute == "none", "adapt_target is not supported with --distribute"),
            (not self.adapt_target or self.adapt_method == "adabn" or self.detector == "yolo"
             or self.rcnn_training == "joint",
             "adapt_target needs --rcnn-training joint (alternating training freezes the backbone it adapts)"),
            (self.adapt_weight is None or self.adapt_weight >= 0, "adapt_weight must not be negative"),
            (bool(self.adapt_target) or not (self.target_statistics or self.adapt_baseline),
             "target_statistics and adapt_baseline need --adapt-target (the target images)"),
            (len(self.adapt_units) >= 1 and all(u >= 1 for u in self.adapt_units),
             "adapt_units must be one or more positive layer sizes"),
            (all(s >= STRIDE and s % STRIDE == 0 for s in sizes),
             f"image_size and multi_scale sizes must be multiples of {STRIDE} (the coarsest grid's stride)"),
            (self.channels in (1, 3), "channels must be 1 or 3"),
            (self.scales in (1, 3), "scales must be 1 (YOLOv2) or 3 (YOLOv3)"),
            (self.anchors >= 1 and self.max_boxes >= 1 and self.max_detections >= 1,
             "anchors, max_boxes and max_detections must be at least 1"),
            (0.0 <= self.score_threshold < 1.0 and 0.0 < self.iou_threshold <= 1.0
             and 0.0 < self.ignore_threshold <= 1.0, "score_threshold must be in [0, 1), the IoU thresholds in (0, 1]"),
            (min(self.lambda_coord, self.lambda_noobj) >= 0, "loss weights must not be negative"),
            (self.eval_every >= 1 and self.report_images >= 0, "eval_every must be >= 1; report_images not negative"),
            (self.monitor in ("val_map50", "val_loss", "loss"), "monitor must be val_map50, val_loss or loss"),
            (self.fpn_width >= 1, "fpn_width must be at least 1"),
            (not self.fpn or self.detector == "faster-rcnn", "--fpn is an option of --detector faster-rcnn"),
            (not (self.fpn and self.adapt_target), "--adapt-target adapts one backbone map; leave out --fpn with it"),
        ]
        require_all(checks)
        parse_box_augment(self.augment)
        if self.detector == "faster-rcnn":
            self.rcnn_settings()  # refuses unknown or out-of-range settings now
        if self.detector == "faster-rcnn" and self.rcnn_training == "alternating":
            if self.epochs < 4:
                raise ConfigError("--rcnn-training alternating needs at least 4 epochs (its four steps split them)")
            if self.freeze_backbone_epochs:
                raise ConfigError("--rcnn-training alternating plans its own frozen steps",
                                  hint="leave out --freeze-backbone-epochs")

    def rcnn_settings(self) -> dict[str, Any]:
        """The Faster R-CNN settings of these options (anchor sizes as given: empty means "from the data")."""
        from foveal.detection.faster_rcnn import RCNNSettings

        chosen = {"anchor_ratios": list(self.anchor_ratios), "rpn_batch": self.rpn_batch,
                  "roi_batch": self.roi_batch, "rpn_lambda": self.rpn_lambda, **dict(self.rcnn_options)}
        if self.anchor_sizes:
            chosen["anchor_sizes"] = list(self.anchor_sizes)
        if self.anchor_scales:
            chosen["anchor_scales"] = list(self.anchor_scales)
        RCNNSettings.from_dict(chosen)
        if self.fpn and self.anchor_sizes and len(self.anchor_sizes) != 5:
            raise ConfigError(f"--fpn needs one anchor size per RPN level P2..P6 (5), got {len(self.anchor_sizes)}",
                              hint="e.g. --anchor-sizes 16 32 64 128 256 (4 x stride), or leave it out")
        return chosen

    @property
    def model(self) -> str:
        """The backbone's name, after ``faster-rcnn-`` for a Faster R-CNN (run folders are named after it)."""
        return self.backbone if self.detector == "yolo" else f"{self.detector}-{self.backbone}"

    @property
    def image_hw(self) -> tuple[int, int]:
        return (int(self.image_size[0]), int(self.image_size[-1]))
