"""``foveal video train|evaluate|predict``: the command line of video clip classification.

:func:`add_video_command` adds the ``video`` command to the ``foveal`` parser's subcommands;
each action calls one public function of :mod:`foveal.video`. TensorFlow and OpenCV are
imported inside the handlers, so ``foveal --help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from foveal.cli.task_commands import add_evaluate_options, add_mode, add_task_command, report_skipped

EPILOG_TRAIN = """examples:
  # the texts' model: 16 frames spread evenly, CNN features of a CIFAR-10 classifier, masked LSTM
  foveal video train --data ../shared/datasets/fight-video --backbone runs/cifar/best.keras --folds 5
  # GRU on 4 frames a second; the features are cached under runs/video-features and reused
  foveal video train --data clips/ --backbone runs/cifar/best.keras --sampling fps:4 --model gru
  # 4 frames per detected scene, frame-to-frame feature differences added
  foveal video train --data clips/ --backbone runs/cifar/best.keras --sampling scene:4 --deltas
  # ImageNet features from keras.applications (downloads the weights: online only)
  foveal video train --data clips/ --backbone keras:MobileNetV2 --frame-size 224
  # end to end on raw frames: the CIFAR-10 CNN fine-tuned through TimeDistributed (frozen for 2 epochs), an LSTM
  foveal video train --data clips/ --model cnn-lstm --backbone runs/cifar/best.keras --frame-size 32 \
      --sampling even:8 --units 64 --freeze-backbone-epochs 2 --epochs 20 --time-budget 900
  # (2+1)D convolutions or ConvLSTM2D from scratch, bfloat16, frames decoded again every epoch (no memory cache)
  foveal video train --data clips/ --model r2plus1d --frame-size 32 --mixed-precision bfloat16 --cache none
  foveal video train --resume runs/video-lstm-clips-20261206-210000
"""

EPILOG_EVALUATE = """examples:
  foveal video evaluate runs/RUN/best.keras --data held_out_clips/ --output eval/
  foveal video evaluate runs/RUN/best.keras --data clips/ --skip-invalid --json
"""

EPILOG_PREDICT = """examples:
  foveal video predict runs/RUN/best.keras long_video.mp4 --output out/
  #   -> out/long_video.timeline.json, .timeline.csv and .annotated.mp4 (labels drawn on the frames)
  foveal video predict runs/RUN/best.keras clips/ --window 2 --stride 0.5 --format json --no-annotate
"""


def _evaluate(args: argparse.Namespace, _: dict[str, Any]) -> int:
    from foveal.evaluation.classification import format_metrics_table
    from foveal.video.predict import evaluate_video

    metrics = evaluate_video(args.model, args.data, output=args.output, skip_invalid=args.skip_invalid,
                             class_map=args.class_map, cache=args.feature_cache)
    print(json.dumps(metrics, indent=1) if args.json else format_metrics_table(metrics))
    if metrics["skipped_clips"]:
        print(f"skipped {metrics['skipped_clips']} unreadable clip(s)", file=sys.stderr)
    return 0


def _predict(args: argparse.Namespace, _: dict[str, Any]) -> int:
    from foveal.video.predict import format_rows, load_video_model, predict_files

    vm = load_video_model(args.model)
    rows = predict_files(vm, args.images, skip_invalid=args.skip_invalid, window=args.window, stride=args.stride,
                         output=args.output, annotate=args.annotate)
    if args.format == "json":
        print(json.dumps(rows, indent=1))
    elif args.format == "csv":
        from foveal.video.predict import timeline_csv

        for r in rows:
            if "error" not in r:
                print(f"# {r['file']}: {r['label']} {r['probability']}")
                print(timeline_csv(r, vm.class_names), end="")
    else:
        print(format_rows(rows))
    for r in rows:
        for path in r.get("outputs", []):
            print(f"wrote {path}", file=sys.stderr)
    report_skipped(rows)
    return 0


EPILOG_TRACK = """examples:
  # a detector of `foveal detect train` on every 3rd frame, SORT-style tracking in between
  foveal video track runs/raccoon/best.keras street.mp4 --every 3 --output tracked/
  #   -> tracked/street.tracks.json, street.mot.txt (MOT Challenge text) and street.tracked.mp4
  foveal video track runs/raccoon/best.keras street.mp4 --every 1 --iou-threshold 0.3 --max-age 2 --min-hits 3
  # scored against ground-truth tracks (MOT Challenge text): MOTA, IDF1, misses, false boxes, id switches
  foveal datasets synth moving-shapes --output shapes/
  foveal detect train --data shapes/ --image-size 128 --output runs --name shapes-det
  foveal video track runs/shapes-det/best.keras shapes/video.mp4 --gt shapes/gt.txt --every 3
"""


def _track(args: argparse.Namespace, _: dict[str, Any]) -> int:
    from foveal.models.io import load_model
    from foveal.video.track import SortTracker, track_video

    model, card = load_model(args.model)
    tracker = SortTracker(iou_threshold=args.iou_threshold, max_age=args.max_age, min_hits=args.min_hits)
    result = track_video(model, card, args.video, every=args.every, output=args.output, tracker=tracker,
                         annotate=args.annotate, max_frames=args.max_frames, gt=args.gt, gt_iou=args.gt_iou)
    if args.format == "json":
        print(json.dumps(result, indent=1))
    else:
        print(f"{result['file']}: {result['frames']} frame(s), {len(result['tracks'])} track(s), detector on "
              f"{result['detector_calls']} frame(s) (every {result['every']}), {result['fps']} frames/s")
        for tid, items in sorted(result["tracks"].items()):
            print(f"  #{tid} {items[0]['class']}: frames {items[0]['frame']}-{items[-1]['frame']} "
                  f"({len(items)} boxes, {sum(not i['predicted'] for i in items)} detected)")
        if "scores" in result:
            from foveal.video.mot import format_scores

            print(f"against {args.gt}: {format_scores(result['scores'])}")
    for path in result["outputs"]:
        print(f"wrote {path}", file=sys.stderr)
    return 0


def add_video_command(subparsers: argparse._SubParsersAction) -> None:
    """Add ``video`` with its ``train``, ``evaluate`` and ``predict`` actions to ``subparsers``."""
    actions = add_task_command(
        subparsers, "video", help="video: clip classification (CNN features per frame + LSTM/GRU), tracking",
        description="Train, evaluate and use video clip classifiers on folders of class subfolders of clips.",
        train_help="train a clip classifier (features cached, --folds for cross-validation)",
        train_description="Train a clip classifier: frames sampled from each clip, per-frame features of a "
        "frozen CNN backbone (cached), and a masked LSTM/GRU (or the temporal average baseline) on them; or a "
        "model trained end to end on the raw frames (cnn-lstm, convlstm, r2plus1d).",
        train_epilog=EPILOG_TRAIN)

    e = add_mode(actions, "evaluate", "video", help="accuracy, per-class report and confusion matrix on a clip "
                 "folder", epilog=EPILOG_EVALUATE)
    add_evaluate_options(e, data_help="a folder of class subfolders of clips",
                         output_help="write metrics.json and report.html here")
    e.add_argument("--feature-cache", metavar="DIR", help="cache the clips' features here (default: none)")
    e.set_defaults(func=_evaluate)

    p = actions.add_parser("predict", help="clip label and a timeline over sliding windows (JSON/CSV, annotated MP4)",
                           allow_abbrev=False, epilog=EPILOG_PREDICT, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="a .keras model file written by `foveal video train` (backbone.keras beside it)")
    p.add_argument("images", metavar="videos", nargs="+", help="video files and/or folders (searched recursively)")
    p.add_argument("--output", metavar="DIR", help="write NAME.timeline.json, NAME.timeline.csv and "
                   "NAME.annotated.mp4 here")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table", help="what to print (default: table)")
    p.add_argument("--window", type=float, default=2.0, help="timeline window in seconds (default: 2)")
    p.add_argument("--stride", type=float, default=1.0, help="seconds between window starts (default: 1)")
    p.add_argument("--annotate", action=argparse.BooleanOptionalAction, default=True,
                   help="with --output: also write the video with the labels drawn on it (default: on)")
    p.add_argument("--skip-invalid", action="store_true", help="report unreadable videos and go on")
    p.set_defaults(func=_predict)

    t = actions.add_parser("track", help="detect objects every k frames and track them (SORT): ids, MOT text, MP4",
                           allow_abbrev=False, epilog=EPILOG_TRACK, formatter_class=argparse.RawDescriptionHelpFormatter)
    t.add_argument("model", help="a detector .keras file written by `foveal detect train`")
    t.add_argument("video", help="a video file")
    t.add_argument("--every", type=int, default=1, help="run the detector on every k-th frame; the tracker's "
                   "Kalman prediction carries the boxes in between (default: 1)")
    t.add_argument("--iou-threshold", type=float, default=0.3, help="least IoU of a detection-track match (default: 0.3)")
    t.add_argument("--max-age", type=int, default=1, help="detector rounds a track survives unmatched (default: 1)")
    t.add_argument("--min-hits", type=int, default=3, help="matches before a track is reported (default: 3)")
    t.add_argument("--max-frames", type=int, help="stop after this many frames")
    t.add_argument("--output", metavar="DIR", help="write NAME.tracks.json, NAME.mot.txt and NAME.tracked.mp4 here")
    t.add_argument("--annotate", action=argparse.BooleanOptionalAction, default=True,
                   help="with --output: also write the video with the tracks drawn (default: on)")
    t.add_argument("--gt", metavar="FILE", help="ground-truth tracks of the video (MOT Challenge text: "
                   "frame,id,left,top,width,height,...): score MOTA, IDF1, misses, false boxes and id switches")
    t.add_argument("--gt-iou", type=float, default=0.5, help="least IoU of a tracked box and a true one to count "
                   "as a match when scoring (default: 0.5)")
    t.add_argument("--format", choices=("table", "json"), default="table", help="what to print (default: table)")
    t.set_defaults(func=_track)


__all__ = ["add_video_command"]
