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
               split: str = "test", seed: int = 42) -> dict[str, Any]:
    """Prune the ``.keras`` model at ``model_path`` on ``data`` and save it; return a report.

    Fine-tunes on the dataset's training part (no augmentation) while the sparsity rises to
    ``sparsity``, and scores the model on ``split`` before and after.
    """
    from foveal.data.pipeline import make_pipeline
    from foveal.data.readers import load_dataset
    from foveal.errors import ConfigError, DataError
    from foveal.evaluation.run import align_classes, score
    from foveal.models.io import load_model, save_model
    from foveal.shrink.prune import prune_model

    if not 0.0 < sparsity < 1.0:
        raise ConfigError(f"sparsity must be between 0 and 1, got {sparsity}")
    model_path = Path(model_path)
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
    target = Path(output) if output else model_path.with_name(f"{model_path.stem}.pruned{int(sparsity * 100)}.keras")
    card.training = {**card.training, "pruned_from": str(model_path), "sparsity": report["overall_sparsity"]}
    save_model(model, target, card, include_optimizer=False)
    report.pop("history", None)
    report.update({
        "model": str(model_path), "output": str(target), "data": data, "split": split,
        "accuracy_before": before, "accuracy_after": after,
        "gzip_bytes_before": _gzip_size(model_path), "gzip_bytes_after": _gzip_size(target),
    })
    return report


def format_prune_report(report: dict[str, Any]) -> str:
    lines = [f"{'layer':<32} {'weights':>10} {'sparsity':>9}"]
    for name, layer in report["layers"].items():
        lines.append(f"{name:<32} {layer['weights']:>10,} {layer['sparsity']:>9.1%}")
    lines += [
        f"overall sparsity of pruned kernels: {report['overall_sparsity']:.1%}",
        f"accuracy on {report['split']}: {report['accuracy_before']:.4f} -> {report['accuracy_after']:.4f}",
        f"gzip size: {report['gzip_bytes_before'] / 1e6:.2f} MB -> {report['gzip_bytes_after'] / 1e6:.2f} MB",
        f"wrote {report['output']}",
    ]
    return "\n".join(lines)


def _prune(args: argparse.Namespace, _: dict[str, Any]) -> int:
    report = prune_file(args.model, args.data, sparsity=args.sparsity, epochs=args.epochs,
                        learning_rate=args.learning_rate, batch_size=args.batch_size, output=args.output,
                        split=args.split)
    print(json.dumps(report, indent=1) if args.json else format_prune_report(report))
    return 0


def add_prune_command(sub: Any) -> None:
    """Add ``prune`` to the ``foveal`` subcommands."""
    p = sub.add_parser("prune", help="magnitude-prune a trained model with fine-tuning",
                       description="Zero the smallest weights of every conv/dense kernel, raising the "
                       "sparsity along a cubic schedule while fine-tuning on the data (Zhu & Gupta 2017); "
                       "reports the sparsity per layer and the accuracy before and after.")
    p.add_argument("model", help="a .keras model file written by foveal")
    p.add_argument("--data", required=True, help="dataset spec: fine-tunes on its train part")
    p.add_argument("--sparsity", type=float, default=0.8, help="final fraction of zero weights (default: 0.8)")
    p.add_argument("--epochs", type=int, default=2, help="fine-tuning epochs (default: 2)")
    p.add_argument("--learning-rate", type=float, default=1e-4, help="fine-tuning learning rate (default: 1e-4)")
    p.add_argument("--batch-size", type=int, default=64, help="images per step (default: 64)")
    p.add_argument("--split", default="test", help="dataset part scored before and after (default: test)")
    p.add_argument("--output", metavar="FILE.keras", help="where to save (default: MODEL.prunedNN.keras)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=_prune)
