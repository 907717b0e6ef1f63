"""Measure this machine's matrix-multiply peak with TensorFlow, in float32 and bfloat16.

The peak is the yardstick for training throughput: a model's achieved FLOP/s divided by it
says how much of the machine the model uses. Prints one JSON document.

    python benchmarks/peak_flops.py --size 2048 --repeats 20
    python benchmarks/peak_flops.py --sizes 256 512 1024 2048 4096 --threads 1   # the peak's shape

The size matters: a 2048x2048 product is one large, cache-blocked GEMM, the best case for the
CPU's matrix units (oneDNN's AMX kernels for bfloat16 on CPUs that have them); smaller products
and convolutions on small feature maps get a fraction of it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def measure(size: int, dtype: str, repeats: int) -> dict:
    import tensorflow as tf

    # stateless (seeded) draws: they also run after a process turned on TensorFlow's op determinism
    a = tf.random.stateless_uniform((size, size), seed=(1, 2), dtype=tf.float32)
    b = tf.random.stateless_uniform((size, size), seed=(3, 4), dtype=tf.float32)
    a, b = tf.cast(a, dtype), tf.cast(b, dtype)
    matmul = tf.function(lambda x, y: tf.matmul(x, y))
    matmul(a, b).numpy()  # trace and warm up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        matmul(a, b).numpy()
        times.append(time.perf_counter() - start)
    best = min(times)
    flops = 2.0 * size**3
    return {"dtype": dtype, "size": size, "best_seconds": best,
            "gflops_best": flops / best / 1e9, "gflops_median": flops / sorted(times)[len(times) // 2] / 1e9}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=2048, help="square matrix size (default: 2048)")
    parser.add_argument("--sizes", type=int, nargs="+", default=None, help="several sizes (overrides --size)")
    parser.add_argument("--threads", type=int, default=None,
                        help="TensorFlow intra-op threads (default: TensorFlow's, one per core)")
    parser.add_argument("--repeats", type=int, default=20, help="timed multiplications (default: 20)")
    parser.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"], help="dtypes to measure")
    args = parser.parse_args(argv)
    import tensorflow as tf

    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    load_before = os.getloadavg()
    results = [measure(size, d, args.repeats) for size in (args.sizes or [args.size]) for d in args.dtypes]
    print(json.dumps({"machine": {"cpu": platform.processor(), "cores": os.cpu_count(),
                                  "tensorflow": tf.__version__},
                      "intra_op_threads": args.threads or "default",
                      "load_average_before": [round(v, 2) for v in load_before],
                      "load_average_after": [round(v, 2) for v in os.getloadavg()],
                      "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
