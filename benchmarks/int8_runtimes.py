"""int8 against float32 in the same runtime (TFLite/LiteRT and ONNX Runtime), batch 1 and 32, 2 threads.

* ``speed`` (``resnet50``, ``mobilenetv2``; random weights at 224x224, 1,000 classes): every
  format is written from the same Keras model with foveal's writers (int8 calibrated on seeded
  random pixels, which is fine for timing only), then timed in interleaved rounds (each round calls
  every runtime once, so a change of the machine's load hits all of them alike). Reported: the
  median milliseconds per call and, per runtime, int8 / float32 speed-up as the ratio of medians
  and as the median of the per-round ratios. Extra rows show the cause found in
  recipes/deployment.md in the same invocation: ``onnx int8 s8s8`` (the previous quantization
  setting, signed int8 activations) and ``onnx float32 spinning`` (ONNX Runtime's worker threads
  spin-waiting, its default). Keras ``predict_on_batch`` is kept for reference.
  With ``--graphs`` each ONNX file's op counts, as stored and as ONNX Runtime optimizes it, and
  ONNX Runtime's profile (share of kernel time by op type, batch 1) are added.
* ``accuracy``: a foveal-trained classifier (``--cifar-model``, e.g. CIFAR-10 ResNet-18 or
  Fashion-MNIST MobileNetV2, at its native 32x32) exported with ``export_model(..., data=...)``
  to float and int8 TFLite and ONNX: int8 calibrated on 200 real training images, Keras and
  every export scored on the whole test split, then timed the same way (``--rounds 0``: not timed).

The load average is printed before and after each experiment; compare numbers of one invocation
only (the machine is shared). One JSON document goes to stdout; progress goes to stderr.

Example:
    nice -n 5 python benchmarks/int8_runtimes.py --only speed --graphs > int8-speed.json
    nice -n 5 python benchmarks/int8_runtimes.py --only accuracy \
        --cifar-model /tmp/deploy/runs/cifar/best.keras --data /tmp/deploy/cifar10 > int8-cifar.json
    nice -n 5 python benchmarks/int8_runtimes.py --only accuracy --rounds 0 \
        --cifar-model runs/mnv2-fashion/best.keras --data ../shared/datasets/fashion-mnist > int8-mnv2.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from deploy_targets import load_average, log, machine  # noqa: E402

THREADS = 2
BATCHES = (1, 32)
TARGET_SPEEDUP = 2.0
TARGET_LOSS_POINTS = 0.5


def interleaved(calls: dict[str, Callable[[], Any]], rounds: int, warmup: int = 1) -> dict[str, Any]:
    """Milliseconds of ``rounds`` rounds, each calling every function once (after ``warmup`` rounds)."""
    for _ in range(warmup):
        for fn in calls.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(rounds):
        for name, fn in calls.items():
            start = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - start) * 1e3)
    return times


def summarize(times: dict[str, list[float]], pairs: dict[str, tuple[str, str]]) -> dict[str, Any]:
    """Median ms per runtime, and each pair's speed-up (slow / fast): ratio of medians and the
    median of per-round ratios."""
    rows = {name: {"median_ms": round(float(np.median(t)), 3), "min_ms": round(float(np.min(t)), 3),
                   "calls": len(t)} for name, t in times.items()}
    ratios = {}
    for label, (slow, fast) in pairs.items():
        if slow in times and fast in times:
            per_round = np.asarray(times[slow]) / np.asarray(times[fast])
            ratios[label] = {"ratio_of_medians": round(rows[slow]["median_ms"] / rows[fast]["median_ms"], 2),
                             "median_of_round_ratios": round(float(np.median(per_round)), 2)}
    return {"ms": rows, "speedups": ratios}


PAIRS = {
    "tflite int8 vs tflite float32": ("tflite float32", "tflite int8"),
    "onnx int8 vs onnx float32": ("onnx float32", "onnx int8"),
    "onnx int8 s8s8 (previous) vs onnx float32": ("onnx float32", "onnx int8 s8s8"),
    "onnx float32 vs tflite float32": ("tflite float32", "onnx float32"),
    "onnx float32 vs onnx float32 spinning": ("onnx float32 spinning", "onnx float32"),
    "onnx float32 vs keras predict_on_batch": ("keras predict_on_batch", "onnx float32"),
}


def graph_facts(path: Path, threads: int, image: np.ndarray) -> dict[str, Any]:
    """Op counts of the ONNX file as stored and as ONNX Runtime optimizes it (ORT_ENABLE_ALL),
    and the share of kernel time per op type in ONNX Runtime's profile of 3 calls."""
    import onnx
    import onnxruntime as ort

    stored = Counter(n.op_type for n in onnx.load(str(path)).graph.node)
    with tempfile.TemporaryDirectory() as tmp:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.optimized_model_filepath = str(Path(tmp) / "optimized.onnx")
        options.enable_profiling = True
        options.profile_file_prefix = str(Path(tmp) / "profile")
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        optimized = Counter(n.op_type for n in onnx.load(options.optimized_model_filepath).graph.node)
        name = session.get_inputs()[0].name
        for _ in range(3):
            session.run(None, {name: image})
        events = json.loads(Path(session.end_profiling()).read_text())
    kernel: Counter = Counter()
    for event in events:
        if event.get("cat") == "Node" and event.get("name", "").endswith("_kernel_time"):
            kernel[event["args"]["op_name"]] += event["dur"]
    total = sum(kernel.values()) or 1
    return {"stored_ops": dict(stored.most_common()), "optimized_ops": dict(optimized.most_common()),
            "profile_kernel_share_percent": {op: round(100 * us / total, 1) for op, us in kernel.most_common(8)}}


def quantize_s8s8(float_onnx: Path, target: Path, calibration: list[np.ndarray]) -> None:
    """The previous int8 ONNX setting (signed int8 activations), for the comparison row."""
    from onnxruntime import quantization as q

    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        q.quant_pre_process(str(float_onnx), str(prepared), skip_symbolic_shape=True)
        batches = iter(calibration)

        class Reader(q.CalibrationDataReader):
            def get_next(self):
                batch = next(batches, None)
                return None if batch is None else {"images": batch}

        q.quantize_static(str(prepared), str(target), Reader(), quant_format=q.QuantFormat.QDQ,
                          activation_type=q.QuantType.QInt8, weight_type=q.QuantType.QInt8, per_channel=True)


def open_runners(paths: dict[str, Path], keras_path: Path | None) -> dict[str, Any]:
    from foveal.export.runners import OnnxRunner, open_runner

    runners: dict[str, Any] = {}
    if keras_path is not None:
        runners["keras predict_on_batch"] = open_runner(keras_path, threads=THREADS)
    for label, path in paths.items():
        if label == "onnx float32":
            runners["onnx float32 spinning"] = OnnxRunner(path, threads=THREADS, spin=True)
        runners[label] = open_runner(path, threads=THREADS)
    return runners


def time_batches(runners: dict[str, Any], shape: tuple[int, ...], rounds: dict[int, int]) -> dict[str, Any]:
    out = {}
    for batch, n in rounds.items():
        x = np.random.default_rng(batch).uniform(0, 255, (batch, *shape)).astype(np.float32)
        log(f"  batch {batch}: {n} interleaved rounds of {', '.join(runners)}")
        before = load_average()
        times = interleaved({name: (lambda r=r: r(x)) for name, r in runners.items()}, n)
        out[f"batch{batch}"] = {"load_average_before": before, "load_average_after": load_average(),
                                **summarize(times, PAIRS)}
    return out


def speed_experiment(arch: str, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    import keras

    from foveal.export.formats import write_export
    from foveal.export.runners import write_export_card
    from foveal.models import ModelCard, build_model, save_model

    keras.backend.clear_session()
    load_before = load_average()
    model = build_model(arch, num_classes=1000, input_shape=(224, 224, 3))
    card = ModelCard(architecture=arch, class_names=[f"class_{i}" for i in range(1000)],
                     input_shape=(224, 224, 3))
    keras_path = save_model(model, work / f"{arch}.keras", card, include_optimizer=False) if args.keras else None
    rng = np.random.default_rng(1)
    calibration = [rng.uniform(0, 255, (1, 224, 224, 3)).astype(np.float32) for _ in range(args.calibration)]
    paths, export_seconds = {}, {}
    for fmt, quantize in (("tflite", None), ("tflite", "int8"), ("onnx", None), ("onnx", "int8")):
        label = f"{fmt} {quantize or 'float32'}"
        target = work / f"{arch}.{quantize or 'float32'}.{fmt}"
        log(f"[{arch}] writing {label}")
        started = time.perf_counter()
        write_export(model, card, fmt, target, quantize, lambda: iter(calibration))
        export_seconds[label] = round(time.perf_counter() - started, 1)
        write_export_card(target, card)
        paths[label] = target
    if args.s8s8:
        target = work / f"{arch}.int8-s8s8.onnx"
        quantize_s8s8(paths["onnx float32"], target, calibration)
        write_export_card(target, card)
        paths["onnx int8 s8s8"] = target
    runners = open_runners(paths, keras_path)
    probe = rng.uniform(0, 255, (2, 224, 224, 3)).astype(np.float32)
    reference = np.asarray(model.predict_on_batch(probe))
    diffs = {label: float(np.abs(runners[label](probe) - reference).max()) for label in paths}
    result: dict[str, Any] = {
        "experiment": "speed", "model": arch, "weights": "random (timing only)",
        "parameters": int(model.count_params()), "input_shape": [224, 224, 3],
        "calibration": f"{args.calibration} seeded uniform random images",
        "export_seconds": export_seconds, "max_abs_diff_vs_keras_2_random": diffs,
        "load_average_before": load_before,
        "timings": time_batches(runners, (224, 224, 3), {1: args.rounds, 32: args.rounds32}),
    }
    if args.graphs:
        image = probe[:1]
        result["onnx_graphs"] = {label: graph_facts(path, THREADS, image)
                                 for label, path in paths.items() if path.suffix == ".onnx"}
    result["load_average_after"] = load_average()
    return result


def accuracy_experiment(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from foveal.export.parity import export_model
    from foveal.models.io import read_card

    if args.cifar_model is None or args.data is None:
        raise SystemExit("--only accuracy needs --cifar-model (a foveal-trained classifier .keras) and --data")
    load_before = load_average()
    card = read_card(args.cifar_model)
    paths, reports = {}, {}
    for fmt, quantize in (("tflite", None), ("tflite", "int8"), ("onnx", None), ("onnx", "int8")):
        label = f"{fmt} {quantize or 'float32'}"
        target = work / f"{card.architecture}.{quantize or 'float32'}.{fmt}"
        log(f"[accuracy] exporting {label} (int8: {args.cifar_calibration} training images), scoring the test split")
        report = export_model(args.cifar_model, fmt, target, quantize=quantize, data=str(args.data),
                              split="test", calibration=args.cifar_calibration, threads=THREADS)
        acc = report.accuracy
        reports[label] = {"keras_accuracy": acc.get("keras"), "export_accuracy": acc.get("export"),
                          "loss_points": round((acc["keras"] - acc["export"]) * 100, 2),
                          "top1_agreement_64": report.top1_agreement, "max_abs_diff_64": report.max_abs_diff,
                          "size_bytes": report.size_bytes, "export_seconds": round(report.export_seconds, 1)}
        paths[label] = target
    for fmt in ("tflite", "onnx"):
        reports[f"{fmt} int8"]["loss_points_vs_float32_export"] = round(
            (reports[f"{fmt} float32"]["export_accuracy"] - reports[f"{fmt} int8"]["export_accuracy"]) * 100, 2)
    timings = None
    if args.rounds > 0:
        runners = open_runners(paths, Path(args.cifar_model) if args.keras else None)
        runners.pop("onnx float32 spinning", None)
        timings = time_batches(runners, tuple(card.input_shape), {1: args.rounds * 10, 32: args.rounds * 4})
    return {"experiment": "accuracy", "model": str(args.cifar_model), "architecture": card.architecture,
            "input_shape": list(card.input_shape), "data": str(args.data), "exports": reports,
            "timings": timings, "load_average_before": load_before, "load_average_after": load_average()}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="int8 vs float32 in the same runtime (TFLite, ONNX Runtime), batch 1 and 32, 2 threads; "
                    "prints one JSON document.")
    parser.add_argument("--only", choices=["speed", "accuracy"], action="append",
                        help="run only this experiment (repeatable; default: both)")
    parser.add_argument("--models", default="resnet50,mobilenetv2", help="speed models (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=15, help="interleaved rounds at batch 1 (default: 15; accuracy: x10 at batch 1 and x4 at 32, 0 skips the timing)")
    parser.add_argument("--rounds32", type=int, default=5, help="interleaved rounds at batch 32 (default: 5)")
    parser.add_argument("--calibration", type=int, default=8, help="random calibration images for speed (default: 8)")
    parser.add_argument("--no-keras", dest="keras", action="store_false", help="leave out the Keras reference row")
    parser.add_argument("--no-s8s8", dest="s8s8", action="store_false",
                        help="leave out the previous (signed-activation) int8 ONNX row")
    parser.add_argument("--graphs", action="store_true", help="add ONNX op counts and ONNX Runtime's profile")
    parser.add_argument("--cifar-model", "--model", dest="cifar_model", type=Path, default=None,
                        help="accuracy: a foveal-trained classifier .keras (e.g. a CIFAR-10 resnet18)")
    parser.add_argument("--data", type=Path, default=None,
                        help="its dataset (an extracted cifar10 folder, the fashion-mnist IDX folder, ...)")
    parser.add_argument("--cifar-calibration", type=int, default=200, help="calibration images (default: 200)")
    parser.add_argument("--work", type=Path, default=None, help="folder for exports (default: a new temporary one)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    names = args.only or ["speed", "accuracy"]
    work = args.work or Path(tempfile.mkdtemp(prefix="foveal-int8-"))
    work.mkdir(parents=True, exist_ok=True)
    document: dict[str, Any] = {
        "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": machine(),
        "threads": THREADS, "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "targets": {"int8_speedup_vs_float32_same_runtime": TARGET_SPEEDUP,
                    "max_accuracy_loss_points": TARGET_LOSS_POINTS},
        "command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
        "experiments": []}
    for name in names:
        started = time.perf_counter()
        if name == "speed":
            for arch in args.models.split(","):
                result = speed_experiment(arch, args, work)
                result["seconds"] = round(time.perf_counter() - started, 1)
                document["experiments"].append(result)
                started = time.perf_counter()
        else:
            result = accuracy_experiment(args, work)
            result["seconds"] = round(time.perf_counter() - started, 1)
            document["experiments"].append(result)
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    json.dump(document, sys.stdout, indent=2, default=str)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
