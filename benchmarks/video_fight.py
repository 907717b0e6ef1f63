"""Surveillance Camera Fight clips: decoding speed, feature-extraction speed and 5-fold
cross-validated accuracy of a video classifier, end to end; prints JSON.

What it measures, in one invocation (the machine's load average before and after is in the JSON,
since the machine is shared):

1. decoding every frame of every clip to RGB arrays with OpenCV, and with PyAV when it is
   installed (the comparison that chose OpenCV for foveal);
2. the training pipeline's own work per clip without a cache: decoding and sampling alone
   (frames/s decoded) against decoding + the backbone's per-frame features (frames/s);
3. ``foveal video train`` through the Python API with ``--folds``: feature extraction into a fresh
   cache, the model trained on a stratified split, the avgpool baseline, and the K-fold
   cross-validation of both (per-fold and mean accuracy), with the wall time end to end;
4. with ``--second-run``: the same training again, reading the cached features.

The backbone must be a classifier trained by foveal (no ImageNet weights offline), e.g. airbench
on CIFAR-10 (``recipes/video.md`` says how it was made)::

    nice -n 5 .venv/bin/python benchmarks/video_fight.py --data ../shared/datasets/fight-video --backbone runs/cifar-airbench/best.keras \\
        --deltas --folds 5 > video_fight.json
    .venv/bin/python benchmarks/video_fight.py --data ../shared/datasets/fight-video --backbone airbench --clips 10 --folds 2 --epochs 2  # smoke test
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

ROOT = Path(__file__).resolve().parents[1]


def _decode_all(files: list[Path], reader: str) -> dict[str, float]:
    started, frames = time.perf_counter(), 0
    for f in files:
        if reader == "opencv":
            import cv2

            cap = cv2.VideoCapture(str(f), cv2.CAP_FFMPEG)
            while True:
                ok, bgr = cap.read()
                if not ok:
                    break
                cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
                frames += 1
            cap.release()
        else:
            import av

            with av.open(str(f)) as container:
                stream = container.streams.video[0]
                stream.thread_type = "AUTO"
                for frame in container.decode(stream):
                    frame.to_ndarray(format="rgb24")
                    frames += 1
    seconds = time.perf_counter() - started
    return {"frames": frames, "seconds": round(seconds, 3), "fps": round(frames / seconds, 1)}


def _tracking(detector: str, clip: Path, every: int) -> dict:
    """Frames per second of detect + track on every frame against the detector every ``every`` frames."""
    from foveal.models.io import load_model
    from foveal.video.track import track_video

    model, card = load_model(detector)
    track_video(model, card, clip, every=1, max_frames=3)  # warm-up: traces the predict function
    out = {"clip": str(clip), "detector": detector, "input": list(card.input_shape)}
    for k in (1, every):
        r = track_video(model, card, clip, every=k)
        out[f"every_{k}"] = {"frames": r["frames"], "seconds": r["seconds"], "fps": r["fps"],
                             "detector_calls": r["detector_calls"], "detector_seconds": r["detector_seconds"],
                             "tracks": len(r["tracks"])}
    out["speed_up"] = round(out[f"every_{every}"]["fps"] / out["every_1"]["fps"], 2)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("--data", required=True, help="the fight-video folder (fight/, noFight/)")
    parser.add_argument("--backbone", required=True, help="a classifier .keras file (or a zoo name: random weights)")
    parser.add_argument("--backbone-options", default="", help="zoo backbone options, e.g. width=8,wide=16")
    parser.add_argument("--model", default="lstm", help="lstm, gru, bilstm, bigru or avgpool")
    parser.add_argument("--sampling", default="even:16")
    parser.add_argument("--frame-size", type=int, default=64)
    parser.add_argument("--deltas", action="store_true", help="append the frame-to-frame feature change")
    parser.add_argument("--units", type=int, default=512)
    parser.add_argument("--dense", type=int, default=256)
    parser.add_argument("--dropout", type=float, default=0.5)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--clips", type=int, default=0, help="decode-speed test on the first N clips (0: all)")
    parser.add_argument("--second-run", action="store_true", help="train again on the cached features")
    parser.add_argument("--output", help="folder for the run folders and the cache (default: a new temporary one)")
    parser.add_argument("--detector", help="a detector .keras file: also time `foveal video track` on the first "
                        "clip, the detector on every frame against every --every frames")
    parser.add_argument("--every", type=int, default=3, help="k of the detect-every-k timing (default: 3)")
    parser.add_argument("--no-train", action="store_true", help="skip the training and cross-validation")
    args = parser.parse_args(argv)

    from foveal import configtools
    from foveal.tasks import run_train
    from foveal.video.config import VideoConfig
    from foveal.video.decode import scan_video_folder
    from foveal.video.features import FeatureExtractor, clip_features
    from foveal.video.sampling import Sampling

    load_before = os.getloadavg()
    clips, names = scan_video_folder(args.data)
    files = [c.path for c in clips][: args.clips or None]
    result: dict = {"machine": {"cpus": os.cpu_count(), "load_average_before": [round(v, 2) for v in load_before]},
                    "data": args.data, "clips": len(clips), "decode": {}}
    result["decode"]["opencv"] = _decode_all(files, "opencv")
    try:
        import av  # noqa: F401

        result["decode"]["pyav"] = _decode_all(files, "pyav")
    except ImportError:
        result["decode"]["pyav"] = "not installed"

    options = configtools._parse_mapping(args.backbone_options, "backbone_options") if args.backbone_options else {}
    out = Path(args.output or tempfile.mkdtemp(prefix="video-fight-"))
    started = time.perf_counter()
    extractor = FeatureExtractor.create(args.backbone, (args.frame_size, args.frame_size), options=options)
    load_s = time.perf_counter() - started
    stats: dict = {}
    for f in files:
        clip_features(extractor, f, Sampling.parse(args.sampling), cache=None, stats=stats)
    result["pipeline"] = {
        "backbone": args.backbone, "feature_dim": extractor.dim, "frame_size": args.frame_size,
        "sampling": args.sampling, "backbone_load_s": round(load_s, 2),
        "frames_decoded": int(stats["frames_decoded"]), "frames_to_backbone": int(stats["frames_extracted"]),
        "decode_sample_s": round(stats["decode_s"], 3), "feature_s": round(stats["extract_s"], 3),
        "decode_fps": round(stats["frames_decoded"] / stats["decode_s"], 1),
        "feature_fps": round(stats["frames_extracted"] / stats["extract_s"], 1),
        "decode_and_features_fps": round(stats["frames_decoded"] / (stats["decode_s"] + stats["extract_s"]), 1),
    }
    if args.detector:
        result["tracking"] = _tracking(args.detector, files[0], args.every)
    if args.no_train:
        result["machine"]["load_average_after"] = [round(v, 2) for v in os.getloadavg()]
        json.dump(result, sys.stdout, indent=1)
        print()
        return 0
    cfg = VideoConfig(data=args.data, backbone=args.backbone, backbone_options=options, model=args.model,
                      sampling=args.sampling, frame_size=[args.frame_size], deltas=args.deltas, units=args.units,
                      dense=args.dense, dropout=args.dropout, epochs=args.epochs, learning_rate=args.learning_rate,
                      folds=args.folds, output=str(out), feature_cache=str(out / "features"), progress=False)
    started = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):  # the run's progress lines; stdout is the JSON
        run = run_train("video", cfg, name="fight")
    total = time.perf_counter() - started
    metrics = run.metrics or {}
    result["train"] = {"end_to_end_s": round(total, 1), "feature_s": metrics.get("feature_seconds"),
                       "split_accuracy": metrics.get("accuracy"), "split": metrics.get("split"),
                       "split_avgpool_accuracy": metrics.get("baseline_avgpool_accuracy"),
                       "cv": metrics.get("cv"), "run": str(run.run_dir)}
    if args.second_run:
        started = time.perf_counter()
        with contextlib.redirect_stdout(sys.stderr):
            again = run_train("video", cfg, name="fight-cached", folds=0)
        result["second_run"] = {"seconds": round(time.perf_counter() - started, 1),
                                "features_from_cache": (again.metrics or {}).get("features_from_cache")}
    flags = (f"--backbone {args.backbone} --model {args.model} --sampling {args.sampling} --frame-size "
             f"{args.frame_size} --epochs {args.epochs} --units {args.units} --dense {args.dense} --dropout "
             f"{args.dropout} --learning-rate {args.learning_rate} --folds {args.folds}"
             + (" --deltas" if args.deltas else ""))
    result["command"] = f"foveal video train --data {args.data} {flags}"
    result["machine"]["load_average_after"] = [round(v, 2) for v in os.getloadavg()]
    json.dump(result, sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
