"""Input pipeline throughput from an image folder: foveal's pipeline vs Keras' own.

Both read the same class-per-folder JPEG/PNG tree, decode, resize, augment (flip, rotation,
zoom, translation) and batch; images per second are measured over whole epochs after one
warm-up epoch, with nothing else consuming the batches. The reference is
``keras.utils.image_dataset_from_directory`` followed by Keras preprocessing layers mapped
over the dataset, which is how the Keras guides build it. Prints one JSON document.

    python benchmarks/input_pipeline.py --folder /tmp/cifar10/train --image-size 32
    python benchmarks/input_pipeline.py --cifar ../shared/datasets/cifar10-jpeg.tar.gz
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tarfile
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def images_per_second(dataset, epochs: int) -> float:
    for _ in dataset:  # warm-up epoch: file cache, tracing
        pass
    count, start = 0, time.perf_counter()
    for _ in range(epochs):
        for batch, _labels in dataset:
            count += int(batch.shape[0])
    return count / (time.perf_counter() - start)


def keras_reference(folder: Path, size: int, batch: int, seed: int):
    import keras
    import tensorflow as tf

    ds = keras.utils.image_dataset_from_directory(folder, image_size=(size, size), batch_size=batch,
                                                  shuffle=True, seed=seed, verbose=False)
    augment = keras.Sequential([keras.layers.RandomFlip("horizontal", seed=seed),
                                keras.layers.RandomRotation(10 / 360, seed=seed),
                                keras.layers.RandomZoom(0.1, seed=seed),
                                keras.layers.RandomTranslation(0.1, 0.1, seed=seed)])
    return ds.map(lambda x, y: (augment(x, training=True), y), num_parallel_calls=tf.data.AUTOTUNE).prefetch(
        tf.data.AUTOTUNE)


def foveal_pipeline(folder: Path, size: int, batch: int, seed: int):
    from foveal.data.pipeline import make_pipeline
    from foveal.data.readers import load_dataset

    data = load_dataset(str(folder), verify="none")["train"]
    return make_pipeline(data, image_size=(size, size), channels=3, batch_size=batch, training=True,
                         augment="flip,rotate=10,zoom=0.1,translate=0.1", cache="none", seed=seed)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--folder", type=Path, help="class-per-subfolder image tree")
    source.add_argument("--cifar", type=Path, help="cifar10-jpeg.tar.gz; its train/ part is extracted to a temp dir")
    parser.add_argument("--image-size", type=int, default=32, help="output size (default: 32)")
    parser.add_argument("--batch-size", type=int, default=128, help="batch size (default: 128)")
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs after the warm-up (default: 2)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.folder
        if args.cifar:
            with tarfile.open(args.cifar) as archive:
                members = [m for m in archive.getmembers() if m.name.split("/")[-3:-2] == ["train"]
                           or "/train/" in f"/{m.name}"]
                archive.extractall(tmp, members=members, filter="data")
            folder = next(Path(tmp).rglob("train"))
        results = {}
        for name, build in (("keras_image_dataset_from_directory", keras_reference), ("foveal", foveal_pipeline)):
            results[name] = images_per_second(build(folder, args.image_size, args.batch_size, args.seed), args.epochs)
    results["ratio_foveal_over_keras"] = results["foveal"] / results["keras_image_dataset_from_directory"]
    print(json.dumps({"folder": str(args.folder or args.cifar), "image_size": args.image_size,
                      "batch_size": args.batch_size, "epochs": args.epochs, "cores": os.cpu_count(),
                      "images_per_second": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
