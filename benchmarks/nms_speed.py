"""Time YOLO decoding + non-max suppression per image for a 416x416 input (target: < 4 ms).

Planche & Andres (ch. 9) quote about 4 ms for a well-implemented NMS. This script times
foveal's in-graph post-processing (:func:`foveal.detection.postprocess.decode_predictions`
then :func:`~foveal.detection.postprocess.non_max_suppression`, what ``DetectorModel.predict``
runs after the network) on synthetic raw head outputs of the two layouts:

* ``v2``: one scale, a 13x13 grid with 5 anchors (845 candidates);
* ``v3``: three scales, 52x52, 26x26 and 13x13 grids with 3 anchors each (10,647 candidates);

at batch 1 and 8. The logits look like a trained head's: background objectness around
``sigmoid(-6)``, and around each of ``--objects`` objects per image a 3x3 block of cells where
every anchor is confident, with one class dominant, so a few hundred candidates pass the
0.25 score threshold and NMS has real clusters to resolve.

Side by side: TensorFlow's ``combined_non_max_suppression`` on the same decoded boxes (the
other fast path), and the plain baseline, NumPy decoding plus the Python greedy
:func:`~foveal.detection.postprocess.reference_nms` per image. ``agrees`` says whether
foveal kept exactly the reference's boxes. Times are the median of ``--repeat`` runs after
a warm-up; one JSON document goes to stdout.

    .venv/bin/python benchmarks/nms_speed.py > nms.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from foveal.detection.postprocess import decode_predictions, detect_from_outputs, non_max_suppression, reference_nms  # noqa: E402
from foveal.ops.boxes import encode_yolo, wh_iou  # noqa: E402

INPUT = 416
LAYOUTS = {"v2": ((13,), 5), "v3": ((52, 26, 13), 3)}  # grids (finest first), anchors per scale
SETTINGS = {"iou_threshold": 0.45, "score_threshold": 0.25, "max_detections": 100, "class_aware": True}


def synthetic_outputs(grids, anchors, classes: int, batch: int, objects: int,
                      rng: np.random.Generator) -> list[np.ndarray]:
    """Raw logits ``[B, g, g, A, 5+K]`` per scale, with ``objects`` detected objects per image.

    Every object (random centre, sides 4-60% of the image) is seen by the anchors whose shape
    matches it (IoU > 0.25, at least the best one) in its cell and the 8 around it; each of
    those predictions encodes the object's box with a little noise (the neighbours' centres
    clamped into their own cells), a high objectness and the object's class.
    """
    per_scale = len(anchors) // len(grids)
    outputs = []
    for grid in grids:
        raw = rng.normal(0, 0.5, (batch, grid, grid, per_scale, 5 + classes)).astype(np.float32)
        raw[..., 4] = rng.normal(-6, 1.5, raw.shape[:4])
        outputs.append(raw)
    for b in range(batch):
        for _ in range(objects):
            centre = rng.uniform(0.1, 0.9, 2)
            size = np.exp(rng.uniform(np.log(0.04), np.log(0.6), 2))
            cls = rng.integers(0, classes)
            shape_iou = wh_iou(size, anchors)[0]
            for k in sorted(set(np.flatnonzero(shape_iou > 0.25)) | {int(shape_iou.argmax())}):
                scale, a = divmod(k, per_scale)
                grid = grids[scale]
                col, row = (centre * grid).astype(int)
                for r in range(max(row - 1, 0), min(row + 2, grid)):
                    for c in range(max(col - 1, 0), min(col + 2, grid)):
                        box = np.concatenate([centre + rng.normal(0, 0.02, 2) * size,
                                              size * np.exp(rng.normal(0, 0.08, 2))]) * grid
                        raw = outputs[scale]
                        raw[b, r, c, a, :4] = encode_yolo(box, np.array([c, r], float), anchors[k] * grid)
                        raw[b, r, c, a, 4] = rng.normal(3 if (r, c) == (row, col) else 0.5, 1)
                        raw[b, r, c, a, 5 + cls] += 6
    return outputs


def anchors_for_layout(grids, per_scale: int) -> np.ndarray:
    """Anchors of growing size and alternating aspect, sorted by area (normalised w, h)."""
    sizes = np.geomspace(0.03, 0.7, len(grids) * per_scale)
    aspect = np.resize([1.0, 1.6, 0.65], len(sizes))
    return np.stack([sizes * np.sqrt(aspect), sizes / np.sqrt(aspect)], axis=1).clip(0.01, 1).astype(np.float32)


def foveal_postprocess(anchors):
    """What ``DetectorModel.predict`` runs after the network."""
    @tf.function(reduce_retracing=True)
    def run(raw):
        out = detect_from_outputs(raw, anchors, **SETTINGS)
        return {**out, "boxes": tf.clip_by_value(out["boxes"], 0.0, 1.0)}
    return run


def unfused_postprocess(anchors):
    """Decode every candidate, then suppress: the two public steps one after the other."""
    @tf.function(reduce_retracing=True)
    def run(raw):
        decoded = decode_predictions(raw, anchors)
        return non_max_suppression(decoded["boxes"], decoded["scores"], decoded["classes"], **SETTINGS)
    return run


def combined_postprocess(anchors, classes: int):
    @tf.function(reduce_retracing=True)
    def run(raw):
        decoded = decode_predictions(raw, anchors)
        one_hot = tf.one_hot(decoded["classes"], classes) * decoded["scores"][..., None]
        return tf.image.combined_non_max_suppression(
            decoded["boxes"][:, :, None, :], one_hot, SETTINGS["max_detections"], SETTINGS["max_detections"],
            SETTINGS["iou_threshold"], SETTINGS["score_threshold"], clip_boxes=False)
    return run


def numpy_decode(raw_outputs, anchors) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Plain NumPy decoding, batch-first: boxes [B, N, 4], scores [B, N], classes [B, N]."""
    per_scale = len(anchors) // len(raw_outputs)
    boxes, scores, classes = [], [], []
    for s, raw in enumerate(raw_outputs):
        batch, gh, gw = raw.shape[:3]
        cols, rows = np.meshgrid(np.arange(gw), np.arange(gh))
        cx = (1 / (1 + np.exp(-raw[..., 0])) + cols[..., None]) / gw
        cy = (1 / (1 + np.exp(-raw[..., 1])) + rows[..., None]) / gh
        group = anchors[s * per_scale:(s + 1) * per_scale]
        w, h = group[:, 0] * np.exp(raw[..., 2]), group[:, 1] * np.exp(raw[..., 3])
        logits = raw[..., 5:] - raw[..., 5:].max(-1, keepdims=True)
        probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
        objectness = 1 / (1 + np.exp(-raw[..., 4]))
        boxes.append(np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1).reshape(batch, -1, 4))
        scores.append((objectness * probs.max(-1)).reshape(batch, -1))
        classes.append(probs.argmax(-1).reshape(batch, -1))
    return np.concatenate(boxes, 1), np.concatenate(scores, 1), np.concatenate(classes, 1)


def numpy_postprocess(raw_outputs, anchors) -> list[np.ndarray]:
    boxes, scores, classes = numpy_decode(raw_outputs, anchors)
    return [reference_nms(boxes[b], scores[b], classes[b], **SETTINGS) for b in range(len(boxes))]


def median_ms(fn, repeat: int) -> float:
    fn()  # warm-up (tracing)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        if isinstance(result, dict):
            result["num_detections"].numpy()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def measure(layout: str, batch: int, classes: int, objects: int, repeat: int, seed: int) -> dict:
    grids, per_scale = LAYOUTS[layout]
    rng = np.random.default_rng(seed)
    anchors = anchors_for_layout(grids, per_scale)
    raw = synthetic_outputs(grids, anchors, classes, batch, objects, rng)
    tensors = [tf.constant(r) for r in raw]
    ours, unfused = foveal_postprocess(anchors), unfused_postprocess(anchors)
    combined = combined_postprocess(anchors, classes)
    t_ours = median_ms(lambda: ours(tensors), repeat)
    t_unfused = median_ms(lambda: unfused(tensors), repeat)
    t_combined = median_ms(lambda: combined(tensors).valid_detections.numpy(), repeat)
    t_numpy = median_ms(lambda: numpy_postprocess(raw, anchors), max(3, repeat // 10))
    out = ours(tensors)
    kept = numpy_postprocess(raw, anchors)
    _, scores, _ = numpy_decode(raw, anchors)
    agrees = all(int(out["num_detections"][b]) == len(kept[b])
                 and np.array_equal(np.asarray(out["indices"][b, :len(kept[b])]), kept[b]) for b in range(batch))
    return {
        "layout": layout, "grids": list(grids), "anchors_per_scale": per_scale, "batch": batch,
        "candidates_per_image": int(sum(g * g for g in grids) * per_scale),
        "above_threshold_per_image": float((scores > SETTINGS["score_threshold"]).sum() / batch),
        "kept_per_image": float(np.mean([len(k) for k in kept])),
        "foveal_ms_per_image": round(t_ours / batch, 3),
        "decode_all_then_nms_ms_per_image": round(t_unfused / batch, 3),
        "combined_nms_ms_per_image": round(t_combined / batch, 3),
        "numpy_reference_ms_per_image": round(t_numpy / batch, 3),
        "speedup_vs_numpy": round(t_numpy / t_ours, 1),
        "under_4_ms": t_ours / batch < 4.0,
        "agrees_with_reference": bool(agrees),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--classes", type=int, default=80, help="object classes (80: COCO)")
    parser.add_argument("--objects", type=int, default=8, help="objects per image")
    parser.add_argument("--repeat", type=int, default=50, help="timed runs per measurement")
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    results = [measure(layout, batch, args.classes, args.objects, args.repeat, args.seed)
               for layout in LAYOUTS for batch in args.batch]
    print(json.dumps({
        "input": [INPUT, INPUT, 3], "settings": SETTINGS, "classes": args.classes, "objects": args.objects,
        "repeat": args.repeat,
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(),
                    "usable_cpus": len(os.sched_getaffinity(0)), "tensorflow": tf.__version__,
                    "gpus": [d.name for d in tf.config.list_physical_devices("GPU")]},
        "results": results,
    }, indent=2))


if __name__ == "__main__":
    main()
