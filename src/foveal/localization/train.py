"""``foveal localize train`` and ``evaluate``: from a :class:`LocalizeConfig` to a run folder.

The run is the engine's (:mod:`foveal.engine.run`) with :class:`~foveal.localization.task.LocalizeTask`;
``metrics.json`` holds mean IoU and accuracy on the test split. Splits: the dataset's own, else
``--test-data``, else seeded fractions of the training images.

Example:
    >>> cfg = LocalizeConfig(data="../shared/datasets/raccoon", epochs=2, output="/tmp/runs")
    >>> result = train_localizer(cfg)  # doctest: +SKIP
    >>> 0.0 <= result.metrics["mean_iou"] <= 1.0  # doctest: +SKIP
    True
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from foveal.configtools import option
from foveal.data.boxes import BoxedImages, load_boxes
from foveal.engine.config import RunConfig
from foveal.errors import require_all
from foveal.tasks import trainer
from foveal.training.runs import say
from foveal.utils_io import write_metrics

if TYPE_CHECKING:  # Keras and TensorFlow wait until a run starts, so `foveal --help` stays fast
    import keras

    from foveal.models import ModelCard

DEFAULT_MODEL_OPTIONS = {"width": 16}


@dataclass
class LocalizeConfig(RunConfig):
    """All options of a localization training run (see ``foveal localize train --help``)."""

    # data
    data: str | None = option(None, "(required) box annotations: a Pascal VOC folder (annotations/, images/, "
                       "optional train.txt/val.txt/test.txt), a CSV file (filename,width,height,class,"
                       "xmin,ymin,xmax,ymax) or a folder of train*.csv/test*.csv", group="data")
    test_data: str | None = option(None, "separate test annotations (else the dataset's test split, "
                                   "or --test-split of train)", group="data")
    val_split: float = option(0.1, "fraction of train held out for validation when the dataset "
                              "has no val split", group="data")
    test_split: float = option(0.2, "fraction of train held out for testing when there is no "
                               "test split", group="data")
    image_size: list[int] = option([128], "input SIZE or HEIGHT WIDTH (images are stretched to it)", group="data")
    channels: int = option(3, "1 (gray) or 3 (RGB)", group="data")
    augment: str = option("standard", "box-aware augmentation: none, standard (flip,crop,brightness,"
                          "contrast) or a list like 'flip,crop=0.7,brightness=0.1'", group="data")
    clip_tolerance: float = option(3.0, "pixels a box may stick out of its image and be clipped "
                                   "(with a warning) rather than refused", group="data")

    # model
    model: str = option("resnet18", "backbone architecture (see `foveal models`), used without its "
                        "classifier", group="model")
    model_options: dict[str, Any] = option(DEFAULT_MODEL_OPTIONS, "backbone options (the default suits "
                                           "resnet18/geron_cnn; use {} for others)", group="model")
    preprocessing: str | None = option(None, "rescale, tf, torch, caffe or none (default: the "
                                       "backbone's)", group="model")
    pooling: Literal["avg", "flatten"] = option("avg", "how the last feature map reaches the heads: global "
                                                "average pooling (the texts') or flatten (keeps positions)",
                                                group="model")
    dropout: float = option(0.3, "dropout on the pooled features before the two heads", group="model")
    l2: float = option(0.0, "L2 penalty on every kernel", group="model")
    class_loss_weight: float = option(0.8, "weight of the class loss (Géron: 0.8)", group="model")
    box_loss_weight: float = option(0.2, "weight of the box loss (Géron: 0.2)", group="model")

    # optimisation
    epochs: int = option(60, "number of epochs", group="training")
    batch_size: int = option(16, "images per step", group="training")
    learning_rate: float = option(1e-3, "peak learning rate", group="training")
    warmup_epochs: float = option(0.0, "linear warm-up epochs", group="training")
    monitor: str = option("val_box_iou", "metric that picks best.keras (and early stopping)", group="training")

    # outputs
    name: str | None = option(None, "run folder name (default: localize-MODEL-DATA-TIMESTAMP)", group="output")
    report_images: int = option(16, "test images drawn in the report", group="output")

    def validate(self) -> None:
        """Check ranges that the types alone cannot express."""
        from foveal.localization.pipeline import parse_augment

        self.validate_run()
        checks = [
            (len(self.image_size) in (1, 2) and min(self.image_size) >= 16, "image_size must be SIZE or HEIGHT WIDTH, at least 16"),
            (self.channels in (1, 3), "channels must be 1 or 3"),
            (0.0 <= self.dropout < 1.0, "dropout must be in [0, 1)"),
            (self.l2 >= 0 and self.clip_tolerance >= 0, "l2 and clip_tolerance must not be negative"),
            (self.class_loss_weight >= 0 and self.box_loss_weight > 0,
             "box_loss_weight must be positive and class_loss_weight not negative"),
            (self.report_images >= 0, "report_images must not be negative"),
        ]
        require_all(checks)
        parse_augment(self.augment)

    @property
    def image_hw(self) -> tuple[int, int]:
        return (int(self.image_size[0]), int(self.image_size[-1]))


def load_splits(cfg: LocalizeConfig) -> dict[str, BoxedImages]:
    """Train / val / test box collections as the config asks (see the module docstring)."""
    from foveal.data.boxes.splits import load_box_splits

    parts = load_box_splits(cfg.data, test_data=cfg.test_data, val_split=cfg.val_split,  # type: ignore[arg-type]
                            test_split=cfg.test_split, seed=cfg.seed, skip_invalid=cfg.skip_invalid,
                            tolerance=cfg.clip_tolerance)
    return {name: drop_unboxed(part, len(parts["train"].class_names)) for name, part in parts.items()}


def drop_unboxed(data: BoxedImages, num_classes: int) -> BoxedImages:
    """With several classes, the images that have a box: one without has no class to learn or score."""
    if num_classes == 1:
        return data
    keep = np.flatnonzero([len(b) > 0 for b in data.boxes])
    if len(keep) < len(data):
        say(f"{data.origin}: {len(data) - len(keep)} image(s) without boxes left out (several classes)")
    return data.subset(keep)


def mean_box(data: BoxedImages) -> list[float]:
    """The mean normalised corner box of the training images: the trivial baseline."""
    from foveal.localization.pipeline import targets_of

    corners, _, valid = targets_of(data)
    return [round(float(v), 6) for v in corners[valid].mean(axis=0)] if valid.any() else [0.0, 0.0, 1.0, 1.0]


train_localizer = trainer("localize", "train_localizer", "a localizer")


def score_localizer(model: keras.Model, card: ModelCard, data: BoxedImages, *,
                    batch_size: int = 32) -> tuple[dict[str, Any], np.ndarray]:
    """Mean IoU, IoU >= 0.5 rate and class accuracy of ``model`` on ``data``.

    IoU is taken against each image's largest box (the training target) and against the best
    of all its boxes (``mean_iou_any_box``); images without boxes count only in the accuracy.
    ``baseline_mean_iou`` is the IoU of always predicting the training set's mean box.

    Returns:
        ``(metrics, predicted)``: a JSON-ready dict and the predicted normalised corners (N, 4).
    """
    import keras

    from foveal.localization.metrics import decode_boxes, iou
    from foveal.localization.pipeline import make_localization_pipeline, targets_of
    from foveal.localization.predict import check_card

    check_card(card)
    h, w, c = card.input_shape
    ds = make_localization_pipeline(data, image_size=(h, w), channels=c, batch_size=batch_size, training=False)
    outputs = model.predict(ds.map(lambda images, targets: images), verbose=0)
    predicted = keras.ops.convert_to_numpy(decode_boxes(outputs["box"]))
    class_out = np.asarray(outputs["class"])
    true, labels, valid = targets_of(data)
    ious = np.asarray(iou(predicted, true))[valid]
    scale = np.tile(data.image_sizes.astype(np.float32), 2)
    any_box = [float(np.max(np.asarray(iou(predicted[i][None], data.boxes[i] / scale[i]))))
               for i in np.flatnonzero(valid)]
    if len(card.class_names) == 1:
        correct = (class_out[:, 0] >= 0.5) == valid
    else:
        correct = (np.argmax(class_out, axis=1) == labels)[valid]
    baseline = np.asarray(iou(np.array(card.training.get("mean_box", [0, 0, 1, 1]), np.float32)[None], true))[valid]
    metrics = {
        "mean_iou": _mean(ious), "mean_iou_any_box": _mean(np.array(any_box)),
        "iou_at_0.5": _mean(ious >= 0.5), "iou_at_0.75": _mean(ious >= 0.75),
        "accuracy": _mean(correct), "baseline_mean_iou": _mean(baseline),
        "num_examples": int(len(data)), "num_boxes": int(data.num_boxes), "num_with_box": int(valid.sum()),
    }
    return metrics, predicted


def _mean(values: np.ndarray) -> float:
    return round(float(np.mean(values)), 6) if len(values) else float("nan")


def report_thumbnails(data: BoxedImages, predicted: np.ndarray, card: ModelCard, count: int,
                      size: int = 160) -> tuple[np.ndarray, list[str]] | None:
    """The first ``count`` images with the predicted (red) and true (green) box, and titles."""
    from PIL import Image, ImageOps

    from foveal.localization.metrics import iou
    from foveal.localization.pipeline import targets_of
    from foveal.prediction import example_thumbnails
    from foveal.visualize.draw import PRED_COLOR, TRUE_COLOR, draw_boxes

    if count <= 0 or len(data) == 0:
        return None
    true, _, valid = targets_of(data)

    def draw(i: int, image: np.ndarray) -> tuple[np.ndarray, str]:
        height, width = image.shape[:2]
        # Boxes were validated against the header size; the decoded size is the same.
        scale = np.array([width, height, width, height], np.float32)
        score = f"IoU {float(np.asarray(iou(predicted[i], true[i]))):.2f}" if valid[i] else "no box"
        canvas = draw_boxes(image, data.boxes[i], color=TRUE_COLOR)
        canvas = draw_boxes(canvas, [predicted[i] * scale], color=PRED_COLOR)
        return np.asarray(ImageOps.pad(Image.fromarray(canvas), (size, size), color="black")), score  # aspect kept

    return example_thumbnails(data, count, card.input_shape[2], draw)


def write_localization_report(out: Path, metrics: dict[str, Any] | None, *, title: str, summary: dict[str, Any],
                              config: dict[str, Any], history: dict[str, list[float]] | None,
                              drawn: tuple[np.ndarray, list[str]] | None) -> Path:
    """``metrics.json`` (when something was scored) and ``report.html`` in ``out``."""
    from foveal.visualize.plots import plot_image_grid
    from foveal.visualize.report import figure_section, write_task_report

    if metrics is not None:
        write_metrics(out, metrics)
    extra = []
    if drawn is not None:
        extra.append(figure_section("Test images: predicted box red, true box green",
                                    plot_image_grid(drawn[0], drawn[1], cols=4), "test images with boxes"))
    return write_task_report(out / "report.html", title=title, summary=summary, config=config, history=history,
                             extra_sections=extra)


def evaluate_localizer(model_path: str | Path, data: str, *, split: str = "test", batch_size: int = 32,
                       output: str | Path | None = None, skip_invalid: bool = False,
                       report_images: int = 16, class_map: str | dict | None = None) -> dict[str, Any]:
    """Score a saved localizer on one split (``test``, ``val`` or ``train``; a source without splits
    is all ``train``) of box annotations; ``output`` receives ``metrics.json`` and ``report.html``.
    """
    from foveal.data.splits import pick_split
    from foveal.evaluation.classes import align_boxes
    from foveal.localization.predict import check_card
    from foveal.models import load_model

    model, card = load_model(model_path)
    check_card(card)
    split, part = pick_split(load_boxes(data, skip_invalid=skip_invalid), split, data)
    part = drop_unboxed(align_boxes(part, card.class_names, class_map), len(card.class_names))
    metrics, predicted = score_localizer(model, card, part, batch_size=batch_size)
    metrics["split"] = split
    if output is not None:
        summary = {"model": str(model_path), "data": data, "split": split} | {
            k: v for k, v in metrics.items() if k != "split"}
        write_localization_report(Path(output), metrics, title="foveal localization evaluation of "
                                  f"{Path(model_path).name}", summary=summary, config={}, history=None,
                                  drawn=report_thumbnails(part, predicted, card, report_images))
    return metrics


def format_metrics(metrics: dict[str, Any]) -> str:
    """The metrics as aligned ``name  value`` lines."""
    width = max(len(k) for k in metrics)
    return "\n".join(f"{k:<{width}}  {v:.4f}" if isinstance(v, float) else f"{k:<{width}}  {v}"
                     for k, v in metrics.items())
