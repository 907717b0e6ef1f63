"""Training and inference throughput of zoo models: plain Keras float32 versus foveal's fast path.

For each model, the same architecture (built by ``foveal.models.build_model``) is trained for a
fixed number of steps on synthetic batches held in memory, so that the input pipeline plays no
part (``benchmarks/input_pipeline.py`` measures that separately):

- ``keras-float32``: the model compiled with Adam and cross-entropy and fed to ``model.fit``,
  the way the texts write it, in Keras' default float32 policy;
- ``foveal-bfloat16``: the same model built under the ``mixed_bfloat16`` policy (what
  ``foveal train --mixed-precision bfloat16`` does, softmax kept in float32);
- ``foveal-bfloat16-xla`` (with ``--xla``): the same with ``jit_compile=True``.

Each configuration runs in the same process, interleaved, with the machine's matrix-multiply
peak measured in between, so the ratios come from one run on one machine. Achieved FLOP/s use
foveal's per-layer FLOP counts (``foveal inspect``; these match TensorFlow's profiler) with the
usual 3x of the forward pass for a training step (forward + two backward products).

    python benchmarks/zoo_throughput.py                          # the default models
    python benchmarks/zoo_throughput.py --models resnet50:224 --steps 6 --batch-size 16

Prints one JSON document on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))

DEFAULT_MODELS = ["geron_cnn:28:1", "resnet18:224", "mobilenetv2:224", "xception:299"]


def parse_model(spec: str) -> tuple[str, tuple[int, int, int]]:
    """``name:size[:channels]`` -> (name, (size, size, channels))."""
    parts = spec.split(":")
    name, size = parts[0], int(parts[1]) if len(parts) > 1 else 224
    channels = int(parts[2]) if len(parts) > 2 else 3
    return name, (size, size, channels)


def build(name: str, shape: tuple[int, int, int], policy: str, jit: bool, num_classes: int):
    import keras

    from foveal.models import build_model
    from foveal.training.precision import dtype_policy

    with dtype_policy(policy):
        model = build_model(name, num_classes=num_classes, input_shape=shape)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                  jit_compile=jit)
    return model


def forward_flops(name: str, shape: tuple[int, int, int], num_classes: int) -> int:
    from foveal.inspection.summary import summarize, totals
    from foveal.models import build_model

    return int(totals(summarize(build_model(name, num_classes=num_classes, input_shape=shape)))["flops"])


def time_training(model, batch: int, shape, steps: int, repeats: int, num_classes: int) -> list[float]:
    """Seconds per step for ``repeats`` timed epochs of ``steps`` steps, after one warm-up epoch."""
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, size=(batch, *shape)).astype("float32")
    y = rng.integers(0, num_classes, size=(batch,)).astype("int32")
    ds = tf.data.Dataset.from_tensors((x, y)).repeat().prefetch(2)
    model.fit(ds, steps_per_epoch=max(2, steps // 2), epochs=1, verbose=0)  # trace + warm-up
    per_step = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.fit(ds, steps_per_epoch=steps, epochs=1, verbose=0)
        per_step.append((time.perf_counter() - start) / steps)
    return per_step


def time_inference(model, batch: int, shape, steps: int, repeats: int) -> list[float]:
    import numpy as np

    x = np.random.default_rng(1).uniform(0, 255, size=(batch, *shape)).astype("float32")
    model.predict_on_batch(x)
    per_step = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            model.predict_on_batch(x)
        per_step.append((time.perf_counter() - start) / steps)
    return per_step


def measure_model(spec: str, args: argparse.Namespace, peaks: dict[str, float]) -> dict[str, Any]:
    import keras

    name, shape = parse_model(spec)
    flops = forward_flops(name, shape, args.num_classes)
    configs = [("keras-float32", "none", False), ("foveal-bfloat16", "bfloat16", False)]
    if args.xla:
        configs.append(("foveal-bfloat16-xla", "bfloat16", True))
    rows: dict[str, Any] = {}
    for label, policy, jit in configs:
        keras.utils.clear_session()
        model = build(name, shape, policy, jit, args.num_classes)
        train = time_training(model, args.batch_size, shape, args.steps, args.repeats, args.num_classes)
        infer = time_inference(model, args.batch_size, shape, args.steps, args.repeats)
        train_ips = args.batch_size / statistics.median(train)
        infer_ips = args.batch_size / statistics.median(infer)
        peak = peaks["bfloat16" if policy == "bfloat16" else "float32"]
        rows[label] = {
            "train_images_per_second": round(train_ips, 2),
            "inference_images_per_second": round(infer_ips, 2),
            "train_gflops_per_second": round(3 * flops * train_ips / 1e9, 1),
            "train_fraction_of_peak": round(3 * flops * train_ips / 1e9 / peak, 3),
            "train_fraction_of_float32_peak": round(3 * flops * train_ips / 1e9 / peaks["float32"], 3),
            "inference_fraction_of_peak": round(flops * infer_ips / 1e9 / peak, 3),
            "seconds_per_train_step": [round(t, 4) for t in train],
        }
    base = rows["keras-float32"]
    for label, row in rows.items():
        row["train_speedup_vs_keras_float32"] = round(row["train_images_per_second"] / base["train_images_per_second"], 3)
        row["inference_speedup_vs_keras_float32"] = round(
            row["inference_images_per_second"] / base["inference_images_per_second"], 3)
    return {"model": name, "input_shape": list(shape), "forward_gflops_per_image": round(flops / 1e9, 4),
            "batch_size": args.batch_size, "results": rows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=DEFAULT_MODELS,
                        help="NAME:SIZE[:CHANNELS] entries (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=32, help="images per step (default: 32)")
    parser.add_argument("--steps", type=int, default=6, help="steps per timed repeat (default: 6)")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats; the median is reported (default: 3)")
    parser.add_argument("--num-classes", type=int, default=10, help="classifier size (default: 10)")
    parser.add_argument("--xla", action="store_true", help="also time bfloat16 with jit_compile=True")
    args = parser.parse_args(argv)
    from foveal.models.registry import MODELS

    unknown = [spec for spec in args.models if parse_model(spec)[0] not in MODELS.names()]
    if unknown:  # fail before minutes of measuring, not in the middle
        parser.error(f"unknown models {unknown}; known: {', '.join(MODELS.names())}")

    import keras
    import tensorflow as tf
    from peak_flops import measure

    peaks = {d: measure(2048, d, 10)["gflops_best"] for d in ("float32", "bfloat16")}
    models = [measure_model(spec, args, peaks) for spec in args.models]
    peaks_after = {d: measure(2048, d, 10)["gflops_best"] for d in ("float32", "bfloat16")}
    print(json.dumps({
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "tensorflow": tf.__version__, "keras": keras.__version__},
        "peak_gflops_per_second": {"before": {k: round(v, 1) for k, v in peaks.items()},
                                   "after": {k: round(v, 1) for k, v in peaks_after.items()}},
        "note": "synthetic in-memory batches; training FLOPs = 3x the forward FLOPs of `foveal inspect`; "
                "fractions use the peak measured before the models",
        "models": models,
    }, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
