"""Per-epoch callbacks of a generative run: fixed-noise sample grids and sample quality.

* :class:`SampleGrids` decodes the same noise (and, for a conditional model, one row per
  class) after every epoch into ``RUN/samples/epoch_NNN.png``, and into TensorBoard's image tab
  with ``--tensorboard``; watching one grid change shows what training does.
* :class:`SampleQuality` adds ``frechet``, ``kernel_distance`` (and ``class_accuracy`` for a
  conditional model) to the epoch's logs, from generated images against held-out real ones in
  the judge classifier's feature space (:mod:`foveal.generative.quality`), so they land in
  ``history.csv`` and can pick ``best.keras``. It also logs ``epochs_done``, the monitor of a
  GAN trained without a judge (the last epoch is then the best).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keras
import numpy as np

from foveal.generative import sampling
from foveal.generative.quality import Judge, RealStats, compare


def fixed_inputs(model: Any, class_names: list[str], seed: int, per_class: int = 8,
                 count: int = 64) -> tuple[np.ndarray, np.ndarray | None, int]:
    """(noise, labels or None, columns) of the grid: a conditional model gets one row per class
    (the same noise in every row, so a column shows one style in every class)."""
    if sampling.is_conditional(model):
        k = len(class_names)
        z = np.tile(sampling.noise(per_class, model.latent_dim, seed), (k, 1))
        return z, np.repeat(np.arange(k, dtype=np.int32), per_class), per_class
    return sampling.noise(count, model.latent_dim, seed), None, 8


class SampleGrids(keras.callbacks.Callback):
    """Write the fixed-noise grid of every epoch (see the module docstring)."""

    def __init__(self, run_dir: Path, class_names: list[str], seed: int, tensorboard: bool = False) -> None:
        super().__init__()
        self.folder = Path(run_dir) / "samples"
        self.class_names, self.seed = class_names, seed
        self.tensorboard_dir = Path(run_dir) / "tensorboard" / "samples" if tensorboard else None

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        z, labels, cols = fixed_inputs(self.model, self.class_names, self.seed)
        grid = sampling.tile(sampling.sample(self.model, len(z), labels, z=z), cols=cols)
        sampling.write_png(self.folder / f"epoch_{epoch + 1:03d}.png", grid)
        if self.tensorboard_dir is not None:
            tensorboard_image(self.tensorboard_dir, "fixed_noise_samples", grid, epoch + 1)


def tensorboard_image(folder: Path, tag: str, pixels: np.ndarray, step: int) -> None:
    """Add one uint8 image (HxW or HxWxC) to a TensorBoard log folder."""
    import tensorflow as tf

    image = np.asarray(pixels, np.uint8)
    image = image[..., None] if image.ndim == 2 else image
    writer = tf.summary.create_file_writer(str(folder))
    with writer.as_default():
        tf.summary.image(tag, image[None], step=step)
    writer.flush()
    writer.close()


class SampleQuality(keras.callbacks.Callback):
    """Score ``count`` samples against ``real`` after every epoch (see the module docstring).

    Args:
        judge, real: the feature network and the held-out real images' statistics; None for no scores.
        count: images generated per epoch.
        class_ids: for a conditional model, the judge's class index of each of the model's classes.
    """

    def __init__(self, judge: Judge | None, real: RealStats | None, count: int, seed: int,
                 class_ids: np.ndarray | None = None) -> None:
        super().__init__()
        self.judge, self.real, self.count, self.seed, self.class_ids = judge, real, count, seed, class_ids

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if logs is None:
            return
        logs["epochs_done"] = float(epoch + 1)
        if self.judge is None or self.real is None or not self.count:
            return
        labels = None
        if sampling.is_conditional(self.model):
            labels = (np.arange(self.count) % self.model.num_classes).astype(np.int32)
        fake = sampling.sample(self.model, self.count, labels, seed=self.seed + 1)
        requested = None if labels is None or self.class_ids is None else self.class_ids[labels]
        scores = compare(self.judge, self.real, fake, requested, seed=self.seed)
        logs.update({k: v for k, v in scores.items() if not k.endswith("_std")})


__all__ = ["SampleGrids", "SampleQuality", "fixed_inputs", "tensorboard_image"]
