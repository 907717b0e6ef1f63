"""Time to a test accuracy: the texts' plain-Keras reference against foveal's fast recipes.

Both runs happen back to back in one process on the same data (all training images of
Fashion-MNIST, MNIST or CIFAR-10 from ``--data-root``, no validation split; CIFAR-10's
JPEG archive is extracted once to ``--cifar-folder`` and foveal reads that folder as a user
would) and are scored on the 10,000 test images at the end of every epoch. A run stops when the test accuracy first reaches
``--target`` or when its time budget is spent (checked after every batch).

* ``reference``: the book's CNN (Géron, *Hands-On Machine Learning*, 2nd ed., ch. 14) written
  with ``keras.Sequential``, inputs divided by 255, Nadam at 1e-3, batch 32, float32.
* ``foveal``: ``foveal.training.trainer.train`` with the dataset's recipe (``fast-mnist``,
  ``fast-fashion``: the airbench28 CNN, 1 and 2 epochs) or the ``--recipe`` given (CIFAR-10's
  default is ``airbench``, the faithful airbench94, and runs
  foveal only, as the reference CNN is a 28x28 model) and the model, epochs and precision given
  on the command line; its test scoring uses the recipe's test-time augmentation unless
  ``--tta`` says otherwise. ``--seeds`` runs it once per seed and reports the medians.

As this machine's speed changes from day to day, the matrix-multiply peak
(``benchmarks/peak_flops.py``) is measured in the same invocation, before the runs, and every
time is also given as "seconds at 400 GFLOP/s" (raw seconds x measured bfloat16 peak / 400).

The clock counts training only: it starts when ``fit`` starts (after data loading and model
building, reported separately as ``setup_seconds``) and excludes the per-epoch test evaluations
(reported as ``eval_seconds``). One JSON document goes to stdout.

Example:
    python benchmarks/time_to_accuracy.py --data-root ../shared/datasets --dataset fashion --target 0.92 > tta.json
    nice -n 5 python benchmarks/time_to_accuracy.py --data-root ../shared/datasets --dataset cifar10 --target 0.94 --seeds 0 1 2 \
        --budget 1800 > cifar10-airbench94.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import keras
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

REFERENCE_GFLOPS = 400.0  # the yardstick: the bfloat16 matmul peak of a quiet day
DEFAULTS = {  # per dataset: recipe, model, model options, epochs (None: the recipe's)
    "mnist": ("fast-mnist", None, None, None),
    "fashion": ("fast-fashion", None, None, None),
    "cifar10": ("airbench", None, None, None),
}
DATASETS = {"fashion": "fashion-mnist", "mnist": "mnist", "cifar10": "cifar10-jpeg.tar.gz"}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class TestClock(keras.callbacks.Callback):
    """Scores the test set after each epoch, keeps a training-only clock, stops at the target
    or when the budget is spent."""

    def __init__(self, x_test: np.ndarray, y_test: np.ndarray, *, target: float, budget: float,
                 num_train: int, tta: str = "none") -> None:
        super().__init__()
        self.x_test, self.y_test, self.tta = x_test, y_test, tta
        self.target, self.budget, self.num_train = target, budget, num_train
        self.epochs: list[dict[str, float]] = []
        self.reached_at: float | None = None
        self.reached_epoch: int | None = None
        self.eval_seconds = 0.0
        self.batches = 0
        self.budget_hit = False

    def elapsed(self) -> float:
        return time.perf_counter() - self.started - self.eval_seconds

    def on_train_begin(self, logs=None):
        self.started = time.perf_counter()

    def on_train_end(self, logs=None):
        self.finished = self.elapsed()

    def on_train_batch_end(self, batch, logs=None):
        self.batches += 1
        if self.elapsed() > self.budget:
            self.budget_hit = True
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        train_seconds = self.elapsed()
        start = time.perf_counter()
        if self.tta == "none":
            probs = self.model.predict(self.x_test, batch_size=1000, verbose=0)
        else:
            from foveal.evaluation.tta import predict_tta

            probs = predict_tta(self.model, self.x_test, self.tta)
        accuracy = float(np.mean(np.argmax(probs, axis=-1) == self.y_test))
        self.eval_seconds += time.perf_counter() - start
        self.epochs.append({"epoch": epoch + 1, "train_seconds": round(train_seconds, 1),
                            "test_accuracy": round(accuracy, 4), "partial": self.budget_hit})
        log(f"  epoch {epoch + 1}: {train_seconds:.1f} s, test accuracy {accuracy:.4f}")
        if accuracy >= self.target and self.reached_at is None:
            self.reached_at, self.reached_epoch = train_seconds, epoch + 1
            self.model.stop_training = True

    def summary(self) -> dict[str, Any]:
        seconds = getattr(self, "finished", 0.0)
        full_epochs = sum(1 for e in self.epochs if not e["partial"])
        return {
            "reached_target": self.reached_at is not None,
            "seconds_to_target": None if self.reached_at is None else round(self.reached_at, 1),
            "epochs_to_target": self.reached_epoch,
            "train_seconds": round(seconds, 1),
            "eval_seconds": round(self.eval_seconds, 1),
            "epochs_run": len(self.epochs), "full_epochs": full_epochs,
            "final_test_accuracy": self.epochs[-1]["test_accuracy"] if self.epochs else None,
            "best_test_accuracy": max((e["test_accuracy"] for e in self.epochs), default=None),
            "history": self.epochs,
        }


def extract_cifar(archive: Path, folder: Path) -> Path:
    """The CIFAR-10 JPEG archive as a train/ + test/ class-folder tree (extracted once)."""
    import tarfile

    if not (folder / "train").is_dir():
        log(f"extracting {archive} to {folder}")
        folder.mkdir(parents=True, exist_ok=True)
        with tarfile.open(archive) as tar:
            tar.extractall(folder, filter="data")
    return folder


def folder_arrays(split: Path) -> tuple[np.ndarray, np.ndarray]:
    """Decode a class-folder split into (images uint8 N,H,W,C; labels) in sorted class order."""
    from PIL import Image

    classes = sorted(d.name for d in split.iterdir() if d.is_dir())
    images, labels = [], []
    for index, name in enumerate(classes):
        for path in sorted((split / name).iterdir()):
            with Image.open(path) as image:
                images.append(np.asarray(image.convert("RGB")))
            labels.append(index)
    return np.stack(images), np.asarray(labels)


def data_path(args: argparse.Namespace) -> Path:
    if args.dataset == "cifar10":
        return extract_cifar(args.data_root / DATASETS["cifar10"], args.cifar_folder)
    return args.data_root / DATASETS[args.dataset]


def load(args: argparse.Namespace):
    if args.dataset == "cifar10":
        folder = data_path(args)
        x_train, y_train = folder_arrays(folder / "train")
        x_test, y_test = folder_arrays(folder / "test")
        return x_train, y_train, x_test, y_test
    from foveal.data.readers import load_dataset

    parts = load_dataset(str(data_path(args)))
    train, test = parts["train"], parts["test"]
    return train.images, train.labels, test.images, test.labels


def as_nhwc(images: np.ndarray) -> np.ndarray:
    return images[..., None] if images.ndim == 3 else images


def book_cnn(num_classes: int = 10, input_shape: tuple[int, ...] = (28, 28, 1)) -> keras.Model:
    """The texts' CNN, as the book writes it (Sequential, 'same' padding, He-normal)."""
    L = keras.layers

    def conv(filters: int, kernel: int = 3):
        return L.Conv2D(filters, kernel, padding="same", activation="relu", kernel_initializer="he_normal")

    return keras.Sequential([
        keras.Input(input_shape),
        conv(64, 7), L.MaxPooling2D(2),
        conv(128), conv(128), L.MaxPooling2D(2),
        conv(256), conv(256), L.MaxPooling2D(2),
        L.Flatten(),
        L.Dense(128, activation="relu", kernel_initializer="he_normal"), L.Dropout(0.5),
        L.Dense(64, activation="relu", kernel_initializer="he_normal"), L.Dropout(0.5),
        L.Dense(num_classes, activation="softmax"),
    ])


def run_reference(data, *, target: float, budget: float, seed: int) -> dict[str, Any]:
    x_train, y_train, x_test, y_test = data
    keras.utils.set_random_seed(seed)
    t0 = time.perf_counter()
    x = (as_nhwc(x_train) / 255.0).astype("float32")
    xt = (as_nhwc(x_test) / 255.0).astype("float32")
    model = book_cnn(input_shape=x.shape[1:])
    model.compile(loss="sparse_categorical_crossentropy", optimizer=keras.optimizers.Nadam(1e-3),
                  metrics=["accuracy"])
    setup = time.perf_counter() - t0
    clock = TestClock(xt, y_test, target=target, budget=budget, num_train=len(x))
    # Enough epochs for any budget; the clock stops the run.
    model.fit(x, y_train, batch_size=32, epochs=1000, callbacks=[clock], verbose=0)
    result = clock.summary() | {"setup_seconds": round(setup, 1), "batch_size": 32,
                                "optimizer": "nadam 1e-3", "parameters": model.count_params()}
    images = clock.batches * 32
    result["images_per_second"] = round(images / max(result["train_seconds"], 1e-9), 1)
    return result


def run_foveal(args, data) -> dict[str, Any]:
    from foveal import configtools
    from foveal.config import TrainConfig
    from foveal.training.recipes import resolve_recipe
    from foveal.training.trainer import train

    _, _, x_test, y_test = data
    options: dict[str, Any] = dict(
        data=str(data_path(args)), model=args.model, model_options=args.model_options,
        recipe=args.recipe, epochs=args.epochs, val_split=0.0, mixed_precision=args.mixed_precision,
        jit_compile=args.jit_compile, output=str(args.output), progress=False, report_misclassified=0,
        monitor="loss", seed=args.seed)
    options = {k: v for k, v in options.items() if v is not None}  # None: the recipe's value
    if args.cache:
        options["cache"] = args.cache
    for key in ("batch_size", "learning_rate", "augment", "label_smoothing"):
        if getattr(args, key) is not None:
            options[key] = getattr(args, key)
    cfg = configtools.from_mapping(TrainConfig, options)  # parses model_options like the CLI
    resolved = resolve_recipe(cfg)
    tta = args.tta or resolved.tta
    clock = TestClock(as_nhwc(x_test).astype("float32"), y_test, target=args.target,
                      budget=args.budget, num_train=0, tta=tta)
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):  # foveal's progress lines; stdout is the JSON
        train(cfg, callbacks=[clock])
    total = time.perf_counter() - t0
    result = clock.summary()
    result["setup_seconds"] = None  # included in total_seconds with the final test scoring
    result["total_seconds"] = round(total, 1)
    result["images_per_second"] = round(clock.batches * resolved.batch_size / max(result["train_seconds"], 1e-9), 1)
    result["config"] = {k: getattr(resolved, k) for k in (
        "model", "model_options", "recipe", "epochs", "batch_size", "optimizer", "learning_rate", "weight_decay",
        "schedule", "label_smoothing", "augment", "mixed_precision", "jit_compile")} | {"test_time_augmentation": tta}
    return result


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", choices=sorted(DATASETS), default="fashion")
    p.add_argument("--data-root", type=Path, required=True,
                   help="folder holding fashion-mnist/, mnist/ and cifar10-jpeg.tar.gz, e.g. ../shared/datasets")
    p.add_argument("--target", type=float, default=0.92, help="test accuracy to reach")
    p.add_argument("--budget", type=float, default=600.0, help="seconds of training for foveal's run")
    p.add_argument("--reference-budget", type=float, default=240.0, help="seconds of training for the reference")
    p.add_argument("--only", choices=["reference", "foveal"], help="run one side only")
    p.add_argument("--model", default=None, help="default: the recipe's (airbench28 for MNIST and Fashion-MNIST)")
    p.add_argument("--model-options", default=None, help="default: the recipe's")
    p.add_argument("--recipe", default=None,
                   help="default: fast-mnist (MNIST), fast-fashion (Fashion-MNIST), airbench (CIFAR-10)")
    p.add_argument("--epochs", type=int, default=None,
                   help="epochs of the schedule (default: the recipe's: 1 for fast-mnist, 2 for fast-fashion, "
                        "10 for airbench)")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--learning-rate", type=float, default=None)
    p.add_argument("--augment", default=None)
    p.add_argument("--label-smoothing", type=float, default=None)
    p.add_argument("--mixed-precision", choices=["none", "bfloat16", "float16"], default=None,
                   help="default: the recipe's (bfloat16 for fast-mnist, fast-fashion and airbench)")
    p.add_argument("--jit-compile", choices=["auto", "on", "off"], default="auto")
    p.add_argument("--seeds", type=int, nargs="+", default=[42], help="one foveal run per seed; medians reported")
    p.add_argument("--tta", choices=["none", "flip", "flip-shift"], default=None,
                   help="test-time augmentation of foveal's per-epoch test scoring (default: the recipe's)")
    p.add_argument("--cache", choices=["auto", "memory", "none"], default=None,
                   help="foveal's image cache (CIFAR-10 streams JPEGs: 'memory', its default, decodes them once)")
    p.add_argument("--no-peak", action="store_true", help="skip the matmul-peak measurement (tests)")
    p.add_argument("--cifar-folder", type=Path, default=Path(tempfile.gettempdir()) / "foveal-cifar10",
                   help="where the CIFAR-10 archive is extracted (once) for --dataset cifar10")
    p.add_argument("--output", type=Path, default=None, help="folder for foveal's run folder (default: temporary)")
    args = p.parse_args(argv)
    recipe, model, model_options, epochs = DEFAULTS[args.dataset]
    args.recipe = args.recipe or recipe
    if args.model is None and model is not None:
        args.model = model
    if args.model_options is None and args.model in (None, model):
        args.model_options = model_options
    args.epochs = args.epochs if args.epochs is not None else epochs
    if args.dataset == "cifar10":
        args.cache = args.cache or "memory"
        if args.only is None:
            args.only = "foveal"  # the reference book CNN is a 28x28x1 model
    return args


def measure_peak() -> dict[str, float]:
    """The matmul peak now, GFLOP/s per precision (``benchmarks/peak_flops.py``, best of 10)."""
    from peak_flops import measure

    return {d: round(measure(2048, d, 10)["gflops_best"], 1) for d in ("float32", "bfloat16")}


def at_reference_speed(seconds: float | None, peak: dict[str, float] | None) -> float | None:
    """``seconds`` rescaled to a machine whose bfloat16 matmul peak is 400 GFLOP/s."""
    if seconds is None or not peak:
        return None
    return round(seconds * peak["bfloat16"] / REFERENCE_GFLOPS, 1)


def median_summary(runs: list[dict[str, Any]], peak: dict[str, float] | None) -> dict[str, Any]:
    """Medians over seeds; the time to target only when every seed reached it."""
    import statistics

    reached = [r["seconds_to_target"] for r in runs if r["reached_target"]]
    all_reached = len(reached) == len(runs)
    median_seconds = statistics.median(reached) if all_reached else None
    return {
        "seeds": len(runs), "seeds_reaching_target": len(reached),
        "median_seconds_to_target": median_seconds,
        "median_seconds_to_target_at_400_gflops": at_reference_speed(median_seconds, peak),
        "median_final_test_accuracy": statistics.median(r["final_test_accuracy"] or 0.0 for r in runs),
        "median_best_test_accuracy": statistics.median(r["best_test_accuracy"] or 0.0 for r in runs),
        "median_images_per_second": statistics.median(r["images_per_second"] for r in runs),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.output = args.output or Path(tempfile.mkdtemp(prefix="foveal-tta-"))
    data = load(args)
    report: dict[str, Any] = {
        "dataset": args.dataset, "target": args.target, "started_at": time.strftime("%Y-%m-%d %H:%M:%S"),
        "load_average_before": os.getloadavg()[0], "cpu_count": os.cpu_count(),
    }
    peak = None if args.no_peak else measure_peak()
    report["peak_gflops_per_second"] = peak
    report["reference_gflops_per_second"] = REFERENCE_GFLOPS
    if args.only in (None, "reference"):
        log(f"reference (plain Keras, book CNN, nadam, batch 32), budget {args.reference_budget:.0f} s")
        ref = run_reference(data, target=args.target, budget=args.reference_budget, seed=args.seeds[0])
        if not ref["reached_target"]:
            # The book reports the target after 10 epochs; project the time at the measured speed.
            ref["projected_seconds_for_10_epochs"] = round(10 * len(data[0]) / ref["images_per_second"], 1)
        ref["seconds_to_target_at_400_gflops"] = at_reference_speed(ref["seconds_to_target"], peak)
        report["reference"] = ref
    if args.only in (None, "foveal"):
        runs = []
        for seed in args.seeds:
            args.seed = seed
            log(f"foveal recipe {args.recipe!r}: {args.model or 'the recipe model'} "
                f"{args.model_options or ''}, seed {seed}, budget {args.budget:.0f} s, load {os.getloadavg()[0]:.1f}")
            load_before = round(os.getloadavg()[0], 2)
            run = run_foveal(args, data) | {"seed": seed, "load_average_before": load_before,
                                            "load_average_after": round(os.getloadavg()[0], 2)}
            run["seconds_to_target_at_400_gflops"] = at_reference_speed(run["seconds_to_target"], peak)
            runs.append(run)
        report["foveal"] = runs[0] if len(runs) == 1 else median_summary(runs, peak) | {"runs": runs}
    if "reference" in report and "foveal" in report:
        ref, fov = report["reference"], report["foveal"]
        fov_time = fov.get("seconds_to_target", fov.get("median_seconds_to_target"))
        ref_time = ref["seconds_to_target"] or ref.get("projected_seconds_for_10_epochs")
        if ref_time and fov_time:
            report["speedup"] = round(ref_time / fov_time, 2)
            report["speedup_basis"] = "measured" if ref["reached_target"] else "reference projected (10 epochs)"
    report["load_average_after"] = os.getloadavg()[0]
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
