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
from foveal.detection.adapt_run import AdaptOptions
from foveal.detection.two_stage_run import TwoStageOptions
from foveal.engine.config import RunConfig
from foveal.errors import require_all

DEFAULT_BACKBONE_OPTIONS = {"width": 16}
STRIDE = 32  # the coarsest grid: every input side must be a multiple of it


@dataclass
class DetectConfig(TwoStageOptions, AdaptOptions, RunConfig):
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
            (len(self.image_size) in (1, 2), "image_size must be SIZE or HEIGHT WIDTH"),
            (0.0 < self.extra_ratio < 1.0, "extra_ratio must be in (0, 1)"),
            (not self.extra_data or self.distribute == "none", "extra_data is not supported with --distribute yet"),
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
            *self.two_stage_checks(),
            *self.adaptation_checks(),
        ]
        require_all(checks)
        parse_box_augment(self.augment)
        self.check_two_stage()

    @property
    def model(self) -> str:
        """The backbone's name, after ``faster-rcnn-`` for a Faster R-CNN (run folders are named after it)."""
        return self.backbone if self.detector == "yolo" else f"{self.detector}-{self.backbone}"

    @property
    def image_hw(self) -> tuple[int, int]:
        return (int(self.image_size[0]), int(self.image_size[-1]))
