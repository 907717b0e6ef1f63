"""``foveal detect sliding-window``: the texts' FCN detector, trained, run and scored in one go.

Trains a patch classifier on the training images' boxes and background squares
(:mod:`foveal.detection.sliding_window`), turns it into a fully convolutional network, slides it
over every test image at several scales, suppresses overlaps, and scores the result with the
same COCO/VOC metrics and report as the YOLO detector, so the two approaches compare directly.

Outputs in ``output``: ``patch_classifier.keras``, ``metrics.json``, ``detections.json`` (COCO
results), ``report.html`` (PR curves and example images).

Example:
    >>> metrics = run_sliding_window("../shared/datasets/raccoon", output="/tmp/fcn")  # doctest: +SKIP
    >>> metrics["map50"]  # doctest: +SKIP
    0.12
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from foveal.errors import DataError
from foveal.training.runs import say
from foveal.utils_io import atomic_write_text


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
    """Train the patch classifier on ``train``, scan ``split``, and write the outputs.

    Args:
        data: box annotations (see :func:`foveal.data.boxes.load_boxes`); needs a train split
            and the scored split (``test`` by default; a source without it is refused).
        output: folder for the outputs (created).
        architecture: the patch classifier (a zoo model with a ``Flatten -> Dense`` head).
        patch_size: its input side in pixels (the window).
        epochs: its training epochs.
        scales: image pyramid; at scale s a window covers ``patch_size / s`` original pixels.
        score_threshold, iou_threshold: detection threshold and non-max suppression overlap.

    Returns:
        The metrics of :func:`foveal.detection.scoring.score_detections`, with timing.
    """
    import time

    from foveal.data.boxes import load_boxes
    from foveal.detection.report import write_detection_report
    from foveal.detection.scoring import ImageDetections, score_detections, to_coco_results
    from foveal.detection.sliding_window import sliding_window_detect, to_fully_convolutional, train_patch_classifier
    from foveal.models import ModelCard, save_model
    from foveal.models.io import preprocessing_of
    from foveal.predict import decode_file

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
    atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=1))
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
