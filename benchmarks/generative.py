"""Measure foveal's generative models on MNIST: VAE ELBO, cGAN sample quality, cGAN augmentation.

Experiments (``--only`` picks some; each prints the ``foveal`` command it equals):

* ``vae``: a Bernoulli VAE (latent size 2, the texts' manifold figure) on MNIST; the test
  negative ELBO in nats per image, next to the baseline every model must beat: independent
  Bernoulli pixels with the training images' mean intensities (no latent code).
* ``cgan``: the class-conditional GAN on MNIST under a 20-minute training budget (the issue's
  target: requested-class accuracy >= 95%, classifier-space Frechet distance falling per epoch).
  Baselines in the same run: the judge classifier's accuracy on real test images (the ceiling
  of the requested-class accuracy), chance (10%), the Frechet distance between two sets of real
  images (the floor) and that of the untrained generator.
* ``cgan-fashion``: the same conditional GAN on Fashion-MNIST (``--fashion-data``), with the same
  baselines (its own judge trained on Fashion-MNIST).
* ``dcgan``: an unconditional DCGAN on MNIST: the classifier-space Frechet and kernel distances
  per epoch, and the share of each class among its samples by the judge's reading (a GAN that
  dropped modes draws some digits rarely), with the same real-vs-real and untrained baselines.
* ``augment``: the texts' use of cGANs: a LeNet-5 trained on 1% of MNIST's training images (600,
  stratified), with and without 6,000 images from a cGAN trained on *those same 600 images*
  (no other labels are used), scored on the 10,000 test images.

One JSON document goes to stdout (with ``os.getloadavg()`` before and after each experiment:
the machine is shared); progress goes to stderr.

Example:
    nice -n 5 python benchmarks/generative.py --data ../shared/datasets/mnist --only cgan > /tmp/cgan.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
COMMON: dict[str, Any] = {"seed": 42, "deterministic": True, "tensorboard": False, "progress": False}


def _command(options: dict[str, Any]) -> str:
    parts = ["foveal generate train"]
    for key, value in options.items():
        if key in ("output", "name", "progress", "tensorboard", "deterministic") or value is None:
            continue
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            parts.append(flag if value else f"--no-{key.replace('_', '-')}")
        elif isinstance(value, list):
            parts.append(f"{flag} {' '.join(map(str, value))}")
        else:
            parts.append(f"{flag} {value}")
    return " ".join(parts)


def _load() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


@contextlib.contextmanager
def _progress_to_stderr():
    with contextlib.redirect_stdout(sys.stderr):
        yield


def _train(options: dict[str, Any], out: Path) -> tuple[Any, float]:
    from foveal.generative import GenerateConfig, train_generator

    cfg = GenerateConfig(**(COMMON | options | {"output": str(out)}))
    started = time.perf_counter()
    with _progress_to_stderr():
        result = train_generator(cfg)
    return result, time.perf_counter() - started


def mean_image_nll(train: np.ndarray, test: np.ndarray) -> float:
    """Negative log-likelihood (nats per image) of test images under independent Bernoulli pixels
    whose probabilities are the training images' mean intensities."""
    p = np.clip(train.reshape(len(train), -1).mean(0) / 255.0, 1e-6, 1 - 1e-6)
    x = test.reshape(len(test), -1) / 255.0
    return float(-(x * np.log(p) + (1 - x) * np.log(1 - p)).sum(1).mean())


def run_vae(data: str, out: Path, epochs: int, budget: float) -> dict[str, Any]:
    from foveal.data.readers import load_dataset

    options = {"data": data, "model": "vae", "latent_dim": 2, "likelihood": "bernoulli", "epochs": epochs,
               "batch_size": 128, "kl_warmup_epochs": 1.0, "classifier": "none", "quality_samples": 0,
               "time_budget": budget, "name": "vae"}
    load = _load()
    result, seconds = _train(options, out)
    parts = load_dataset(data)
    baseline = mean_image_nll(parts["train"].images, parts["test"].images)
    m = result.metrics
    return {"command": _command(options), "load_before": load, "load_after": _load(), "wall_seconds": round(seconds, 1),
            "epochs": len(result.history.get("epochs_done", [])),
            "train_seconds": round(sum(result.history.get("epoch_seconds", [])), 1),
            "test_neg_elbo_nats": round(m["neg_elbo"], 2), "test_reconstruction_nll": round(m["reconstruction_nll"], 2),
            "test_kl": round(m["kl"], 2),
            "baseline_mean_image_bernoulli_nll": round(baseline, 2),
            "val_neg_elbo_per_epoch": [round(v, 2) for v in result.history.get("val_loss", [])],
            "run": str(result.run_dir)}


def run_gan(data: str, out: Path, epochs: int, budget: float, width: int, conditioning: str,
            model: str = "cgan", name: str = "cgan") -> dict[str, Any]:
    """A cGAN (or a DCGAN) under a time budget, scored each epoch by a judge trained first, with
    the baselines of the same judge: two real sets, and the untrained generator."""
    from foveal.generative.data import images01
    from foveal.generative.quality import RealStats, classifier_judge, frechet_distance, gaussian_stats
    from foveal.generative.task import GenerateTask

    options = {"data": data, "model": model, "epochs": epochs, "batch_size": 64, "width": width,
               "conditioning": conditioning if model == "cgan" else None, "classifier": "auto",
               "classifier_epochs": 2, "quality_samples": 1000, "time_budget": budget, "name": name}
    options = {k: v for k, v in options.items() if v is not None}
    load = _load()
    result, seconds = _train(options, out)
    history, m = result.history, result.metrics
    run = Path(result.run_dir)
    from foveal.generative import GenerateConfig
    from foveal.generative.models import build_generative
    from foveal.generative.sampling import sample

    cfg = GenerateConfig(**(COMMON | options))
    plugin = GenerateTask()
    parts = plugin.load_data(cfg)
    k = len(parts.class_names)
    judge = classifier_judge(run / "classifier.keras")
    shape = parts.extra["image_shape"]
    val, _ = images01(parts.val, shape, 1000, seed=42)
    test, test_labels = images01(parts.test, shape, 1000, seed=7)
    real_val, real_test = RealStats.of(judge, val), RealStats.of(judge, test)
    _, probs = judge.run(test)
    conditional = model == "cgan"
    fresh = build_generative(model, image_shape=shape, latent_dim=cfg.resolved_latent_dim(),
                             num_classes=k if conditional else 0, width=width, conditioning=conditioning, seed=42)
    labels = (np.arange(1000) % k).astype(np.int32) if conditional else None
    untrained = gaussian_stats(judge.run(sample(fresh, 1000, labels, seed=1))[0])
    frechet = history.get("frechet", [])
    falls = sum(b < a for a, b in zip(frechet, frechet[1:]))
    row: dict[str, Any] = {
        "command": _command(options), "load_before": load, "load_after": _load(),
        "wall_seconds": round(seconds, 1),
        "train_seconds": round(sum(history.get("epoch_seconds", [])), 1),
        "epochs": len(history.get("epochs_done", [])),
        "judge_test_accuracy_on_real_images": round(float(np.mean(np.argmax(probs, 1) == test_labels)), 4),
        "chance_accuracy": round(1 / k, 4),
        "frechet_per_epoch": [round(v, 4) for v in frechet],
        "kernel_distance_per_epoch": [round(v, 5) for v in history.get("kernel_distance", [])],
        "frechet_falls_in_epochs": f"{falls} of {max(len(frechet) - 1, 0)}",
        "frechet_real_vs_real": round(frechet_distance(real_val.mean, real_val.cov, real_test.mean,
                                                       real_test.cov), 4),
        "frechet_untrained_generator": round(frechet_distance(real_test.mean, real_test.cov, *untrained), 4),
        "final_test": {key: m.get(key) for key in ("frechet", "kernel_distance", "class_accuracy")},
        "run": str(run)}
    if conditional:
        row["requested_class_accuracy_per_epoch"] = [round(v, 4) for v in history.get("class_accuracy", [])]
        row["target_class_accuracy_95"] = bool(m.get("class_accuracy", 0) >= 0.95)
    else:
        from foveal.models import load_model

        best, _ = load_model(run / "best.keras")
        _, fake_probs = judge.run(sample(best, 1000, None, seed=5))
        shares = np.bincount(np.argmax(fake_probs, 1), minlength=k) / 1000
        row["class_shares_of_samples_by_judge"] = {parts.class_names[i]: round(float(v), 3)
                                                   for i, v in enumerate(shares)}
        row["class_share_min_max"] = [round(float(shares.min()), 3), round(float(shares.max()), 3)]
    return row


def run_cgan(data: str, out: Path, epochs: int, budget: float, width: int, conditioning: str) -> dict[str, Any]:
    return run_gan(data, out, epochs, budget, width, conditioning)


def run_augment(data: str, out: Path, gan_epochs: int, clf_epochs: int, width: int) -> dict[str, Any]:
    import keras

    from foveal.data.readers import load_dataset
    from foveal.data.source import LabeledImages
    from foveal.data.splits import stratified_indices
    from foveal.generative import GenerateConfig
    from foveal.generative.sampling import sample, to_uint8
    from foveal.models import build_model, load_model

    parts = load_dataset(data)
    train, test = parts["train"], parts["test"]
    _, small_idx = stratified_indices(train.labels, [0.01], seed=42)
    small = train.subset(small_idx, origin="mnist 1%")
    folder = out / "mnist1pct.npz"
    np.savez(folder, x_train=small.images[..., 0], y_train=small.labels, x_test=test.images[..., 0],
             y_test=test.labels)
    options = {"data": str(folder), "model": "cgan", "epochs": gan_epochs, "batch_size": 32, "width": width,
               "val_split": 0.0, "classifier": "none", "quality_samples": 0, "name": "cgan1pct"}
    load = _load()
    result, gan_seconds = _train(options, out)
    gan, _ = load_model(Path(result.run_dir) / "last.keras")
    per_class = 600
    labels = np.repeat(np.arange(10, dtype=np.int32), per_class)
    fake = to_uint8(sample(gan, len(labels), labels, seed=3))

    def fit_score(x: np.ndarray, y: np.ndarray, seed: int) -> float:
        keras.utils.set_random_seed(seed)
        model = build_model("lenet5", num_classes=10, input_shape=(28, 28, 1), preprocessing="rescale")
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        steps = max(1, len(x) // 32)
        epochs = max(1, round(clf_epochs * (len(small.images) // 32) / steps))  # same number of updates
        model.fit(x.astype("float32"), y, batch_size=32, epochs=epochs, verbose=0, shuffle=True)
        return float(model.evaluate(test.images.astype("float32"), test.labels, verbose=0)[1])

    real_x, real_y = small.images, small.labels
    mixed_x = np.concatenate([real_x, fake]), np.concatenate([real_y, labels])
    scores = {"real_only": [], "real_plus_cgan": []}
    for seed in (1, 2, 3):
        scores["real_only"].append(round(fit_score(real_x, real_y, seed), 4))
        scores["real_plus_cgan"].append(round(fit_score(*mixed_x, seed), 4))
    del LabeledImages, GenerateConfig
    return {"command": _command(options), "load_before": load, "load_after": _load(),
            "labelled_images": len(small), "generated_images": len(fake), "cgan_train_seconds": round(gan_seconds, 1),
            "classifier": f"lenet5, Adam 1e-3, batch 32, {clf_epochs} epochs' worth of updates on the 600 images "
                          "(the same number of updates in both arms), 3 seeds",
            "test_accuracy": scores,
            "test_accuracy_mean": {k: round(float(np.mean(v)), 4) for k, v in scores.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="MNIST (IDX folder or 'mnist')")
    parser.add_argument("--fashion-data", help="Fashion-MNIST (IDX folder or 'fashion_mnist'); needed by cgan-fashion")
    parser.add_argument("--only", default="vae,cgan,augment", help="comma-separated experiments: vae, cgan, "
                        "cgan-fashion, dcgan, augment")
    parser.add_argument("--output", default=None, help="folder for the runs (default: a temporary folder)")
    parser.add_argument("--vae-epochs", type=int, default=10)
    parser.add_argument("--vae-budget", type=float, default=600.0)
    parser.add_argument("--cgan-epochs", type=int, default=30)
    parser.add_argument("--cgan-budget", type=float, default=1200.0)
    parser.add_argument("--dcgan-epochs", type=int, default=30)
    parser.add_argument("--dcgan-budget", type=float, default=600.0)
    parser.add_argument("--width", type=int, default=16, help="GAN width (first convolution's filters)")
    parser.add_argument("--conditioning", default="projection", choices=("concat", "projection"), help="cgan's discriminator")
    parser.add_argument("--augment-gan-epochs", type=int, default=100)
    parser.add_argument("--augment-clf-epochs", type=int, default=30)
    args = parser.parse_args()
    if "cgan-fashion" in args.only.split(",") and not args.fashion_data:
        parser.error("cgan-fashion needs --fashion-data (a Fashion-MNIST IDX folder or 'fashion_mnist')")
    sys.path.insert(0, str(REPO_ROOT / "src"))
    out = Path(args.output or tempfile.mkdtemp(prefix="foveal-generative-"))
    out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                              "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
                              "data": args.data, "results": {}}
    for name in args.only.split(","):
        print(f"--- {name}", file=sys.stderr)
        if name == "vae":
            report["results"][name] = run_vae(args.data, out, args.vae_epochs, args.vae_budget)
        elif name == "cgan":
            report["results"][name] = run_cgan(args.data, out, args.cgan_epochs, args.cgan_budget, args.width,
                                               args.conditioning)
        elif name == "cgan-fashion":
            report["results"][name] = run_gan(args.fashion_data, out, args.cgan_epochs, args.cgan_budget, args.width,
                                              args.conditioning, name="cgan-fashion")
        elif name == "dcgan":
            report["results"][name] = run_gan(args.data, out, args.dcgan_epochs, args.dcgan_budget, args.width,
                                              args.conditioning, model="dcgan", name="dcgan")
        elif name == "augment":
            report["results"][name] = run_augment(args.data, out, args.augment_gan_epochs, args.augment_clf_epochs,
                                                  args.width)
        else:
            raise SystemExit(f"unknown experiment {name!r}")
        print(json.dumps(report["results"][name], indent=1), file=sys.stderr)
    report["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
