"""The PyTorch side of the airbench per-step comparison: op table of the paper's own network.

recipes/fast-training.md compares foveal's airbench recipe with Jordan's published
``airbench94.py`` run on the same CPU (the paper's script, ported to the CPU; not part of foveal
and not shipped here). This script imports that port's ``make_net`` (``--ref``, a path to the
port), trains it a few steps on a synthetic batch of 1,024 32x32 images under bfloat16
autocast with the script's Nesterov SGD, times them, and prints PyTorch's profiler table
(self CPU time per op) of 2 more steps, to set beside ``benchmarks/throughput_profile.py``'s
TensorFlow op table for ``airbench:32@1024``. Needs PyTorch (not a foveal dependency).

    python benchmarks/torch_airbench_profile.py --ref /path/to/airbench94_ref_cpu.py

Prints one JSON document with the load average.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import sys
import time


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ref", required=True, help="the CPU port of airbench94.py that defines make_net()")
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=3, help="steps per timed repeat (default: 3)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--profile-steps", type=int, default=2)
    parser.add_argument("--no-bf16", dest="bf16", action="store_false")
    args = parser.parse_args(argv)
    import torch
    from torch import nn

    spec = importlib.util.spec_from_file_location("airbench_ref", args.ref)
    ref = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ref)
    load_before = os.getloadavg()
    torch.manual_seed(0)
    model = ref.make_net()
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01, momentum=0.85,
                                nesterov=True)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.2, reduction="none")
    x = torch.randn(args.batch, 3, 32, 32)
    y = torch.randint(0, 10, (args.batch,))

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
            out = model(x)
        loss = loss_fn(out, y).sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    model.train()
    for _ in range(2):
        step()
    per_step = []
    for _ in range(args.repeats):
        started = time.perf_counter()
        for _ in range(args.steps):
            step()
        per_step.append((time.perf_counter() - started) / args.steps)
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(args.profile_steps):
            step()
    averages = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)
    total = sum(e.self_cpu_time_total for e in averages) or 1.0
    table = [{"op": e.key, "calls": e.count, "self_ms_per_step": round(e.self_cpu_time_total / 1e3 / args.profile_steps, 2),
              "share": round(e.self_cpu_time_total / total, 3)} for e in averages[:15]]
    print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(), "batch": args.batch,
                      "bf16_autocast": args.bf16, "seconds_per_step": [round(t, 4) for t in per_step],
                      "images_per_second": round(args.batch / statistics.median(per_step), 1),
                      "self_cpu_ms_per_step_total": round(total / 1e3 / args.profile_steps, 1),
                      "top_ops": table, "load_average_before": [round(v, 2) for v in load_before],
                      "load_average_after": [round(v, 2) for v in os.getloadavg()]}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
