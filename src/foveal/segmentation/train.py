"""``foveal segment train`` and ``evaluate``: from a :class:`SegmentConfig` to a run folder.

The run is the engine's (:mod:`foveal.engine.run`) with :class:`~foveal.segmentation.task.SegmentTask`;
``metrics.json`` has pixel accuracy, per-class and mean IoU and Dice. Splits: ``--test-data``,
else the last ``--holdout N`` pairs in file order, else a seeded ``--test-split`` fraction;
``--val-data``, else a seeded ``--val-split`` fraction of what is left.

Example:
    >>> cfg = SegmentConfig(data="../shared/datasets/isbi-membrane/train", classes=["membrane", "cell"],
    ...                     foreground="membrane", holdout=5, epochs=2, output="/tmp/runs")
    >>> result = train_segmenter(cfg)  # doctest: +SKIP
    >>> 0.0 <= result.metrics["foreground_dice"] <= 1.0  # doctest: +SKIP
    True
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from foveal.configtools import option
from foveal.engine.config import RunConfig
from foveal.errors import ConfigError, DataError, require_all
from foveal.registry import did_you_mean
from foveal.tasks import trainer
from foveal.training.runs import say
from foveal.utils_io import write_metrics

if TYPE_CHECKING:  # Keras and TensorFlow wait until a run starts, so `foveal --help` stays fast
    import keras

    from foveal.models import ModelCard
    from foveal.segmentation.data import SegmentationImages


#: trainer model name -> (builder in SEGMENTATION_MODELS, options fixed by the name)
ARCHITECTURES: dict[str, tuple[str, dict[str, Any]]] = {
    "unet": ("unet", {}),
    "unet_backbone": ("unet_backbone", {}),
    "fcn8s": ("fcn", {"variant": "8s"}),
    "fcn16s": ("fcn", {"variant": "16s"}),
    "fcn32s": ("fcn", {"variant": "32s"}),
}


@dataclass
class SegmentConfig(RunConfig):
    """All options of a segmentation training run (see ``foveal segment train --help``)."""

    # data
    data: str | None = option(None, "(required) folder of images/ + masks/ (matched by file stem) or image/ + label/ (ISBI), "
                       "or a COCO instances .json (polygons or RLE; class 0 is background)", group="data")
    images: str | None = option(None, "image folder of a COCO --data file (default: found beside it, e.g. "
                                "val2017/ for annotations/instances_val2017.json)", group="data")
    val_data: str | None = option(None, "separate validation folder (else --val-split of train)", group="data")
    test_data: str | None = option(None, "separate test folder (else --holdout or --test-split of train)",
                                   group="data")
    holdout: int = option(0, "use the last N pairs (file order) of --data as the test split", group="data")
    val_split: float = option(0.1, "seeded random fraction of train held out for validation", group="data")
    test_split: float = option(0.1, "seeded random fraction of train held out for testing (when neither "
                               "--test-data nor --holdout)", group="data")
    mask_format: Literal["auto", "index", "binary", "palette"] = option(
        "auto", "index (pixel value = class; gray, or palette-mode PNGs as in Pascal VOC, whose palette index "
        "is the class), binary (0/255), palette (RGB colours listed in palette.txt) or auto", group="data")
    classes: list[str] = option([], "class names in index order; binary masks: the 0 (black) class, then "
                                "the 255 (white) class (empty: background foreground for binary masks, "
                                "class_0 class_1 ... for index masks, palette.txt's names)", group="data")
    foreground: str | None = option(None, "class reported on its own (IoU, Dice) and monitored; default: "
                                    "class 1 when there are two classes", group="data")
    ignore_label: int = option(255, "mask value meaning 'no label' (no loss, no score); binary masks "
                               "have none", group="data")
    channels: int = option(0, "1 (gray) or 3 (RGB); 0: 1 when the first image is gray, else 3", group="data")
    image_size: list[int] = option([], "stretch every image and mask to SIZE or HEIGHT WIDTH first "
                                   "(empty: keep the files' resolution)", group="data")
    crop_size: list[int] = option([256], "train on random crops of SIZE or HEIGHT WIDTH (a multiple of the "
                                  "model's stride); 0: whole images", group="data")
    augment: str = option("standard", "none, flips, standard, microscopy (with elastic deformation) or a list "
                          "like 'hflip,vflip,rot90,angle=15,scale=0.8-1.25,elastic=10,brightness=0.1,"
                          "contrast=0.1'", group="data")
    cache: Literal["auto", "memory", "none"] = option("auto", "cache decoded pairs in memory ('auto': when "
                                                       "under 1 GiB)", group="data")
    verify: Literal["full", "quick"] = option("full", "check every image before training: decode it fully, or "
                                              "read its header only", group="data")
    skip_invalid: bool = option(False, "leave out (and count) pairs with a missing partner, a mask of the wrong "
                                "size or with unknown values, or an undecodable image, instead of stopping",
                                group="data")

    # model and loss
    model: str = option("unet", f"architecture: {', '.join(ARCHITECTURES)}", group="model")
    model_options: dict[str, Any] = option({}, "builder options, e.g. width=16,depth=4,batch_norm=true for "
                                           "unet; backbone=vgg16,width=0.25,fc_filters=512 for fcn*s",
                                           group="model")
    loss: Literal["ce", "dice", "ce+dice"] = option("ce", "pixel cross-entropy, soft Dice, or their sum",
                                                    group="model")
    dice_weight: float = option(1.0, "weight of the Dice term in ce+dice", group="model")
    class_weights: str = option("none", "cross-entropy class weights: none, balanced (inverse pixel "
                                "frequency) or a list like '2,1'", group="model")
    border_weight: float = option(0.0, "U-Net border weight w0 (the paper: 10) for pixels between touching "
                                  "objects; 0: off", group="model")
    border_sigma: float = option(5.0, "U-Net border weight width sigma in pixels (the paper: 5)", group="model")
    border_objects: str | None = option(None, "class whose connected regions are the objects of the border "
                                        "weights (default: class 1)", group="model")

    # optimisation
    epochs: int = option(50, "number of epochs", group="training")
    steps_per_epoch: int = option(0, "batches per epoch (0: one pass over the training images)", group="training")
    batch_size: int = option(8, "crops (or images) per step", group="training")
    learning_rate: float = option(1e-3, "peak learning rate", group="training")
    warmup_epochs: float = option(0.0, "linear warm-up epochs", group="training")
    monitor: str = option("auto", "metric that picks best.keras: auto (val_foreground_dice, or val_mean_iou "
                          "without a foreground class), or e.g. val_mean_iou, val_loss", group="training")

    # outputs
    name: str | None = option(None, "run folder name (default: segment-MODEL-DATA-TIMESTAMP)", group="output")
    tile: int = option(1024, "images with a side above this are predicted in overlapping tiles of this size",
                       group="output")
    report_images: int = option(6, "scored images shown as overlays in the report", group="output")

    def validate(self) -> None:
        """Check ranges that the types alone cannot express."""
        from foveal.segmentation.pipeline import parse_augment

        self.validate_run()
        checks = [
            (self.holdout >= 0, "holdout must not be negative"),
            (len(self.image_size) in (0, 1, 2) and all(v >= 8 for v in self.image_size),
             "image_size must be empty, SIZE or HEIGHT WIDTH, at least 8"),
            (len(self.crop_size) in (0, 1, 2) and all(v >= 0 for v in self.crop_size),
             "crop_size must be 0, SIZE or HEIGHT WIDTH"),
            (self.channels in (0, 1, 3), "channels must be 0 (auto), 1 or 3"),
            (self.steps_per_epoch >= 0, "steps_per_epoch must not be negative"),
            (self.dice_weight >= 0 and self.border_weight >= 0 and self.border_sigma > 0,
             "dice_weight and border_weight must not be negative, border_sigma must be positive"),
            (self.report_images >= 0, "report_images must not be negative"),
            (self.tile >= 32, "tile must be at least 32"),
            (0 <= self.ignore_label <= 255, "ignore_label must be in 0..255"),
        ]
        require_all(checks)
        check_architecture(self.model)
        if self.model_options.get("padding", "same") != "same":
            raise ConfigError("the trainer builds padding='same' U-Nets (output = input size)",
                              hint="build the paper's unpadded form with foveal.segmentation.models.unet(padding='valid')")
        parse_augment(self.augment)
        parse_class_weights(self.class_weights)

    @property
    def image_hw(self) -> tuple[int, int] | None:
        return (int(self.image_size[0]), int(self.image_size[-1])) if self.image_size else None

    @property
    def crop_hw(self) -> tuple[int, int] | None:
        if not self.crop_size or min(self.crop_size) == 0:
            return None
        return (int(self.crop_size[0]), int(self.crop_size[-1]))

    @property
    def stride(self) -> int:
        """The model's total downsampling: inputs are padded or cropped to multiples of it."""
        if self.model == "unet":
            return 2 ** int(self.model_options.get("depth", 4))
        return 32


def check_architecture(name: str) -> None:
    """Refuse a name that is not in :data:`ARCHITECTURES`, with the closest one as a hint."""
    if name not in ARCHITECTURES:
        raise ConfigError(f"unknown segmentation model {name!r}; known: {', '.join(ARCHITECTURES)}",
                          hint=did_you_mean(name, ARCHITECTURES, n=1, cutoff=0.6, quote=True))


def parse_class_weights(spec: str) -> str | list[float] | None:
    """``none`` -> None, ``balanced`` -> ``"balanced"``, ``"2,1"`` -> [2.0, 1.0]."""
    text = spec.strip().lower()
    if text in ("none", ""):
        return None
    if text == "balanced":
        return "balanced"
    try:
        weights = [float(v) for v in text.replace(",", " ").split()]
    except ValueError:
        raise ConfigError(f"class_weights {spec!r}: expected none, balanced or numbers like '2,1'") from None
    if any(w < 0 for w in weights):
        raise ConfigError("class weights must not be negative")
    return weights


def read_folder(path: str, cfg: SegmentConfig, class_names: list[str] | None = None) -> SegmentationImages:
    """One image/mask folder, with every mask and (by ``cfg.verify``) every image checked."""
    from foveal.segmentation.coco import is_coco_file, read_coco_segmentation
    from foveal.segmentation.data import read_mask_folder

    names = class_names or (list(cfg.classes) or None)
    if is_coco_file(path):
        data = read_coco_segmentation(path, cfg.images if path == cfg.data else None, class_names=names,
                                      ignore_label=cfg.ignore_label, skip_invalid=cfg.skip_invalid)
    else:
        data = read_mask_folder(path, mask_format=cfg.mask_format, class_names=names, ignore_label=cfg.ignore_label,
                                skip_invalid=cfg.skip_invalid)
        if data.mask_format == "binary" and data.num_classes != 2:
            raise ConfigError(f"{path}: binary masks have 2 classes, got --classes {data.class_names}")
    return check_images(data, full=cfg.verify == "full", skip_invalid=cfg.skip_invalid)


def check_images(data: SegmentationImages, *, full: bool, skip_invalid: bool) -> SegmentationImages:
    """Decode (or header-check) every image; bad ones raise a DataError naming them, or are skipped."""
    from foveal.data.imagecheck import scan_files

    bad = scan_files([str(p) for p in data.image_paths], full=full, progress=False)
    if not bad:
        return data
    problems = [f"image {path}: {problem}" for path, problem in bad.items()]
    if not skip_invalid:
        raise DataError(f"{len(bad)} unusable image(s): " + "; ".join(problems[:5]),
                        hint="fix or remove them, or pass --skip-invalid to leave their pairs out")
    keep = np.flatnonzero([str(p) not in bad for p in data.image_paths])
    return replace(data.subset(keep), info={**data.info, "skipped": data.info.get("skipped", []) + problems})


def load_splits(cfg: SegmentConfig) -> dict[str, SegmentationImages]:
    """Train / val / test pairs as the config asks (see the module docstring)."""
    train = read_folder(cfg.data, cfg)
    names = train.class_names
    parts: dict[str, SegmentationImages] = {}
    if cfg.test_data:
        parts["test"] = read_folder(cfg.test_data, cfg, names)
    elif cfg.holdout:
        if cfg.holdout >= len(train):
            raise ConfigError(f"--holdout {cfg.holdout} leaves no training pairs ({cfg.data} has {len(train)})")
        parts["test"] = train.subset(np.arange(len(train) - cfg.holdout, len(train)))
        train = train.subset(np.arange(len(train) - cfg.holdout))
    elif cfg.test_split > 0:
        train, parts["test"] = _random_split(train, cfg.test_split, cfg.seed)
    if cfg.val_data:
        parts["val"] = read_folder(cfg.val_data, cfg, names)
    elif cfg.val_split > 0:
        train, parts["val"] = _random_split(train, cfg.val_split, cfg.seed + 1)
    parts["train"] = train
    for name, part in parts.items():
        if part.class_names != names:
            raise DataError(f"{part.origin}: classes {part.class_names} differ from train's {names}",
                            hint="give the same classes in every split (--classes, or the same palette.txt)")
        if len(part) == 0:
            raise DataError(f"the {name} split of {part.origin} is empty")
    return parts


def _random_split(data: SegmentationImages, fraction: float, seed: int) -> tuple[SegmentationImages, SegmentationImages]:
    count = min(len(data) - 1, max(1, round(fraction * len(data))))
    if count < 1:
        raise DataError(f"{data.origin}: {len(data)} pair(s) are too few to hold some out",
                        hint="add pairs, or pass --val-split 0 --test-split 0")
    order = np.random.default_rng(seed).permutation(len(data))
    return data.subset(np.sort(order[count:])), data.subset(np.sort(order[:count]))


def skipped_of(parts: dict[str, SegmentationImages]) -> list[str]:
    """Every pair left out by ``--skip-invalid`` (folders shared by splits counted once)."""
    return list(dict.fromkeys(problem for part in parts.values() for problem in part.info.get("skipped", [])))


def guess_channels(data: SegmentationImages) -> int:
    """1 when the first image is single-channel (gray), else 3."""
    from foveal.data.imagecheck import mode_channels, probe_image

    return mode_channels(probe_image(data.image_paths[0], full=False).mode)


def class_index(name: str | None, names: list[str], what: str) -> int | None:
    """The index of class ``name`` (a name or an index), None for None."""
    if name is None:
        return None
    if name in names:
        return names.index(name)
    if name.isdigit() and int(name) < len(names):
        return int(name)
    raise ConfigError(f"--{what} {name!r} is not one of the classes {names}")


def resolve_weights(spec: str, train: SegmentationImages, max_masks: int = 200) -> list[float] | None:
    """Class weights from the option; ``balanced`` counts pixels of up to ``max_masks`` masks."""
    from foveal.segmentation.losses import balanced_weights

    parsed = parse_class_weights(spec)
    if parsed is None:
        return None
    if parsed != "balanced":
        if len(parsed) != train.num_classes:
            raise ConfigError(f"--class-weights gives {len(parsed)} weights for {train.num_classes} classes")
        return list(parsed)
    step = max(1, len(train) // max_masks)
    counts = np.zeros(train.num_classes, np.int64)
    for i in range(0, len(train), step):
        mask = train.load_mask(i)
        counts += np.bincount(mask[mask != train.ignore_label].ravel(), minlength=train.num_classes)[:train.num_classes]
    return [round(float(w), 6) for w in balanced_weights(counts)]


def build_segmenter(name: str, *, num_classes: int, channels: int, options: dict[str, Any] | None = None,
                    preprocessing: str | None = None) -> keras.Model:
    """A fully convolutional segmentation model (input ``(None, None, channels)``) by trainer name.

    Example:
        >>> build_segmenter("fcn8s", num_classes=3, channels=3,
        ...                 options={"width": 0.0625, "fc_filters": 8}).output_shape  # doctest: +SKIP
        (None, None, None, 3)
    """
    from foveal.segmentation.models import SEGMENTATION_MODELS

    check_architecture(name)
    builder, fixed = ARCHITECTURES[name]
    kwargs = {**fixed, **(options or {})}
    if preprocessing is not None:
        kwargs["preprocessing"] = preprocessing
    try:
        return SEGMENTATION_MODELS.get(builder).obj(input_shape=(None, None, channels), num_classes=num_classes,
                                                    **kwargs)
    except TypeError as exc:
        raise ConfigError(f"model {name!r}: {exc}", hint="check --model-options against the builder's arguments "
                          "(see foveal.segmentation.models)") from None


def make_loss(cfg: SegmentConfig, num_classes: int, class_weights: list[float] | None):
    from foveal.segmentation.losses import CrossEntropyDice, PixelCrossEntropy, SoftDiceLoss

    if cfg.loss == "ce":
        return PixelCrossEntropy(class_weights, ignore_label=cfg.ignore_label)
    if cfg.loss == "dice":
        return SoftDiceLoss(num_classes, ignore_label=cfg.ignore_label)
    return CrossEntropyDice(num_classes, class_weights, dice_weight=cfg.dice_weight, ignore_label=cfg.ignore_label)


def make_metrics(num_classes: int, ignore_label: int, foreground: int | None) -> list:
    """Pixel accuracy and mean IoU, plus the foreground class's IoU and Dice, as Keras metrics."""
    from foveal.segmentation.metrics import StreamingConfusion

    metrics = [StreamingConfusion(num_classes, "pixel_accuracy", ignore_label),
               StreamingConfusion(num_classes, "mean_iou", ignore_label)]
    if foreground is not None:
        metrics += [StreamingConfusion(num_classes, f"iou_{foreground}", ignore_label, name="foreground_iou"),
                    StreamingConfusion(num_classes, f"dice_{foreground}", ignore_label, name="foreground_dice")]
    return metrics


train_segmenter = trainer("segment", "train_segmenter", "a segmenter")


def border_weight_fn(cfg: SegmentConfig, names: list[str], weights: list[float] | None):
    """``mask -> U-Net weight map`` (Ronneberger et al. 2015, eq. 2) or None when off."""
    if not cfg.border_weight:
        return None
    from foveal.segmentation.losses import unet_weight_map

    objects = class_index(cfg.border_objects, names, "border-objects")
    objects = 1 if objects is None else objects
    # The loss multiplies by the class weights itself, so the map carries only the border term.
    ones = [1.0] * len(names)
    return lambda mask: unet_weight_map(mask, w0=cfg.border_weight, sigma=cfg.border_sigma, foreground=objects,
                                        class_weights=ones, ignore_label=cfg.ignore_label)


def write_results(out: Path, metrics: dict[str, Any] | None, examples: list, card: ModelCard, *, title: str,
                  summary: dict[str, Any], config: dict[str, Any], history: dict[str, list[float]] | None,
                  ignore_label: int) -> Path:
    """``metrics.json`` (when something was scored) and ``report.html`` of a run or an evaluation."""
    from foveal.segmentation.predict import class_colours, unpainted
    from foveal.segmentation.report import write_segmentation_report

    if metrics is not None:
        write_metrics(out, metrics)
        split, foreground = metrics["split"], metrics.get("foreground")
        summary = summary | {f"{split} pixel accuracy": metrics["pixel_accuracy"],
                             f"{split} mean IoU": metrics["mean_iou"], f"{split} mean Dice": metrics["mean_dice"]}
        if foreground is not None:
            summary[f"{split} {foreground} IoU"] = metrics["foreground_iou"]
            summary[f"{split} {foreground} Dice"] = metrics["foreground_dice"]
        summary["images scored"] = metrics["num_images"]
    return write_segmentation_report(out / "report.html", title=title, summary=summary, config=config, history=history,
                                     scores=metrics, examples=examples, class_names=card.class_names,
                                     colours=class_colours(card), skip=unpainted(card), ignore_label=ignore_label)


def scores_to_metrics(cm: np.ndarray, class_names: list[str], foreground: str | None = None) -> dict[str, Any]:
    """A JSON-ready dict from a confusion matrix: pixel accuracy, per-class and mean IoU and Dice.

    Undefined scores (a class in neither truth nor prediction) are None and left out of means.
    """
    from foveal.segmentation.metrics import per_class_dice, per_class_iou, pixel_accuracy

    iou, dice = per_class_iou(cm), per_class_dice(cm)
    tp, true, predicted = np.diag(cm), cm.sum(1), cm.sum(0)
    precision = np.where(predicted > 0, tp / np.maximum(predicted, 1), np.nan)
    recall = np.where(true > 0, tp / np.maximum(true, 1), np.nan)

    def num(v) -> float | None:
        return None if not np.isfinite(v) else round(float(v), 6)

    defined_iou, defined_dice = iou[np.isfinite(iou)], dice[np.isfinite(dice)]
    metrics: dict[str, Any] = {
        "pixel_accuracy": num(pixel_accuracy(cm)),
        "mean_iou": num(defined_iou.mean()) if defined_iou.size else None,
        "mean_dice": num(defined_dice.mean()) if defined_dice.size else None,
        "per_class": [{"class": n, "iou": num(iou[k]), "dice": num(dice[k]), "precision": num(precision[k]),
                       "recall": num(recall[k]), "pixels": int(true[k]), "predicted_pixels": int(predicted[k])}
                      for k, n in enumerate(class_names)],
        "confusion_matrix": cm.astype(int).tolist(),
        "num_pixels": int(cm.sum()),
        "foreground": foreground,
    }
    if foreground is not None:
        k = class_names.index(foreground)
        metrics["foreground_iou"], metrics["foreground_dice"] = num(iou[k]), num(dice[k])
    return metrics


def score_segmenter(model: keras.Model, card: ModelCard, data: SegmentationImages, *, crf: bool | dict = False,
                    report_images: int = 0, skip_invalid: bool = False, output: str | Path | None = None,
                    overlay: bool = True, tta: str | bool | None = "none",
                    mask_png: str = "auto", class_map: str | dict | None = None) -> tuple[dict[str, Any], list]:
    """Predict every image of ``data`` as :func:`~.predict.predict_labels` does and score the maps at
    each mask's own resolution: ``(metrics, up to report_images (image, truth, predicted, caption))``.
    """
    from foveal.data.files import decode_file, write_png
    from foveal.evaluation.classes import mask_lookup, match_classes, parse_class_map
    from foveal.segmentation import predict as p
    from foveal.segmentation.metrics import confusion_matrix
    from foveal.visualize.draw import overlay_classes

    tta, mask_palette = p.checked_options(card, tta, crf, mask_png)
    k = len(card.class_names)
    to_model = mask_lookup(match_classes(card.class_names, data.class_names, parse_class_map(class_map),
                                         origin=data.origin), data.ignore_label)
    cm = np.zeros((k, k), np.int64)
    examples, skipped, scored = [], 0, 0
    out = Path(output) if output is not None else None
    colours, skip = p.class_colours(card), p.unpainted(card)
    for i, (image_path, mask_path) in enumerate(zip(data.image_paths, data.mask_paths)):
        try:
            image = decode_file(image_path, card.input_shape[-1])
        except DataError as exc:
            if not skip_invalid:
                raise DataError(exc.message, hint="fix or remove the pair, or pass --skip-invalid") from None
            say(f"skipped: {exc.message}")
            skipped += 1
            continue
        truth = to_model[data.load_mask(i)]
        if truth.shape != image.shape[:2]:
            raise DataError(f"mask {mask_path} is {truth.shape[1]}x{truth.shape[0]} but its image {image_path} "
                            f"is {image.shape[1]}x{image.shape[0]}")
        predicted = p.predict_labels(model, card, image, crf=crf, tta=tta)
        cm += confusion_matrix(truth, predicted, k, data.ignore_label)
        scored += 1
        if out is not None:
            name = f"{Path(str(image_path)).stem}.png"
            write_png(out / "masks" / name, predicted, palette=mask_palette)
            if overlay:
                write_png(out / "overlays" / name, overlay_classes(image, predicted, colours, skip=skip))
        if len(examples) < report_images:
            examples.append((image, truth, predicted, Path(str(image_path)).name))
    foreground = card.training.get("foreground")
    metrics = scores_to_metrics(cm, list(card.class_names), foreground if foreground in card.class_names else None)
    metrics["num_images"], metrics["skipped_images"], metrics["tta"] = scored, skipped, tta
    return metrics, examples


def format_headline(metrics: dict[str, Any]) -> str:
    """``pixel accuracy 0.91, mean IoU 0.80, membrane IoU 0.70 Dice 0.82, 5 images``."""
    def f(v):
        return "n/a" if v is None else f"{v:.4f}"

    text = f"pixel accuracy {f(metrics['pixel_accuracy'])}, mean IoU {f(metrics['mean_iou'])}, " \
           f"mean Dice {f(metrics['mean_dice'])}"
    if metrics.get("foreground") is not None:
        text += f", {metrics['foreground']} IoU {f(metrics['foreground_iou'])} Dice {f(metrics['foreground_dice'])}"
    return text + f", {metrics['num_images']} image(s)"


def evaluate_segmenter(model_path: str | Path, data: str, *, split: str = "all", output: str | Path | None = None,
                       crf: bool | dict = False, skip_invalid: bool = False, report_images: int = 6,
                       overlay: bool = True, tta: str | bool | None = "none", mask_png: str = "auto",
                       images: str | None = None, class_map: str | dict | None = None) -> dict[str, Any]:
    """Score a saved segmenter on a mask folder or COCO file (options as ``foveal segment evaluate``'s);
    ``output`` receives ``metrics.json``, ``report.html``, ``masks/`` and ``overlays/``. ``split``
    ``all`` scores every pair; ``train``, ``val`` or ``test`` rebuild that split of ``data`` with the
    run's ``config.yaml`` beside the model (same holdout, fractions, seed).
    """
    from foveal.data.splits import training_run_splits
    from foveal.models import load_model
    from foveal.segmentation.coco import own_class_names
    from foveal.segmentation.predict import checked_options

    model, card = load_model(model_path)
    tta, _ = checked_options(card, tta, crf, mask_png)  # refuse bad values before reading any data
    cfg = card_config(card, data, skip_invalid=skip_invalid, images=images)
    if split == "all":
        own = own_class_names(data, cfg.mask_format)  # COCO and palette data name their classes: match them
        if own is None and class_map:
            raise ConfigError(f"{data}: its masks are bare class indices with no names, so --class-map has "
                              "nothing to match", hint="--class-map applies to COCO files and palette.txt folders")
        part = read_folder(data, replace(cfg, classes=own or cfg.classes), own or list(card.class_names))
        skipped = part.info.get("skipped", [])
    else:
        parts = training_run_splits(model_path, split, SegmentConfig, load_splits, {
            "data": data, "skip_invalid": skip_invalid} | ({"images": images} if images else {}), what="pair")
        part, skipped = parts[split], skipped_of(parts)
    metrics, examples = score_segmenter(model, card, part, crf=crf, report_images=report_images if output else 0,
                                        skip_invalid=skip_invalid, output=output, overlay=overlay, tta=tta,
                                        mask_png=mask_png, class_map=class_map)
    metrics["split"] = split
    metrics["skipped_pairs"] = len(skipped) + metrics.pop("skipped_images")
    if output is not None:
        summary = {"model": str(model_path), "data": data, "split": split, "crf": bool(crf),
                   "test-time augmentation": tta, "skipped pairs": metrics["skipped_pairs"]}
        write_results(Path(output), metrics, examples, card, title="foveal segmentation evaluation of "
                      f"{Path(model_path).name}", summary=summary, config={}, history=None,
                      ignore_label=part.ignore_label)
    return metrics


def card_config(card: ModelCard, data: str, **options: Any) -> SegmentConfig:
    """Options that read ``data`` as the model's training data was read: its classes, ignore
    label and mask format."""
    mask_format = card.training.get("mask_format", "auto")
    return SegmentConfig(data=data, classes=list(card.class_names),
                         ignore_label=int(card.training.get("ignore_label", 255)),
                         mask_format="auto" if mask_format == "coco" else mask_format, **options)


def format_metrics(metrics: dict[str, Any]) -> str:
    """The headline numbers and a per-class table as text."""
    def f(v):
        return "   n/a" if v is None else f"{v:.4f}"

    lines = [f"split           {metrics.get('split', '')}", f"images          {metrics['num_images']}",
             f"TTA             {metrics.get('tta', 'none')}",
             f"pixel accuracy  {f(metrics['pixel_accuracy'])}", f"mean IoU        {f(metrics['mean_iou'])}",
             f"mean Dice       {f(metrics['mean_dice'])}"]
    if metrics.get("skipped_pairs"):
        lines.append(f"skipped pairs   {metrics['skipped_pairs']}")
    width = max(5, *(len(r["class"]) for r in metrics["per_class"]))
    lines.append("")
    lines.append(f"{'class':<{width}}  {'IoU':>6}  {'Dice':>6}  {'prec.':>6}  {'recall':>6}  {'pixels':>12}")
    for r in metrics["per_class"]:
        lines.append(f"{r['class']:<{width}}  {f(r['iou'])}  {f(r['dice'])}  {f(r['precision'])}  "
                     f"{f(r['recall'])}  {r['pixels']:>12,}")
    return "\n".join(lines)
