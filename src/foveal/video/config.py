"""``VideoConfig``: every option of ``foveal video train``.

Example:
    >>> cfg = VideoConfig(data="clips/", sampling="fps:4", model="gru")
    >>> cfg.frame_hw
    (64, 64)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from foveal.configtools import option
from foveal.engine.config import RunConfig
from foveal.errors import require_all

VideoModel = Literal["lstm", "gru", "bilstm", "bigru", "avgpool", "cnn-lstm", "convlstm", "r2plus1d"]


@dataclass
class VideoConfig(RunConfig):
    """All options of a video classifier run (see ``foveal video train --help``)."""

    # data
    data: str | None = option(None, "a folder of class subfolders of clips (mp4, avi, mkv, webm, mov) (required)",
                              group="data")
    sampling: str = option("even:16", "frames per clip: even:N (N spread evenly), fps:R (R a second, by time "
                           "stamp) or scene:N (N in each scene; histogram-difference cuts)", group="data")
    scene_threshold: float = option(0.4, "scene:N: histogram distance (0..1) between consecutive frames that "
                                    "starts a new scene", group="data")
    max_frames: int = option(0, "longest sequence kept (longer ones are cut; 0: the longest clip's)", group="data")
    frame_size: list[int] = option([64], "frames are resized to SIZE or HEIGHT WIDTH before the backbone",
                                   group="data")
    val_split: float = option(0.2, "fraction of the clips held out for validation (stratified)", group="data")
    test_split: float = option(0.0, "fraction of the clips held out for testing (stratified)", group="data")
    feature_cache: str | None = option(None, "folder of cached per-frame features and decoded frames (default: "
                                       "OUTPUT/video-features); a second run with the same backbone, frame size "
                                       "and sampling reuses them", group="data")
    cache: Literal["auto", "memory", "none"] = option(
        "auto", "feature models: auto/memory read and write the feature cache (--feature-cache), none computes "
        "every clip's features afresh without it; end-to-end models (cnn-lstm, convlstm, r2plus1d): memory decodes "
        "the sampled frames once, keeps them in memory for every epoch and writes them to the cache, none decodes "
        "them again every epoch (nothing kept), auto is memory when they fit in 1 GiB, else none", group="data")

    # model
    backbone: str = option("airbench", "per-frame feature extractor: a classifier .keras file (e.g. trained on "
                           "CIFAR-10 by `foveal train`), a zoo name (random weights) or keras:NAME "
                           "(keras.applications with ImageNet weights; online only)", group="model")
    backbone_options: dict[str, Any] = option({}, "options of a zoo --backbone (e.g. width=16)", group="model")
    model: VideoModel = option("lstm", "lstm (the texts'), gru, bilstm, bigru or avgpool (temporal mean, the "
                               "baseline) on cached --backbone features; or end to end on raw frames: cnn-lstm "
                               "(the --backbone CNN through TimeDistributed, fine-tuned, then an LSTM), convlstm "
                               "(ConvLSTM2D) or r2plus1d ((2+1)D convolutions, Tran et al. 2018)", group="model")
    units: int = option(512, "recurrent units (the texts: 512)", group="model")
    filters: int = option(16, "convlstm and r2plus1d: channels of the first convolution (doubled per r2plus1d stage)",
                          group="model")
    dense: int = option(256, "units of the Dense layer after the recurrent one (0: none)", group="model")
    dropout: float = option(0.5, "dropout of the recurrent inputs and after the Dense layer", group="model")
    deltas: bool = option(False, "append frame-to-frame feature differences (motion) to each step", group="model")

    # evaluation
    folds: int = option(0, "also cross-validate: K stratified folds, per-fold and mean accuracy of the model and "
                        "of the avgpool baseline (0: off)", group="evaluation")
    baseline: bool = option(True, "train the avgpool baseline on the same split and report it beside the model",
                            group="evaluation")

    # training (redeclared defaults)
    epochs: int = option(30, "number of epochs", group="training")
    batch_size: int = option(16, "clips per step", group="training")
    schedule: Literal["constant", "step", "exponential", "cosine", "one-cycle"] = option(
        "constant", "learning-rate schedule", group="training")
    monitor: str = option("val_accuracy", "metric that picks best.keras (and early stopping)", group="training")

    # outputs
    name: str | None = option(None, "run folder name (default: video-MODEL-DATA-TIMESTAMP)", group="output")

    def validate(self) -> None:
        from foveal.video.sampling import Sampling

        self.validate_run()
        checks = [
            (len(self.frame_size) in (1, 2) and min(self.frame_size) >= 8, "frame_size must be SIZE or HEIGHT WIDTH, "
             "at least 8"),
            (self.units >= 1 and self.dense >= 0 and 0.0 <= self.dropout < 1.0 and self.filters >= 1,
             "units and filters must be >= 1, dense >= 0 and dropout in [0, 1)"),
            (self.folds == 0 or self.folds >= 2, "folds must be 0 (off) or at least 2"),
            (self.max_frames >= 0, "max_frames must not be negative"),
            (0.0 < self.scene_threshold < 1.0, "scene_threshold must be in (0, 1)"),
        ]
        require_all(checks)
        Sampling.parse(self.sampling)

    @property
    def end_to_end(self) -> bool:
        """True for the models trained on raw frames (cnn-lstm, convlstm, r2plus1d)."""
        from foveal.video.endtoend import END_TO_END_MODELS

        return self.model in END_TO_END_MODELS

    @property
    def frame_hw(self) -> tuple[int, int]:
        return (int(self.frame_size[0]), int(self.frame_size[-1]))


__all__ = ["VideoConfig"]
