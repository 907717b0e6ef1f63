"""Measure this machine's matrix-multiply peak with TensorFlow, in float32 and bfloat16.

The peak is the yardstick for training throughput: a model's achieved FLOP/s divided by it
says how much of the machine the model uses. Prints one JSON document.

    python benchmarks/peak_flops.py --size 2048 --repeats 20
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


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
    parser.add_argument("--repeats", type=int, default=20, help="timed multiplications (default: 20)")
    parser.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"], help="dtypes to measure")
    args = parser.parse_args(argv)
    import tensorflow as tf

    results = [measure(args.size, d, args.repeats) for d in args.dtypes]
    print(json.dumps({"machine": {"cpu": platform.processor(), "cores": os.cpu_count(),
                                  "tensorflow": tf.__version__},
                      "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
