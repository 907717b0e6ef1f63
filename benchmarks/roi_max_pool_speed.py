"""Time RoI max pooling: the vectorised layer against the per-RoI loop it replaced.

Fast R-CNN's RoI max pooling (the texts' figure) on a ``64 x 64 x 256`` feature map with
``--rois`` boxes (default 256) of random sizes, pooled to 7 x 7 at stride 16, forward and
forward + gradient, each the median of ``--repeat`` runs of a ``tf.function`` after a warm-up.
The baseline is the former implementation, kept here: a ``tf.map_fn`` over
the RoIs, each masking the whole map per bin row and column. A second baseline,
``vectorised_autodiff``, is today's vectorised passes differentiated by TensorFlow (what the
layer did before its custom gradient, which scatters each bin's gradient to its argmax cell).
``equal`` says whether all gave identical outputs, ``gradient_equal`` whether the custom gradient
equals the autodiff one. One JSON document goes to stdout, with the load average before and after.

    nice -n 5 .venv/bin/python benchmarks/roi_max_pool_speed.py > roi_max_pool.json

Measured 2026-12-07 with the defaults, boosted (``/work/bench/boost.sh``; load average 15.3
before, 18.3 after), medians in ms: forward 1434 (loop) / 89.8 (vectorised, autodiff) / 95.6
(vectorised, custom gradient); forward + gradient 5851 / 812.8 / 329.6, so the custom gradient
is 2.47 times faster than the autodiff of the same passes and 17.8 times faster than the loop;
outputs and gradients identical.
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

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from foveal.layers.roi import _bin_edges, _flat, _max_pool_cells, _snap_to_cells, roi_max_pool  # noqa: E402


def _float_bin_edges(start, extent, pool_size: int):
    i = tf.cast(tf.range(pool_size), tf.float32)[None]
    extent_f = tf.cast(extent, tf.float32)[:, None]
    lo = tf.minimum(tf.math.ceil(i * extent_f / pool_size), extent_f - 1.0)
    hi = tf.maximum(tf.math.ceil((i + 1.0) * extent_f / pool_size), lo + 1.0)
    start = tf.cast(start, tf.float32)[:, None]
    return start + lo, start + hi


def per_roi_loop(features, rois, *, pool_size: int = 7, stride: float = 16.0) -> tf.Tensor:
    """The former RoI max pooling: one ``map_fn`` step per RoI, masking the map per bin."""
    features, flat, index, batch, count = _flat(features, rois)
    fh, fw = tf.shape(features)[1], tf.shape(features)[2]
    c0, r0, c1, r1 = _snap_to_cells(flat, stride, fh, fw)
    row_lo, row_hi = _float_bin_edges(r0, r1 - r0, pool_size)
    col_lo, col_hi = _float_bin_edges(c0, c1 - c0, pool_size)
    rows = tf.cast(tf.range(fh), tf.float32)
    cols = tf.cast(tf.range(fw), tf.float32)
    in_row = (rows[None, None] >= row_lo[..., None]) & (rows[None, None] < row_hi[..., None])
    in_col = (cols[None, None] >= col_lo[..., None]) & (cols[None, None] < col_hi[..., None])
    lowest = tf.constant(float("-inf"), tf.float32)

    def one(args):
        image, rmask, cmask = args
        fmap = features[image]
        by_col = tf.reduce_max(tf.where(cmask[:, None, :, None], fmap[None], lowest), axis=2)
        return tf.reduce_max(tf.where(rmask[:, None, :, None], by_col[None], lowest), axis=2)

    pooled = tf.map_fn(one, (index, in_row, in_col), fn_output_signature=tf.TensorSpec(None, tf.float32))
    return tf.reshape(pooled, tf.concat([[batch, count, pool_size, pool_size], tf.shape(features)[3:]], 0))


def vectorised_autodiff(features, rois, *, pool_size: int = 7, stride: float = 16.0) -> tf.Tensor:
    """The layer's vectorised passes without its custom gradient (TensorFlow's autodiff)."""
    features, flat, index, batch, count = _flat(features, rois)
    c0, r0, c1, r1 = _snap_to_cells(flat, stride, tf.shape(features)[1], tf.shape(features)[2])
    pooled = _max_pool_cells(features, index, *_bin_edges(r0, r1 - r0, pool_size), *_bin_edges(c0, c1 - c0, pool_size))
    return tf.reshape(pooled, tf.concat([[batch, count, pool_size, pool_size], tf.shape(features)[3:]], 0))


def _median_ms(fn, repeats: int) -> float:
    fn()  # trace and warm up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        np.asarray(out)
        times.append(time.perf_counter() - start)
    return round(1000 * statistics.median(times), 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rois", type=int, default=256)
    parser.add_argument("--size", type=int, default=64, help="feature map side")
    parser.add_argument("--channels", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    load_before = os.getloadavg()
    rng = np.random.default_rng(0)
    stride = 16.0
    side = args.size * stride
    features = tf.constant(rng.normal(size=(1, args.size, args.size, args.channels)).astype(np.float32))
    centres = rng.uniform(0, side, size=(1, args.rois, 2))
    sizes = np.exp(rng.uniform(np.log(16), np.log(side / 2), size=(1, args.rois, 2)))
    rois = tf.constant(np.clip(np.concatenate([centres - sizes / 2, centres + sizes / 2], -1), 0, side).astype(np.float32))
    results = {}
    outputs = {}
    gradients = {}
    for name, fn in (("per_roi_loop", per_roi_loop), ("vectorised_autodiff", vectorised_autodiff),
                     ("vectorised", roi_max_pool)):
        forward = tf.function(lambda fn=fn: fn(features, rois, pool_size=7, stride=stride))

        @tf.function
        def backward(fn=fn):
            with tf.GradientTape() as tape:
                tape.watch(features)
                total = tf.reduce_sum(fn(features, rois, pool_size=7, stride=stride))
            return tape.gradient(total, features)

        outputs[name] = forward().numpy()
        gradients[name] = backward().numpy()
        results[name] = {"forward_ms": _median_ms(forward, args.repeat),
                         "forward_backward_ms": _median_ms(backward, args.repeat)}
    report = {
        "benchmark": "roi_max_pool_speed",
        "feature_map": [1, args.size, args.size, args.channels], "rois": args.rois, "pool_size": 7, "stride": stride,
        "results": results,
        "speedup_forward": round(results["per_roi_loop"]["forward_ms"] / results["vectorised"]["forward_ms"], 2),
        "speedup_forward_backward": round(results["per_roi_loop"]["forward_backward_ms"]
                                          / results["vectorised"]["forward_backward_ms"], 2),
        "speedup_forward_backward_over_autodiff": round(results["vectorised_autodiff"]["forward_backward_ms"]
                                                        / results["vectorised"]["forward_backward_ms"], 2),
        "equal": bool(np.array_equal(outputs["per_roi_loop"], outputs["vectorised"])
                      and np.array_equal(outputs["vectorised_autodiff"], outputs["vectorised"])),
        "gradient_equal": bool(np.array_equal(gradients["vectorised_autodiff"], gradients["vectorised"])),
        "repeat": args.repeat, "tensorflow": tf.__version__, "python": platform.python_version(),
        "cpu_count": os.cpu_count(), "load_average_before": [round(v, 2) for v in load_before],
        "load_average_after": [round(v, 2) for v in os.getloadavg()],
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
