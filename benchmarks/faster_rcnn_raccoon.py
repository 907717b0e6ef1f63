"""Faster R-CNN against the YOLO head on raccoon, same backbone and budget; and the cost of its parts.

Two measurements, printed as one JSON document (with the machine's load average: the machine
is shared, so every time here depends on it):

1. ``timing`` (``--timing``; fast): at 512x512 input on ResNet-18 (width 16), stride-16 map
   (32x32 cells, 9 anchors: 9,216 anchors), the time per image of the proposal step (decode,
   clip, filter, NMS: 1000 -> 300 at inference, 2000 -> 2000 in training), of RoI Align on 300
   and on 512 RoIs, of RoI max pooling on 300, and of a whole training step (batch 2), so their
   share of a step is known. Medians of ``--repeats`` runs of ``tf.function``-compiled calls.
2. ``detectors`` (``--seconds`` > 0): ``foveal detect train`` on ``../shared/datasets/raccoon``
   (its own train.txt / test.txt; 16 training images held out for validation, which picks
   ``best.keras``) with the YOLOv2-style head of ``benchmarks/raccoon_detection.py`` (the
   recipe's options) and with ``--detector faster-rcnn`` on the same backbone, augmentation,
   optimizer and budget, from scratch (or both from ``--backbone-weights``); each best
   checkpoint scored on the 40 test images (mAP@0.5 VOC all-point, COCO AP/AP50 equal to
   pycocotools').

    .venv/bin/python benchmarks/faster_rcnn_raccoon.py --timing --seconds 0
    .venv/bin/python benchmarks/faster_rcnn_raccoon.py --seconds 1800 > frcnn-raccoon.json
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from raccoon_detection import DETECTOR, log, run_detector  # noqa: E402  (the YOLO recipe, not a copy)

#: Faster R-CNN's options on top of the YOLO recipe's (the same backbone, input, augmentation and
#: optimizer). 128 RoIs per image instead of the paper's 512: the fully connected head on 512 RoIs
#: costs several times the width-16 backbone on 2 CPU cores.
FASTER_RCNN: dict[str, Any] = {"detector": "faster-rcnn", "rcnn_level": "P4", "roi_batch": 128, "head_width": 256}


def _median_ms(fn, repeats: int) -> float:
    fn()  # trace and warm up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return round(1000 * statistics.median(times), 2)


def timing(repeats: int) -> dict[str, Any]:
    """Per-image times of the proposal step, RoI pooling and a training step at 512x512."""
    import numpy as np
    import tensorflow as tf

    from foveal.detection.faster_rcnn import build_faster_rcnn
    from foveal.layers.roi import roi_align, roi_max_pool
    from foveal.ops import rcnn

    size, batch = 512, 2
    model = build_faster_rcnn("resnet18", 1, input_shape=(size, size, 3), backbone_options={"width": 16},
                              anchor_sizes=[64, 128, 256], roi_batch=512)
    model.compile("adam")
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (batch, size, size, 3)).astype(np.float32)
    boxes = np.zeros((batch, 4, 4), np.float32)
    boxes[:, 0] = [0.2, 0.2, 0.6, 0.7]
    boxes[:, 1] = [0.5, 0.1, 0.9, 0.4]
    classes = np.array([[0, 0, -1, -1]] * batch, np.int32)
    out = model(images)
    features = out["features"]
    objectness = tf.reshape(out["rpn_objectness"], [batch, -1])
    deltas = tf.reshape(out["rpn_deltas"], [batch, -1, 4])
    anchors = model.anchors_for(features)

    def proposals(pre, post):
        return tf.function(lambda: rcnn.generate_proposals(objectness, deltas, anchors, (size, size), pre_nms=pre,
                                                           post_nms=post, nms_iou=0.7))

    test_props, train_props = proposals(1000, 300), proposals(2000, 2000)
    rois300 = test_props()[0]
    rois512 = tf.concat([rois300, rois300[:, :212]], axis=1)
    align300 = tf.function(lambda: roi_align(features, rois300, pool_size=7, stride=16))
    align512 = tf.function(lambda: roi_align(features, rois512, pool_size=7, stride=16))
    maxpool300 = tf.function(lambda: roi_max_pool(features, rois300, pool_size=7, stride=16))
    targets = {"boxes": boxes, "classes": classes}

    per_image = {
        "proposals_inference_1000_to_300": _median_ms(test_props, repeats) / batch,
        "proposals_training_2000_to_2000": _median_ms(train_props, repeats) / batch,
        "roi_align_300_rois": _median_ms(align300, repeats) / batch,
        "roi_align_512_rois": _median_ms(align512, repeats) / batch,
        "roi_max_pool_300_rois": _median_ms(maxpool300, repeats) / batch,
        "training_step_512_rois": _median_ms(lambda: model.train_on_batch(images, targets), max(3, repeats // 3)) / batch,
        "detect_whole_image": _median_ms(lambda: model.detect(images), max(3, repeats // 3)) / batch,
    }
    per_image = {k: round(v, 2) for k, v in per_image.items()}
    step_ms = per_image["training_step_512_rois"]
    return {
        "input": f"{size}x{size}", "backbone": "resnet18 width 16", "feature_map": "P4 (stride 16, 32x32)",
        "anchors": int(anchors.shape[0]), "batch": batch, "repeats": repeats, "ms_per_image": per_image,
        "share_of_training_step": {
            "proposals": round(per_image["proposals_training_2000_to_2000"] / step_ms, 3),
            "roi_align": round(per_image["roi_align_512_rois"] / step_ms, 3)},
        "load_average": os.getloadavg()[0],
    }


def main(argv: list[str] | None = None) -> int:
    import json

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=1800.0, help="training budget per detector; 0: no "
                        "training (default: 1800)")
    parser.add_argument("--yolo-epochs", type=int, help="YOLO's cosine schedule length (default: one per 4.5 s "
                        "of budget, as benchmarks/raccoon_detection.py)")
    parser.add_argument("--rcnn-epochs", type=int, help="Faster R-CNN's cosine schedule length (default: one per "
                        "9 s of budget: its epochs take about twice YOLO's here)")
    parser.add_argument("--only", choices=["yolo", "faster-rcnn"], help="train one detector only")
    parser.add_argument("--backbone-weights", help="start both backbones from this foveal resnet18 (width 16)")
    parser.add_argument("--timing", action="store_true", help="measure the parts at 512x512 (fast)")
    parser.add_argument("--repeats", type=int, default=10, help="timing repeats (default: 10)")
    parser.add_argument("--output", type=Path, help="folder for the run folders (default: a temporary one)")
    args = parser.parse_args(argv)
    import tensorflow as tf

    report: dict[str, Any] = {"tensorflow": tf.__version__, "cores": os.cpu_count(),
                              "started_at": time.strftime("%Y-%m-%d %H:%M:%S"),
                              "load_average_at_start": os.getloadavg()}
    if args.timing:
        log("timing the proposal step and RoI pooling at 512x512")
        report["timing"] = timing(args.repeats)
    if args.seconds > 0:
        output = args.output or Path(tempfile.mkdtemp(prefix="foveal-frcnn-raccoon-"))
        extra = {"backbone_weights": args.backbone_weights} if args.backbone_weights else {}
        report["budget_seconds"] = args.seconds
        report["shared_options"] = DETECTOR | extra
        if args.only in (None, "yolo"):
            epochs = args.yolo_epochs or max(10, int(args.seconds / 4.5))
            log(f"yolo: budget {args.seconds:.0f} s, {epochs} scheduled epochs")
            report["yolo"] = run_detector("yolo", args.seconds, epochs, output, extra)
        if args.only in (None, "faster-rcnn"):
            epochs = args.rcnn_epochs or max(10, int(args.seconds / 9))
            log(f"faster-rcnn: budget {args.seconds:.0f} s, {epochs} scheduled epochs")
            report["faster_rcnn"] = run_detector("faster-rcnn", args.seconds, epochs, output, FASTER_RCNN | extra)
    report["load_average_at_end"] = os.getloadavg()
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
