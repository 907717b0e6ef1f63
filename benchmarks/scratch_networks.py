"""The from-scratch NumPy networks (``foveal.scratch``) on MNIST: time to the targets, and per step.

Three experiments, run in one process (``--only`` picks some), each scored on MNIST's 10,000
test images after every epoch:

* ``simple``: the texts' first network exactly as specified (Planche & Andres ch. 1):
  ``SimpleNetwork([784, 64, 32, 10])``, sigmoid, standard-normal initial values, L2 loss, plain
  SGD at 5e-3 on the summed gradient, batches of 30 in the data's order, pixels / 255. It trains
  until the test accuracy first reaches ``--simple-target`` (the texts' 94.8%) or
  ``--simple-epochs`` / ``--simple-budget`` run out.
* ``cnn``: ``small_cnn()`` (two 5x5 'same' conv + ReLU + 2x2 max-pool stages, 8 and 16 filters,
  a dense softmax layer; im2col), float32, SGD with momentum, shuffled batches, until
  ``--cnn-target`` (98%) or ``--cnn-budget`` seconds (600) of training.
* ``step``: time per training step of that CNN in NumPy against the same model in Keras
  (``foveal.scratch.keras_twin``: same layers, weights, loss and optimizer), on the same batches.

Clocks count training only (the per-epoch test scoring is reported apart). The machine's
float32 matrix-multiply peak is measured in the same run before and after
(``benchmarks/peak_flops.py``), and every time is also given as ``seconds at 400 GFLOP/s`` =
raw seconds x measured peak / 400, so runs on busier or faster machines compare. ``--threads``
sets NumPy's BLAS threads and TensorFlow's op threads alike. One JSON document goes to stdout.

Example:
    python benchmarks/scratch_networks.py --data ../shared/datasets/mnist > scratch.json
    python benchmarks/scratch_networks.py --data ../shared/datasets/mnist --only step
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = Path(__file__).resolve().parents[1]
REFERENCE_GFLOPS = 400.0


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def loadavg() -> list[float]:
    try:
        return [float(v) for v in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        return []


def load_mnist(data: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from foveal.data.readers import load_dataset

    parts = load_dataset(data)
    if "test" not in parts:
        raise SystemExit(f"{data}: needs a train and a test part (MNIST's IDX folder)")
    return (parts["train"].images, parts["train"].labels, parts["test"].images, parts["test"].labels)


def at_reference(seconds: float | None, peak: float) -> float | None:
    return None if seconds is None else round(seconds * peak / REFERENCE_GFLOPS, 3)


def run_simple(data, args, peak: float) -> dict[str, Any]:
    from foveal.scratch.network import SimpleNetwork
    from foveal.scratch.optim import SGD

    x_train, y_train, x_test, y_test = data
    x_train = x_train.reshape(len(x_train), -1) / 255.0
    x_test = x_test.reshape(len(x_test), -1) / 255.0
    net = SimpleNetwork([784, 64, 32, 10], seed=args.seed)
    optimizer, steps, bs = SGD(5e-3), len(x_train) // 30, 30
    history, clock, eval_seconds, reached = [], 0.0, 0.0, None
    for epoch in range(args.simple_epochs):
        start, total = time.perf_counter(), 0.0
        for step in range(steps):  # the texts' order: no shuffling
            total += net.train_step(x_train[step * bs:(step + 1) * bs], y_train[step * bs:(step + 1) * bs], optimizer)[0]
        clock += time.perf_counter() - start
        start = time.perf_counter()
        accuracy = net.evaluate_accuracy(x_test, y_test)
        eval_seconds += time.perf_counter() - start
        history.append({"epoch": epoch + 1, "train_seconds": round(clock, 2), "loss": round(total / steps, 6),
                        "test_accuracy": accuracy})
        if reached is None and accuracy >= args.simple_target:
            reached = history[-1]
        if epoch % 10 == 0 or reached:
            log(f"simple epoch {epoch + 1}: loss {total / steps:.5f} test {accuracy:.4f} ({clock:.0f} s)")
        if reached or clock > args.simple_budget:
            break
    return {
        "network": "SimpleNetwork([784, 64, 32, 10]), sigmoid, N(0,1) init, L2 loss (summed gradient), SGD 5e-3, "
                   "batch 30, no shuffling, pixels / 255, float64",
        "target": args.simple_target, "reached_target": reached is not None,
        "epochs_to_target": reached["epoch"] if reached else None,
        "seconds_to_target": reached["train_seconds"] if reached else None,
        "seconds_to_target_at_400_gflops": at_reference(reached["train_seconds"], peak) if reached else None,
        "epochs_run": len(history), "train_seconds": round(clock, 2), "eval_seconds": round(eval_seconds, 2),
        "best_test_accuracy": max(h["test_accuracy"] for h in history),
        "seconds_per_epoch": round(clock / len(history), 3), "history": history,
    }


def cnn_options(args) -> dict[str, Any]:
    return {"filters": tuple(args.filters), "kernel_size": args.kernel_size, "hidden": args.hidden}


def run_cnn(data, args, peak: float) -> dict[str, Any]:
    from foveal.scratch.network import epoch_order, small_cnn
    from foveal.scratch.optim import SGD

    x_train, y_train, x_test, y_test = data
    x_train, x_test = x_train.astype(np.float32) / 255.0, x_test.astype(np.float32) / 255.0
    net = small_cnn((28, 28, 1), 10, seed=args.seed, dtype=np.float32, **cnn_options(args))
    optimizer = SGD(args.learning_rate, momentum=args.momentum)
    bs, steps = args.batch_size, len(x_train) // args.batch_size
    history, clock, eval_seconds, reached, budget_hit = [], 0.0, 0.0, None, False
    for epoch in range(args.cnn_epochs):
        order = epoch_order(len(x_train), epoch, args.seed)
        start, total, done = time.perf_counter(), 0.0, 0
        for step in range(steps):
            idx = order[step * bs:(step + 1) * bs]
            total += net.train_step(x_train[idx], y_train[idx], optimizer)[0]
            done += 1
            if clock + time.perf_counter() - start > args.cnn_budget:
                budget_hit = True
                break
        clock += time.perf_counter() - start
        start = time.perf_counter()
        scores = net.evaluate(x_test, y_test, batch_size=500)
        eval_seconds += time.perf_counter() - start
        history.append({"epoch": epoch + 1, "steps": done, "train_seconds": round(clock, 2),
                        "loss": round(total / max(done, 1), 5), "test_accuracy": scores["accuracy"],
                        "partial": done < steps})
        log(f"cnn epoch {epoch + 1}: loss {total / max(done, 1):.4f} test {scores['accuracy']:.4f} ({clock:.0f} s)")
        if reached is None and scores["accuracy"] >= args.cnn_target:
            reached = history[-1]
        if reached or budget_hit:
            break
    return {
        "network": f"small_cnn({cnn_options(args)}): {net.count_params()} parameters, im2col, float32",
        "optimizer": f"SGD lr {args.learning_rate} momentum {args.momentum}", "batch_size": bs,
        "target": args.cnn_target, "budget_seconds": args.cnn_budget, "reached_target": reached is not None,
        "epochs_to_target": reached["epoch"] if reached else None,
        "seconds_to_target": reached["train_seconds"] if reached else None,
        "seconds_to_target_at_400_gflops": at_reference(reached["train_seconds"], peak) if reached else None,
        "final_test_accuracy": history[-1]["test_accuracy"], "train_seconds": round(clock, 2),
        "eval_seconds": round(eval_seconds, 2), "history": history,
    }


def run_step(data, args, peak: float) -> dict[str, Any]:
    import tensorflow as tf

    from foveal.scratch.keras_twin import compile_twin, to_keras, to_one_hot
    from foveal.scratch.network import small_cnn
    from foveal.scratch.optim import SGD

    x_train, y_train = data[0], data[1]
    bs, n = args.batch_size, args.steps
    x = x_train[:bs * (n + 3)].astype(np.float32) / 255.0
    y = y_train[:bs * (n + 3)]
    net = small_cnn((28, 28, 1), 10, seed=args.seed, dtype=np.float32, **cnn_options(args))
    model = compile_twin(to_keras(net), net.loss, args.learning_rate, args.momentum)
    optimizer = SGD(args.learning_rate, momentum=args.momentum)
    batches = [(x[i * bs:(i + 1) * bs], y[i * bs:(i + 1) * bs]) for i in range(n + 3)]
    k_batches = [(tf.constant(xb), tf.constant(to_one_hot(yb, 10, "float32"))) for xb, yb in batches]

    def timed(fn, items) -> list[float]:
        times = []
        for item in items:
            start = time.perf_counter()
            fn(*item)
            times.append(time.perf_counter() - start)
        return times[3:]  # first steps: allocation, tracing

    numpy_times = timed(lambda xb, yb: net.train_step(xb, yb, optimizer), batches)
    keras_times = timed(lambda xb, yb: model.train_on_batch(xb, yb), k_batches)
    flops = 3 * 2 * forward_macs(net) * bs  # forward + backward (about twice the forward)
    result = {"batch_size": bs, "steps_timed": n, "training_flops_per_step": flops,
              "keras_jit_compile": bool(model.jit_compile)}
    for name, times in (("numpy", numpy_times), ("keras", keras_times)):
        median = float(np.median(times))
        result[name] = {"median_ms": round(median * 1e3, 3), "min_ms": round(min(times) * 1e3, 3),
                        "median_ms_at_400_gflops": round(median * 1e3 * peak / REFERENCE_GFLOPS, 3),
                        "gflops_achieved": round(flops / median / 1e9, 2),
                        "fraction_of_peak": round(flops / median / 1e9 / peak, 4)}
    result["numpy_over_keras"] = round(result["numpy"]["median_ms"] / result["keras"]["median_ms"], 2)
    return result


def forward_macs(net) -> int:
    """Multiply-adds of one sample's forward pass through conv and dense layers."""
    from foveal.scratch.conv import Conv2D
    from foveal.scratch.layers import Dense

    total = 0
    for layer, out in zip(net.layers, net.shapes[1:]):
        if isinstance(layer, Conv2D):
            total += int(np.prod(out)) * layer.params["kernel"][..., 0].size
        elif isinstance(layer, Dense):
            total += layer.params["kernel"].size
    return total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="MNIST IDX folder (e.g. ../shared/datasets/mnist)")
    parser.add_argument("--only", action="append", choices=("simple", "cnn", "step"),
                        help="run only these experiments (repeatable; default: all three)")
    parser.add_argument("--seed", type=int, default=42, help="initial weights and batch order (default: 42)")
    parser.add_argument("--threads", type=int, default=1,
                        help="BLAS threads for NumPy and op threads for TensorFlow (default: 1; the machine is shared)")
    parser.add_argument("--simple-target", type=float, default=0.948, help="test accuracy (default: 0.948, the texts')")
    parser.add_argument("--simple-epochs", type=int, default=500, help="most epochs (default: 500, the texts')")
    parser.add_argument("--simple-budget", type=float, default=1800, help="most training seconds (default: 1800)")
    parser.add_argument("--cnn-target", type=float, default=0.98, help="test accuracy (default: 0.98)")
    parser.add_argument("--cnn-budget", type=float, default=600, help="most training seconds (default: 600)")
    parser.add_argument("--cnn-epochs", type=int, default=20, help="most epochs (default: 20)")
    parser.add_argument("--filters", type=int, nargs="+", default=[8, 16], help="conv filters per stage (default: 8 16)")
    parser.add_argument("--kernel-size", type=int, default=5, help="conv kernel size (default: 5)")
    parser.add_argument("--hidden", type=int, default=0, help="hidden dense units, 0 for none (default: 0)")
    parser.add_argument("--batch-size", type=int, default=64, help="CNN batch size (default: 64)")
    parser.add_argument("--learning-rate", type=float, default=0.05, help="CNN SGD learning rate (default: 0.05)")
    parser.add_argument("--momentum", type=float, default=0.9, help="CNN SGD momentum (default: 0.9)")
    parser.add_argument("--steps", type=int, default=30, help="timed steps for `step` (default: 30)")
    args = parser.parse_args(argv)
    only = args.only or ["simple", "cnn", "step"]

    import tensorflow as tf
    from threadpoolctl import threadpool_limits

    try:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    except RuntimeError:  # TensorFlow already ran in this process (called from Python): keep its threads
        print("note: TensorFlow was initialised before --threads could apply; its thread counts are unchanged",
              file=sys.stderr)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from peak_flops import measure

    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    load_before = loadavg()
    with threadpool_limits(args.threads):
        peak = measure(2048, "float32", 10)["gflops_best"]
        log(f"float32 matmul peak {peak:.1f} GFLOP/s; load {load_before}")
        data = load_mnist(args.data)
        results: dict[str, Any] = {}
        for name in only:
            log(f"--- {name}")
            results[name] = {"simple": run_simple, "cnn": run_cnn, "step": run_step}[name](data, args, peak)
            results[name]["load_average_after"] = loadavg()
        peak_after = measure(2048, "float32", 10)["gflops_best"]
    import keras

    print(json.dumps({
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "python": platform.python_version(), "numpy": np.__version__,
                    "tensorflow": tf.__version__, "keras": keras.__version__, "threads": args.threads},
        "started_at": started, "data": args.data,
        "command": "python benchmarks/scratch_networks.py --data ../shared/datasets/mnist " + " ".join(sys.argv[1:] if argv is None else argv),
        "peak_gflops_float32": {"before": round(peak, 1), "after": round(peak_after, 1)},
        "note": "'at_400_gflops' = raw seconds x the peak measured before / 400",
        "load_average_before": load_before, "load_average_after": loadavg(),
        "results": results,
    }, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
