"""Measure the deployment targets: int8 exports against Keras ``predict``, and ResNet-50 latency.

* ``fashion`` and ``cifar``: train a small zoo classifier with foveal's Python API (or reuse one
  with ``--model``), export it to int8 TFLite and int8 ONNX with ``export_model(..., data=...)``
  (calibration on training images, accuracy on the whole test split), then time single-image
  latency of Keras (``model.predict(x, verbose=0)``, ``predict_on_batch`` and a direct call)
  against the two int8 exports. Target: an int8 export at least 3x faster than Keras ``predict``
  at batch 1, losing at most 1 accuracy point.
* ``resnet50``: ResNet-50 (random weights, 224x224x3, 1,000 classes) at batch 1 with 2 threads:
  p50/p90/p99 of every runtime of ``foveal.export.benchmark`` plus int8 TFLite and int8 ONNX
  calibrated on seeded random pixels.

Every latency comes from ``foveal.export.benchmark.time_calls`` (warm-up calls, then timed
calls); compare numbers of one run only, as the machine may be shared. One JSON document goes to
stdout; progress goes to stderr.

Example:
    python benchmarks/deploy_targets.py --data-root ../shared/datasets --only fashion > fashion-deploy.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tarfile
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
THREADS = 2
SPEEDUP_TARGET = 3.0
ACCURACY_LOSS_TARGET = 1.0  # points

COMMON: dict[str, Any] = {"seed": 42, "deterministic": True, "tensorboard": False, "progress": False}

# Short trainings: the targets are about the exports, not about state-of-the-art accuracy.
CLASSIFIERS: dict[str, dict[str, Any]] = {
    "fashion": {
        "dataset": "fashion-mnist",
        "options": {"model": "lenet5", "image_size": [32, 32], "preprocessing": "rescale", "augment": "none",
                    "val_split": 0.05, "epochs": 3, "batch_size": 64, "optimizer": "adam",
                    "learning_rate": 1e-3},
    },
    "cifar": {
        "dataset": "cifar10-jpeg.tar.gz",
        "options": {"model": "resnet18", "model_options": {"stem": "cifar", "width": 16},
                    "image_size": [32, 32], "channels": 3, "augment": "none", "val_split": 0.05,
                    "epochs": 3, "batch_size": 128, "optimizer": "adam", "learning_rate": 2e-3,
                    # The image folder is read class by class and the split keeps that order, so
                    # the default 10,000-image buffer would feed batches of 2-3 classes only.
                    "shuffle_buffer": 50_000},
    },
}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def machine() -> dict[str, Any]:
    import ai_edge_litert
    import onnxruntime

    from foveal.export.benchmark import machine_info

    info = machine_info(THREADS)
    info["onnxruntime"] = onnxruntime.__version__
    info["litert"] = getattr(ai_edge_litert, "__version__", None) or _dist_version("ai-edge-litert")
    if hasattr(os, "sched_getaffinity"):
        info["usable_cpus"] = len(os.sched_getaffinity(0))
    return info


def _dist_version(name: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def percentiles(samples_ms: list[float]) -> dict[str, float]:
    a = np.asarray(samples_ms)
    return {"p50_ms": round(float(np.percentile(a, 50)), 4), "p90_ms": round(float(np.percentile(a, 90)), 4),
            "p99_ms": round(float(np.percentile(a, 99)), 4), "mean_ms": round(float(a.mean()), 4)}


def dataset_path(name: str, data_root: Path, work: Path) -> Path:
    """The dataset spec to train on: the folder itself, or an archive extracted into ``work``."""
    source = data_root / CLASSIFIERS[name]["dataset"]
    if source.suffix != ".gz":
        return source
    target = work / "cifar10"
    if not (target / "test").is_dir():
        log(f"[{name}] extracting {source} -> {target}")
        with tarfile.open(source) as tar:
            tar.extractall(target, filter="data")
    return target


def train_classifier(name: str, data: Path, work: Path, epochs: int | None) -> dict[str, Any]:
    import keras

    from foveal.config import TrainConfig
    from foveal.training.trainer import train

    options = dict(CLASSIFIERS[name]["options"], **COMMON)
    if epochs is not None:
        options["epochs"] = epochs
    cfg = TrainConfig(data=str(data), output=str(work / "runs"), name=name, **options)
    cfg.validate()
    log(f"[{name}] training {cfg.model} for {cfg.epochs} epochs on {data}")
    keras.backend.clear_session()
    started = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):
        result = train(cfg)
    return {"model_path": str(result.best_model),
            "options": options, "train_seconds": round(time.perf_counter() - started, 1),
            "test_accuracy": (result.metrics or {}).get("accuracy"),
            "epoch_seconds": [round(s, 1) for s in result.history.get("epoch_seconds", [])]}


def time_runtimes(model_path: Path, exports: dict[str, Path], shape: tuple[int, ...], runs: int,
                  predict_runs: int) -> dict[str, Any]:
    """Batch-1 latency of Keras (three ways) and of each export, on one seeded random image."""
    from foveal.export.benchmark import time_calls
    from foveal.export.runners import open_runner

    image = np.random.default_rng(0).uniform(0, 255, (1, *shape)).astype(np.float32)
    keras_runner = open_runner(model_path, threads=THREADS)
    model = keras_runner.model
    calls = {
        "keras model.predict": (lambda: model.predict(image, verbose=0), predict_runs),
        "keras predict_on_batch": (lambda: keras_runner(image), runs),
        "keras call": (lambda: np.asarray(model(image, training=False)), runs),
    }
    for label, path in exports.items():
        runner = open_runner(path, threads=THREADS)
        calls[label] = (lambda runner=runner: runner(image), runs)
    timings = {}
    for label, (fn, n) in calls.items():
        log(f"  timing {label} ({n} runs)")
        timings[label] = {"runs": n, **percentiles(time_calls(fn, warmup=10, runs=n))}
    return timings


def classifier_experiment(name: str, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from foveal.export.parity import export_model
    from foveal.models.io import read_card

    data = dataset_path(name, args.data_root, work)
    if args.model:
        trained = {"model_path": str(args.model), "reused": True}
    else:
        trained = train_classifier(name, data, work, args.epochs)
    model_path = Path(trained["model_path"])
    reports, exports = {}, {}
    for fmt in ("tflite", "onnx"):
        target = work / f"{name}.int8{'.tflite' if fmt == 'tflite' else '.onnx'}"
        log(f"[{name}] exporting int8 {fmt} (calibration {args.calibration} train images, accuracy on test)")
        report = export_model(model_path, fmt, target, quantize="int8", data=str(data), split="test",
                              calibration=args.calibration, threads=THREADS)
        reports[f"{fmt} int8"] = report.to_dict()
        exports[f"{fmt} int8"] = target
    shape = tuple(read_card(model_path).input_shape)
    log(f"[{name}] timing batch-1 latency")
    latency = time_runtimes(model_path, exports, shape, args.runs, args.predict_runs)
    results = {}
    for label, report in reports.items():
        acc = report["accuracy"]
        loss_points = round((acc["keras"] - acc["export"]) * 100, 2)
        p50 = latency[label]["p50_ms"]
        speedup_predict = latency["keras model.predict"]["p50_ms"] / p50
        speedup_pob = latency["keras predict_on_batch"]["p50_ms"] / p50
        results[label] = {
            "size_bytes": report["size_bytes"], "keras_size_bytes": report["keras_size_bytes"],
            "keras_accuracy": acc["keras"], "export_accuracy": acc["export"],
            "accuracy_loss_points": loss_points, "top1_agreement_64": report["top1_agreement"],
            "max_abs_diff_64": report["max_abs_diff"], "export_seconds": round(report["export_seconds"], 1),
            "p50_ms": p50,
            "speedup_vs_model_predict": round(speedup_predict, 2),
            "speedup_vs_predict_on_batch": round(speedup_pob, 2),
            "speedup_vs_keras_call": round(latency["keras call"]["p50_ms"] / p50, 2),
            "target_met_vs_model_predict": bool(speedup_predict >= SPEEDUP_TARGET
                                                 and loss_points <= ACCURACY_LOSS_TARGET),
            "target_met_vs_predict_on_batch": bool(speedup_pob >= SPEEDUP_TARGET
                                                    and loss_points <= ACCURACY_LOSS_TARGET),
        }
    return {"experiment": name, "data": str(data), "training": trained, "latency_batch1": latency,
            "int8": results, "load_average_after": load_average()}


def resnet50_experiment(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    import keras

    from foveal.export.benchmark import benchmark, benchmark_runner
    from foveal.export.formats import write_export
    from foveal.export.runners import open_runner, write_export_card
    from foveal.models import ModelCard, build_model, save_model
    from foveal.models.io import load_model

    keras.backend.clear_session()
    path = work / "resnet50.keras"
    if args.model:
        path = Path(args.model)
    else:
        log("[resnet50] building resnet50 (random weights, 1000 classes)")
        model = build_model("resnet50", num_classes=1000)
        card = ModelCard(architecture="resnet50", class_names=[f"class_{i}" for i in range(1000)],
                         input_shape=tuple(int(d) for d in model.input_shape[1:]),
                         preprocessing="torch")
        save_model(model, path, card, include_optimizer=False)
    log("[resnet50] benchmarking keras-predict, keras-call, savedmodel, tflite, onnx")
    table = benchmark(path, threads=THREADS, warmup=args.resnet_warmup, runs=args.resnet_runs,
                      batch_size=args.resnet_batch, workdir=work)
    model, card = load_model(path)
    rng = np.random.default_rng(1)
    calibration = [rng.uniform(0, 255, (1, *card.input_shape)).astype(np.float32)
                   for _ in range(args.resnet_calibration)]
    probe = rng.uniform(0, 255, (4, *card.input_shape)).astype(np.float32)
    reference = np.asarray(model.predict_on_batch(probe))
    for fmt, suffix in (("tflite", ".tflite"), ("onnx", ".onnx")):
        target = work / f"resnet50.int8{suffix}"
        log(f"[resnet50] exporting int8 {fmt} (calibration: {len(calibration)} random images)")
        started = time.perf_counter()
        write_export(model, card, fmt, target, "int8", lambda: iter(calibration))
        write_export_card(target, card, {"export": {"format": fmt, "quantize": "int8"}})
        seconds = time.perf_counter() - started
        runner = open_runner(target, threads=THREADS)
        result = benchmark_runner(runner, warmup=args.resnet_warmup, runs=args.resnet_runs,
                                  batch_size=args.resnet_batch)
        result["runtime"] = f"{fmt} int8"
        result["export_seconds"] = round(seconds, 1)
        result["max_abs_diff_vs_keras_4_random"] = float(np.abs(runner(probe) - reference).max())
        table["results"].append(result)
    rows = [{"runtime": r["runtime"], "size_mb": round(r["size_bytes"] / 1e6, 2),
             **{k: round(v, 2) for k, v in r["batch1"].items()},
             "end_to_end_p50_ms": round(r["batch1_end_to_end"]["p50_ms"], 2),
             "throughput_images_per_s": round(r["throughput_images_per_s"], 2),
             "throughput_batch_size": r["throughput_batch_size"]} for r in table["results"]]
    return {"experiment": "resnet50", "model": str(path), "parameters": int(model.count_params()),
            "input_shape": list(card.input_shape), "calibration": "seeded uniform random pixels 0..255",
            "warmup": args.resnet_warmup, "runs": args.resnet_runs, "table": rows, "raw": table["results"],
            "load_average_after": load_average()}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Measure the deployment targets (int8 TFLite/ONNX vs Keras predict on Fashion-MNIST "
                    "and CIFAR-10; ResNet-50 batch-1 latency per runtime) and print one JSON document.")
    parser.add_argument("--data-root", type=Path, required=True,
                        help="folder holding fashion-mnist/ and cifar10-jpeg.tar.gz, e.g. ../shared/datasets")
    parser.add_argument("--only", choices=["fashion", "cifar", "resnet50"], action="append",
                        help="run only this experiment (repeatable; default: fashion, cifar, resnet50)")
    parser.add_argument("--work", type=Path, default=None,
                        help="folder for runs, extracted data and exports (default: a new temporary folder, kept)")
    parser.add_argument("--model", type=Path, default=None,
                        help="reuse this trained .keras instead of training (with exactly one --only)")
    parser.add_argument("--epochs", type=int, default=None, help="override the training epochs")
    parser.add_argument("--calibration", type=int, default=200, help="int8 calibration images (default: 200)")
    parser.add_argument("--runs", type=int, default=300, help="timed single-image calls per runtime (default: 300)")
    parser.add_argument("--predict-runs", type=int, default=100,
                        help="timed calls of model.predict, which is slow (default: 100)")
    parser.add_argument("--resnet-runs", type=int, default=30, help="ResNet-50 timed calls (default: 30)")
    parser.add_argument("--resnet-warmup", type=int, default=5, help="ResNet-50 warm-up calls (default: 5)")
    parser.add_argument("--resnet-batch", type=int, default=4, help="ResNet-50 throughput batch (default: 4)")
    parser.add_argument("--resnet-calibration", type=int, default=16,
                        help="random images calibrating ResNet-50 int8 (default: 16)")
    args = parser.parse_args(argv)
    if args.model and len(args.only or []) != 1:
        parser.error("--model needs exactly one --only")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    names = args.only or ["fashion", "cifar", "resnet50"]
    work = args.work or Path(tempfile.mkdtemp(prefix="foveal-deploy-"))
    work.mkdir(parents=True, exist_ok=True)
    document: dict[str, Any] = {"started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                                "machine": machine(), "threads": THREADS, "work": str(work),
                                "load_average_before": load_average(), "targets": {
                                    "speedup_vs_keras_predict": SPEEDUP_TARGET,
                                    "max_accuracy_loss_points": ACCURACY_LOSS_TARGET},
                                "experiments": []}
    for name in names:
        started = time.perf_counter()
        result = resnet50_experiment(args, work) if name == "resnet50" else classifier_experiment(name, args, work)
        result["seconds"] = round(time.perf_counter() - started, 1)
        document["experiments"].append(result)
    json.dump(document, sys.stdout, indent=2, default=str)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
