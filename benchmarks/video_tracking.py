"""Tracking scored against ground truth: a detector trained on synthetic moving shapes, then SORT
tracking of an unseen video with the detector on every frame and on every k-th frame; prints JSON.

In one invocation (the load average before and after is in the JSON: the machine is shared):

1. ``foveal datasets synth moving-shapes`` (deterministic per ``--seed``): training and
   validation frames with boxes, a test video and its MOT ground truth;
2. ``foveal detect train`` on those frames (YOLO on resnet18 width 16 at 128x128, bounded by
   ``--budget`` seconds), or ``--detector FILE`` to reuse one;
3. ``foveal video track --gt`` on the test video with ``--every 1`` (the baseline) and each
   ``--every k``: MOTA, IDF1, MOTP, misses, false boxes, id switches, frames/s and detector calls.

    nice -n 5 .venv/bin/python benchmarks/video_tracking.py --budget 600 > video_tracking.json
    .venv/bin/python benchmarks/video_tracking.py --budget 30 --frames 40   # smoke test
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--frames", type=int, default=150, help="frames of the test video")
    parser.add_argument("--objects", type=int, default=3)
    parser.add_argument("--budget", type=float, default=600.0, help="seconds of detector training")
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--detector", help="a trained detector .keras (skips the training)")
    parser.add_argument("--every", type=int, nargs="+", default=[3], help="detector every k frames (besides k=1)")
    parser.add_argument("--min-hits", type=int, default=3)
    parser.add_argument("--max-age", type=int, default=1)
    parser.add_argument("--workdir", help="keep the data and the detector run here (default: a temporary folder)")
    args = parser.parse_args()

    load_before = os.getloadavg()
    started = time.perf_counter()
    from foveal.detection.config import DetectConfig
    from foveal.models.io import load_model
    from foveal.tasks import run_train
    from foveal.video.synth import make_moving_shapes
    from foveal.video.track import SortTracker, track_video

    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(sys.stderr):  # JSON alone on stdout
        work = Path(args.workdir or tmp)
        t0 = time.perf_counter()
        manifest = make_moving_shapes(work / "shapes", seed=args.seed, frames=args.frames, objects=args.objects,
                                      overwrite=True)
        result: dict = {"seed": args.seed, "objects": args.objects, "video_frames": args.frames,
                        "load_before": [round(v, 2) for v in load_before],
                        "synth_s": round(time.perf_counter() - t0, 1), "training_images": manifest["images"]}
        detector = args.detector
        if detector is None:
            t0 = time.perf_counter()
            trained = run_train("detect", DetectConfig(
                data=str(work / "shapes"), image_size=[128], test_split=0.0, epochs=args.epochs,
                time_budget=args.budget, output=str(work / "runs"), name="shapes-det", seed=args.seed,
                progress=False))
            detector = str(trained.run_dir / "best.keras")
            result["detector"] = {"train_s": round(time.perf_counter() - t0, 1),
                                  "epochs": len(trained.history.get("loss", [])),
                                  "val_map50": (trained.metrics or {}).get("map50"),
                                  "metrics": {k: v for k, v in (trained.metrics or {}).items()
                                              if isinstance(v, (int, float))}}
        else:
            result["detector"] = {"file": detector}
        model, card = load_model(detector)
        track_video(model, card, manifest["video"], max_frames=2)  # warm-up: the first predict call traces the graph
        runs = {}
        for every in [1, *[k for k in args.every if k != 1]]:
            tracker = SortTracker(min_hits=args.min_hits, max_age=args.max_age)
            r = track_video(model, card, manifest["video"], every=every, tracker=tracker, gt=manifest["gt"])
            s = r["scores"]
            runs[f"every_{every}"] = {
                "every": every, "fps": r["fps"], "seconds": r["seconds"], "detector_calls": r["detector_calls"],
                "detector_seconds": r["detector_seconds"], "tracks": len(r["tracks"]),
                **{k: (round(v, 4) if isinstance(v, float) else v) for k, v in s.items() if k != "gt_file"}}
        result["tracking"] = runs
        result["tracker"] = {"min_hits": args.min_hits, "max_age": args.max_age, "iou_threshold": 0.3}
        base = runs["every_1"]
        result["speedup"] = {name: round(r["fps"] / base["fps"], 2) for name, r in runs.items() if name != "every_1"}
    result["seconds"] = round(time.perf_counter() - started, 1)
    result["load_after"] = [round(v, 2) for v in os.getloadavg()]
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
