"""``foveal export`` and ``foveal benchmark`` subcommands."""

from __future__ import annotations

import argparse
import json
from typing import Any

from foveal.export.names import FORMATS, RUNTIMES


def _export(args: argparse.Namespace, _: dict[str, Any]) -> int:
    from foveal.export.parity import ExportParityError, export_model

    try:
        report = export_model(args.model, args.format, args.output, quantize=args.quantize, data=args.data,
                              split=args.split, tolerance=args.tolerance, samples=args.samples,
                              calibration=args.calibration, accuracy_limit=args.accuracy_limit,
                              threads=args.threads)
    except ExportParityError as exc:
        print(json.dumps(exc.report.to_dict(), indent=1) if args.json else exc.report.summary())
        raise
    print(json.dumps(report.to_dict(), indent=1) if args.json else report.summary())
    return 0


def _benchmark(args: argparse.Namespace, _: dict[str, Any]) -> int:
    from foveal.export.benchmark import benchmark, format_benchmark

    table = benchmark(args.model, runtimes=tuple(args.runtimes), threads=args.threads, warmup=args.warmup,
                      runs=args.runs, batch_size=args.batch_size, trust_model=args.trust_model)
    print(json.dumps(table, indent=1) if args.json else format_benchmark(table))
    if args.output:
        from foveal.utils_io import atomic_write_text

        atomic_write_text(args.output, json.dumps(table, indent=1))
    return 0


EPILOG_EXPORT = """examples:
  foveal export runs/RUN/best.keras --format onnx --data data/ --split test       # parity + accuracy
  foveal export runs/RUN/best.keras --format tflite --quantize int8 --data data/ --output deploy/
  # instance models: a Mask R-CNN exports whole (boxes, classes, scores, 28x28 masks; savedmodel or onnx,
  # float32), a U-Net + watershed as a segmenter (the watershed runs in the runner); mask AP side by side
  foveal export runs/mask-rcnn/best.keras --format savedmodel --data shapes/ --split test
  foveal export runs/cells/best.keras --format onnx --data cells/annotations/instances_test.json
  # a video classifier: one graph from frames + lengths to probabilities; int8 calibrated on clips
  foveal export runs/fight/best.keras --format tflite --quantize dynamic --data fight-video/
  foveal export runs/fight/best.keras --format onnx --quantize int8 --data fight-video/ --calibration 32
"""


def add_export_commands(sub: Any) -> None:
    """Add ``export`` and ``benchmark`` to the ``foveal`` subcommands."""
    e = sub.add_parser("export", help="export a model to SavedModel, TFLite or ONNX and check it",
                       description="Export a .keras model (classifier, localizer, detector, segmenter, "
                       "instance segmenter, enhancer, or a generative model's sampler), check its outputs against Keras on sample "
                       "images (probabilities; class and box; boxes after NMS matched by IoU; masks and enhanced "
                       "images pixel by pixel; a generator's images from seeded latent codes, every class in "
                       "turn; an instance model's boxes and masks, or its probabilities and watershed instances), "
                       "and with --data measure the export's accuracy next to the Keras model's with the "
                       "task's own metric (accuracy, mean IoU, mAP@0.5, mean IoU of masks, PSNR, mask AP). The "
                       "export is moved into place only when the check passes.",
                       epilog=EPILOG_EXPORT, formatter_class=argparse.RawDescriptionHelpFormatter)
    e.add_argument("model", help="a .keras model file written by foveal (any task)")
    e.add_argument("--format", required=True, choices=FORMATS, help="export format")
    e.add_argument("--quantize", choices=("float16", "dynamic", "int8"),
                   help="tflite: float16, dynamic or int8; onnx: dynamic or int8 (default: none)")
    e.add_argument("--output", metavar="PATH", help="target file (suffix of the format), or folder: an existing "
                   "one, or a new one given with a trailing / or without a suffix (default: beside the model)")
    e.add_argument("--data", metavar="SPEC", help="dataset of the model's task (classes; boxes; image/mask "
                   "folder; a video model: class subfolders of clips): parity samples, int8 calibration images "
                   "or clips (train split) and the accuracy comparison (--split)")
    e.add_argument("--split", default="test", help="dataset part for parity and accuracy (default: test)")
    e.add_argument("--tolerance", type=float, help="largest allowed difference of probabilities, scores and "
                   "box corners (fractions of the image) (default by "
                   "quantization: 1e-4 none, 1e-2 float16, 0.1 dynamic, 0.2 int8)")
    e.add_argument("--samples", type=int, default=64, help="images for the parity check (default: 64)")
    e.add_argument("--calibration", type=int, default=200, help="int8 calibration images, or clips of a video "
                   "model (default: 200)")
    e.add_argument("--accuracy-limit", type=int, help="score at most this many images (default: all)")
    e.add_argument("--threads", type=int, help="runtime threads for the checks")
    e.add_argument("--json", action="store_true", help="print the report as JSON")
    e.set_defaults(func=_export)

    b = sub.add_parser("benchmark", help="latency and throughput in every runtime, side by side",
                       description="Warm up, then time many runs: p50/p90/p99 latency at batch 1 (model alone "
                       "and end to end from JPEG bytes to the task's answer; a generator: from a seed to a PNG "
                       "sample; a video classifier: from a video file to the clip's label) and throughput at each "
                       "--batch-size. Every task: classifiers, detectors, segmenters, enhancers, generators (VAE "
                       "decoder, GAN generator; on latent codes) and video classifiers (on clips: frames and "
                       "lengths; clips per second).",
                       epilog="examples:\n  foveal benchmark runs/RUN/best.keras --runtimes keras-predict onnx\n"
                       "  foveal benchmark runs/GAN/best.keras --batch-size 1 16 64   # samples per second\n"
                       "  foveal benchmark runs/RUN/best.onnx --runs 200\n"
                       "  foveal benchmark runs/fight/best.keras --batch-size 1 4 16   # a video model: clips/s",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    b.add_argument("model", help="a .keras file (benchmarked in every runtime) or one export "
                   "(.tflite, .onnx, SavedModel folder)")
    b.add_argument("--runtimes", nargs="+", default=list(RUNTIMES), choices=RUNTIMES, metavar="RUNTIME",
                   help=f"runtimes for a .keras model (default: all: {', '.join(RUNTIMES)})")
    b.add_argument("--threads", type=int, default=2, help="intra-op threads (default: 2)")
    b.add_argument("--warmup", type=int, default=10, help="untimed runs first (default: 10)")
    b.add_argument("--runs", type=int, default=100, help="timed runs at batch 1 (default: 100)")
    b.add_argument("--batch-size", type=int, nargs="+", default=[32], metavar="N",
                   help="batch size(s) of the throughput figures: images (a generator: samples; a video model: clips) per second at "
                   "each (default: 32)")
    b.add_argument("--output", metavar="FILE.json", help="also write the results as JSON")
    b.add_argument("--json", action="store_true", help="print JSON instead of the table")
    b.add_argument("--trust-model", action="store_true",
                   help="run an export even if its graph has ops outside foveal's allow-list of inference ops "
                   "(file, process, network or unknown ops): only for files whose origin you trust")
    b.set_defaults(func=_benchmark)
