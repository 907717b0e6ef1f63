"""``foveal prune``: magnitude-prune a trained model with fine-tuning, and report what it cost."""

from __future__ import annotations

import argparse
import gzip
import json
from pathlib import Path
from typing import Any


def _gzip_size(path: Path) -> int:
    """Bytes of the file gzip-compressed: what zeroed weights save in transfer and storage."""
    return len(gzip.compress(path.read_bytes(), compresslevel=6))


def prune_file(model_path: str | Path, data: str, *, sparsity: float = 0.8, epochs: int = 2,
               learning_rate: float = 1e-4, batch_size: int = 64, output: str | Path | None = None,
               split: str = "test", seed: int = 42, steps_per_epoch: int | None = None,
               classifier: str | None = None, count: int = 500, limit: int | None = None) -> dict[str, Any]:
    """Prune the ``.keras`` model at ``model_path`` on ``data`` and save it; return a report.

    Fine-tunes on the dataset's training part while the sparsity rises to ``sparsity``, and scores
    the model on ``split`` before and after with its task's metric (``metric``, ``quality_before``,
    ``quality_after``): a classifier's accuracy (no augmentation while fine-tuning); an enhancer's
    PSNR next to its baseline (:mod:`foveal.enhancement.shrink`); a generative model's
    classifier-space Frechet distance with the judge ``classifier`` (default: the run's
    ``classifier.keras``), a VAE's negative ELBO (:mod:`foveal.generative.shrink`: the generator or
    decoder is what is pruned).
    """
    from foveal.errors import ConfigError
    from foveal.models.io import read_card, save_model

    if not 0.0 < sparsity < 1.0:
        raise ConfigError(f"sparsity must be between 0 and 1, got {sparsity}")
    model_path = Path(model_path)
    read = read_card(model_path)
    task = read.task if read is not None else "classify"
    if task == "enhance":
        from foveal.enhancement.shrink import prune_enhancer

        model, card, report = prune_enhancer(model_path, data, sparsity=sparsity, epochs=epochs,
                                             learning_rate=learning_rate, batch_size=batch_size,
                                             steps_per_epoch=steps_per_epoch, split=split, seed=seed, limit=limit)
    elif task == "generate":
        from foveal.generative.shrink import prune_generator

        model, card, report = prune_generator(model_path, data, sparsity=sparsity, epochs=epochs,
                                              learning_rate=learning_rate, batch_size=batch_size,
                                              steps_per_epoch=steps_per_epoch, split=split, seed=seed,
                                              classifier=classifier, count=count)
    else:
        model, card, report = _prune_classifier(model_path, data, sparsity=sparsity, epochs=epochs,
                                                learning_rate=learning_rate, batch_size=batch_size, split=split,
                                                seed=seed)
    target = Path(output) if output else model_path.with_name(f"{model_path.stem}.pruned{int(sparsity * 100)}.keras")
    card.training = {**card.training, "pruned_from": str(model_path), "sparsity": report["overall_sparsity"]}
    save_model(model, target, card, include_optimizer=False)
    report.pop("history", None)
    report.update({"model": str(model_path), "output": str(target), "data": data, "split": split, "task": task,
                   "gzip_bytes_before": _gzip_size(model_path), "gzip_bytes_after": _gzip_size(target)})
    return report


def _prune_classifier(model_path: Path, data: str, *, sparsity: float, epochs: int, learning_rate: float,
                      batch_size: int, split: str, seed: int) -> tuple[Any, Any, dict[str, Any]]:
    from foveal.data.pipeline import make_pipeline
    from foveal.data.readers import load_dataset
    from foveal.errors import DataError
    from foveal.evaluation.run import align_classes, score
    from foveal.models.io import load_model
    from foveal.shrink.prune import prune_model

    model, card = load_model(model_path)
    # A model saved mid-transfer may have frozen layers; pruning fine-tunes all of them. Per
    # layer: Keras ignores model.trainable = True when the model's own flag is already True.
    for layer in model._flatten_layers(include_self=False, recursive=True):
        layer.trainable = True
    parts = load_dataset(data)
    if "train" not in parts:
        raise DataError(f"{data}: has no training part to fine-tune on")
    evaluation = parts.get(split) or parts["train"]
    h, w, c = card.input_shape
    train = align_classes(parts["train"], card)
    train_ds = make_pipeline(train, image_size=(h, w), channels=c, batch_size=batch_size, training=True,
                             keep_aspect=card.keep_aspect, seed=seed)
    before = score(model, card, evaluation, batch_size=batch_size, keep_misclassified=0).metrics["accuracy"]
    report = prune_model(model, train_ds, final_sparsity=sparsity, epochs=epochs, learning_rate=learning_rate)
    after = score(model, card, evaluation, batch_size=batch_size, keep_misclassified=0).metrics["accuracy"]
    report.update({"metric": "accuracy", "quality_before": before, "quality_after": after,
                   "accuracy_before": before, "accuracy_after": after})
    return model, card, report


def format_prune_report(report: dict[str, Any]) -> str:
    lines = [f"{'layer' if 'pruned_network' not in report else report['pruned_network'] + ' layer':<32} "
             f"{'weights':>10} {'sparsity':>9}"]
    for name, layer in report["layers"].items():
        lines.append(f"{name:<32} {layer['weights']:>10,} {layer['sparsity']:>9.1%}")
    lines += [
        f"overall sparsity of pruned kernels: {report['overall_sparsity']:.1%}",
        f"{report['metric']} on {report['split']}: {report['quality_before']:.4f} -> {report['quality_after']:.4f}"
        + (f" (baseline, {report['baseline_name']}: {report['baseline']:.4f})" if "baseline" in report else ""),
        f"gzip size: {report['gzip_bytes_before'] / 1e6:.2f} MB -> {report['gzip_bytes_after'] / 1e6:.2f} MB",
        f"wrote {report['output']}",
    ]
    return "\n".join(lines)


def _prune(args: argparse.Namespace, _: dict[str, Any]) -> int:
    report = prune_file(args.model, args.data, sparsity=args.sparsity, epochs=args.epochs,
                        learning_rate=args.learning_rate, batch_size=args.batch_size, output=args.output,
                        split=args.split, steps_per_epoch=args.steps_per_epoch, classifier=args.classifier,
                        count=args.count, limit=args.limit)
    print(json.dumps(report, indent=1) if args.json else format_prune_report(report))
    return 0


def add_prune_command(sub: Any) -> None:
    """Add ``prune`` to the ``foveal`` subcommands."""
    p = sub.add_parser("prune", help="magnitude-prune a trained model with fine-tuning",
                       description="Zero the smallest weights of every conv/dense kernel, raising the "
                       "sparsity along a cubic schedule while fine-tuning on the data (Zhu & Gupta 2017); "
                       "reports the sparsity per layer and the task's score before and after: a classifier's "
                       "accuracy, an enhancer's PSNR (next to bicubic or the noisy input), a generative "
                       "model's classifier-space Frechet distance (its generator or decoder is pruned while "
                       "it trains with its own step; a VAE also reports its negative ELBO).",
                       epilog="examples:\n  foveal prune runs/RUN/best.keras --data digits --sparsity 0.8\n"
                       "  foveal prune runs/SR/best.keras --data photos/ --sparsity 0.5 --steps-per-epoch 100\n"
                       "  foveal prune runs/CGAN/best.keras --data ../shared/datasets/mnist --sparsity 0.5 "
                       "--epochs 1 --steps-per-epoch 200   # judged by runs/CGAN/classifier.keras\n"
                       "quantization: foveal export MODEL --format tflite --quantize int8 --data DATA (scored the "
                       "same way)", formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="a .keras model file written by foveal")
    p.add_argument("--data", required=True, help="dataset spec: fine-tunes on its train part")
    p.add_argument("--sparsity", type=float, default=0.8, help="final fraction of zero weights (default: 0.8)")
    p.add_argument("--epochs", type=int, default=2, help="fine-tuning epochs (default: 2)")
    p.add_argument("--learning-rate", type=float, default=1e-4, help="fine-tuning learning rate (default: 1e-4)")
    p.add_argument("--batch-size", type=int, default=64, help="images per step (default: 64)")
    p.add_argument("--split", default="test", help="dataset part scored before and after (default: test)")
    p.add_argument("--steps-per-epoch", type=int, help="enhance, generate: batches per epoch (default: one "
                   "pass over the training images)")
    p.add_argument("--classifier", metavar="FILE.keras", help="generate: the judge classifier of the Frechet "
                   "distance (default: classifier.keras beside the model; 'none': a VAE's ELBO only)")
    p.add_argument("--count", type=int, default=500, help="generate: samples and real images compared (default: 500)")
    p.add_argument("--limit", type=int, help="enhance: score only the first N images")
    p.add_argument("--output", metavar="FILE.keras", help="where to save (default: MODEL.prunedNN.keras)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=_prune)
