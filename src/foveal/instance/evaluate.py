"""``foveal instance evaluate``: COCO box and mask AP of a saved instance model on COCO instances.

Example:
    >>> metrics = evaluate_instances("runs/RUN/best.keras", "shapes/", split="test")  # doctest: +SKIP
    >>> metrics["mask"]["AP50"]  # doctest: +SKIP
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from foveal.errors import DataError
from foveal.utils_io import atomic_write_text, write_metrics


def evaluate_instances(model_path: str | Path, data: str, *, split: str = "test", batch_size: int = 8,
                       output: str | Path | None = None, skip_invalid: bool = False,
                       score_threshold: float | None = None, images: str | None = None,
                       report_images: int = 12) -> dict[str, Any]:
    """Score a saved instance model on one split of COCO instances; optionally write a report.

    Args:
        model_path: a ``.keras`` file written by ``foveal instance train``.
        data: a COCO instances .json (all of it is the ``train`` split) or a folder of
            ``*train*``/``*val*``/``*test*`` .json files.
        split: ``test``, ``val`` or ``train``; a single file is scored whole.
        output: folder for ``metrics.json``, ``detections.json`` (COCO results with RLE masks)
            and ``report.html``.
        skip_invalid: leave out images with invalid annotations (counted) instead of stopping.
        score_threshold: the display threshold of the drawn examples and the detection count
            (default: the model's); AP uses every detection down to 0.001.
        images: the image folder of the COCO files (default: found beside them).
    """
    from foveal.data.splits import pick_split
    from foveal.instance.data import load_instance_splits, skipped_summary
    from foveal.instance.predict import predict_dataset
    from foveal.instance.report import write_instance_report
    from foveal.instance.scoring import check_card, score_instances, to_coco_results
    from foveal.models import load_model
    from foveal.training.runs import say

    model, card = load_model(model_path)
    check_card(card)
    parts = load_instance_splits(data, images=images, val_split=0.0, test_split=0.0, skip_invalid=skip_invalid,
                                 label_map_classes=list(card.class_names))
    split, part = pick_split(parts, split, data)
    if part.class_names != list(card.class_names):
        raise DataError(f"{data}: its classes {part.class_names} differ from the model's {card.class_names}",
                        hint="evaluate on data with the model's categories")
    line = skipped_summary(part)
    if line:
        say(line)
    threshold = score_threshold if score_threshold is not None else float(card.training.get("score_threshold", 0.25))
    found = predict_dataset(model, card, part, batch_size=batch_size)
    metrics = score_instances(part, found, score_threshold=threshold)
    metrics["split"] = split
    if output is not None:
        out = Path(output)
        write_metrics(out, metrics)
        category_ids = [c["id"] for c in part.coco_dict()["categories"]]
        atomic_write_text(out / "detections.json", json.dumps(to_coco_results(found, category_ids)))
        summary = {"model": str(model_path), "data": data, "split": split, "mask AP": metrics["mask"]["AP"],
                   "mask AP50": metrics["mask"]["AP50"], "box AP": metrics["box"]["AP"],
                   "box AP50": metrics["box"]["AP50"]}
        write_instance_report(out / "report.html", title=f"foveal instance evaluation of {Path(model_path).name}",
                              summary=summary, config={}, history=None, data=part, instances=found,
                              metrics=metrics, count=report_images)
    return metrics


__all__ = ["evaluate_instances"]
