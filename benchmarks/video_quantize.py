"""Quantized exports of a video classifier against its float Keras model, on real clips: for each
quantization, the export (``foveal export --quantize``, int8 calibrated on clips of the same folder),
its size, and on every clip of ``--data`` (decoded once, the same frames for every runtime) the
label agreement with the Keras model, the largest probability difference and the accuracy of both.
Prints JSON with the load average before and after (the machine is shared).

Example::

    nice -n 5 .venv/bin/python benchmarks/video_quantize.py runs/fight/best.keras \\
        --data ../shared/datasets/fight-video --calibration 32 > video_quantize.json
    .venv/bin/python benchmarks/video_quantize.py --tiny --data CLIPS/   # smoke test: an untrained tiny model
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
VARIANTS = ("tflite:none", "tflite:float16", "tflite:dynamic", "tflite:int8", "onnx:none", "onnx:dynamic", "onnx:int8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", help="a .keras video model written by `foveal video train`")
    parser.add_argument("--tiny", action="store_true", help="an untrained tiny model instead (smoke test)")
    parser.add_argument("--data", required=True, help="class subfolders of clips, e.g. ../shared/datasets/fight-video")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), metavar="FORMAT:QUANTIZE")
    parser.add_argument("--calibration", type=int, default=32, help="int8 calibration clips (default: 32)")
    parser.add_argument("--samples", type=int, default=8, help="parity clips of foveal export's own check")
    args = parser.parse_args(argv)
    if not args.model and not args.tiny:
        parser.error("give a model, or --tiny")
    load_before = os.getloadavg()
    import numpy as np

    from foveal.export import export_model
    from foveal.export.runners import open_runner
    from foveal.export.tasks import load
    from foveal.video.export_check import _decoded, load_parts, outputs

    out = Path(tempfile.mkdtemp(prefix="video-quantize-"))
    if args.tiny:
        sys.path.insert(0, str(ROOT))
        from tests.video.conftest import write_video_model

        model = write_video_model(out / "tiny", "lstm")
    else:
        model = Path(args.model)
    vm, card = load(model)
    part = load_parts(args.data, card)["all"]
    started = time.perf_counter()
    clips = _decoded(part, card)  # every clip once: the same frames for every runtime
    decode_s = time.perf_counter() - started
    started = time.perf_counter()
    reference = outputs(vm, card, clips)["probabilities"]
    keras_s = time.perf_counter() - started
    labels = reference.argmax(1)
    result: dict = {"model": str(model), "data": args.data, "clips": len(part), "parameters": vm.count_params(),
                    "calibration_clips": args.calibration, "decode_s": round(decode_s, 1),
                    "load_before": [round(v, 2) for v in load_before],
                    "keras": {"accuracy": round(float(np.mean(labels == part.labels)), 4),
                              "seconds_all_clips": round(keras_s, 1)},
                    "exports": {}}
    for variant in args.variants:
        fmt, quantize = variant.split(":")
        quantize = None if quantize == "none" else quantize
        target = out / f"best.{quantize or 'float'}.{fmt}"
        entry: dict = {}
        started = time.perf_counter()
        try:  # a loose tolerance: the figures below judge it, not foveal export's own check
            report = export_model(model, fmt, target, quantize=quantize, data=args.data, samples=args.samples,
                                  calibration=args.calibration, accuracy_limit=2, tolerance=1.0)
        except Exception as exc:  # report the refusal or failure, go on with the others
            entry["error"] = f"{type(exc).__name__}: {str(exc)[:300]}"
            result["exports"][variant] = entry
            continue
        entry.update(export_s=round(time.perf_counter() - started, 1), size_mb=round(report.size_bytes / 1e6, 3),
                     parity_max_abs_diff=report.max_abs_diff)
        started = time.perf_counter()
        probs = outputs(open_runner(target), report_card(target), clips)["probabilities"]
        entry["seconds_all_clips"] = round(time.perf_counter() - started, 1)
        entry["label_agreement"] = round(float(np.mean(probs.argmax(1) == labels)), 4)
        entry["max_abs_diff"] = round(float(np.abs(probs - reference).max()), 5)
        entry["accuracy"] = round(float(np.mean(probs.argmax(1) == part.labels)), 4)
        result["exports"][variant] = entry
        print(json.dumps({variant: entry}), file=sys.stderr, flush=True)
    result["load_after"] = [round(v, 2) for v in os.getloadavg()]
    print(json.dumps(result, indent=1))
    return 0


def report_card(target: Path):
    from foveal.export.runners import read_export_card

    return read_export_card(target)


if __name__ == "__main__":
    sys.exit(main())
