"""Two-stage detection in ``foveal detect train`` (issue #14, ``--detector faster-rcnn``): its
options, the detector's build (shared with the instance task's Mask R-CNN) and the detect task's
two-stage hooks; the model itself is :mod:`.faster_rcnn`, its export :mod:`.two_stage_export`.

Example:
    >>> cfg = DetectConfig(data="voc/", detector="faster-rcnn", anchor_sizes=[64, 128, 256])  # doctest: +SKIP
    >>> cfg.rcnn_settings()["anchor_sizes"]  # doctest: +SKIP
    [64, 128, 256]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from foveal.configtools import option
from foveal.errors import ConfigError
from foveal.training.runs import say

if TYPE_CHECKING:
    import keras

    from foveal.engine.plugin import Phase, RunData

#: ``foveal detect train --help``'s examples of two-stage detection
TWO_STAGE_EXAMPLES = """\
  foveal detect train --data ../shared/datasets/raccoon --detector faster-rcnn --roi-batch 128 --time-budget 1800
  foveal detect train --data voc/ --detector faster-rcnn --anchor-sizes 64 128 256 --roi-pool max --image-size 512
  foveal detect train --data voc/ --detector faster-rcnn --fpn --image-size 512   # feature pyramid, small objects
"""


@dataclass(kw_only=True)
class TwoStageOptions:
    """The ``faster-rcnn`` options of :class:`~foveal.detection.config.DetectConfig`."""

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

    def two_stage_checks(self) -> list[tuple[bool, str]]:
        """``validate``'s checks of these options (with the detector's, ``require_all`` pairs)."""
        return [(self.fpn_width >= 1, "fpn_width must be at least 1"),
                (not self.fpn or self.detector == "faster-rcnn", "--fpn is an option of --detector faster-rcnn")]

    def check_two_stage(self) -> None:
        """Refuse unknown or out-of-range Faster R-CNN settings, and an alternating plan it cannot run."""
        if self.detector != "faster-rcnn":
            return
        self.rcnn_settings()
        if self.rcnn_training == "alternating":
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


def build_two_stage(builder: Any, cfg: Any, data: RunData, **options: Any) -> keras.Model:
    """A two-stage detector (Faster R-CNN, or Mask R-CNN through the instance task) from a
    config with ``rcnn_settings()``: anchor sizes chosen from the training boxes unless given;
    ``options`` go to ``builder`` (e.g. ``build_faster_rcnn``) beside the shared ones."""
    from foveal.detection.faster_rcnn import anchor_sizes_from_boxes
    from foveal.detection.task import _on_backbone

    settings = cfg.rcnn_settings()
    fpn = bool(getattr(cfg, "fpn", False))
    if fpn:
        options.update(fpn=True, fpn_width=cfg.fpn_width)
    if "anchor_sizes" not in settings and not fpn:
        settings["anchor_sizes"] = anchor_sizes_from_boxes(data.train, cfg.image_hw)
        say(f"anchor sizes from the training boxes: {', '.join(f'{v:g}' for v in settings['anchor_sizes'])} "
            f"pixels, ratios {', '.join(f'{v:g}' for v in settings['anchor_ratios'])}")
    model = _on_backbone(builder, cfg, data, level=cfg.rcnn_level, **options, **settings)
    if fpn:
        say(f"feature pyramid {model.level}: anchor sizes {', '.join(f'{v:g}' for v in model.rcnn.anchor_sizes)} "
            f"pixels, one per level, times {', '.join(f'{v:.4g}' for v in model.rcnn.anchor_scales)}, ratios "
            f"{', '.join(f'{v:g}' for v in model.rcnn.anchor_ratios)}")
    return model


class DetectTwoStage:
    """The detect task plugin's hooks of ``--detector faster-rcnn``."""

    def build_faster_rcnn(self, cfg: Any, data: RunData) -> keras.Model:
        from foveal.detection.faster_rcnn import build_faster_rcnn

        return build_two_stage(build_faster_rcnn, cfg, data, head_width=cfg.head_width or 256,
                               roi_pool=cfg.roi_pool, class_aware=cfg.class_aware_nms)

    def phases(self, cfg: Any) -> list[Phase]:
        """Faster R-CNN's 4-step alternating training as four phases (``--rcnn-training alternating``,
        ``--epochs`` split in four, each with its own cosine schedule); else the engine's plan."""
        if cfg.detector != "faster-rcnn" or cfg.rcnn_training != "alternating":
            return super().phases(cfg)
        lengths = [cfg.epochs // 4 + (1 if i < cfg.epochs % 4 else 0) for i in range(4)]
        titles = ["step 1 of 4: backbone + RPN learn the proposals",
                  "step 2 of 4: backbone + detection head learn on the RPN's proposals (RPN frozen)",
                  "step 3 of 4: backbone frozen; the RPN layers are fine-tuned",
                  "step 4 of 4: backbone frozen; the detection head is fine-tuned"]
        from foveal.engine.plugin import Phase

        return [Phase(i + 1, lengths[i], lambda model, step=i + 1: model.set_training_step(step),
                      schedule_epochs=lengths[i], title=titles[i]) for i in range(4)]

    def faster_rcnn_card(self, cfg: Any, model: keras.Model) -> dict[str, Any]:
        """The model card's record of the detector (``training``)."""
        return {"detector": "faster-rcnn", "backbone": cfg.backbone, "rcnn_training": cfg.rcnn_training,
                "level": model.level, "stride": model.stride, "roi_pool": model.roi_pool,
                "fpn": bool(model.fpn_levels), "anchor_sizes": list(model.rcnn.anchor_sizes),
                "anchor_ratios": list(model.rcnn.anchor_ratios),
                "anchor_scales": list(model.rcnn.anchor_scales), "roi_canonical": float(model.rcnn.roi_canonical)}

    def faster_rcnn_kind(self, model: keras.Model) -> str:
        return (f"Faster R-CNN ({model.level}, stride {model.stride}, {model.rcnn.num_anchors} anchors, RoI "
                f"{model.roi_pool})")

    def faster_rcnn_summary(self, cfg: Any, model: keras.Model, card: Any) -> dict[str, Any]:
        """The report summary's first rows."""
        return {"task": f"object detection (Faster R-CNN, {cfg.rcnn_training} training)", "backbone": cfg.backbone,
                "feature map": f"{model.level} (stride {model.stride})", "RoI pooling": model.roi_pool,
                "anchors": f"{model.rcnn.num_anchors} (sizes {card.training['anchor_sizes']}, ratios "
                           f"{card.training['anchor_ratios']})"}
