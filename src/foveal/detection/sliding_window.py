"""The texts' first detector: a patch classifier slid over the image as a fully convolutional net.

Géron (*Hands-On Machine Learning*, 2nd ed., ch. 14), after Long, Shelhamer & Darrell, "Fully
Convolutional Networks for Semantic Segmentation", CVPR 2015: :func:`patch_dataset` cuts object
and background squares from annotated images, :func:`train_patch_classifier` trains a small zoo
classifier on them, :func:`to_fully_convolutional` turns its ``Flatten -> Dense`` head into
convolutions with the same weights, and :func:`sliding_window_detect` runs that over an image
pyramid and keeps the windows that pass a threshold, after NMS. The FCN's output at ``(i, j)``
equals the classifier's on the window at ``(i * stride_y, j * stride_x)`` when every layer uses
"valid" padding (with "same" padding it only approximates it, with a warning). A detected box
is the window itself: no box regression. :func:`run_sliding_window` (``foveal detect
sliding-window``) does it all and scores it with the YOLO detector's metrics and report.

Example:
    >>> parts = load_boxes("../shared/datasets/raccoon")  # doctest: +SKIP
    >>> classifier, history = train_patch_classifier(parts["train"], epochs=10)  # doctest: +SKIP
    >>> fcn = to_fully_convolutional(classifier)  # doctest: +SKIP
    >>> boxes, scores, classes = sliding_window_detect(fcn, image, scales=(0.25, 0.125))  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Sequence

import keras
import numpy as np
from keras import layers

from foveal.data.boxes import BoxedImages
from foveal.data.source import LabeledImages
from foveal.errors import ConfigError, DataError, ModelError
from foveal.ops.boxes import iou_matrix
from foveal.training.runs import say
from foveal.utils_io import atomic_write_text, write_metrics

log = logging.getLogger("foveal")

BACKGROUND = "background"
_NEGATIVE_TRIES = 50
_SPATIAL = (layers.Conv2D, layers.MaxPooling2D, layers.AveragePooling2D)


# ---------------------------------------------------------------------------- patches


def patch_dataset(
    data: BoxedImages,
    patch_size: int = 32,
    *,
    channels: int = 3,
    positives_per_box: int = 2,
    jitter: float = 0.1,
    negatives_per_image: int = 3,
    max_negative_iou: float = 0.1,
    seed: int = 0,
    skip_invalid: bool = False,
) -> LabeledImages:
    """Square patches cut from annotated images, for a patch classifier with a background class.

    Positives: a square of side ``max(box width, box height)`` centred on each box, the copies
    after the first shifted and scaled by up to ``jitter`` of the side (so the classifier
    tolerates windows a stride off). Negatives: random squares sized like the image's boxes,
    kept when their IoU with every box is at most ``max_negative_iou`` and less than half of
    them lies inside one box (raccoon fur is neither raccoon nor background). Difficult boxes
    make no positives but block negatives. ``skip_invalid`` skips unopenable images (listed
    in ``info["skipped"]``).

    Returns:
        uint8 patches ``(P, patch, patch, C)`` with classes ``["background", *data.class_names]``.
    """
    from PIL import Image

    if patch_size < 4 or positives_per_box < 1 or negatives_per_image < 0 or channels not in (1, 3):
        raise ConfigError("patch_size >= 4, positives_per_box >= 1, negatives_per_image >= 0 and channels 1 or 3")
    rng = np.random.default_rng(seed)
    mode = "RGB" if channels == 3 else "L"
    patches: list[np.ndarray] = []
    labels: list[int] = []
    skipped: list[tuple[str, str]] = []
    assert data.difficult is not None
    for path, boxes, classes, hard in zip(data.paths, data.boxes, data.labels, data.difficult):
        try:
            with Image.open(path) as opened:
                image = opened.convert(mode)
        except Exception as exc:  # PIL raises many kinds for broken files
            if not skip_invalid:
                raise DataError(f"{path}: cannot open the image ({exc})", hint="pass --skip-invalid to skip it") from None
            log.warning("skipping %s: %s", path, exc)
            skipped.append((str(path), str(exc)))
            continue
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        hard = np.asarray(hard, bool)
        for box, cls in zip(boxes[~hard], np.asarray(classes)[~hard]):
            for copy in range(positives_per_box):
                patches.append(_crop(image, _square_around(box, jitter if copy else 0.0, rng), patch_size))
                labels.append(int(cls) + 1)
        for square in _background_squares(image.size, boxes, negatives_per_image, max_negative_iou, rng):
            patches.append(_crop(image, square, patch_size))
            labels.append(0)
    if not patches:
        raise DataError(f"{data.origin or 'the dataset'}: no patches could be cut")
    stacked = np.stack(patches).reshape(len(patches), patch_size, patch_size, channels)
    label_array = np.asarray(labels, np.int32)
    info: dict[str, Any] = {"positives": int((label_array > 0).sum()), "negatives": int((label_array == 0).sum())}
    if skipped:
        info["skipped"] = skipped
    return LabeledImages(class_names=[BACKGROUND, *data.class_names], labels=label_array, images=stacked,
                         origin=f"{data.origin} (patches)", info=info)


def _square_around(box: np.ndarray, jitter: float, rng: np.random.Generator) -> np.ndarray:
    side = float(max(box[2] - box[0], box[3] - box[1]))
    centre = (box[:2] + box[2:]) / 2
    if jitter:
        centre = centre + rng.uniform(-jitter, jitter, 2) * side
        side *= 1.0 + rng.uniform(-jitter, jitter)
    return np.concatenate([centre - side / 2, centre + side / 2])


def _background_squares(size: tuple[int, int], boxes: np.ndarray, count: int, max_iou: float,
                        rng: np.random.Generator) -> list[np.ndarray]:
    width, height = size
    short = min(width, height)
    sides = np.maximum(boxes[:, 2:] - boxes[:, :2], 1).max(axis=1) if len(boxes) else None
    found: list[np.ndarray] = []
    for _ in range(count * _NEGATIVE_TRIES):
        if len(found) == count:
            break
        base = rng.choice(sides) * rng.uniform(0.5, 1.5) if sides is not None else short * rng.uniform(0.1, 0.5)
        side = float(np.clip(base, 8, short))
        x, y = rng.uniform(0, width - side), rng.uniform(0, height - side)
        square = np.array([x, y, x + side, y + side])
        if len(boxes):
            inter_w = np.clip(np.minimum(square[2], boxes[:, 2]) - np.maximum(square[0], boxes[:, 0]), 0, None)
            inter_h = np.clip(np.minimum(square[3], boxes[:, 3]) - np.maximum(square[1], boxes[:, 1]), 0, None)
            inside = (inter_w * inter_h).max() / side**2
            if iou_matrix(square[None], boxes).max() > max_iou or inside >= 0.5:
                continue
        found.append(square)
    return found


def _crop(image, square: np.ndarray, patch_size: int) -> np.ndarray:
    from PIL import Image

    x0, y0, x1, y1 = (int(round(v)) for v in square)
    patch = image.crop((x0, y0, max(x1, x0 + 1), max(y1, y0 + 1)))
    return np.asarray(patch.resize((patch_size, patch_size), Image.Resampling.BILINEAR), np.uint8)


# ---------------------------------------------------------------------------- classifier


def train_patch_classifier(
    data: BoxedImages | LabeledImages,
    *,
    architecture: str = "lenet5",
    patch_size: int = 32,
    channels: int = 3,
    epochs: int = 10,
    batch_size: int = 64,
    learning_rate: float = 1e-3,
    augment: str = "flip",
    validation: BoxedImages | LabeledImages | None = None,
    seed: int = 0,
    verbose: int = 0,
    **patch_options: Any,
) -> tuple[keras.Model, dict[str, list[float]]]:
    """Train a zoo classifier on background/object patches (Adam, cross-entropy).

    Args:
        data: annotated images (cut with :func:`patch_dataset`, given ``**patch_options``) or patches.
        architecture: a registered classifier; one with "valid" padding (``lenet5``) gives an exact FCN.
        augment: a classification augmentation spec (:mod:`foveal.data.augment`).

    Returns:
        ``(model, history)``: the classifier (softmax over ``["background", *classes]``) and its history.
    """
    from foveal.data.pipeline import make_pipeline
    from foveal.models import build_model

    def patches_of(source, part_seed):
        if isinstance(source, LabeledImages):
            return source
        return patch_dataset(source, patch_size, channels=channels, seed=part_seed, **patch_options)

    keras.utils.set_random_seed(seed)
    train = patches_of(data, seed)
    size = (patch_size, patch_size)
    model = build_model(architecture, num_classes=train.num_classes, input_shape=(*size, channels))
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="categorical_crossentropy",
                  metrics=["accuracy"])
    common = dict(image_size=size, channels=channels, batch_size=batch_size, seed=seed)
    train_ds = make_pipeline(train, training=True, augment=augment, **common)
    val_ds = (make_pipeline(patches_of(validation, seed + 1), training=False, **common)
              if validation is not None else None)
    # The pipeline shuffles (seeded); Keras' own shuffle flag does not apply to datasets.
    history = model.fit(train_ds, validation_data=val_ds, epochs=epochs, verbose=verbose, shuffle=False)
    return model, {k: [float(v) for v in vs] for k, vs in history.history.items()}


# ---------------------------------------------------------------------------- FCN


def to_fully_convolutional(model: keras.Model) -> keras.Model:
    """A chain classifier ending in ``Flatten -> Dense ... -> softmax`` as a fully convolutional
    network (the same weights) from images of any size to ``(h, w, classes)`` probability maps.

    Example:
        >>> from foveal.models import build_model
        >>> fcn = to_fully_convolutional(build_model("lenet5", num_classes=3, input_shape=(32, 32, 3)))
        >>> fcn.output_shape, fcn_geometry(fcn)
        ((None, None, None, 3), ((32, 32), (4, 4)))
    """
    from foveal.models.classification.vgg import dense_to_convolutional

    same = [layer.name for layer in model.layers if isinstance(layer, _SPATIAL) and layer.padding == "same"]
    if same:
        log.warning("%s: %s use 'same' padding; the FCN's window outputs will only approximate the "
                    "classifier's (use 'valid' padding for an exact match)", model.name, ", ".join(same[:4]))
    return dense_to_convolutional(model)


def fcn_geometry(fcn: keras.Model) -> tuple[tuple[int, int], tuple[int, int]]:
    """``(window, stride)`` in input pixels, each ``(height, width)``, of a fully convolutional chain:
    the stride is the product of the strides, the window the input giving a 1x1 output.

    Raises:
        ModelError: "same" padding or another spatial layer makes the window ambiguous.
    """
    window = np.array([1, 1])
    stride = np.array([1, 1])
    for layer in reversed(fcn.layers):
        if isinstance(layer, _SPATIAL):
            if layer.padding != "valid":
                raise ModelError(f"{layer.name}: 'same' padding; the window of {fcn.name} is ambiguous",
                                 hint="pass window= and stride= explicitly")
            kernel = np.array(layer.kernel_size if isinstance(layer, layers.Conv2D) else layer.pool_size)
            step = np.array(layer.strides)
            dilation = np.array(getattr(layer, "dilation_rate", (1, 1)))
            window = (window - 1) * step + (kernel - 1) * dilation + 1
            stride = stride * step
        elif isinstance(layer, (layers.ZeroPadding2D, layers.Cropping2D, layers.UpSampling2D,
                                layers.Conv2DTranspose, layers.Reshape, layers.Flatten)):
            raise ModelError(f"{layer.name}: cannot read the sliding-window geometry through a "
                             f"{type(layer).__name__} layer", hint="pass window= and stride= explicitly")
    return (int(window[0]), int(window[1])), (int(stride[0]), int(stride[1]))


def sliding_window_detect(
    fcn: keras.Model,
    image: np.ndarray,
    *,
    window: int | tuple[int, int] | None = None,
    stride: int | tuple[int, int] | None = None,
    score_threshold: float = 0.5,
    iou_threshold: float = 0.3,
    scales: Sequence[float] = (1.0,),
    max_detections: int = 100,
    class_aware: bool = True,
    background: int | None = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Detect objects by sliding the FCN over an image pyramid, then non-max suppression.

    At scale ``s`` a window covers ``window / s`` original pixels (scales below 1 find objects
    larger than the window). A window scores its best non-background probability; windows
    above ``score_threshold`` go through NMS at ``iou_threshold`` (windows a stride apart
    overlap a lot, hence the default below the texts' 0.6).

    Args:
        image: ``(H, W, C)`` or ``(H, W)`` pixels 0..255.
        window, stride: in pixels (default: read by :func:`fcn_geometry`).
        scales: pyramid scales; those making the image smaller than the window are skipped.
        background: the index of the background class (None: every class is an object).

    Returns:
        ``(boxes, scores, classes)``: pixel corners, scores and object-class indices (background
        removed: class ``k`` is ``data.class_names[k]``), best first.

    Example:
        >>> boxes, scores, classes = sliding_window_detect(fcn, image, scales=(1.0, 0.5))  # doctest: +SKIP
    """
    import tensorflow as tf

    from foveal.detection.postprocess import nms_image

    if window is None or stride is None:
        geometry = fcn_geometry(fcn)
        window, stride = window or geometry[0], stride or geometry[1]
    win_h, win_w = (window, window) if isinstance(window, int) else window
    step_y, step_x = (stride, stride) if isinstance(stride, int) else stride
    if not scales or min(scales) <= 0:
        raise ConfigError(f"scales must be positive numbers, got {list(scales)}")
    pixels = np.asarray(image, np.float32)
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    height, width = pixels.shape[:2]
    all_boxes, all_scores, all_classes = [], [], []
    for scale in scales:
        new_h, new_w = int(round(height * scale)), int(round(width * scale))
        if new_h < win_h or new_w < win_w:
            continue
        scaled = pixels if (new_h, new_w) == (height, width) else tf.image.resize(
            pixels, (new_h, new_w), method="bilinear", antialias=True).numpy()
        probs = np.asarray(fcn(scaled[None], training=False))[0]  # (h, w, classes)
        if background is not None:
            probs = np.delete(probs, background, axis=-1)
        best = probs.argmax(axis=-1)
        score = probs.max(axis=-1)
        rows, cols = np.nonzero(score > score_threshold)
        fx, fy = width / new_w, height / new_h  # scaled -> original pixels, per axis
        x0, y0 = cols * step_x, rows * step_y
        all_boxes.append(np.stack([x0 * fx, y0 * fy, (x0 + win_w) * fx, (y0 + win_h) * fy], axis=-1))
        all_scores.append(score[rows, cols])
        all_classes.append(best[rows, cols])
    if not sum(len(s) for s in all_scores):
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int32)
    kept = nms_image(np.concatenate(all_boxes), np.concatenate(all_scores), np.concatenate(all_classes),
                     iou_threshold=iou_threshold, score_threshold=score_threshold, max_detections=max_detections,
                     class_aware=class_aware)
    return kept["boxes"], kept["scores"], kept["classes"].astype(np.int32)


def run_sliding_window(
    data: str,
    *,
    output: str | Path,
    architecture: str = "lenet5",
    patch_size: int = 32,
    epochs: int = 15,
    scales: Sequence[float] = (0.5, 0.25, 0.125),
    score_threshold: float = 0.5,
    iou_threshold: float = 0.3,
    split: str = "test",
    seed: int = 0,
    skip_invalid: bool = False,
    report_images: int = 12,
) -> dict[str, Any]:
    """Train the patch classifier on ``data``'s train split, scan ``split``, and write
    ``patch_classifier.keras``, ``metrics.json``, ``detections.json`` (COCO results) and
    ``report.html`` into ``output``.

    Returns:
        The metrics of :func:`foveal.detection.scoring.score_detections`, with timing.

    Example:
        >>> run_sliding_window("../shared/datasets/raccoon", output="/tmp/fcn")["map50"]  # doctest: +SKIP
        0.12
    """
    import time

    from foveal.data.boxes import load_boxes
    from foveal.data.files import decode_file
    from foveal.detection.report import write_detection_report
    from foveal.detection.scoring import ImageDetections, score_detections, to_coco_results
    from foveal.models import ModelCard, save_model
    from foveal.models.io import preprocessing_of

    parts = load_boxes(data, skip_invalid=skip_invalid)
    if split not in parts or "train" not in parts:
        raise DataError(f"{data}: needs a train and a {split!r} split (it has {', '.join(parts)})",
                        hint="use a dataset with train.txt/test.txt (or split files), or pass --split")
    train, scored = parts["train"], parts[split]
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    say(f"training a {architecture} patch classifier ({patch_size}px) on {train.num_boxes} boxes "
        f"and background squares for {epochs} epochs")
    classifier, history = train_patch_classifier(train, architecture=architecture, patch_size=patch_size,
                                                 epochs=epochs, seed=seed, skip_invalid=skip_invalid)
    train_seconds = time.perf_counter() - started
    save_model(classifier, out / "patch_classifier.keras",
               ModelCard(architecture=architecture, class_names=["background", *train.class_names],
                         input_shape=(patch_size, patch_size, 3), preprocessing=preprocessing_of(classifier),
                         training={"data": data, "purpose": "sliding-window patch classifier"}))
    fcn = to_fully_convolutional(classifier)
    started = time.perf_counter()
    detections = []
    for path in scored.paths:
        boxes, scores, classes = sliding_window_detect(fcn, decode_file(path, 3), scales=tuple(scales),
                                                       score_threshold=score_threshold, iou_threshold=iou_threshold)
        detections.append(ImageDetections(boxes, scores, classes))
    scan_seconds = time.perf_counter() - started
    metrics, curves = score_detections(scored, detections, score_threshold=score_threshold)
    metrics |= {"split": split, "method": "sliding-window FCN", "architecture": architecture,
                "patch_size": patch_size, "scales": list(scales), "train_seconds": round(train_seconds, 1),
                "scan_seconds_per_image": round(scan_seconds / max(len(scored), 1), 4),
                "patch_val_accuracy": _last(history, "val_accuracy"), "patch_accuracy": _last(history, "accuracy")}
    write_metrics(out, metrics)
    atomic_write_text(out / "detections.json", json.dumps(to_coco_results(scored, detections)))
    summary = {"method": "sliding-window FCN (Géron ch. 14)", "data": data, "split": split,
               "patch classifier": f"{architecture} at {patch_size}px, {epochs} epochs", "scales": str(list(scales)),
               "mAP@0.5": metrics["map50"], "COCO AP": metrics["coco"]["AP"],
               "scan time per image (s)": metrics["scan_seconds_per_image"]}
    write_detection_report(out / "report.html", title="foveal sliding-window detection", summary=summary,
                           config={}, history=None, data=scored, detections=detections, curves=curves,
                           metrics=metrics, count=report_images)
    say(f"{split}: mAP@0.5 {metrics['map50']:.4f}, COCO AP {metrics['coco']['AP']:.4f}; "
        f"{metrics['scan_seconds_per_image']:.3f} s per image; report: {out / 'report.html'}")
    return metrics


def _last(history: dict[str, list[float]], key: str) -> float | None:
    values = history.get(key)
    return round(float(values[-1]), 4) if values else None
