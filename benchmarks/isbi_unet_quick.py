"""Quick real check of the segmentation stack: a small U-Net on ISBI 2012 membranes (CPU).

Trains ``unet(width=16, depth=4, batch_norm=True)`` on augmented 128x128 crops of 25 training
images (flips, rot90, small rotations, scale jitter, elastic deformation) with
cross-entropy + soft Dice for a fixed wall-clock budget, then scores the 5 held-out 512x512
images whole: pixel accuracy, membrane IoU and Dice (membrane = black = class 0).

Run: ``.venv/bin/python benchmarks/isbi_unet_quick.py [--seconds 150]``
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import tensorflow as tf

from foveal.segmentation.augment import SegmentationAugment, augment_dataset
from foveal.segmentation.data import read_mask_folder
from foveal.segmentation.losses import CrossEntropyDice
from foveal.segmentation.metrics import segmentation_scores
from foveal.segmentation.models import unet

ISBI = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "isbi-membrane" / "train"


class TimeBudget(keras.callbacks.Callback):
    def __init__(self, seconds: float):
        super().__init__()
        self.seconds, self.start = seconds, time.monotonic()

    def on_train_batch_end(self, batch, logs=None):
        if time.monotonic() - self.start > self.seconds:
            self.model.stop_training = True


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=150)
    parser.add_argument("--width", type=int, default=16)
    args = parser.parse_args()
    keras.utils.set_random_seed(0)
    data = read_mask_folder(ISBI, class_names=["membrane", "cell"])
    train, held = data.subset(np.arange(25)), data.subset(np.arange(25, 30))
    aug = SegmentationAugment(crop_size=(128, 128), hflip=True, vflip=True, rot90=True, max_angle=15,
                              scale=(0.8, 1.25), elastic_sigma=6.0, brightness=0.05, contrast=0.1)
    ds = augment_dataset(train.to_tf_dataset(1).cache().repeat(), aug, seed=0)
    ds = ds.batch(8).prefetch(2)
    model = unet((None, None, 1), num_classes=2, depth=4, width=args.width, batch_norm=True)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=CrossEntropyDice(num_classes=2))
    start = time.monotonic()
    model.fit(ds, steps_per_epoch=20, epochs=1000, callbacks=[TimeBudget(args.seconds)], verbose=2)
    trained = time.monotonic() - start
    images, masks = zip(*[(im.numpy(), mk.numpy()) for im, mk in held.to_tf_dataset(1)])
    probs = model.predict(np.stack(images).astype("float32"), batch_size=1, verbose=0)
    s = segmentation_scores(np.stack(masks), probs, num_classes=2)
    print(f"trained {trained:.0f} s, {model.optimizer.iterations.numpy()} steps of 8 crops 128x128, "
          f"{model.count_params():,} parameters")
    print(f"held-out 5 images: pixel accuracy {s['pixel_accuracy']:.4f}, membrane IoU {s['iou'][0]:.4f}, "
          f"membrane Dice {s['dice'][0]:.4f}, cell IoU {s['iou'][1]:.4f}, mean IoU {s['mean_iou']:.4f}")
    base = (np.stack(masks) == 1).mean()
    print(f"(all-'cell' baseline pixel accuracy {base:.4f})")


if __name__ == "__main__":
    main()
