"""End-to-end video models on raw frames against the feature + LSTM route, cross-validated on the
same folds of the Surveillance Camera Fight clips; prints JSON.

In one invocation (the load average before and after is in the JSON: the machine is shared):

1. the feature route of ``recipes/video.md``: per-frame features of a frozen ``--backbone``
   (cached under ``--cache``), then K-fold cross-validation of the masked LSTM and of the
   temporal-average-pooling baseline;
2. the sampled frames decoded once (``--frame-size``, ``--sampling``; cached too), then the same
   K folds of each end-to-end model (``--models``: ``cnn-lstm`` fine-tunes the same backbone
   through ``TimeDistributed`` after ``--freeze-epochs`` frozen epochs; ``convlstm`` and
   ``r2plus1d`` learn from scratch), each fold bounded by ``--budget`` seconds and ``--epochs``,
   under ``--mixed-precision``;
3. with ``--precision-check``: one epoch of ``r2plus1d`` on the training folds in float32 and in
   bfloat16 (seconds each), the speed mixed precision gives on this CPU.

    nice -n 5 .venv/bin/python benchmarks/video_endtoend.py --data ../shared/datasets/fight-video --backbone runs/cifar-airbench/best.keras \\
        --folds 5 --budget 60 > video_endtoend.json
    .venv/bin/python benchmarks/video_endtoend.py --data ../shared/datasets/fight-video --backbone airbench --clips 12 --folds 2 --epochs 1  # smoke test
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


def _subset(data: Path, clips: int | None, work: Path) -> Path:
    """``data`` itself, or a folder of links to the first ``clips`` clips of each class."""
    if not clips:
        return data
    out = work / "subset"
    for cls in sorted(d for d in data.iterdir() if d.is_dir()):
        (out / cls.name).mkdir(parents=True, exist_ok=True)
        for f in sorted(cls.iterdir())[:clips]:
            (out / cls.name / f.name).symlink_to(f.resolve())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="the fight-video folder (fight/, noFight/)")
    parser.add_argument("--backbone", required=True, help="classifier .keras (e.g. CIFAR-10 airbench) or zoo name")
    parser.add_argument("--clips", type=int, help="only the first N clips of each class")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--models", nargs="+", default=["cnn-lstm", "convlstm", "r2plus1d"])
    parser.add_argument("--frame-size", type=int, default=32, help="end-to-end frames (the feature route uses 64)")
    parser.add_argument("--sampling", default="even:8", help="end-to-end sampling (the feature route: even:16)")
    parser.add_argument("--epochs", type=int, default=15, help="end-to-end epochs per fold (at most)")
    parser.add_argument("--budget", type=float, default=60.0, help="seconds of training per fold and model")
    parser.add_argument("--freeze-epochs", type=int, default=2, help="cnn-lstm: epochs with the CNN frozen first")
    parser.add_argument("--filters", type=int, default=16)
    parser.add_argument("--units", type=int, default=64, help="LSTM units of cnn-lstm")
    parser.add_argument("--mixed-precision", default="none", choices=("none", "bfloat16"))
    parser.add_argument("--feature-epochs", type=int, default=60)
    parser.add_argument("--cache", help="feature/frame cache folder (default: a fresh temporary one)")
    parser.add_argument("--precision-check", action="store_true")
    parser.add_argument("--no-features", action="store_true", help="leave out the feature route (step 1)")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()

    load_before = os.getloadavg()
    started = time.perf_counter()
    from foveal.video.config import VideoConfig
    from foveal.video.task import cross_validate, load_features, load_frames

    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(sys.stderr):  # JSON alone on stdout
        work = Path(tmp)
        data = _subset(Path(args.data), args.clips, work)
        cache = args.cache or str(work / "cache")
        result: dict = {"data": str(args.data), "clips_per_class": args.clips, "folds": args.folds,
                        "backbone": args.backbone, "load_before": [round(v, 2) for v in load_before], "routes": {}}

        # 1. the feature route (recipes/video.md's settings)
        t0 = time.perf_counter()
        if args.no_features:
            args.feature_epochs = 0
        fcfg = VideoConfig(data=str(data), backbone=args.backbone, frame_size=[64], sampling="even:16", deltas=True,
                           model="lstm", units=128, dense=0, dropout=0.5, epochs=max(1, args.feature_epochs),
                           folds=args.folds, feature_cache=cache, output=str(work), seed=args.seed, progress=False)
        if not args.no_features:
            feats, _, facts = load_features(fcfg)
            feature_s = time.perf_counter() - t0
            cv = cross_validate(fcfg, feats, 2, ["lstm", "avgpool"])
            for name, r in cv["models"].items():
                result["routes"][f"features+{name}"] = {
                    **r, "settings": "64x64, even:16, deltas" + (", 128 units" if name == "lstm" else "")}
            result["feature_route"] = {"features_s": round(feature_s, 1), "cv_s": round(cv["seconds"], 1),
                                       "features_from_cache": int(facts["stats"].get("cached", 0))}

        # 2. end to end on raw frames
        base = dict(data=str(data), backbone=args.backbone, frame_size=[args.frame_size], sampling=args.sampling,
                    units=args.units, dense=0, dropout=0.5, filters=args.filters, epochs=args.epochs,
                    time_budget=args.budget, mixed_precision=args.mixed_precision, folds=args.folds,
                    feature_cache=cache, output=str(work), seed=args.seed, batch_size=16, progress=False,
                    jit_compile="off")
        t0 = time.perf_counter()
        frames, _, ffacts = load_frames(VideoConfig(model="r2plus1d", **base))
        result["frames"] = {"decode_s": round(time.perf_counter() - t0, 1), "shape": list(frames.x.shape),
                            "megabytes": round(frames.x.nbytes / 2 ** 20, 1),
                            "from_cache": int(ffacts["stats"].get("cached", 0))}
        for name in args.models:
            cfg = VideoConfig(model=name, freeze_backbone_epochs=args.freeze_epochs if name == "cnn-lstm" else 0,
                              **base)
            cv = cross_validate(cfg, frames, 2, [name])
            r = cv["models"][name]
            result["routes"][name] = {**r, "seconds": round(cv["seconds"], 1),
                                      "settings": f"{args.frame_size}x{args.frame_size}, {args.sampling}, <= "
                                                  f"{args.epochs} epochs and {args.budget:g} s a fold"
                                                  + (f", CNN frozen {args.freeze_epochs} epochs" if name == "cnn-lstm"
                                                     else "")}

        # 3. float32 against bfloat16, one epoch of r2plus1d
        if args.precision_check:
            from foveal.video.task import fit_plain

            timing = {}
            for precision in ("none", "bfloat16"):
                cfg = VideoConfig(model="r2plus1d", **{**base, "epochs": 2, "time_budget": 0.0,
                                                      "mixed_precision": precision})
                t0 = time.perf_counter()
                fit_plain(cfg, "r2plus1d", frames, 2, seed=args.seed)
                timing[precision] = round(time.perf_counter() - t0, 1)
            result["r2plus1d_2_epochs_s"] = timing

    result["seconds"] = round(time.perf_counter() - started, 1)
    result["load_after"] = [round(v, 2) for v in os.getloadavg()]
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
