"""Time foveal's COCO box evaluation against pycocotools' COCOeval on coco-mini-sized data.

Uses ``coco-mini``'s val GT when present (else a synthetic set of the same size), detections
made by jittering the GT boxes plus false positives; prints one JSON line with both times
(best of ``--repeat``), their ratio and the largest difference of the 12 summary numbers.

    .venv/bin/python benchmarks/coco_eval_speed.py
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from foveal.evaluation.detection import COCO_STATS, coco_evaluate  # noqa: E402
from tests.detection.test_coco_eval import COCO_MINI, perturbed_detections, synthetic_gt  # noqa: E402


def _pycocotools(gt: dict, dets: list[dict]) -> list[float]:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = copy.deepcopy(gt)
        coco.createIndex()
        ev = COCOeval(coco, coco.loadRes(copy.deepcopy(dets)), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return list(ev.stats)


def _best(fn, repeat: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    path = COCO_MINI / "instances_val2017.json"
    gt = json.loads(path.read_text()) if path.is_file() else synthetic_gt(0, images=79, cats=80)
    dets = perturbed_detections(gt, 0)
    t_ref, ref = _best(lambda: _pycocotools(gt, dets), args.repeat)
    t_ours, ours = _best(lambda: coco_evaluate(gt, dets), args.repeat)
    stats = [ours.stats[name] for name, *_ in COCO_STATS]
    print(json.dumps({"data": str(path) if path.is_file() else "synthetic", "images": len(gt["images"]),
                      "gt_boxes": len(gt["annotations"]), "detections": len(dets),
                      "pycocotools_s": round(t_ref, 4), "foveal_s": round(t_ours, 4),
                      "speedup": round(t_ref / t_ours, 2),
                      "max_abs_diff": max(abs(a - b) for a, b in zip(stats, ref))}))


if __name__ == "__main__":
    main()
