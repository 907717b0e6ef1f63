"""Which oneDNN kernels a training step runs, and at what speed each runs.

TensorFlow's CPU build hands matrix products, convolutions and some other ops to oneDNN. With
``ONEDNN_VERBOSE=1`` oneDNN prints one line per primitive execution: its kind, the
implementation it picked (for example ``brg_conv_fwd:avx512_core_amx`` for a convolution on
Intel AMX tiles, ``brgemm:avx512_core_amx`` for a bfloat16 matrix product, or an AVX-512 kernel
without AMX), the problem shape and the milliseconds it took. This script runs each job in a
child process with that switch on, parses the lines and sums them per kind, direction and
implementation, with the FLOP/s of every convolution, inner product and matrix product computed
from the problem shape. The difference between a step's wall time and its oneDNN time is the
work oneDNN does not do (TensorFlow's own element-wise, reduction and cast kernels).

Jobs:

* ``matmul`` (``--matmul SIZE``): the square matrix product of ``benchmarks/peak_flops.py`` in
  float32 and bfloat16, to see which kernel gives the peak.
* one per model and precision (``--models``, ``NAME:SIZE[xC][@BATCH][/JSON]`` as in
  ``throughput_profile.py``): ``--warmup`` untimed training steps (SGD, synthetic in-memory
  batch), then ``--steps`` timed ones; only the lines of the timed steps are summed.

    nice -n 5 python benchmarks/onednn_kernels.py \\
        --models 'airbench28:28x1@256/{"stem": 0, "widths": [32, 64, 128]}' airbench:32@1024

Prints one JSON document (load average before and after included).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

CHILD_MARK = "FOVEAL_ONEDNN_CHILD "


def conv_flops(problem: str) -> float:
    """2 x multiply-adds of a oneDNN convolution descriptor such as
    ``mb256_ic32oc64_ih14oh14kh3sh1dh0ph1_iw14ow14kw3sw1dw0pw1`` (``g`` groups when present).
    The forward, backward-data and backward-weights passes of one convolution cost the same."""
    values: dict[str, int] = {}
    for key, value in re.findall(r"([a-z]+)(\d+)", problem):
        values.setdefault(key, int(value))

    def field(key: str, default: int | None = None) -> int:
        if key not in values:
            if default is None:
                raise ValueError(f"no {key} in {problem!r}")
            return default
        return values[key]

    mb, groups = field("mb", 1), field("g", 1)
    ic, oc = field("ic"), field("oc")
    oh, ow = field("oh", field("ih", 1)), field("ow", field("iw", 1))
    kh, kw = field("kh", 1), field("kw", 1)
    return 2.0 * mb * oc * (ic // groups) * oh * ow * kh * kw


def matmul_flops(problem: str) -> float:
    """2 x M x K x N (x batch) of a oneDNN matmul descriptor ``[B x]M x K:[B x]K x N[:...]``."""
    src, wei = problem.split(":")[:2]
    a = [int(v) for v in src.split("x")]
    b = [int(v) for v in wei.split("x")]
    batch = 1
    for v in a[:-2]:
        batch *= v
    return 2.0 * batch * a[-2] * a[-1] * b[-1]


def inner_product_flops(problem: str) -> float:
    """2 x mb x ic(x spatial) x oc of a oneDNN inner-product descriptor ``mb256ic128oc10``."""
    values = {k: int(v) for k, v in re.findall(r"([a-z]+)(\d+)", problem)}
    spatial = values.get("ih", 1) * values.get("iw", 1) * values.get("id", 1)
    return 2.0 * values["mb"] * values["ic"] * spatial * values["oc"]


FLOPS = {"convolution": conv_flops, "matmul": matmul_flops, "gemm_api": matmul_flops, "inner_product": inner_product_flops}


def parse_verbose(lines: list[str], since_ms: float | None = None) -> list[dict[str, Any]]:
    """The execution lines of oneDNN's verbose output as records (kind, direction, implementation,
    problem, milliseconds, timestamp when ``ONEDNN_VERBOSE_TIMESTAMP=1``); ``since_ms`` keeps the
    lines stamped at or after that time (milliseconds since the epoch)."""
    records = []
    for line in lines:
        if not line.startswith("onednn_verbose") or ",exec," not in line:
            continue
        fields = line.rstrip("\n").split(",")
        at = fields.index("exec")
        stamp = None
        for field in fields[1:at]:  # "onednn_verbose[,v1][,STAMP],primitive,exec,..." across versions
            try:
                stamp = float(field)
                break
            except ValueError:
                pass
        try:
            ms = float(fields[-1])
        except ValueError:
            continue
        if since_ms is not None and stamp is not None and stamp < since_ms:
            continue
        records.append({"kind": fields[at + 2], "impl": fields[at + 3], "direction": fields[at + 4],
                        "problem": fields[-2], "ms": ms, "stamp": stamp})
    return records


def summarize(records: list[dict[str, Any]], steps: int) -> list[dict[str, Any]]:
    """Per (kind, direction, implementation): calls and milliseconds per step, and GFLOP/s."""
    groups: dict[tuple[str, str, str], dict[str, float]] = collections.defaultdict(
        lambda: {"calls": 0, "ms": 0.0, "flops": 0.0})
    for r in records:
        g = groups[(r["kind"], r["direction"], r["impl"])]
        g["calls"] += 1
        g["ms"] += r["ms"]
        if r["kind"] in FLOPS:
            try:
                g["flops"] += FLOPS[r["kind"]](r["problem"])
            except (ValueError, KeyError, IndexError):
                pass
    rows = []
    for (kind, direction, impl), g in sorted(groups.items(), key=lambda kv: -kv[1]["ms"]):
        row = {"kind": kind, "direction": direction, "impl": impl, "calls_per_step": round(g["calls"] / steps, 1),
               "ms_per_step": round(g["ms"] / steps, 2)}
        if g["flops"]:
            row["gflops_per_second"] = round(g["flops"] / (g["ms"] * 1e-3) / 1e9, 1)
        rows.append(row)
    return rows


def per_shape(records: list[dict[str, Any]], steps: int, top: int = 12) -> list[dict[str, Any]]:
    """The costliest convolution / matmul problems with their GFLOP/s."""
    groups: dict[tuple[str, str, str, str], list[float]] = collections.defaultdict(lambda: [0, 0.0])
    for r in records:
        if r["kind"] in FLOPS:
            g = groups[(r["kind"], r["direction"], r["impl"], r["problem"])]
            g[0] += 1
            g[1] += r["ms"]
    rows = []
    for (kind, direction, impl, problem), (calls, ms) in sorted(groups.items(), key=lambda kv: -kv[1][1])[:top]:
        try:
            gflops = FLOPS[kind](problem) * calls / (ms * 1e-3) / 1e9
        except (ValueError, KeyError, IndexError):
            gflops = None
        rows.append({"kind": kind, "direction": direction, "impl": impl, "problem": problem,
                     "ms_per_step": round(ms / steps, 2), "gflops_per_second": gflops and round(gflops, 1)})
    return rows


def child(job: dict[str, Any]) -> None:
    """Run one job with oneDNN's verbose output on; print the timings as one marked JSON line."""
    import tensorflow as tf

    if job["kind"] == "matmul":
        out = {}
        for dtype in ("float32", "bfloat16"):
            a = tf.cast(tf.random.stateless_uniform((job["size"],) * 2, seed=(1, 2)), dtype)
            matmul = tf.function(lambda x, y: tf.matmul(x, y))
            matmul(a, a).numpy()
            start_ms = time.time() * 1e3
            started = time.perf_counter()
            for _ in range(job["steps"]):
                matmul(a, a).numpy()
            out[dtype] = {"since_ms": start_ms, "seconds_per_call": (time.perf_counter() - started) / job["steps"]}
        print(CHILD_MARK + json.dumps(out), flush=True)
        return
    from throughput_profile import compiled_on_random_batch

    model, ds = compiled_on_random_batch(job["spec"], job["precision"])
    model.fit(ds, steps_per_epoch=job["warmup"], epochs=1, verbose=0)
    start_ms = time.time() * 1e3
    started = time.perf_counter()
    model.fit(ds, steps_per_epoch=job["steps"], epochs=1, verbose=0)
    seconds = (time.perf_counter() - started) / job["steps"]
    print(CHILD_MARK + json.dumps({"since_ms": start_ms, "seconds_per_step": seconds}), flush=True)


def run_job(job: dict[str, Any]) -> tuple[list[str], dict[str, Any]]:
    env = dict(os.environ, ONEDNN_VERBOSE="1", ONEDNN_VERBOSE_TIMESTAMP="1", TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(job)], env=env,
                          capture_output=True, text=True, check=False)
    lines = proc.stdout.splitlines()
    marks = [line[len(CHILD_MARK):] for line in lines if line.startswith(CHILD_MARK)]
    if proc.returncode != 0 or not marks:
        raise RuntimeError(f"job {job} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return lines, json.loads(marks[-1])


def implementations(lines: list[str]) -> list[str]:
    """The oneDNN version and ISA lines of the verbose header."""
    return [line for line in lines if line.startswith("onednn_verbose") and (",info," in line)][:6]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--models", nargs="*", default=[], help="NAME:SIZE[xC][@BATCH][/JSON] specs")
    parser.add_argument("--precisions", nargs="+", default=["float32", "bfloat16"])
    parser.add_argument("--matmul", type=int, default=2048, help="square matmul size; 0: none (default: 2048)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps (default: 2)")
    parser.add_argument("--steps", type=int, default=3, help="timed steps (default: 3)")
    parser.add_argument("--raw", type=Path, default=None, help="folder for the raw verbose logs")
    args = parser.parse_args(argv)
    if args.child:
        child(json.loads(args.child))
        return 0
    load_before = os.getloadavg()
    jobs = ([{"kind": "matmul", "size": args.matmul, "steps": 5}] if args.matmul else []) + [
        {"kind": "model", "spec": spec, "precision": p, "warmup": args.warmup, "steps": args.steps}
        for spec in args.models for p in args.precisions]
    results = []
    for job in jobs:
        print(f"onednn_kernels: {job}", file=sys.stderr, flush=True)
        try:
            lines, timing = run_job(job)
        except RuntimeError as error:
            results.append({"job": job, "error": str(error)})
            continue
        if args.raw:
            args.raw.mkdir(parents=True, exist_ok=True)
            label = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{job.get('spec', 'matmul')}-{job.get('precision', '')}")[:80]
            (args.raw / f"{label}.log").write_text("\n".join(lines))
        entry: dict[str, Any] = {"job": job, "header": implementations(lines)}
        if job["kind"] == "matmul":
            for dtype, t in timing.items():
                later = parse_verbose(lines, t["since_ms"])
                mine = [r for r in later if r["kind"] in ("matmul", "gemm_api")][: job["steps"]]
                entry[dtype] = {"seconds_per_call": round(t["seconds_per_call"], 5),
                                "gflops_per_second_wall": round(2.0 * job["size"] ** 3 / t["seconds_per_call"] / 1e9, 1),
                                "kernels": summarize(mine, job["steps"])}
        else:
            records = parse_verbose(lines, timing["since_ms"])
            total_ms = sum(r["ms"] for r in records) / job["steps"]
            step_ms = timing["seconds_per_step"] * 1e3
            entry.update({"ms_per_step_wall": round(step_ms, 1), "ms_per_step_onednn": round(total_ms, 1),
                          "onednn_share_of_step": round(total_ms / step_ms, 3),
                          "stamped": all(r["stamp"] is not None for r in records),
                          "kernels": summarize(records, job["steps"]),
                          "costliest_problems": per_shape(records, job["steps"])})
        results.append(entry)
        print(json.dumps({k: v for k, v in entry.items() if k not in ("kernels", "costliest_problems")})[:400],
              file=sys.stderr, flush=True)
    print(json.dumps({"load_average_before": [round(v, 2) for v in load_before],
                      "load_average_after": [round(v, 2) for v in os.getloadavg()],
                      "note": "oneDNN's own per-primitive milliseconds (ONEDNN_VERBOSE=1, which slows each call a "
                              "little); GFLOP/s from the problem shapes; ms_per_step_wall - ms_per_step_onednn is "
                              "TensorFlow's own kernels and the executor",
                      "jobs": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
