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
* ``tflite-layers`` (per-operator time, as LiteRT's Python package has no op profiler): every
  distinct compute layer of ``--models`` at ``--layer-size`` becomes a one-layer TFLite model in
  float32 and in int8 (int8 in and out), timed alone at ``--layer-batch`` (default 32) with
  XNNPACK (the interpreter's default) and with TFLite's builtin kernels; per-category totals
  (layer time x count) and the whole network timed the same way (also with XNNPACK's latest
  features, and through foveal's ``TFLiteRunner``), with each interpreter's execution plan
  (which nodes the XNNPACK delegate took). Conversions are cached in ``--work``:
  ``--layer-rounds 0`` only converts, so a timed (boosted) run can skip that part.
* ``onnx-profile``: ONNX Runtime float32 vs int8 under three settings (2 threads with spinning
  off, foveal's default; 2 threads spinning; 1 thread), timed interleaved at batch 1 and 32, then
  ONNX Runtime's profiler per setting at batch 1 (consecutive calls of one session, after 2
  warm-up calls): median microseconds per op type, convolutions split into depthwise / 1x1 /
  3x3, and the part of each call spent outside every kernel.

The load average is printed before and after each experiment; compare numbers of one invocation
only (the machine is shared). One JSON document goes to stdout; progress goes to stderr.

Example:
    nice -n 5 python benchmarks/int8_runtimes.py --only speed --graphs > int8-speed.json
    nice -n 5 python benchmarks/int8_runtimes.py --only accuracy \
        --cifar-model /tmp/deploy/runs/cifar/best.keras --data /tmp/deploy/cifar10 > int8-cifar.json
    nice -n 5 python benchmarks/int8_runtimes.py --only accuracy --rounds 0 \
        --cifar-model runs/mnv2-fashion/best.keras --data ../shared/datasets/fashion-mnist > int8-mnv2.json
    python benchmarks/int8_runtimes.py --only tflite-layers --models mobilenetv2 --work /tmp/int8 > layers.json
    python benchmarks/int8_runtimes.py --only onnx-profile --models mobilenetv2 --rounds 61 --rounds32 7 \
        --profile-runs 30 --work /tmp/int8 > onnx-profile.json
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


# --- Per-operator profiles ------------------------------------------------------------------------
# LiteRT's Python package has no op profiler (and no benchmark_model binary), so ``tflite-layers``
# measures by model surgery: every distinct compute layer of the network (same class, input
# shape, kernel, stride, filters, fused ReLU6) becomes a one-layer model, converted to float32 and
# to int8 (int8 input and output, so the model is that one operator), and timed alone at the
# batch size, in the interpreter's default mode (XNNPACK delegate) and without default delegates
# (TFLite's builtin kernels). ``onnx-profile`` reads ONNX Runtime's own profiler.

LAYER_TYPES = ("Conv2D", "DepthwiseConv2D", "Add", "Dense", "GlobalAveragePooling2D")


def _followed_by_relu(layer) -> bool:
    """Whether a ReLU follows the layer, directly or after one BatchNormalization (fused by TFLite)."""
    op = layer
    for _ in range(2):
        nodes = getattr(op, "_outbound_nodes", [])
        if len(nodes) != 1:
            return False
        op = nodes[0].operation
        if type(op).__name__ == "ReLU":
            return True
        if type(op).__name__ != "BatchNormalization":
            return False
    return False


def layer_category(kind: str, config: dict[str, Any], name: str) -> str:
    """A short operator category: ``depthwise 3x3 s2``, ``conv 1x1 (expand)``, ``add``..."""
    if kind in ("Conv2D", "DepthwiseConv2D"):
        k = "x".join(str(v) for v in config["kernel_size"])
        stride = config["strides"][0]
        label = f"{'depthwise' if kind == 'DepthwiseConv2D' else 'conv'} {k}" + (f" s{stride}" if stride > 1 else "")
        role = next((r for r in ("expand", "project", "head", "stem") if r in name), None)
        return f"{label} ({role})" if role else label
    return {"Add": "add", "Dense": "fully connected", "GlobalAveragePooling2D": "global average pool"}[kind]


def layer_specs(model) -> list[dict[str, Any]]:
    """The distinct compute layers of ``model``: class, input shape(s), category, the layer
    config that matters, and how many layers of the model share it (``count``)."""
    specs: dict[tuple, dict[str, Any]] = {}
    for layer in model.layers:
        kind = type(layer).__name__
        if kind not in LAYER_TYPES:
            continue
        inputs = layer.input if isinstance(layer.input, (list, tuple)) else [layer.input]
        shapes = [tuple(int(d) for d in t.shape[1:]) for t in inputs]
        config = {k: layer.get_config()[k] for k in ("filters", "kernel_size", "strides", "padding",
                                                     "depth_multiplier", "units") if k in layer.get_config()}
        config = {k: list(v) if isinstance(v, tuple) else v for k, v in config.items()}
        relu = kind in ("Conv2D", "DepthwiseConv2D") and _followed_by_relu(layer)
        category = layer_category(kind, config, layer.name)
        key = (kind, tuple(shapes), json.dumps(config, sort_keys=True), relu, category)
        if key in specs:
            specs[key]["count"] += 1
            specs[key]["layers"].append(layer.name)
        else:
            specs[key] = {"kind": kind, "input_shapes": shapes, "config": config, "relu6": relu,
                          "category": category, "count": 1, "layers": [layer.name], "_layer": layer}
    return list(specs.values())


def one_layer_model(spec: dict[str, Any]):
    """A Keras model of the spec's layer alone (convolutions with a bias, as TFLite folds the
    batch norm into them, and the ReLU6 that TFLite fuses), with the original layer's weights."""
    import keras

    layer = spec["_layer"]
    inputs = [keras.Input(shape) for shape in spec["input_shapes"]]
    config = dict(layer.get_config(), name=f"{layer.name}_alone")
    weights = layer.get_weights()
    if spec["kind"] in ("Conv2D", "DepthwiseConv2D") and not config.get("use_bias", True):
        config["use_bias"] = True
        bias_size = weights[0].shape[-1] * (weights[0].shape[-2] if spec["kind"] == "DepthwiseConv2D" else 1)
        weights = [*weights, np.zeros(bias_size, np.float32)]
    clone = type(layer).from_config(config)
    y = clone(inputs if len(inputs) > 1 else inputs[0])
    if weights:
        clone.set_weights(weights)
    if spec["relu6"]:
        y = keras.layers.ReLU(6.0)(y)
    return keras.Model(inputs, y)


def convert_one_layer(model, quantize: bool, samples: int = 4, seed: int = 0) -> bytes:
    """TFLite flatbuffer of a one-layer model; int8 with int8 input and output (no QUANTIZE or
    DEQUANTIZE ops), calibrated on ``samples`` random batches (activations' ranges: ReLU6-like)."""
    import tensorflow as tf

    specs = [(1, *t.shape[1:]) for t in model.inputs]
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if quantize:
        rng = np.random.default_rng(seed)

        def representative():
            for _ in range(samples):
                yield [rng.uniform(0, 6, shape).astype(np.float32) for shape in specs]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    return converter.convert()


TFLITE_MODES = ("xnnpack", "builtin")
# The whole network is also timed with XNNPACK's newest operator features on (LiteRT's
# ``experimental_default_delegate_latest_features``), and through foveal's TFLiteRunner
# (pixels copied in, probabilities out), as a user calls it.
WHOLE_MODES = (*TFLITE_MODES, "xnnpack-latest")


def tflite_interpreter(path: Path, mode: str, threads: int, batch: int):
    """A LiteRT interpreter in ``mode`` (``xnnpack``: the default, XNNPACK delegate applied;
    ``builtin``: TFLite's own kernels, no default delegate), inputs resized to ``batch``."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    resolver = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES if mode == "builtin" else OpResolverType.AUTO
    it = Interpreter(model_path=str(path), num_threads=threads, experimental_op_resolver_type=resolver,
                     experimental_default_delegate_latest_features=mode == "xnnpack-latest")
    rng = np.random.default_rng(batch)
    for detail in it.get_input_details():
        it.resize_tensor_input(detail["index"], [batch, *detail["shape"][1:]])
    it.allocate_tensors()
    for detail in it.get_input_details():
        shape, dtype = detail["shape"], detail["dtype"]
        values = (rng.integers(-128, 128, shape) if dtype == np.int8 else
                  rng.integers(0, 256, shape) if dtype == np.uint8 else rng.uniform(0, 6, shape))
        it.set_tensor(detail["index"], values.astype(dtype))
    return it


def execution_plan(interpreter) -> dict[str, Any]:
    """What runs where: the delegate nodes (``DELEGATE``: an XNNPACK partition) with their
    boundary tensors, and the original nodes left to TFLite's own kernels. LiteRT's Python
    wrapper lists the original nodes followed by the delegate nodes (NumNodes / NodeName /
    NodeInputs / NodeOutputs); a node whose output feeds a delegate, or is fed by one, from
    outside its partition, runs outside it."""
    w = interpreter._interpreter
    names = [w.NodeName(i) for i in range(w.NumNodes())]
    delegates = [i for i, n in enumerate(names) if n == "DELEGATE"]
    original = [i for i in range(len(names)) if i not in delegates]
    produced = {int(t): i for i in original for t in w.NodeOutputs(i)}
    model_inputs = {int(t) for t in w.InputIndices()}
    model_outputs = {int(t) for t in w.OutputIndices()}
    partitions, outside = [], set()
    for d in delegates:
        ins = [int(t) for t in w.NodeInputs(d) if int(t) in produced or int(t) in model_inputs]
        outs = [int(t) for t in w.NodeOutputs(d)]
        outside.update(produced[t] for t in ins if t in produced)
        partitions.append({"boundary_inputs": [w.TensorName(t, 0) for t in ins],
                           "outputs": [w.TensorName(t, 0) for t in outs]})
    covered = bool(delegates) and all(
        set(int(t) for t in w.NodeInputs(d)) & model_inputs for d in delegates[:1]) and model_outputs <= {
        int(t) for d in delegates for t in w.NodeOutputs(d)}
    return {"original_nodes": dict(Counter(names[i] for i in original).most_common()),
            "delegate_partitions": partitions, "whole_graph_in_delegate": covered and not outside,
            "nodes_feeding_a_delegate_from_outside": sorted(Counter(names[i] for i in outside))}


def tflite_layers_experiment(arch: str, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Per-operator time of float32 vs int8 TFLite by model surgery (module comment above)."""
    import keras

    from foveal.models import build_model

    keras.backend.clear_session()
    load_before = load_average()
    size = args.layer_size
    model = build_model(arch, num_classes=1000, input_shape=(size, size, 3))
    specs = layer_specs(model)
    folder = work / f"{arch}-{size}-layers"
    folder.mkdir(parents=True, exist_ok=True)
    log(f"[{arch}] {len(specs)} distinct layers of {sum(s['count'] for s in specs)}: converting (cached in {folder})")
    for i, spec in enumerate(specs):
        for precision in ("float32", "int8"):
            path = folder / f"{i:02d}-{spec['layers'][0]}.{precision}.tflite"
            if not path.is_file():
                path.write_bytes(convert_one_layer(one_layer_model(spec), precision == "int8"))
            spec[f"path_{precision}"] = path
    rows = []
    batch, rounds = args.layer_batch, args.layer_rounds
    if rounds > 0:
        log(f"[{arch}] timing {len(specs)} one-layer models at batch {batch}, {rounds} rounds, modes {TFLITE_MODES}")
        for spec in specs:
            calls = {}
            for precision in ("float32", "int8"):
                for mode in TFLITE_MODES:
                    calls[f"{precision} {mode}"] = tflite_interpreter(spec[f"path_{precision}"], mode, THREADS,
                                                                      batch).invoke
            times = interleaved(calls, rounds)
            rows.append({**{k: v for k, v in spec.items() if not k.startswith(("_", "path"))},
                         "ms": {name: round(float(np.median(t)), 3) for name, t in times.items()}})
            del calls
    result: dict[str, Any] = {"experiment": "tflite-layers", "model": arch, "input_shape": [size, size, 3],
                              "batch": batch, "rounds": rounds, "threads": THREADS,
                              "load_average_before": load_before, "layers": rows}
    if rows:
        result["totals_ms"] = _category_totals(rows)
    if args.whole and (rounds or args.rounds32):
        result["whole_model"] = _whole_tflite(model, arch, size, folder, batch, rounds or args.rounds32, args)
    probe = tflite_interpreter(specs[0]["path_int8"], "xnnpack", THREADS, 1)
    result["int8_one_layer_nodes_xnnpack_mode"] = execution_plan(probe)
    result["load_average_after"] = load_average()
    return result


def _category_totals(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Milliseconds per category (layer median x count), and float32 / int8 per mode."""
    totals: dict[str, dict[str, float]] = {}
    for row in rows:
        bucket = totals.setdefault(row["category"], Counter())
        bucket["count"] += row["count"]
        for name, ms in row["ms"].items():
            bucket[name] += ms * row["count"]
    totals["all layers"] = Counter()
    for category, bucket in list(totals.items()):
        if category != "all layers":
            totals["all layers"].update(bucket)
    out = {}
    for category, bucket in totals.items():
        entry = {k: round(v, 2) for k, v in bucket.items()}
        for mode in TFLITE_MODES:
            if bucket.get(f"int8 {mode}"):
                entry[f"float32/int8 {mode}"] = round(bucket[f"float32 {mode}"] / bucket[f"int8 {mode}"], 2)
        out[category] = entry
    return out


def _whole_tflite(model, arch: str, size: int, folder: Path, batch: int, rounds: int,
                  args: argparse.Namespace) -> dict[str, Any]:
    """The whole network's float32 and int8 TFLite (foveal's writer) timed the same way, with
    each interpreter's execution plan (delegated partitions vs builtin nodes)."""
    from foveal.export.formats import write_export
    from foveal.models import ModelCard

    card = ModelCard(architecture=arch, class_names=[f"class_{i}" for i in range(1000)], input_shape=(size, size, 3))
    rng = np.random.default_rng(1)
    calibration = [rng.uniform(0, 255, (1, size, size, 3)).astype(np.float32) for _ in range(args.calibration)]
    paths = {}
    for precision in ("float32", "int8"):
        path = folder / f"whole.{precision}.tflite"
        if not path.is_file():
            write_export(model, card, "tflite", path, None if precision == "float32" else "int8",
                         lambda: iter(calibration))
        paths[precision] = path
    from foveal.export.runners import TFLiteRunner, write_export_card

    calls, nodes = {}, {}
    pixels = np.random.default_rng(batch).uniform(0, 255, (batch, size, size, 3)).astype(np.float32)
    for precision, path in paths.items():
        for mode in WHOLE_MODES:
            it = tflite_interpreter(path, mode, THREADS, batch)
            calls[f"{precision} {mode}"] = it.invoke
            nodes[f"{precision} {mode}"] = execution_plan(it)
        write_export_card(path, card)
        runner = TFLiteRunner(path, threads=THREADS)
        calls[f"{precision} runner"] = lambda r=runner: r(pixels)
    times = interleaved(calls, rounds)
    ms = {name: round(float(np.median(t)), 2) for name, t in times.items()}
    ratios = {f"float32/int8 {m}": round(ms[f"float32 {m}"] / ms[f"int8 {m}"], 2) for m in (*WHOLE_MODES, "runner")}
    return {"ms": ms, "ratios": ratios, "execution_plan": nodes}


def onnx_conv_kinds(optimized_path: Path) -> dict[str, str]:
    """Node name -> ``depthwise`` / ``conv 1x1`` / ``conv KxK`` for the convolutions of an ONNX
    file (as ONNX Runtime optimized it), from their ``group`` attribute and weight shape."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(optimized_path)).graph
    shapes = {init.name: numpy_helper.to_array(init).shape for init in graph.initializer}
    kinds = {}
    for node in graph.node:
        if "Conv" not in node.op_type:
            continue
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        weight = node.input[3] if node.op_type == "QLinearConv" else node.input[1]
        shape = shapes.get(weight)
        kernel = attrs.get("kernel_shape") or (list(shape[2:]) if shape is not None and len(shape) == 4 else None)
        if attrs.get("group", 1) > 1:
            kinds[node.name] = "depthwise"
        elif kernel:
            kinds[node.name] = f"conv {'x'.join(str(int(k)) for k in kernel)}"
        else:
            kinds[node.name] = "conv"
    return kinds


def after_warmup(events: list[dict[str, Any]], warmup: int) -> list[dict[str, Any]]:
    """The profiler events after the first ``warmup`` ``model_run`` calls have ended."""
    runs = sorted((e for e in events if e.get("name") == "model_run"), key=lambda e: e["ts"])
    if len(runs) <= warmup:
        return []
    cutoff = runs[warmup - 1]["ts"] + runs[warmup - 1]["dur"] if warmup else 0
    return [e for e in events if e.get("ts", 0) >= cutoff]


def onnx_profile_table(events: list[dict[str, Any]], kinds: dict[str, str]) -> dict[str, Any]:
    """ONNX Runtime profiler events -> per call (median over the profiled ``model_run`` calls):
    microseconds by op type (convolutions split by kind), the kernels' total, the call's wall
    time, and the part of it outside every kernel (scheduling, thread hand-offs, allocation)."""
    runs = sorted((e for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"),
                  key=lambda e: e["ts"])
    per_run: list[Counter] = [Counter() for _ in runs]
    nodes: Counter = Counter()
    for event in events:
        if event.get("cat") != "Node" or not event.get("name", "").endswith("_kernel_time"):
            continue
        node = event["name"][: -len("_kernel_time")]
        op = event["args"]["op_name"]
        label = f"{op} ({kinds[node]})" if node in kinds else op
        index = next((i for i, r in enumerate(runs) if r["ts"] <= event["ts"] <= r["ts"] + r["dur"]), None)
        if index is None:
            continue
        per_run[index][label] += event["dur"]
        if index == 0:
            nodes[label] += 1
    if not runs:
        return {"ops": {}, "kernel_us_per_call": None, "model_run_us_median": None, "outside_kernels_us": None}
    labels = sorted({label for counts in per_run for label in counts})
    medians = {label: float(np.median([counts[label] for counts in per_run])) for label in labels}
    kernel = [sum(counts.values()) for counts in per_run]
    wall = [r["dur"] for r in runs]
    kernel_median = float(np.median(kernel))
    table = {label: {"us_per_call": round(us, 1), "share_percent": round(100 * us / (kernel_median or 1), 1),
                     "nodes": nodes[label]}
             for label, us in sorted(medians.items(), key=lambda item: -item[1])}
    return {"ops": table, "kernel_us_per_call": round(kernel_median, 1), "model_run_us_median": float(np.median(wall)),
            "outside_kernels_us": round(float(np.median(np.asarray(wall) - np.asarray(kernel))), 1),
            "profiled_calls": len(runs)}


def onnx_session(path: Path, threads: int, spin: bool, profile_prefix: Path | None = None,
                 optimized: Path | None = None):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    if profile_prefix is not None:
        options.enable_profiling = True
        options.profile_file_prefix = str(profile_prefix)
    if optimized is not None:
        options.optimized_model_filepath = str(optimized)
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


ONNX_SETTINGS = {"2 threads, spinning off": (2, False), "2 threads, spinning on": (2, True),
                 "1 thread": (1, False)}


def onnx_profile_experiment(arch: str, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """ONNX Runtime float32 vs int8 (foveal's U8S8 writer) under each thread setting: interleaved
    timings at batch 1 and 32, then the profiler's op table per setting at batch 1."""
    import keras

    from foveal.export.formats import write_export
    from foveal.models import ModelCard, build_model

    keras.backend.clear_session()
    load_before = load_average()
    size = args.layer_size
    folder = work / f"{arch}-{size}-onnx"
    folder.mkdir(parents=True, exist_ok=True)
    paths = {p: folder / f"{arch}.{p}.onnx" for p in ("float32", "int8")}
    if not all(p.is_file() for p in paths.values()):
        model = build_model(arch, num_classes=1000, input_shape=(size, size, 3))
        card = ModelCard(architecture=arch, class_names=[f"class_{i}" for i in range(1000)],
                         input_shape=(size, size, 3))
        rng = np.random.default_rng(1)
        calibration = [rng.uniform(0, 255, (1, size, size, 3)).astype(np.float32) for _ in range(args.calibration)]
        for precision, path in paths.items():
            log(f"[{arch}] writing ONNX {precision}")
            write_export(model, card, "onnx", path, None if precision == "float32" else "int8",
                         lambda: iter(calibration))
    timings = {}
    for batch, rounds in ((1, args.rounds), (32, args.rounds32)):
        if rounds <= 0:
            continue
        x = np.random.default_rng(batch).uniform(0, 255, (batch, size, size, 3)).astype(np.float32)
        calls = {}
        for setting, (threads, spin) in ONNX_SETTINGS.items():
            for precision, path in paths.items():
                session = onnx_session(path, threads, spin)
                name = session.get_inputs()[0].name
                calls[f"{precision}, {setting}"] = lambda s=session, n=name: s.run(None, {n: x})
        log(f"[{arch}] ONNX batch {batch}: {rounds} interleaved rounds of {len(calls)} sessions")
        before = load_average()
        times = interleaved(calls, rounds)
        ms = {name: round(float(np.median(t)), 3) for name, t in times.items()}
        ratios = {}
        for setting in ONNX_SETTINGS:
            f, q = np.asarray(times[f"float32, {setting}"]), np.asarray(times[f"int8, {setting}"])
            ratios[setting] = {"ratio_of_medians": round(ms[f"float32, {setting}"] / ms[f"int8, {setting}"], 2),
                               "median_of_round_ratios": round(float(np.median(f / q)), 2)}
        timings[f"batch{batch}"] = {"ms": ms, "float32/int8": ratios, "load_average_before": before,
                                    "load_average_after": load_average()}
        del calls
    profiles = {}
    image = np.random.default_rng(0).uniform(0, 255, (1, size, size, 3)).astype(np.float32)
    warmup = 2
    with tempfile.TemporaryDirectory() as tmp:
        for setting, (threads, spin) in ONNX_SETTINGS.items():
            for precision, path in paths.items():
                optimized = Path(tmp) / f"{precision}.optimized.onnx"
                session = onnx_session(path, threads, spin, Path(tmp) / f"{precision}-{threads}-{spin}", optimized)
                name = session.get_inputs()[0].name
                for _ in range(warmup + args.profile_runs):
                    session.run(None, {name: image})
                events = json.loads(Path(session.end_profiling()).read_text())
                profiles[f"{precision}, {setting}"] = onnx_profile_table(
                    after_warmup(events, warmup), onnx_conv_kinds(optimized))
    return {"experiment": "onnx-profile", "model": arch, "input_shape": [size, size, 3],
            "settings": {k: {"intra_op_num_threads": t, "allow_spinning": s} for k, (t, s) in ONNX_SETTINGS.items()},
            "timings": timings, "profiles_batch1": profiles, "profile_runs": args.profile_runs,
            "load_average_before": load_before, "load_average_after": load_average()}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="int8 vs float32 in the same runtime (TFLite, ONNX Runtime), batch 1 and 32, 2 threads; "
                    "prints one JSON document.")
    parser.add_argument("--only", choices=["speed", "accuracy", "tflite-layers", "onnx-profile"], action="append",
                        help="run only this experiment (repeatable; default: speed and accuracy)")
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
    parser.add_argument("--layer-size", type=int, default=224,
                        help="tflite-layers / onnx-profile: input side (default: %(default)s)")
    parser.add_argument("--layer-batch", type=int, default=32, help="tflite-layers: batch (default: %(default)s)")
    parser.add_argument("--layer-rounds", type=int, default=7,
                        help="tflite-layers: interleaved rounds per layer (default: 7; 0 only converts)")
    parser.add_argument("--no-whole", dest="whole", action="store_false",
                        help="tflite-layers: leave out the whole-model timing")
    parser.add_argument("--profile-runs", type=int, default=10,
                        help="onnx-profile: profiled calls per setting, after 2 warm-up calls (default: %(default)s)")
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
        elif name in ("tflite-layers", "onnx-profile"):
            experiment = tflite_layers_experiment if name == "tflite-layers" else onnx_profile_experiment
            for arch in args.models.split(","):
                result = experiment(arch, args, work)
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
