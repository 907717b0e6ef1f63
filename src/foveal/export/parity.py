"""``foveal export``: write the artifact, then prove it computes what the Keras model does.

Parity: the export and the Keras model run on the same sample images (from the dataset the
user names, else seeded random pixels) and the task's check compares them
(:mod:`foveal.export.tasks`): probabilities for classifiers, class and box for localizers,
boxes after NMS matched by IoU for detectors, masks pixel by pixel for segmenters, all within a
tolerance that depends on the quantization. Accuracy: with a dataset, both are scored on its
test split by the task's own scoring and reported side by side, so the cost of quantization is
a measured number, not a guess.

The export is written under a temporary name beside the target and renamed into place only
after the check passes: a failed check (or an interrupted export) leaves nothing behind.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from foveal.errors import ConfigError, FovealError
from foveal.export import tasks
from foveal.export.formats import SUFFIX, artifact_size, check_format, write_export
from foveal.export.runners import card_path_for, open_runner, write_export_card
from foveal.models.io import ModelCard, read_card
from foveal.utils_io import ensure_output_dir

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
    task: str = "classify"
    parity: dict[str, Any] = field(default_factory=dict)  # the task's figures (boxes matched, IoU, ...)
    accuracy_metric: str = "accuracy"

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
            name = self.parity.get("agreement_name", "top-1 agreement")
            what = "clips of different lengths" if self.task == "video" else "images"
            lines.append(f"  parity on {self.samples} {what}: max |diff| {self.max_abs_diff:.3g} "
                         f"(tolerance {self.tolerance:g}), {name} {self.top1_agreement:.2%} -> "
                         f"{'PASS' if self.passed else 'FAIL'}")
            if self.task == "detect":
                p = self.parity
                lines.append(f"  boxes: Keras {p['keras_boxes']}, export {p['export_boxes']}, matched "
                             f"{p['matched_boxes']} (mean IoU {p['mean_iou']:.4f}, class agreement "
                             f"{p['class_agreement']:.2%}); unmatched: {p['unmatched_at_threshold']} at the "
                             f"score threshold, {p['unmatched_by_nms']} swapped by NMS, "
                             f"{p['unexplained_boxes']} unexplained")
            elif self.task == "localize":
                lines.append(f"  box IoU with Keras: mean {self.parity['mean_box_iou']:.4f}, "
                             f"min {self.parity['min_box_iou']:.4f}")
        if self.accuracy:
            lines.append(f"  {self.accuracy_metric}: " + ", ".join(f"{k} {v:.4f}" for k, v in self.accuracy.items()))
        return "\n".join(lines)


def resolve_target(model_path: Path, fmt: str, quantize: str | None, output: str | Path | None) -> Path:
    """Where ``--output`` puts the export.

    * nothing: beside the model (``best.int8.tflite``, ``best_savedmodel/``);
    * an existing folder (a SavedModel folder excepted, which is replaced), or a path ending
      in ``/``, or, for file formats, a path without a suffix: a folder (made if missing)
      that receives the default name;
    * anything else: the export's own path, whose suffix must be the format's.

    Raises:
        ConfigError: a file path with another format's suffix, or a file where a SavedModel
            folder should go.
    """
    suffix = SUFFIX[fmt]
    default = f"{model_path.stem}{f'.{quantize}' if quantize else ''}{suffix or '_savedmodel'}"
    if output is None:
        return model_path.with_name(default)
    out = Path(output)
    folder = str(output).endswith(("/", os.sep))
    if fmt == "savedmodel":
        if out.is_file():
            raise ConfigError(f"--output {out}: a file, but a SavedModel is a folder",
                              hint="give a new folder name, or an existing folder to put it in")
        if (out.is_dir() and not (out / "saved_model.pb").is_file()) or (folder and not out.exists()):
            return out / default
        return out
    if out.is_dir() and not (fmt == "coreml" and out.suffix == suffix):
        return out / default
    if folder or not out.suffix:
        return out / default
    if out.suffix.lower() != suffix:
        raise ConfigError(f"--output {out}: a {fmt} export ends in {suffix}, not {out.suffix}",
                          hint=f"name it {out.with_suffix(suffix).name}, or give a folder to put it in")
    return out


def _random_images(card: ModelCard, samples: int, seed: int = 0) -> np.ndarray:
    return tasks.random_inputs(card, samples, seed)


def _representative(card: ModelCard, parts: dict | None, count: int):
    """A generator factory of single-image batches from the training split (for calibration), or
    the task's own calibration inputs (a generator's latent codes)."""
    own = getattr(tasks.hooks(card.task), "calibration_inputs", None)
    if own is not None:
        return own(card, count)
    if not parts:
        return None
    part = tasks.pick_part(parts, "train")
    rng = np.random.default_rng(0)
    chosen = part.subset(np.sort(rng.choice(len(part), size=min(count, len(part)), replace=False)))
    sample = tasks.hooks(card.task).sample_images

    def batches():
        for start in range(0, len(chosen), 16):
            for image in sample(chosen.subset(np.arange(start, min(start + 16, len(chosen)))), card, 16):
                yield image[None].astype(np.float32)

    return batches


def _first_missing(folder: Path) -> Path | None:
    """The outermost folder of ``folder``'s path that does not exist yet (None: it exists)."""
    missing = None
    for candidate in (folder, *folder.parents):
        if candidate.exists():
            break
        missing = candidate
    return missing


def _commit(staged: Path, target: Path, trash: Path) -> None:
    """Move the checked export (and its card) into place, replacing an older one."""
    if staged.is_dir():  # SavedModel or Core ML package: the card is inside
        if target.exists():
            os.replace(target, trash / "previous")
        os.replace(staged, target)
        return
    os.replace(card_path_for(staged), card_path_for(target))
    os.replace(staged, target)


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

    Works for every task (classify, localize, detect, segment; see
    :mod:`foveal.export.tasks`). The export is written under a temporary name beside the
    target and moved into place only when the check passes.

    Args:
        model_path: a ``.keras`` file written by foveal.
        fmt: ``savedmodel``, ``tflite``, ``onnx`` or ``coreml``.
        output: target file or folder (see :func:`resolve_target`; default: beside the
            model, e.g. ``best.int8.tflite``).
        quantize: ``float16``, ``dynamic`` or ``int8`` (see :mod:`foveal.export.formats`).
        data: a dataset spec of the model's task; gives parity samples, the int8 calibration
            sample (from its training split) and the accuracy comparison (on ``split``).
        tolerance: largest allowed absolute difference of probabilities, scores and box
            corners (default by quantization: 1e-4 none, 1e-2 float16, 0.1 dynamic, 0.2 int8).
        accuracy_limit: score at most this many images (default: the whole split).

    Raises:
        FovealError: the export failed, or the check did not pass (:class:`ExportParityError`);
            either way nothing is left at the target.
    """
    model_path = Path(model_path)
    check_format(fmt, quantize)
    early = read_card(model_path) if model_path.suffix == ".keras" and model_path.is_file() else None
    if early is not None:  # a format the model cannot have is refused before the model loads
        tasks.hooks(early.task)
        tasks.check_export(early, fmt, quantize)
    model, card = tasks.load(model_path)
    tasks.hooks(card.task)  # refuse an unknown task before writing anything
    tasks.check_export(card, fmt, quantize)
    target = resolve_target(model_path, fmt, quantize, output)
    parts = tasks.load_parts(data, card, model_path=model_path) if data else None
    written_card = tasks.export_card(model, card)
    made = _first_missing(target.parent)
    ensure_output_dir(target.parent, "--output")  # a file in the way: one line, not a traceback
    staging = Path(tempfile.mkdtemp(prefix=".foveal-export-", dir=target.parent))
    staged = staging / target.name
    passed = False
    try:
        started = time.perf_counter()
        write_export(model, card, fmt, staged, quantize, _representative(card, parts, calibration))
        write_export_card(staged, written_card, {"export": {"format": fmt, "quantize": quantize,
                                                            "source": str(model_path)}})
        seconds = time.perf_counter() - started
        if fmt == "coreml":
            report = _structural_report(model, card, model_path, staged, quantize, seconds)
        else:
            report = _check(model, card, written_card, model_path, staged, fmt=fmt, quantize=quantize,
                            parts=parts, split=split, tolerance=tolerance, samples=samples,
                            accuracy_limit=accuracy_limit, threads=threads, seconds=seconds)
        report.path = str(target)
        if not report.passed:
            raise ExportParityError(report)
        _commit(staged, target, staging)
        passed = True
        return report
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if not passed and made is not None:
            shutil.rmtree(made, ignore_errors=True)  # folders made for this export, now empty


def _check(model, card: ModelCard, written_card: ModelCard, model_path: Path, staged: Path, *, fmt: str,
           quantize: str | None, parts: dict | None, split: str, tolerance: float | None, samples: int,
           accuracy_limit: int | None, threads: int | None, seconds: float) -> ExportReport:
    """Run the staged export next to the Keras model: the task's parity check, then accuracy."""
    exported = open_runner(staged, threads=threads)
    images = tasks.sample_images(parts, card, split, samples) if parts else _random_images(card, samples)
    reference = tasks.outputs(model, card, images)
    limit = DEFAULT_TOLERANCE[quantize] if tolerance is None else tolerance
    result = tasks.parity(reference, tasks.outputs(exported, written_card, images), written_card, limit)
    report = ExportReport(
        format=fmt, quantize=quantize, path=str(staged), size_bytes=artifact_size(staged),
        keras_size_bytes=artifact_size(model_path), parameters=int(model.count_params()),
        samples=len(images), max_abs_diff=float(result["max_abs_diff"]), top1_agreement=float(result["agreement"]),
        tolerance=limit, passed=bool(result["passed"]), export_seconds=seconds, task=card.task,
        parity={k: v for k, v in result.items() if k not in ("passed", "max_abs_diff", "agreement")},
    )
    if parts:
        part = tasks.pick_part(parts, split)
        keras_score = tasks.accuracy(model, card, part, accuracy_limit)
        export_score = tasks.accuracy(exported, written_card, part, accuracy_limit)
        report.accuracy_metric = keras_score["metric"]
        report.accuracy = {"keras": keras_score["value"], "export": export_score["value"],
                           "difference": export_score["value"] - keras_score["value"]}
    return report


def _structural_report(model, card, model_path: Path, target: Path, quantize: str | None,
                       seconds: float) -> ExportReport:
    """Core ML cannot run off Apple systems: check the package's inputs and outputs instead."""
    from foveal.export.formats import coreml_structure

    structure = coreml_structure(target)
    shapes_ok = list(structure["inputs"].values()) == [[1, *card.input_shape]]
    outputs = list(structure["outputs"].values())
    if card.task == "classify":
        outputs_ok = len(outputs) == 1 and (not outputs[0] or outputs[0][-1] == len(card.class_names))
    else:
        graph_outputs = tasks.export_graph(model, card).output
        outputs_ok = len(outputs) == (len(graph_outputs) if isinstance(graph_outputs, (dict, list)) else 1)
    report = ExportReport(
        format="coreml", quantize=quantize, path=str(target), size_bytes=artifact_size(target),
        keras_size_bytes=artifact_size(model_path), parameters=int(model.count_params()), samples=0,
        max_abs_diff=float("nan"), top1_agreement=float("nan"), tolerance=float("nan"),
        passed=bool(shapes_ok and outputs_ok and structure["operations"] > 0), export_seconds=seconds,
        check="structural", structure=structure, task=card.task,
    )
    if not report.passed:
        raise FovealError(f"{model_path}: the Core ML package does not have the model's input/output shapes: "
                          f"{structure}", hint="nothing was written")
    return report


class ExportParityError(FovealError):
    """The export's outputs differ from the Keras model's by more than the tolerance."""

    def __init__(self, report: ExportReport) -> None:
        super().__init__(
            f"parity check failed for {report.path}: max |diff| {report.max_abs_diff:.3g} > tolerance "
            f"{report.tolerance:g} ({report.parity.get('agreement_name', 'top-1 agreement')} "
            f"{report.top1_agreement:.2%}); nothing was written",
            hint="raise --tolerance if this difference is acceptable",
        )
        self.report = report
