"""Training throughput as a fraction of the measured matmul peak, with the op that dominates each step.

For each model and precision (float32, and bfloat16 mixed precision as ``foveal train
--mixed-precision bfloat16`` builds it), a few SGD steps on one synthetic in-memory batch are
timed (the input pipeline plays no part), then two more steps are traced with TensorFlow's
profiler (``tf.profiler.experimental``) and the trace's op events are summed per op type: the
same totals as the "TF op" table of TensorBoard's profile plugin, read straight from the
``.xplane.pb`` file. Achieved FLOP/s are 3x the forward FLOPs of ``foveal inspect`` per image
(forward + two backward products); the peak is ``benchmarks/peak_flops.py``'s 2048x2048 matmul,
measured before and after in the same process, for the precision of the row.

    nice -n 5 python benchmarks/throughput_profile.py                       # resnet18, resnet50, airbench
    python benchmarks/throughput_profile.py --models airbench:32@256 --steps 3

A model is ``NAME:SIZE[xCHANNELS][@BATCH][/OPTIONS]``, OPTIONS a JSON object of model options,
e.g. ``'airbench28:28x1@256/{"stem": 0, "widths": [32, 64, 128]}'`` (the fast-mnist recipe's
network). Precisions: ``float32``, ``bfloat16``, and either with ``+xla`` (``jit_compile=True``;
its compilation falls in the untimed warm-up). Prints one JSON document on stdout, with the load
average.
"""

from __future__ import annotations

import argparse
import collections
import glob
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))

DEFAULT_MODELS = ["resnet18:224@16", "resnet50:224@8", "airbench:32@256"]
PRECISIONS = {"float32": "none", "bfloat16": "bfloat16"}
VARIANTS = {**{p: (policy, False) for p, policy in PRECISIONS.items()},
            **{f"{p}+xla": (policy, True) for p, policy in PRECISIONS.items()}}


def parse_spec(spec: str) -> tuple[str, tuple[int, int, int], int, dict[str, Any]]:
    """``name:size[xchannels][@batch][/json]`` -> (name, (size, size, channels), batch, options);
    3 channels, batch 32 and no options when not given."""
    spec, _, options = spec.partition("/")
    head, _, batch = spec.partition("@")
    name, _, size = head.partition(":")
    size, _, channels = (size or "224").partition("x")
    return name, (int(size), int(size), int(channels or 3)), int(batch or 32), json.loads(options or "{}")


def build(name: str, shape: tuple[int, int, int], policy: str, options: dict[str, Any]):
    from foveal.models import build_model
    from foveal.training.precision import dtype_policy

    with dtype_policy(policy):
        return build_model(name, num_classes=10, input_shape=shape, **options)


def forward_flops(name: str, shape: tuple[int, int, int], options: dict[str, Any]) -> int:
    from foveal.inspection.summary import summarize, totals
    from foveal.models import build_model

    return int(totals(summarize(build_model(name, num_classes=10, input_shape=shape, **options)))["flops"])


def op_type_totals(logdir: str) -> dict[str, float]:
    """Seconds per TensorFlow op type over every op event of the traces under ``logdir``.

    Op events in the host plane are named ``op_name:OpType``; framework events (``Executor::``,
    tf.data iterators) and eager host calls (types written with a leading space) are left out.
    """
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    totals: collections.Counter[str] = collections.Counter()
    for path in glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True):
        space = xplane_pb2.XSpace()
        space.ParseFromString(Path(path).read_bytes())
        for plane in space.planes:
            for line in plane.lines:
                for event in line.events:
                    name = plane.event_metadata[event.metadata_id].name
                    if ":" not in name or "::" in name:
                        continue
                    op_type = name.rsplit(":", 1)[1]
                    if op_type and not op_type.startswith((" ", "__")) and "Dataset" not in op_type:
                        totals[op_type] += event.duration_ps * 1e-12
    return dict(totals)


def profile_steps(model, dataset, steps: int) -> dict[str, Any]:
    """The op-type table of ``steps`` traced training steps: top op types and their share."""
    import tensorflow as tf

    logdir = tempfile.mkdtemp(prefix="foveal-profile-")
    tf.profiler.experimental.start(logdir)
    try:
        model.fit(dataset, steps_per_epoch=steps, epochs=1, verbose=0)
    finally:
        tf.profiler.experimental.stop()
    totals = op_type_totals(logdir)
    whole = sum(totals.values()) or 1.0
    top = sorted(totals.items(), key=lambda kv: -kv[1])[:12]
    return {"op_seconds_total": round(whole, 3),
            "top_ops": [{"op": op, "seconds": round(s, 3), "share": round(s / whole, 3)} for op, s in top]}


def compiled_on_random_batch(spec: str, precision: str) -> tuple[Any, Any]:
    """The model of ``spec`` compiled for ``precision`` (SGD, sparse cross-entropy) and an endless
    dataset repeating one seeded random batch: the training step both profilers time."""
    import keras
    import numpy as np
    import tensorflow as tf

    name, shape, batch, options = parse_spec(spec)
    policy, jit = VARIANTS[precision]
    model = build(name, shape, policy, options)
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9), loss="sparse_categorical_crossentropy",
                  jit_compile=jit)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, size=(batch, *shape)).astype("float32")
    y = rng.integers(0, 10, size=(batch,)).astype("int32")
    return model, tf.data.Dataset.from_tensors((x, y)).repeat().prefetch(2)


def measure(spec: str, precision: str, args: argparse.Namespace, peaks: dict[str, float]) -> dict[str, Any]:
    import keras

    name, shape, batch, options = parse_spec(spec)
    keras.utils.clear_session()
    model, ds = compiled_on_random_batch(spec, precision)
    started = time.perf_counter()
    model.fit(ds, steps_per_epoch=2, epochs=1, verbose=0)  # trace (+ XLA compile) + warm up
    warmup_seconds = time.perf_counter() - started
    per_step = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        model.fit(ds, steps_per_epoch=args.steps, epochs=1, verbose=0)
        per_step.append((time.perf_counter() - start) / args.steps)
    flops = forward_flops(name, shape, options)
    images_per_second = batch / statistics.median(per_step)
    achieved = 3 * flops * images_per_second / 1e9
    base = precision.split("+")[0]
    row = {"model": name, "options": options, "input_shape": list(shape), "batch_size": batch, "precision": precision,
           "warmup_seconds_2_steps": round(warmup_seconds, 2),
           "forward_gflops_per_image": round(flops / 1e9, 4),
           "seconds_per_step": [round(t, 4) for t in per_step],
           "train_images_per_second": round(images_per_second, 2),
           "train_gflops_per_second": round(achieved, 1),
           "fraction_of_peak": round(achieved / peaks[base], 3),
           "fraction_of_float32_peak": round(achieved / peaks["float32"], 3)}
    if args.profile_steps:
        row["profile"] = profile_steps(model, ds, args.profile_steps)
        row["dominant_op"] = row["profile"]["top_ops"][0]["op"] if row["profile"]["top_ops"] else None
    print(f"{name} {precision}: {images_per_second:.1f} img/s, {achieved:.0f} GFLOP/s "
          f"({row['fraction_of_peak']:.0%} of peak), dominant {row.get('dominant_op')}", file=sys.stderr, flush=True)
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=DEFAULT_MODELS, help="NAME:SIZE[@BATCH] (default: %(default)s)")
    parser.add_argument("--precisions", nargs="+", choices=sorted(VARIANTS), default=["float32", "bfloat16"])
    parser.add_argument("--steps", type=int, default=3, help="steps per timed repeat (default: 3)")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats; the median is used (default: 3)")
    parser.add_argument("--profile-steps", type=int, default=2, help="steps traced by the profiler; 0: none (default: 2)")
    args = parser.parse_args(argv)
    from foveal.models.registry import MODELS

    unknown = [s for s in args.models if parse_spec(s)[0] not in MODELS.names()]
    if unknown:
        parser.error(f"unknown models {unknown}; known: {', '.join(MODELS.names())}")
    import keras
    import tensorflow as tf
    from peak_flops import measure as peak

    load_before = os.getloadavg()
    peaks = {d: peak(2048, d, 10)["gflops_best"] for d in PRECISIONS}
    rows = [measure(spec, precision, args, peaks) for spec in args.models for precision in args.precisions]
    peaks_after = {d: peak(2048, d, 10)["gflops_best"] for d in PRECISIONS}
    print(json.dumps({
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "tensorflow": tf.__version__, "keras": keras.__version__},
        "load_average_before": [round(v, 2) for v in load_before],
        "load_average_after": [round(v, 2) for v in os.getloadavg()],
        "peak_gflops_per_second": {"before": {k: round(v, 1) for k, v in peaks.items()},
                                   "after": {k: round(v, 1) for k, v in peaks_after.items()}},
        "note": "synthetic in-memory batch, SGD momentum 0.9; training FLOPs = 3x forward FLOPs; fractions use "
                "the peak of the row's precision measured before the models; op seconds are summed over threads",
        "rows": rows,
    }, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
