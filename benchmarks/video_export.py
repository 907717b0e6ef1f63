"""A video classifier exported and run like `foveal video predict` runs it: export time, parity and
size per format, then seconds per clip (label + timeline) and clips/s of the model alone, for
the ``.keras`` model (the baseline, same invocation) and each export; prints JSON with the load
average before and after (the machine is shared).

What is timed per runtime, on the first ``--clips`` clips of ``--data`` (a folder of class
subfolders of clips, searched recursively):

1. ``predict_video`` end to end (decode, sample, the clip label and every timeline window);
2. the model alone on ``--batch`` clips of the model's steps (the frames decoded beforehand).

Example::

    nice -n 5 .venv/bin/python benchmarks/video_export.py RUN/best.keras \\
        --data ../shared/datasets/fight-video --clips 10 > video_export.json
    .venv/bin/python benchmarks/video_export.py --data ../shared/datasets/fight-video --tiny --clips 2   # smoke test: an untrained tiny model
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = Path(__file__).resolve().parents[1]


def _tiny_model(folder: Path) -> Path:
    sys.path.insert(0, str(ROOT))
    from tests.video.conftest import write_video_model

    return write_video_model(folder / "tiny", "lstm")


def _time_runtime(vm, clips: list[Path], batch: int, window: float, stride: float) -> dict:
    import numpy as np

    from foveal.video.features import clip_frames
    from foveal.video.predict import predict_video

    predict_video(vm, clips[0], window=window, stride=stride)  # warm-up (traces the graph)
    started = time.perf_counter()
    labels = [predict_video(vm, c, window=window, stride=stride)["label"] for c in clips]
    per_clip = (time.perf_counter() - started) / len(clips)
    frames = [clip_frames(c, vm.sampling, vm.extractor.frame_size) for c in clips]
    chosen = [frames[i % len(frames)] for i in range(batch)]
    vm.classify_frames(chosen)
    started = time.perf_counter()
    probs = vm.classify_frames(chosen)
    alone = time.perf_counter() - started
    return {"seconds_per_clip_predict": round(per_clip, 3), "clips_per_s_model_alone": round(batch / alone, 2),
            "labels": labels, "probabilities_first": np.round(probs[0], 5).tolist()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", help="a .keras video model written by `foveal video train`")
    parser.add_argument("--tiny", action="store_true", help="an untrained tiny model instead (smoke test)")
    parser.add_argument("--data", required=True, help="clips to run on (e.g. the fight-video folder)")
    parser.add_argument("--clips", type=int, default=10, help="clips timed per runtime (default: 10)")
    parser.add_argument("--batch", type=int, default=8, help="clips per model call for the model-alone figure")
    parser.add_argument("--formats", nargs="+", default=["savedmodel", "onnx", "tflite"])
    parser.add_argument("--samples", type=int, default=8, help="parity clips per export (default: 8)")
    parser.add_argument("--window", type=float, default=2.0)
    parser.add_argument("--stride", type=float, default=1.0)
    args = parser.parse_args(argv)
    if not args.model and not args.tiny:
        parser.error("give a model, or --tiny")
    load_before = os.getloadavg()
    from foveal.export import export_model
    from foveal.video.decode import is_video_file
    from foveal.video.predict import load_video_model

    out = Path(tempfile.mkdtemp(prefix="video-export-"))
    model = Path(args.model) if args.model else _tiny_model(out)
    clips = sorted(p for p in Path(args.data).rglob("*") if p.is_file() and is_video_file(p))
    clips = [clips[i] for i in sorted({int(round(x)) for x in
                                       __import__("numpy").linspace(0, len(clips) - 1, args.clips)})]
    result: dict = {"model": str(model), "data": args.data, "clips": len(clips), "batch": args.batch,
                    "window": args.window, "stride": args.stride, "load_before": [round(v, 2) for v in load_before]}
    runtimes = {"keras": load_video_model(model)}
    result["parameters"] = runtimes["keras"].count_params()
    result["exports"] = {}
    for fmt in args.formats:
        target = out / ("best_savedmodel" if fmt == "savedmodel" else f"best.{fmt}")
        started = time.perf_counter()
        try:
            report = export_model(model, fmt, target, samples=args.samples)
        except Exception as exc:  # report the failure, go on with the other formats
            result["exports"][fmt] = {"error": f"{type(exc).__name__}: {str(exc)[:300]}"}
            continue
        result["exports"][fmt] = {"seconds": round(time.perf_counter() - started, 1), "passed": report.passed,
                                  "max_abs_diff": report.max_abs_diff, "top1_agreement": report.top1_agreement,
                                  "size_mb": round(report.size_bytes / 1e6, 3), "parity_clips": report.samples}
        runtimes[fmt] = load_video_model(target)
    result["runtimes"] = {}
    for name, vm in runtimes.items():
        result["runtimes"][name] = _time_runtime(vm, clips, args.batch, args.window, args.stride)
    base = result["runtimes"]["keras"]
    for name, timing in result["runtimes"].items():
        timing["same_labels_as_keras"] = timing["labels"] == base["labels"]
        timing["speedup_predict"] = round(base["seconds_per_clip_predict"] / timing["seconds_per_clip_predict"], 2)
    for timing in result["runtimes"].values():
        timing.pop("labels")
    result["load_after"] = [round(v, 2) for v in os.getloadavg()]
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
