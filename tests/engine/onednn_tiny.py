"""A tiny task plugin whose model has the layer that trips oneDNN (a stride-2 1x1 convolution on
8 channels, as a ResNet shortcut), for the run engine's constant-batch guard
(tests/engine/test_onednn_guard.py; docs/fpn-onednn-crash.md).

Run as a script, it trains that model through the engine in graph mode and prints
``TRAINED <smallest batch> <largest batch> <steps>``; ``--unguarded`` turns the guard off (the
crash's control)::

    python tests/engine/onednn_tiny.py OUTPUT --images 7 --batch-size 4 --epochs 150 [--unguarded]
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

from foveal.engine.config import RunConfig
from foveal.engine.plugin import RunData, TaskPlugin
from foveal.utils_io import atomic_write_text


@keras.saving.register_keras_serializable(package="foveal_tests")
class BatchSizes(keras.layers.Layer):
    """Passes its input through; in training, records the smallest and largest batch and the steps."""

    def build(self, input_shape):
        self.smallest = self.add_weight(shape=(), initializer=keras.initializers.Constant(1e9), trainable=False,
                                        name="smallest")
        self.largest = self.add_weight(shape=(), initializer="zeros", trainable=False, name="largest")
        self.steps = self.add_weight(shape=(), initializer="zeros", trainable=False, name="steps")

    def call(self, x, training=False):
        if training:
            n = keras.ops.cast(keras.ops.shape(x)[0], "float32")
            self.smallest.assign(keras.ops.minimum(self.smallest, n))
            self.largest.assign(keras.ops.maximum(self.largest, n))
            self.steps.assign(self.steps + 1.0)
        return x

    def compute_output_shape(self, input_shape):
        return input_shape

    def seen(self) -> tuple[int, int, int]:
        return int(self.smallest.numpy()), int(self.largest.numpy()), int(self.steps.numpy())


@dataclass
class TinyConfig(RunConfig):
    model: str = "tiny-strided"
    images: int = 7

    def validate(self) -> None:
        self.validate_run()


def tiny_model(seed: int = 0) -> keras.Model:
    """image -> 8 channels (3x3, stride 2) -> a 3x3 stride-2 convolution plus a 1x1 stride-2
    shortcut on those 8 channels (the layer ``shortcut``) -> two classes."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu", name="stem")(inputs)
    y = keras.layers.Add()([keras.layers.Conv2D(16, 3, strides=2, padding="same", use_bias=False, name="conv")(x),
                            keras.layers.Conv2D(16, 1, strides=2, use_bias=False, name="shortcut")(x)])
    y = BatchSizes(name="batch_sizes")(y)
    outputs = keras.layers.Dense(2, activation="softmax")(keras.layers.GlobalAveragePooling2D()(y))
    return keras.Model(inputs, outputs, name="tiny_strided")


class TinyStridedTask(TaskPlugin):
    name = "tiny-strided"
    config_class = TinyConfig

    def load_data(self, cfg: TinyConfig) -> RunData:
        rng = np.random.default_rng(cfg.seed)
        x = rng.uniform(0, 1, (cfg.images + 4, 32, 32, 3)).astype(np.float32)
        y = (x[:, :16].mean(axis=(1, 2, 3)) > x[:, 16:].mean(axis=(1, 2, 3))).astype(np.int32)
        return RunData(x[:cfg.images], x[cfg.images:], None, ["a", "b"],
                       extra={"y_train": y[:cfg.images], "y_val": y[cfg.images:]})

    def build(self, cfg: TinyConfig, data: RunData, run_dir: Path) -> keras.Model:
        return tiny_model(cfg.seed)

    def compile(self, cfg: TinyConfig, model: keras.Model, data: RunData, steps_per_epoch: int) -> None:
        model.compile(keras.optimizers.SGD(1e-3), "sparse_categorical_crossentropy")

    def card(self, cfg: TinyConfig, data: RunData, model: keras.Model, run_dir: Path) -> Any:
        from foveal.models import ModelCard

        return ModelCard(architecture=cfg.model, class_names=list(data.class_names), input_shape=(32, 32, 3),
                         preprocessing="none", task="classify", training={"data": cfg.data})

    def pipelines(self, cfg: TinyConfig, data: RunData, *, seed: int, start_epoch: int | None = None):
        import tensorflow as tf

        from foveal.data.epochs import shuffled_epochs

        train = shuffled_epochs(tf.data.Dataset.from_tensor_slices((data.train, data.extra["y_train"])),
                                len(data.train), seed=seed, start_epoch=start_epoch,
                                then=lambda d, s, e: d.batch(cfg.batch_size))
        val = tf.data.Dataset.from_tensor_slices((data.val, data.extra["y_val"])).batch(cfg.batch_size)
        return train, val

    def finish(self, cfg: TinyConfig, model: keras.Model, card: Any, data: RunData, run_dir: Path,
               history: dict[str, list[float]]) -> dict[str, Any]:
        metrics = {"val_loss": float(model.evaluate(data.val, data.extra["y_val"], verbose=0))}
        atomic_write_text(run_dir / "metrics.json", json.dumps(metrics, indent=1))
        return metrics


class Seen(keras.callbacks.Callback):
    """What the model's BatchSizes layer saw, read when training ends (before the best weights return)."""

    def on_train_end(self, logs=None):
        self.seen = self.model.get_layer("batch_sizes").seen()


def train(output: str, *, images: int, batch_size: int, epochs: int, name: str = "tiny") -> tuple[Any, Seen]:
    from foveal.engine.run import train_task

    seen = Seen()
    cfg = TinyConfig(data="generated", images=images, batch_size=batch_size, epochs=epochs, output=output,
                     name=name, progress=False)
    return train_task(TinyStridedTask(), cfg, callbacks=[seen]), seen


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("output")
    parser.add_argument("--images", type=int, default=7)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=150)
    parser.add_argument("--unguarded", action="store_true")
    args = parser.parse_args()
    if args.unguarded:
        import foveal.engine.run as engine_run

        engine_run.constant_batch_plan = lambda *a, **k: None
    _, seen = train(args.output, images=args.images, batch_size=args.batch_size, epochs=args.epochs)
    print("TRAINED", *seen.seen, flush=True)
    sys.exit(0)
