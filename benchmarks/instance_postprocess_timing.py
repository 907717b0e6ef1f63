"""An instance model's time per real image, the network and the post-processing apart; prints JSON.

``foveal benchmark`` times a model on random pixels (its ``batch1`` includes a U-Net +
watershed's watershed, ``batch1_network`` is the network alone). Random pixels give a U-Net
probabilities unlike a real image's, and the watershed's cost depends on how many regions it
floods, so this times the same two parts on real images: for each image of a COCO file
(decoded and stretched to the model's input once, outside the timing), ``runs`` times the
network at batch 1 (``predict_on_batch``) and the family's post-processing
(:meth:`foveal.instance.family.Family.to_instances`: for U-Net + watershed, the probabilities
stretched back, the marker watershed, each instance's RLE and box; for Mask R-CNN, the masks
pasted), with a baseline in the same invocation: NumPy's sum over the probabilities (the least
post-processing could cost).

Example (a quiet measurement: through /work/bench/boost.sh on the shared machine)::

    PYTHONPATH=src .venv/bin/python benchmarks/instance_postprocess_timing.py runs/RUN/best.keras \\
        --data cells/annotations/instances_test.json --images cells/images --runs 5 > timing.json
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np


def _ms(samples: list[float]) -> dict[str, float]:
    values = np.asarray(samples) * 1e3
    return {"p50_ms": round(float(np.percentile(values, 50)), 2), "p90_ms": round(float(np.percentile(values, 90)), 2),
            "runs": int(values.size)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", help="an instance model (.keras) of foveal instance train")
    parser.add_argument("--data", required=True, help="COCO instances JSON whose images are timed")
    parser.add_argument("--images", help="its image folder (default: found beside it)")
    parser.add_argument("--runs", type=int, default=5, help="timed runs per image (default 5; 1 warm-up first)")
    parser.add_argument("--threads", type=int, default=2, help="TensorFlow intra-op threads (default 2)")
    args = parser.parse_args()

    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    from foveal.data.files import decode_file
    from foveal.instance.data import read_instances
    from foveal.instance.family import family_of
    from foveal.models import load_model

    load = os.getloadavg()
    model, card = load_model(args.model)
    family = family_of(card)
    h, w, c = card.input_shape
    data = read_instances(args.data, images=args.images)
    network, post, baseline, found = [], [], [], []
    for path, (iw, ih) in zip(data.paths, data.image_sizes):
        image = tf.image.resize(decode_file(path, c).astype(np.float32), [h, w]).numpy()[None]
        for run in range(args.runs + 1):
            t0 = time.perf_counter()
            out = model.predict_on_batch(image)
            out = {k: np.asarray(v) for k, v in out.items()} if isinstance(out, dict) else {"probabilities": np.asarray(out)}
            t1 = time.perf_counter()
            instances = family.to_instances(out, card, [(int(iw), int(ih))], score_threshold=0.0)
            t2 = time.perf_counter()
            float(sum(float(v.sum()) for v in out.values()))
            t3 = time.perf_counter()
            if run:
                network.append(t1 - t0)
                post.append(t2 - t1)
                baseline.append(t3 - t2)
        found.append(len(instances[0].scores))
    report = {"model": args.model, "family": family.name, "input": [h, w, c], "images": len(data),
              "image_sizes": sorted({f"{iw}x{ih}" for iw, ih in data.image_sizes}),
              "instances_per_image_mean": round(float(np.mean(found)), 1), "threads": args.threads,
              "network": _ms(network), "post_processing": _ms(post), "whole": _ms(np.add(network, post).tolist()),
              "baseline_sum_of_outputs": _ms(baseline),
              "load_average_before": [round(v, 2) for v in load],
              "load_average_after": [round(v, 2) for v in os.getloadavg()]}
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
