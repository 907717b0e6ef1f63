"""Peak memory of Mask R-CNN's ground-truth masks on a crowded image: full-size masks against masks
in their boxes' frames.

An ISBI-like slice (512 x 512, ``--cells`` Voronoi cells, default 115, separated by 2-pixel
membranes) is written as COCO instances; a batch of ``--batch`` copies with ``--max-instances``
slots (default 4 and 160, the ISBI recipe's) then goes through, in a fresh process each:

* ``full`` (the former representation): every instance's mask at the input's size, stretched
  (bilinear in float32, then >= 0.5) as the former pipeline's ``load`` did, padded to
  ``[B, H, W, M]`` uint8, and the mask head's targets of 64 RoIs per image cut from it
  (:func:`foveal.instance.masks.mask_targets`, dense path);
* ``box`` (now): the instance pipeline's batch (masks ``[B, M, 64, 64]`` in their boxes' frames)
  and the targets cut from it (``gt_boxes`` path).

Each reports the peak resident memory above the process's memory after imports and a warm-up
(``ru_maxrss`` minus the resident size before the step), the masks' bytes per image and per
batch, and the targets' agreement between both (same RoIs). One JSON document on stdout, with
the load average before and after.

    PYTHONPATH=src nice -n 5 .venv/bin/python benchmarks/instance_mask_memory.py > mask-memory.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

SIZE = 512


def crowded_labels(cells: int, seed: int = 0):
    """A 512 x 512 label map of ``cells`` Voronoi cells (ids 1..cells) with 2-pixel membranes (0)."""
    import numpy as np
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    seeds = np.zeros((SIZE, SIZE), np.int32)
    points = rng.integers(0, SIZE, (cells, 2))
    seeds[points[:, 0], points[:, 1]] = np.arange(1, cells + 1)
    _, (iy, ix) = ndimage.distance_transform_edt(seeds == 0, return_indices=True)
    labels = seeds[iy, ix]
    edge = np.zeros_like(labels, bool)
    edge[:, 1:] |= labels[:, 1:] != labels[:, :-1]
    edge[1:] |= labels[1:] != labels[:-1]
    labels[ndimage.binary_dilation(edge)] = 0
    return labels


def write_data(folder: Path, cells: int) -> Path:
    import numpy as np
    from PIL import Image

    from foveal.instance.label_maps import label_maps_to_coco, write_coco, write_label_map

    labels = crowded_labels(cells)
    (folder / "images").mkdir(parents=True)
    Image.fromarray(np.where(labels > 0, 200, 40).astype(np.uint8)).save(folder / "images" / "slice.png")
    write_label_map(folder / "instances" / "slice.png", labels)
    return write_coco(label_maps_to_coco(folder, class_names=["cell"]), folder / "annotations" / "cells.json")


def _rss_bytes() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _rois(data, index: int, count: int, seed: int):
    """``count`` RoIs around the image's boxes (a quarter of a side of jitter) and their box index."""
    import numpy as np

    rng = np.random.default_rng(seed)
    boxes = data.boxes[index]
    pick = rng.integers(0, len(boxes), count)
    side = np.tile(boxes[pick, 2:] - boxes[pick, :2], 2)
    return (boxes[pick] + rng.uniform(-0.25, 0.25, (count, 4)) * side).astype(np.float32), pick.astype(np.int32)


def measure(mode: str, coco: Path, batch: int, max_instances: int) -> dict:
    import numpy as np
    import tensorflow as tf

    from foveal.instance.data import read_instances
    from foveal.instance.masks import mask_targets

    data = read_instances(coco)
    data = data.subset(np.zeros(batch, np.int64))  # the same slice, `batch` times
    rois, index = zip(*(_rois(data, 0, 64, seed) for seed in range(batch)))
    rois, index = np.stack(rois), np.stack(index)
    mask_targets(np.zeros((1, 8, 8, 2), np.uint8), rois[:1, :2] * 0, index[:1, :2] * 0, 28)  # warm-up
    mask_targets(np.zeros((1, 2, 64, 64), np.uint8), rois[:1, :2] * 0, index[:1, :2] * 0, 28,
                 gt_boxes=np.ones((1, 2, 4), np.float32))
    before = _rss_bytes()
    if mode == "full":
        masks = []
        for i in range(batch):
            dense = data.masks(i)  # [H, W, K] uint8, the former _elements
            dense = np.concatenate([dense, np.zeros((*dense.shape[:2], 1), np.uint8)], -1)
            resized = tf.image.resize(tf.cast(dense, tf.float32), [SIZE, SIZE], method="bilinear")
            dense = tf.cast(resized >= 0.5, tf.uint8)[..., :-1]
            count = min(int(dense.shape[-1]), max_instances)
            masks.append(tf.pad(dense[..., :count], [[0, 0], [0, 0], [0, max_instances - count]]))
        masks = tf.stack(masks)
        targets = mask_targets(masks, rois, index, 28).numpy()
    else:
        from foveal.instance.pipeline import make_instance_pipeline

        ds = make_instance_pipeline(data, image_size=(SIZE, SIZE), channels=1, batch_size=batch, training=False,
                                    max_instances=max_instances, cache="none")
        _, t = next(iter(ds))
        masks = t["masks"]
        scale = np.array([SIZE, SIZE, SIZE, SIZE], np.float32)
        targets = mask_targets(masks, rois, index, 28, gt_boxes=t["boxes"].numpy() * scale).numpy()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"mode": mode, "masks_shape": list(masks.shape), "masks_bytes_per_batch": int(np.prod(masks.shape)),
            "masks_bytes_per_image": int(np.prod(masks.shape)) // batch,
            "instances_per_image": len(data.boxes[0]),
            "rss_before_step_mb": round(before / 2 ** 20, 1), "peak_rss_mb": round(peak / 2 ** 20, 1),
            "peak_above_before_mb": round((peak - before) / 2 ** 20, 1), "targets": targets.tolist()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=115)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--max-instances", type=int, default=160)
    parser.add_argument("--mode", choices=("full", "box"), help=argparse.SUPPRESS)
    parser.add_argument("--coco", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mode:  # one measurement, in its own process
        print(json.dumps(measure(args.mode, Path(args.coco), args.batch, args.max_instances)))
        return
    import numpy as np

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        coco = write_data(Path(tmp), args.cells)
        runs = {}
        for mode in ("full", "box"):
            out = subprocess.run([sys.executable, __file__, "--mode", mode, "--coco", str(coco), "--batch",
                                  str(args.batch), "--max-instances", str(args.max_instances)],
                                 capture_output=True, text=True, check=True)
            runs[mode] = json.loads(out.stdout.strip().splitlines()[-1])
    full, box = (np.asarray(runs[m].pop("targets")) for m in ("full", "box"))
    report = {
        "benchmark": "instance_mask_memory", "image": [SIZE, SIZE], "batch": args.batch,
        "max_instances": args.max_instances, "results": runs,
        "peak_ratio": round(runs["full"]["peak_above_before_mb"] / max(runs["box"]["peak_above_before_mb"], 0.1), 1),
        "target_agreement": round(float((full == box).mean()), 5),
        "target_agreement_worst_roi": round(float((full == box).mean(axis=(2, 3)).min()), 5),
        "load_average_before": [round(v, 2) for v in load_before],
        "load_average_after": [round(v, 2) for v in os.getloadavg()], "cpu_count": os.cpu_count(),
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
