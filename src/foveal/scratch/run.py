"""``foveal scratch train``: a NumPy network and its Keras twin, same weights, same batches, one report.

The data comes through foveal's readers (:func:`foveal.data.readers.load_dataset`), pixels are
scaled to [0, 1], and the scored part is the dataset's test part or, without one, a stratified
``val_split`` of train. The NumPy network trains first; then the Keras twin, built from the
NumPy network's *initial* weights, trains on exactly the same batches in the same order. Both
are scored after every epoch with the same NumPy loss code, so the curves are directly
comparable. The run folder holds ``config.yaml``, ``history.csv`` (both networks, per epoch),
``metrics.json``, ``weights.npz`` (the trained NumPy weights) and ``report.html``.

Example:
    >>> result = train(ScratchConfig(data="digits", epochs=2))   # doctest: +SKIP
    >>> result.metrics["numpy"]["accuracy"]                       # doctest: +SKIP
"""

from __future__ import annotations

import csv
import io
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

from foveal.errors import ConfigError, DataError
from foveal.scratch.config import ScratchConfig
from foveal.scratch.network import Network, SimpleNetwork, epoch_order, small_cnn
from foveal.scratch.optim import SGD
from foveal.training.runs import TrainResult, run_name, say
from foveal.utils_io import atomic_path, atomic_write_text, write_metrics


def build_network(cfg: ScratchConfig, input_shape: tuple[int, ...], num_classes: int) -> Network:
    """The NumPy network the options describe, for samples of ``input_shape``."""
    dtype = np.dtype(cfg.dtype).type
    if cfg.network == "simple":
        return SimpleNetwork([int(np.prod(input_shape)), *cfg.hidden, num_classes], seed=cfg.seed, dtype=dtype)
    return small_cnn(input_shape, num_classes, filters=cfg.filters, kernel_size=cfg.kernel_size,
                     method=cfg.conv_method, seed=cfg.seed, dtype=dtype)


def load_arrays(cfg: ScratchConfig) -> dict[str, Any]:
    """Train and scored arrays (pixels in [0, 1]) with the class names, through foveal's readers."""
    from foveal.data.readers import load_dataset
    from foveal.data.splits import make_splits

    parts = load_dataset(cfg.data)
    splits = make_splits(parts, val_split=0.0 if "test" in parts else cfg.val_split, test_split=0.0, seed=cfg.seed)
    scored = splits.test if splits.test is not None else splits.val
    if scored is None:
        raise DataError(f"{cfg.data}: nothing to score the networks on (no test part and val_split is 0)",
                        hint="set --val-split to a fraction such as 0.2")
    for part in (splits.train, scored):
        if part.images is None:
            raise DataError(f"{part.origin}: foveal.scratch needs images held in memory (IDX, CIFAR, .npz, digits)",
                            hint="convert the folder to .npz, or use `foveal train` for file-based datasets")
    x_train, y_train = splits.train.images, splits.train.labels
    if cfg.limit:
        x_train, y_train = x_train[:cfg.limit], y_train[:cfg.limit]
    scale = np.dtype(cfg.dtype).type(1 / 255)
    arrays = {"x_train": x_train.astype(cfg.dtype) * scale, "y_train": y_train.astype(np.int64),
              "x_eval": scored.images.astype(cfg.dtype) * scale, "y_eval": scored.labels.astype(np.int64),
              "eval_name": "test" if splits.test is not None else "validation",
              "class_names": list(splits.train.class_names)}
    if cfg.network == "simple":
        arrays["x_train"] = arrays["x_train"].reshape(len(x_train), -1)
        arrays["x_eval"] = arrays["x_eval"].reshape(len(arrays["x_eval"]), -1)
    return arrays


def train_numpy(net: Network, cfg: ScratchConfig, data: dict[str, Any]) -> dict[str, list[float]]:
    """Train the NumPy network; per-epoch history (see :meth:`Network.fit`)."""
    from threadpoolctl import threadpool_limits

    def report(epoch: int, row: dict[str, float]) -> None:
        say(f"numpy epoch {epoch + 1}/{cfg.epochs}: loss {row['loss']:.5f} accuracy {row['accuracy']:.4f} "
            f"val_loss {row['val_loss']:.5f} val_accuracy {row['val_accuracy']:.4f} ({row['epoch_seconds']:.1f} s)")

    optimizer = SGD(cfg.resolved("learning_rate"), momentum=cfg.resolved("momentum"))
    with threadpool_limits(cfg.threads):
        return net.fit(data["x_train"], data["y_train"], epochs=cfg.epochs, batch_size=cfg.batch_size,
                       optimizer=optimizer, validation=(data["x_eval"], data["y_eval"]),
                       shuffle=bool(cfg.resolved("shuffle")), seed=cfg.seed, on_epoch_end=report)


def train_keras(net: Network, initial: list[np.ndarray], cfg: ScratchConfig, data: dict[str, Any]) -> dict[str, list[float]]:
    """Train the Keras twin from ``initial`` weights on the NumPy run's batches; same history keys."""
    from foveal.scratch.keras_twin import keras_floatx

    with keras_floatx(cfg.dtype):
        return _train_keras(net, initial, cfg, data)


def _train_keras(net: Network, initial: list[np.ndarray], cfg: ScratchConfig,
                 data: dict[str, Any]) -> dict[str, list[float]]:
    import tensorflow as tf

    from foveal.scratch.keras_twin import compile_twin, to_keras, to_one_hot

    trained = net.get_weights()
    net.set_weights(initial)
    model = to_keras(net)
    net.set_weights(trained)
    compile_twin(model, net.loss, cfg.resolved("learning_rate"), cfg.resolved("momentum"))
    x, y = data["x_train"], to_one_hot(data["y_train"], net.num_classes, cfg.dtype)
    steps = len(x) // cfg.batch_size
    per_sample = cfg.batch_size if net.loss.reduction == "sum" else 1  # Keras reports the batch's sum then
    history: dict[str, list[float]] = {}
    for epoch in range(cfg.epochs):
        order = epoch_order(len(x), epoch, cfg.seed) if cfg.resolved("shuffle") else np.arange(len(x))
        idx = order[:steps * cfg.batch_size]
        # A tf.data pipeline keeps float64 (model.fit on NumPy arrays would cast to float32).
        batches = tf.data.Dataset.from_tensor_slices((x[idx], y[idx])).batch(cfg.batch_size)
        start = time.perf_counter()
        fit = model.fit(batches, epochs=1, verbose=0, shuffle=False).history
        seconds = time.perf_counter() - start
        outputs = np.concatenate([np.asarray(model(data["x_eval"][i:i + 512]))
                                  for i in range(0, len(data["x_eval"]), 512)])
        val_loss = net.loss.forward(outputs, data["y_eval"])
        row = {"loss": fit["loss"][-1] / per_sample, "accuracy": fit["categorical_accuracy"][-1],
               "epoch_seconds": seconds, "val_loss": val_loss,
               "val_accuracy": float(np.mean(outputs.argmax(axis=-1) == data["y_eval"]))}
        for key, value in row.items():
            history.setdefault(key, []).append(float(value))
        say(f"keras epoch {epoch + 1}/{cfg.epochs}: loss {row['loss']:.5f} val_accuracy {row['val_accuracy']:.4f} "
            f"({seconds:.1f} s)")
    return history


def _history_csv(numpy_history: dict[str, list[float]], keras_history: dict[str, list[float]] | None) -> str:
    columns = [("numpy_" + k, v) for k, v in numpy_history.items()]
    columns += [("keras_" + k, v) for k, v in (keras_history or {}).items()]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["epoch", *(name for name, _ in columns)])
    for epoch in range(len(columns[0][1])):
        writer.writerow([epoch + 1, *(repr(float(values[epoch])) for _, values in columns)])
    return buffer.getvalue()


def _test_metrics(net: Network, data: dict[str, Any]) -> dict[str, Any]:
    from foveal.evaluation.classification import classification_metrics

    outputs = net.predict_proba(data["x_eval"])
    # Sigmoid outputs (the simple network) are not a distribution; normalise the rows for the
    # metrics (the arg-max, hence every count, is unchanged) and report the network's own loss.
    probs = outputs / np.maximum(outputs.sum(axis=-1, keepdims=True), 1e-12)
    metrics = classification_metrics(data["y_eval"], probs, data["class_names"])
    metrics["loss"] = net.evaluate(data["x_eval"], data["y_eval"])["loss"]
    metrics["loss_name"] = net.loss.name
    return metrics


def train(config: ScratchConfig | None = None, **overrides: Any) -> TrainResult:
    """Train a from-scratch NumPy network (and its Keras twin) and write a run folder.

    Args:
        config: the options (defaults: the texts' simple network on scikit-learn's digits).
        **overrides: option values on top of ``config`` (same names as the dataclass fields).

    Returns:
        A :class:`~foveal.training.runs.TrainResult`; ``history`` holds the NumPy curves and the
        twin's as ``keras_*``; ``metrics`` is what ``metrics.json`` holds.

    Raises:
        ConfigError: bad options or an existing run folder; DataError: unreadable data;
        ShapeError: a network that does not fit the data.
    """
    from foveal import configtools
    from foveal.scratch.report import max_differences, twin_section
    from foveal.visualize.report import write_classification_report

    cfg = config or ScratchConfig()
    cfg = configtools.from_mapping(ScratchConfig, {**asdict(cfg), **overrides}) if overrides else cfg
    cfg.validate()
    # Record the network's defaults as values, so config.yaml reproduces the run by itself.
    cfg = replace(cfg, **{key: cfg.resolved(key) for key in ("learning_rate", "momentum", "shuffle")})
    run_dir = Path(cfg.output) / (cfg.name or run_name(cfg.network, cfg.data, prefix="scratch"))
    if (run_dir / "metrics.json").exists():
        raise ConfigError(f"run folder {run_dir} already holds a run", hint="choose another --name or --output")
    data = load_arrays(cfg)
    if len(data["x_train"]) < cfg.batch_size:
        raise ConfigError(f"{len(data['x_train'])} training samples are fewer than one batch of {cfg.batch_size}",
                          hint="lower --batch-size")
    net = build_network(cfg, data["x_train"].shape[1:], len(data["class_names"]))
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / "config.yaml", configtools.to_yaml(cfg))
    initial = net.get_weights()
    say(f"{cfg.network}: {net.count_params():,} parameters, {len(data['x_train'])} training samples, "
        f"{data['eval_name']} {len(data['y_eval'])}; run folder {run_dir}")
    numpy_history = train_numpy(net, cfg, data)
    keras_history = train_keras(net, initial, cfg, data) if cfg.keras_twin else None
    metrics: dict[str, Any] = {"numpy": _test_metrics(net, data), "scored_on": data["eval_name"],
                               "numpy_train_seconds": float(sum(numpy_history["epoch_seconds"])),
                               "parameters": net.count_params()}
    if keras_history:
        metrics.update(keras={"accuracy": keras_history["val_accuracy"][-1], "loss": keras_history["val_loss"][-1]},
                       keras_train_seconds=float(sum(keras_history["epoch_seconds"])),
                       max_abs_difference=max_differences(numpy_history, keras_history))
    write_metrics(run_dir, metrics)
    atomic_write_text(run_dir / "history.csv", _history_csv(numpy_history, keras_history))
    with atomic_path(run_dir / "weights.npz") as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, *net.get_weights())
    summary: dict[str, Any] = {"run": run_dir.name, "network": f"{cfg.network} (NumPy, {cfg.dtype})",
                               "layers": " -> ".join(layer.name for layer in net.layers),
                               "parameters": net.count_params(), "dataset": cfg.data, "epochs": cfg.epochs,
                               f"NumPy {data['eval_name']} accuracy": metrics["numpy"]["accuracy"],
                               "NumPy training seconds": round(metrics["numpy_train_seconds"], 2)}
    sections = []
    if keras_history:
        summary[f"Keras twin {data['eval_name']} accuracy"] = metrics["keras"]["accuracy"]
        summary["Keras training seconds"] = round(metrics["keras_train_seconds"], 2)
        facts = {"initial weights": "identical (copied from the NumPy network before training)",
                 "batches": f"identical: {len(data['x_train']) // cfg.batch_size} per epoch of {cfg.batch_size}, "
                            + ("reshuffled each epoch" if cfg.resolved("shuffle") else "in the data's order"),
                 "optimizer": f"SGD lr {cfg.resolved('learning_rate')} momentum {cfg.resolved('momentum')} (both)",
                 "loss": net.loss.name + (" (gradient of the batch sum, as in the texts)"
                                          if net.loss.reduction == "sum" else "")}
        sections.append(("NumPy network vs Keras twin", twin_section(numpy_history, keras_history, facts)))
    history = {k: v for k, v in numpy_history.items() if k != "epoch_seconds"}
    write_classification_report(run_dir / "report.html", title=f"From scratch: {cfg.network} on {cfg.data}",
                                summary=summary, config=asdict(cfg), history=history, metrics=metrics["numpy"],
                                extra_sections=sections)
    say(f"wrote {run_dir / 'report.html'}")
    merged = {**numpy_history, **{"keras_" + k: v for k, v in (keras_history or {}).items()}}
    return TrainResult(run_dir=run_dir, history=merged, metrics=metrics)
