"""``foveal benchmark``: latency and throughput of a model in every runtime, side by side.

Method (the texts' advice on measuring inference): warm-up runs first (graph tracing,
allocation), then many timed runs; latency percentiles at batch 1, throughput at a larger
batch; the model alone and end to end (encoded image bytes -> decode and resize -> model ->
the task's answer: top-k labels, boxes, or the mask as a PNG, as ``foveal serve`` gives it).
"The model alone" includes the task's own post-processing (a detector's decode and NMS, a
localizer's box decoding; an instance model's masks pasted at its input size, or a U-Net's
marker watershed: :func:`foveal.export.tasks.inference`), which every runtime runs the same way
(:mod:`foveal.export.tasks`); where that post-processing is not part of the graph, the network's
own share is reported too (``batch1_network``).
Runtimes: Keras ``predict_on_batch``, a direct Keras call, SavedModel, TFLite (LiteRT) and ONNX
Runtime, all on the same weights; a runtime the model cannot be exported to (a two-stage detector's
TFLite) is left out and named (``left_out``).
"""

from __future__ import annotations

import io
import platform
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from foveal.errors import ConfigError
from foveal.export.formats import artifact_size, write_export
from foveal.export.names import RUNTIMES
from foveal.export.runners import Runner, open_runner, write_export_card


def _percentiles(samples_ms: list[float]) -> dict[str, float]:
    a = np.asarray(samples_ms)
    return {"p50_ms": float(np.percentile(a, 50)), "p90_ms": float(np.percentile(a, 90)),
            "p99_ms": float(np.percentile(a, 99)), "mean_ms": float(a.mean())}


def time_calls(fn: Callable[[], Any], warmup: int, runs: int) -> list[float]:
    """Milliseconds of each of ``runs`` calls of ``fn`` after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return times


def _sample_jpeg(shape: tuple[int, int, int], seed: int = 0) -> bytes:
    from PIL import Image

    rng = np.random.default_rng(seed)
    h, w, c = shape
    pixels = rng.integers(0, 256, (max(h, 64) * 2, max(w, 64) * 2, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def _end_to_end(runner: Runner, encoded: bytes, top_k: int) -> Callable[[], dict[str, Any]]:
    import tensorflow as tf

    from foveal.data.decode import decode_image_bytes
    from foveal.export import tasks

    card = runner.card
    c = tasks.decode_channels(card)

    def run() -> dict[str, Any]:
        decoded = decode_image_bytes(tf.constant(encoded), c)
        image = tasks.model_input(decoded, card)
        out = tasks.outputs(runner, card, np.asarray(image, np.float32)[None])
        size = (int(decoded.shape[1]), int(decoded.shape[0]))
        return tasks.render({k: v[0] for k, v in out.items()}, card, size, top_k)

    return run


def _sample_end_to_end(runner: Runner) -> Callable[[], bytes]:
    """A generator's answer to ``GET /generate?count=1``: seeded codes -> image -> 8-bit PNG bytes."""
    from foveal.generative.export_check import sample
    from foveal.generative.sampling import png_bytes, to_uint8

    def run() -> bytes:
        images, _ = sample(runner, runner.card, 1, None, seed=0)
        pixels = to_uint8(images[0])
        return png_bytes(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)

    return run


def _inputs(card: Any, count: int) -> np.ndarray:
    """``count`` inputs of the model: seeded pixels 0..255, or a generator's seeded latent codes."""
    from foveal.export import tasks

    if not tasks.takes_images(card):
        return tasks.random_inputs(card, count, seed=0)
    return np.random.default_rng(0).uniform(0, 255, (count, *card.input_shape)).astype(np.float32)


def unit(card: Any) -> str:
    """What the throughput counts: ``images``, a generator's ``samples``, or the task's own
    (``BENCHMARK_UNIT`` of its hooks: a video classifier's ``clips``)."""
    from foveal.export import tasks

    own = getattr(tasks.hooks(card.task), "BENCHMARK_UNIT", None)
    return own or ("images" if tasks.takes_images(card) else "samples")


def benchmark_runner(runner: Runner, *, warmup: int, runs: int, batch_size: int | Sequence[int],
                     top_k: int = 5) -> dict[str, Any]:
    """Latency at batch 1 (model alone and end to end) and throughput at each of ``batch_size``.

    A generator takes latent codes (its images per second are samples drawn); its end to end is
    one sample drawn from a seed and encoded as a PNG, as ``GET /generate`` answers. A task with a
    ``benchmark_end_to_end(runner, card, top_k)`` hook times its own (a video classifier: one
    video file decoded, its frames sampled and resized, the clip's label).
    """
    from foveal.export import tasks

    card = runner.card
    sizes = [batch_size] if isinstance(batch_size, int) else [int(b) for b in batch_size]
    one = _inputs(card, 1)
    latency = _percentiles(time_calls(lambda: tasks.inference(runner, card, one), warmup, runs))
    network = (_percentiles(time_calls(lambda: tasks.outputs(runner, card, one), max(1, warmup // 5), runs))
               if hasattr(tasks.hooks(card.task), "postprocess") else None)
    own = getattr(tasks.hooks(card.task), "benchmark_end_to_end", None)
    if own is not None:
        e2e_call = own(runner, card, top_k)
    elif tasks.takes_images(card):
        e2e_call = _end_to_end(runner, _sample_jpeg(card.input_shape), top_k)
    else:
        e2e_call = _sample_end_to_end(runner)
    e2e = _percentiles(time_calls(e2e_call, warmup, runs))
    batch_runs = max(3, runs // 10)
    throughput: dict[str, float] = {}
    for size in sizes:
        many = _inputs(card, size)
        batch_ms = time_calls(lambda: tasks.inference(runner, card, many), max(1, warmup // 5), batch_runs)
        throughput[str(size)] = size / (float(np.median(batch_ms)) / 1e3)
    return {
        "runtime": runner.kind,
        "task": card.task,
        "unit": unit(card),
        "path": str(runner.path),
        "size_bytes": artifact_size(runner.path),
        "batch1": latency,
        **({"batch1_network": network} if network is not None else {}),
        "batch1_end_to_end": e2e,
        "throughput_images_per_s": throughput[str(sizes[0])],
        "throughput_batch_size": sizes[0],
        "throughput_by_batch_size": throughput,
    }


def machine_info(threads: int | None) -> dict[str, Any]:
    import os

    import keras
    import tensorflow as tf

    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "threads": threads, "python": platform.python_version(),
            "tensorflow": tf.__version__, "keras": keras.__version__}


def benchmark(
    model_or_export: str | Path,
    *,
    runtimes: tuple[str, ...] = RUNTIMES,
    threads: int | None = 2,
    warmup: int = 10,
    runs: int = 100,
    batch_size: int | Sequence[int] = 32,
    workdir: str | Path | None = None,
    trust_model: bool = False,
) -> dict[str, Any]:
    """Benchmark a ``.keras`` model in every runtime (exporting it to a temporary folder), or
    one existing export (checked against the allow-list of inference ops unless ``trust_model``).
    ``batch_size``: one size or several (images per second at each). Any task: a generator is timed
    on latent codes (samples per second), an enhancer on images at its card's size, a video
    classifier on clips (frames and lengths in, probabilities out; clips per second; its Keras
    runtimes run the one graph its exports hold, backbone and sequence head together).

    Returns:
        ``{"machine": ..., "model": ..., "parameters": ..., "results": [one dict per runtime],
        "left_out": {runtime: why}}`` (the runtimes the model's export refuses).

    Example:
        >>> table = benchmark("runs/digits/best.keras", runs=50)  # doctest: +SKIP
        >>> print(format_benchmark(table))  # doctest: +SKIP
    """
    path = Path(model_or_export)
    unknown = [r for r in runtimes if r not in RUNTIMES]
    if unknown:
        raise ConfigError(f"unknown runtime(s) {', '.join(unknown)}", hint=f"choose from {', '.join(RUNTIMES)}")
    results = []
    parameters, left_out = None, {}
    if path.suffix != ".keras":
        runner = open_runner(path, threads=threads, trust_model=trust_model)
        results.append(benchmark_runner(runner, warmup=warmup, runs=runs, batch_size=batch_size))
    else:
        from foveal.export.tasks import check_export, export_card, load

        model, card = load(path)  # a video classifier comes with its frame backbone
        for runtime in (r for r in runtimes if not r.startswith("keras")):
            try:
                check_export(card, runtime, None)
            except ConfigError as exc:
                left_out[runtime] = exc.message
        runtimes = tuple(r for r in runtimes if r not in left_out)
        if not runtimes:
            raise ConfigError(f"{'; '.join(left_out.values())}: nothing left to benchmark", hint="benchmark with "
                              f"--runtimes {' '.join(r for r in RUNTIMES if r not in left_out)}")
        parameters = int(model.count_params())
        with tempfile.TemporaryDirectory(dir=workdir) as tmp:
            for runtime in runtimes:
                if runtime.startswith("keras"):
                    runner = open_runner(path, threads=threads, direct=runtime == "keras-call")
                else:
                    target = Path(tmp) / f"model{ {'savedmodel': '', 'tflite': '.tflite', 'onnx': '.onnx'}[runtime] }"
                    write_export(model, card, runtime, target, None)
                    write_export_card(target, export_card(model, card))
                    runner = open_runner(target, threads=threads)
                result = benchmark_runner(runner, warmup=warmup, runs=runs, batch_size=batch_size)
                if runtime.startswith("keras"):  # with a video model's frame backbone saved beside it
                    beside = card.training.get("backbone_file") if card.task == "video" else None
                    result["size_bytes"] = artifact_size(path) + (artifact_size(path.parent / beside) if beside else 0)
                results.append(result)
    return {"machine": machine_info(threads), "model": str(path), "parameters": parameters,
            "warmup": warmup, "runs": runs, "results": results, "left_out": left_out}


def format_benchmark(table: dict[str, Any]) -> str:
    """The side-by-side table printed by ``foveal benchmark`` (one img/s column per batch size)."""
    first = table["results"][0]
    sizes = list(first.get("throughput_by_batch_size") or {str(first["throughput_batch_size"]): 0})
    task = first.get("task", "classify")
    per = {"clips": "clip/s @"}.get(first.get("unit", ""), "img/s @")
    head = (f"{'runtime':<14}{'size MB':>9}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}"
            f"{'e2e p50':>9}" + "".join(f"{per + size:>12}" for size in sizes))
    lines = [f"{table['model']}  ({task}; {table['parameters'] or '?'} parameters; "
             f"{table['machine']['cpu']}, {table['machine']['threads']} threads)", head, "-" * len(head)]
    for r in table["results"]:
        b = r["batch1"]
        rates = r.get("throughput_by_batch_size") or {str(r["throughput_batch_size"]): r["throughput_images_per_s"]}
        lines.append(f"{r['runtime']:<14}{r['size_bytes'] / 1e6:>9.2f}{b['p50_ms']:>9.2f}{b['p90_ms']:>9.2f}"
                     f"{b['p99_ms']:>9.2f}{r['batch1_end_to_end']['p50_ms']:>9.2f}"
                     + "".join(f"{rates[size]:>12.1f}" for size in sizes))
    network = [f"{r['runtime']} {r['batch1_network']['p50_ms']:.2f} ms" for r in table["results"] if "batch1_network" in r]
    if network:
        lines.append("(p50 and img/s include the post-processing outside the graph, e.g. an instance model's mask "
                     "pasting or watershed; the network alone, p50: " + ", ".join(network) + ")")
    lines += [f"({runtime} left out: {why})" for runtime, why in table.get("left_out", {}).items()]
    if task == "generate":
        lines.append("(a generator: img/s = samples drawn from latent codes; e2e = one seeded sample encoded as "
                     "a PNG, as GET /generate)")
    if task == "video":
        lines.append("(a video classifier: p50..p99 = one clip's frames and length -> probabilities; e2e = a "
                     "video file decoded, its frames sampled and resized, -> the clip's label; clip/s = clips a "
                     "second at each batch size; a TFLite graph with a recurrent loop runs its batch clip by clip)")
    return "\n".join(lines)
