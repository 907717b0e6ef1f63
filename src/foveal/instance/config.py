"""``InstanceConfig``: every option of ``foveal instance train``.

One dataclass drives the command-line options, the YAML file and the run folder's
``config.yaml`` (see :mod:`foveal.configtools`). ``--model`` picks the model family
(:data:`foveal.instance.task.FAMILIES`): ``mask-rcnn`` here; a second family adds its name and
its options beside these.

Example:
    >>> cfg = InstanceConfig(data="shapes/", image_size=[128])
    >>> cfg.validate()
    >>> cfg.image_hw, cfg.model
    ((128, 128), 'mask-rcnn')
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from foveal.configtools import option
from foveal.detection.config import DEFAULT_BACKBONE_OPTIONS
from foveal.detection.two_stage_run import TwoStageOptions
from foveal.engine.config import RunConfig
from foveal.errors import require_all

STRIDE = 32


@dataclass
class InstanceConfig(RunConfig):
    """All options of an instance segmentation run (see ``foveal instance train --help``)."""

    # data
    data: str | None = option(None, "COCO instances (required): a .json file (polygons or RLE masks), a folder "
                              "of *train*/*val*/*test* .json files (and its annotations/ subfolder), or a folder of "
                              "images/ + instances/ label maps (pixel = instance id, one class) or Pascal VOC's "
                              "JPEGImages/ + SegmentationObject/ (+ SegmentationClass/), read as `foveal datasets "
                              "instances to-coco` converts it", group="data")
    images: str | None = option(None, "image folder of the COCO files (default: found beside them)", group="data")
    test_data: str | None = option(None, "separate test annotations, a file or a label-map folder (else the "
                                   "dataset's test file, or --test-split of train)", group="data")
    val_split: float = option(0.1, "fraction of train held out for validation when there is no val file",
                              group="data")
    test_split: float = option(0.2, "fraction of train held out for testing when there is no test file",
                               group="data")
    image_size: list[int] = option([256], "input SIZE or HEIGHT WIDTH, multiples of 32 (images are stretched)",
                                   group="data")
    channels: int = option(3, "1 (gray) or 3 (RGB)", group="data")
    augment: str = option("instance", "instance-aware augmentation: none, light, instance (flip, crop, scale, "
                          "colour), or detection's list like 'flip,vflip,crop=0.5,scale=0.25,min_visible=0.5,"
                          "brightness=0.2'", group="data")
    max_instances: int = option(50, "instances kept per image (the largest)", group="data")

    # model
    model: Literal["mask-rcnn", "unet-watershed"] = option(
        "mask-rcnn", "model family: mask-rcnn (Faster R-CNN + a mask head) or unet-watershed (a U-Net on "
        "background/interior (per class)/boundary targets + marker watershed)", group="model")
    backbone: str = option("resnet18", "backbone architecture (see `foveal models`)", group="model")
    backbone_options: dict[str, Any] = option(DEFAULT_BACKBONE_OPTIONS, "backbone options (the default suits "
                                              "resnet18; use {} for others)", group="model")
    backbone_weights: str | None = option(None, "a .keras classifier of the same backbone whose weights start the "
                                          "backbone (matched by layer name and shape)", group="model")
    preprocessing: str | None = option(None, "rescale, tf, torch, caffe or none (default: the backbone's)",
                                       group="model")
    head_width: int = option(256, "units of the box head's two fully connected layers", group="model")
    mask_width: int = option(128, "channels of the mask head's convolutions (the paper: 256)", group="model")
    mask_convs: int = option(4, "3x3 convolutions of the mask head before its upsampling (the paper: 4)",
                             group="model")

    # Faster R-CNN (the detector under the masks)
    rcnn_level: str = option("P4", "the backbone feature map the RPN and RoI Align read (P4: stride 16)",
                             group="mask-rcnn")
    fpn: bool = option(False, "a feature pyramid (FPN, Lin et al. 2017) on the backbone's P2..P5: the RPN on "
                       "P2..P6 with one anchor size per level times --anchor-scales, RoIs pooled from the level "
                       "their size picks (for small objects), the RPN box term divided by the sampled anchors "
                       "(--rcnn-options rpn_box_norm=locations: by the anchor positions, as the single map); "
                       "default: the one map --rcnn-level", group="mask-rcnn")
    fpn_width: int = option(256, "with --fpn: channels of the pyramid's maps (the paper: 256)", group="mask-rcnn")
    anchor_sizes: list[float] = option([], "anchor sizes in input pixels; empty: three from the training boxes, or "
                                       "with --fpn one per level P2..P6, 4 x stride: 16 32 64 128 256 "
                                       "(RetinaNet's)", group="mask-rcnn")
    anchor_scales: list[float] = option([], "factors applied to every anchor size, e.g. '1 1.26 1.587' "
                                        "(RetinaNet's 2^0, 2^(1/3), 2^(2/3)); empty: 1, or with --fpn and no "
                                        "--anchor-sizes those three", group="mask-rcnn")
    anchor_ratios: list[float] = option([0.5, 1.0, 2.0], "anchor aspect ratios (height / width)", group="mask-rcnn")
    rpn_batch: int = option(256, "anchors sampled per image for the RPN loss", group="mask-rcnn")
    roi_batch: int = option(128, "RoIs sampled per image for the second stage (a quarter foreground; the "
                            "foreground ones train the mask head)", group="mask-rcnn")
    rpn_lambda: float = option(10.0, "weight of the RPN box term", group="mask-rcnn")
    rcnn_options: dict[str, Any] = option({}, "other Faster R-CNN settings, e.g. 'post_nms_train=500,"
                                          "post_nms_test=100' (see foveal.detection.faster_rcnn.RCNNSettings)",
                                          group="mask-rcnn")

    # U-Net + watershed (--model unet-watershed; see foveal.instance.watershed_family)
    unet_options: dict[str, Any] = option({}, "U-Net builder options (default: width=16,depth=4,batch_norm=true)",
                                          group="unet-watershed")
    boundary_width: int = option(2, "width in pixels of the boundary class of the U-Net's targets",
                                 group="unet-watershed")
    crop_size: list[int] = option([0], "train the U-Net on random crops of SIZE or HEIGHT WIDTH of the resized "
                                  "images (0: whole images)", group="unet-watershed")
    unet_augment: str = option("standard", "the U-Net's augmentation, segmentation's grammar: none, flips, standard, "
                               "microscopy or a list like 'hflip,vflip,rot90,elastic=6' (--augment is Mask R-CNN's)",
                               group="unet-watershed")
    watershed_options: dict[str, Any] = option({}, "post-processing, e.g. 'interior_threshold=0.5,min_area=8,"
                                               "elevation=distance' (see foveal.instance.unet_watershed)",
                                               group="unet-watershed")
    marker_threshold: float | None = option(None, "the watershed's marker threshold (P(interior) above it seeds "
                                            "an instance); default: chosen at the end of training from 0.3, 0.4, "
                                            "0.5, 0.6, 0.7 by mask AP on the validation images (0.5 without them)",
                                            group="unet-watershed")

    # post-processing
    score_threshold: float = option(0.25, "detections scoring below this are dropped (drawn, reported)",
                                    group="postprocess")
    iou_threshold: float = option(0.5, "non-max suppression overlap", group="postprocess")
    max_detections: int = option(100, "detections kept per image", group="postprocess")
    mask_threshold: float = option(0.5, "a pasted mask's pixels at or above this probability are the object",
                                   group="postprocess")

    # optimisation
    epochs: int = option(30, "number of epochs", group="training")
    batch_size: int = option(8, "images per step", group="training")
    learning_rate: float = option(1e-3, "peak learning rate", group="training")
    warmup_epochs: float = option(1.0, "linear warm-up epochs", group="training")
    eval_every: int = option(1, "compute the validation mask AP50 every N epochs (it picks best.keras)",
                             group="training")
    monitor: str = option("val_mask_ap50", "metric that picks best.keras: val_mask_ap50, val_loss or loss",
                          group="training")

    # outputs
    name: str | None = option(None, "run folder name (default: instance-MODEL-DATA-TIMESTAMP)", group="output")
    report_images: int = option(12, "test images drawn in the report", group="output")

    # the detector's settings are spelled as detection spells them
    rcnn_settings = TwoStageOptions.rcnn_settings

    def validate(self) -> None:
        """Check ranges that the types alone cannot express."""
        from foveal.instance.pipeline import parse_instance_augment

        self.validate_run()
        if self.model == "unet-watershed":
            from foveal.instance.watershed_family import validate_options

            validate_options(self)
        sizes = list(self.image_size)
        checks = [
            (len(self.image_size) in (1, 2), "image_size must be SIZE or HEIGHT WIDTH"),
            (all(s >= STRIDE and s % STRIDE == 0 for s in sizes), f"image_size must be multiples of {STRIDE}"),
            (self.channels in (1, 3), "channels must be 1 or 3"),
            (self.max_instances >= 1 and self.max_detections >= 1, "max_instances and max_detections must be >= 1"),
            (min(self.head_width, self.mask_width, self.mask_convs, self.fpn_width) >= 1,
             "head_width, mask_width, mask_convs and fpn_width must be at least 1"),
            (not self.fpn or self.model == "mask-rcnn", "--fpn is an option of --model mask-rcnn"),
            (0.0 <= self.score_threshold < 1.0 and 0.0 < self.iou_threshold <= 1.0 and 0.0 < self.mask_threshold < 1.0,
             "score_threshold must be in [0, 1), iou_threshold in (0, 1], mask_threshold in (0, 1)"),
            (self.eval_every >= 1 and self.report_images >= 0, "eval_every must be >= 1; report_images not negative"),
            (self.monitor in ("val_mask_ap50", "val_loss", "loss"), "monitor must be val_mask_ap50, val_loss or loss"),
        ]
        require_all(checks)
        parse_instance_augment(self.augment)
        if self.model == "mask-rcnn":
            self.rcnn_settings()

    @property
    def image_hw(self) -> tuple[int, int]:
        return (int(self.image_size[0]), int(self.image_size[-1]))


__all__ = ["InstanceConfig"]
