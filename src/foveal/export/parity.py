"""``foveal export``: write the artifact, then prove it computes what the Keras model does.

Parity: the export and the Keras model run on the same sample images (from the dataset the
user names, else seeded random pixels); the largest absolute difference of the output
probabilities must stay under a tolerance that depends on the quantization. Accuracy: with a
dataset, both are scored on its test split and reported side by side, so the cost of
quantization is a measured number, not a guess.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from foveal.errors import FovealError
from foveal.export.formats import SUFFIX, artifact_size, write_export
from foveal.export.runners import Runner, open_runner, write_export_card
from foveal.models.io import load_model

DEFAULT_TOLERANCE = {None: 1e-4, "float16": 1e-2, "dynamic": 0.1, "int8": 0.2}


@dataclass
class ExportReport:
    """What an export produced and how it compares with the Keras model."""

    format: str
    quantize: str | None
    path: str
    size_bytes: int
    keras_size_bytes: int
    parameters: int
    samples: int
    max_abs_diff: float
    top1_agreement: float
    tolerance: float
    passed: bool
    export_seconds: float
    accuracy: dict[str, float] = field(default_factory=dict)
    check: str = "numeric"  # "structural" where the runtime cannot run here (Core ML)
    structure: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        lines = [
            f"exported {self.format}{' (' + self.quantize + ')' if self.quantize else ''} -> {self.path}",
            f"  size: {self.size_bytes / 1e6:.2f} MB (Keras file {self.keras_size_bytes / 1e6:.2f} MB), "
            f"{self.parameters:,} parameters, {self.export_seconds:.1f} s",
        ]
        if self.check == "structural":
            lines.append(f"  structural check (Core ML does not run on this system): {self.structure} -> "
                         f"{'PASS' if self.passed else 'FAIL'}")
        else:
            lines.append(f"  parity on {self.samples} images: max |diff| {self.max_abs_diff:.3g} "
                         f"(tolerance {self.tolerance:g}), top-1 agreement {self.top1_agreement:.2%} -> "
                         f"{'PASS' if self.passed else 'FAIL'}")
        if self.accuracy:
            lines.append("  accuracy: " + ", ".join(f"{k} {v:.4f}" for k, v in self.accuracy.items()))
        return "\n".join(lines)


def _pipeline_batches(part, card, batch_size: int, limit: int | None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    from foveal.data.pipeline import make_pipeline

    h, w, c = card.input_shape
    ds = make_pipeline(part, image_size=(h, w), channels=c, batch_size=batch_size, training=False,
                       keep_aspect=card.keep_aspect, one_hot=False, cache="none")
    seen = 0
    for x, y in ds:
        x, y = x.numpy(), y.numpy()
        if limit is not None and seen + len(x) > limit:
            x, y = x[: limit - seen], y[: limit - seen]
        yield x, y
        seen += len(x)
        if limit is not None and seen >= limit:
            return


def _sample_images(card, parts: dict | None, split: str, samples: int, seed: int = 0) -> np.ndarray:
    if parts:
        part = parts.get(split) or next(iter(parts.values()))
        return np.concatenate([x for x, _ in _pipeline_batches(part, card, 64, samples)])
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 255, (samples, *card.input_shape)).astype(np.float32)


def _representative(card, parts: dict | None, count: int):
    """A generator factory of single-image batches from the training split (for calibration)."""
    if not parts:
        return None
    part = parts.get("train") or next(iter(parts.values()))
    rng = np.random.default_rng(0)
    chosen = part.subset(np.sort(rng.choice(len(part), size=min(count, len(part)), replace=False)))

    def batches():
        for x, _ in _pipeline_batches(chosen, card, 1, None):
            yield x.astype(np.float32)

    return batches


def accuracy_of(runner: Runner, part, card, limit: int | None, batch_size: int = 64) -> float:
    """Top-1 accuracy of ``runner`` on (up to ``limit`` images of) ``part``."""
    from foveal.evaluation.run import align_classes

    correct = total = 0
    for x, y in _pipeline_batches(align_classes(part, card), card, batch_size, limit):
        correct += int((runner(x).argmax(axis=1) == y).sum())
        total += len(y)
    return correct / max(total, 1)


def export_model(
    model_path: str | Path,
    fmt: str,
    output: str | Path | None = None,
    *,
    quantize: str | None = None,
    data: str | None = None,
    split: str = "test",
    tolerance: float | None = None,
    samples: int = 64,
    calibration: int = 200,
    accuracy_limit: int | None = None,
    threads: int | None = None,
) -> ExportReport:
    """Export ``model_path`` to ``fmt``, check parity, and (with ``data``) measure accuracy.

    Args:
        model_path: a ``.keras`` file written by foveal.
        fmt: ``savedmodel``, ``tflite`` or ``onnx``.
        output: target path (default: beside the model, e.g. ``best.int8.tflite``).
        quantize: ``float16``, ``dynamic`` or ``int8`` (see :mod:`foveal.export.formats`).
        data: a dataset spec; gives parity samples, the int8 calibration sample (from its
            training split) and the accuracy comparison (on ``split``).
        tolerance: largest allowed absolute difference of probabilities (default by
            quantization: 1e-4 none, 1e-2 float16, 0.1 dynamic, 0.2 int8).
        accuracy_limit: score at most this many images (default: the whole split).

    Raises:
        FovealError: the export failed, or the parity check did not pass (the file is kept
            so it can be examined).
    """
    model_path = Path(model_path)
    model, card = load_model(model_path)
    tag = f".{quantize}" if quantize else ""
    target = Path(output) if output else model_path.with_name(f"{model_path.stem}{tag}{SUFFIX[fmt] or '_savedmodel'}")
    parts = None
    if data:
        from foveal.data.readers import load_dataset

        parts = load_dataset(data)
    started = time.perf_counter()
    write_export(model, card, fmt, target, quantize, _representative(card, parts, calibration))
    write_export_card(target, card, {"export": {"format": fmt, "quantize": quantize, "source": str(model_path)}})
    seconds = time.perf_counter() - started
    if fmt == "coreml":
        return _structural_report(model, card, model_path, target, quantize, seconds)

    exported = open_runner(target, threads=threads)
    images = _sample_images(card, parts, split, samples)
    reference = np.asarray(model.predict_on_batch(images))
    got = exported(images)
    diff = float(np.abs(reference - got).max())
    agreement = float((reference.argmax(1) == got.argmax(1)).mean())
    limit = DEFAULT_TOLERANCE[quantize] if tolerance is None else tolerance
    report = ExportReport(
        format=fmt, quantize=quantize, path=str(target), size_bytes=artifact_size(target),
        keras_size_bytes=artifact_size(model_path), parameters=int(model.count_params()),
        samples=len(images), max_abs_diff=diff, top1_agreement=agreement, tolerance=limit,
        passed=diff <= limit, export_seconds=seconds,
    )
    if parts:
        part = parts.get(split) or next(iter(parts.values()))
        keras_runner = open_runner(model_path, threads=threads, direct=True)
        report.accuracy = {"keras": accuracy_of(keras_runner, part, card, accuracy_limit),
                           "export": accuracy_of(exported, part, card, accuracy_limit)}
        report.accuracy["difference"] = report.accuracy["export"] - report.accuracy["keras"]
    if not report.passed:
        raise ExportParityError(report)
    return report


def _structural_report(model, card, model_path: Path, target: Path, quantize: str | None,
                       seconds: float) -> ExportReport:
    """Core ML cannot run off Apple systems: check the package's inputs and outputs instead."""
    from foveal.export.formats import coreml_structure

    structure = coreml_structure(target)
    shapes_ok = list(structure["inputs"].values()) == [[1, *card.input_shape]]
    outputs = list(structure["outputs"].values())
    outputs_ok = len(outputs) == 1 and (not outputs[0] or outputs[0][-1] == len(card.class_names))
    report = ExportReport(
        format="coreml", quantize=quantize, path=str(target), size_bytes=artifact_size(target),
        keras_size_bytes=artifact_size(model_path), parameters=int(model.count_params()), samples=0,
        max_abs_diff=float("nan"), top1_agreement=float("nan"), tolerance=float("nan"),
        passed=bool(shapes_ok and outputs_ok and structure["operations"] > 0), export_seconds=seconds,
        check="structural", structure=structure,
    )
    if not report.passed:
        raise FovealError(f"{target}: the Core ML package does not have the model's input/output shapes: "
                          f"{structure}")
    return report


class ExportParityError(FovealError):
    """The export's outputs differ from the Keras model's by more than the tolerance."""

    def __init__(self, report: ExportReport) -> None:
        super().__init__(
            f"parity check failed for {report.path}: max |diff| {report.max_abs_diff:.3g} > tolerance "
            f"{report.tolerance:g} (top-1 agreement {report.top1_agreement:.2%})",
            hint="the file is kept for inspection; raise --tolerance if this quantization error is acceptable",
        )
        self.report = report
