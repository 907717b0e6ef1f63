"""Throughput of the detection input pipeline: images per second, with and without augmentation.

Reads a box dataset (default: the raccoon set), builds
:func:`foveal.detection.pipeline.make_detection_pipeline` at the given size, and times whole
epochs after one warm-up epoch (which fills the cache when caching is on), with nothing else
consuming the batches. Each configuration is one row: evaluation (no augmentation), training
with the ``detect`` preset, and the same with letterboxing and multi-scale batches. Prints one
JSON document.

    python benchmarks/detection_pipeline.py --data ../shared/datasets/raccoon
    python benchmarks/detection_pipeline.py --data ../shared/datasets/coco-mini --image-size 320 --cache none
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")



def images_per_second(dataset, epochs: int) -> float:
    for _ in dataset:  # warm-up: tracing, file cache, the pipeline's own cache
        pass
    count, start = 0, time.perf_counter()
    for _ in range(epochs):
        for images, _targets in dataset:
            count += int(images.shape[0])
    return count / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="box annotations (e.g. the raccoon set)")
    parser.add_argument("--image-size", type=int, default=416, help="input size (default: 416)")
    parser.add_argument("--batch-size", type=int, default=8, help="batch size (default: 8)")
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs after the warm-up (default: 2)")
    parser.add_argument("--cache", default="auto", choices=["auto", "memory", "none"])
    parser.add_argument("--augment", default="detect", help="augmentation spec of the training rows")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    from foveal.data.boxes import load_boxes
    from foveal.detection.pipeline import make_detection_pipeline

    data = load_boxes(args.data)["train"]
    size = args.image_size
    rows = {
        "eval": dict(training=False),
        f"train_{args.augment}": dict(training=True, augment=args.augment),
        f"train_{args.augment}_letterbox_multiscale": dict(
            training=True, augment=args.augment, keep_aspect=True,
            multi_scale=[s for s in range(size - 96, size + 97, 32) if s >= 32]),
    }
    results = {}
    for name, options in rows.items():
        ds = make_detection_pipeline(data, image_size=size, batch_size=args.batch_size, cache=args.cache,
                                     seed=args.seed, **options)
        results[name] = round(images_per_second(ds, args.epochs), 1)
    print(json.dumps({"data": args.data, "images": len(data), "image_size": size, "batch_size": args.batch_size,
                      "cache": args.cache, "epochs": args.epochs, "cores": os.cpu_count(),
                      "images_per_second": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
