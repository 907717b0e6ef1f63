"""``foveal detect score GT.json RESULTS.json``: COCO and VOC numbers for any detector's results.

A COCO results file (a list of ``{"image_id", "category_id", "bbox": [x, y, w, h], "score"}``)
is scored against a COCO instances file with the numbers ``foveal detect evaluate`` prints (the
COCO ones on the files as they are: their ids, areas and crowd flags). Both files are checked
first, so a stranger's file gives a one-line error naming what is wrong.

Example:
    >>> metrics = score_results("instances_val2017.json", "detections.json")  # doctest: +SKIP
    >>> metrics["coco"]["AP"]  # doctest: +SKIP
    0.41
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from foveal.errors import DataError

_GT_HINT = "expected a COCO instances JSON with 'images', 'annotations' (bbox [x, y, w, h]) and 'categories'"
_RES_HINT = ('expected a COCO results JSON: a list of {"image_id", "category_id", "bbox": [x, y, w, h], '
             '"score"} records')
_SHOWN = 5


def _read_json(source: str | Path | Any, what: str, hint: str) -> Any:
    if not isinstance(source, (str, Path)):
        return source
    path = Path(source)
    if not path.is_file():
        raise DataError(f"{what} file not found: {path}", hint=hint)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})", hint=hint) from None
    except ValueError as exc:
        raise DataError(f"{path}: not valid JSON ({exc})", hint=hint) from None


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _box(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and len(value) == 4 and all(map(_number, value))


def _examples(values: list) -> str:
    shown = ", ".join(map(str, values[:_SHOWN]))
    return shown + (f", ... ({len(values)} in all)" if len(values) > _SHOWN else "")


def _record_problem(record: Any, keys: tuple[str, ...]) -> str | None:
    if not isinstance(record, dict):
        return f"is a {type(record).__name__}, not an object"
    missing = [k for k in keys if k not in record]
    if missing:
        return f"has no {', '.join(repr(k) for k in missing)}"
    if "bbox" in keys and not _box(record["bbox"]):
        return f"has bbox {record['bbox']!r}, not four numbers [x, y, w, h]"
    if "bbox" in keys and (record["bbox"][2] < 0 or record["bbox"][3] < 0):
        return f"has a negative width or height in bbox {record['bbox']!r}"
    if "score" in keys and not _number(record["score"]):
        return f"has score {record['score']!r}, not a finite number"
    for key in ("image_id", "category_id", "id"):
        if key in keys and not (isinstance(record[key], int) and not isinstance(record[key], bool)):
            return f"has {key} {record[key]!r}, not an integer"
    return None


def _check_records(records: list, keys: tuple[str, ...], where: str, what: str, hint: str) -> None:
    for i, record in enumerate(records):
        problem = _record_problem(record, keys)
        if problem is not None:
            raise DataError(f"{where}: {what} {i} {problem}", hint=hint)


def check_ground_truth(gt: Any, where: str = "ground truth") -> dict:
    """A COCO instances dict, checked: lists present, records complete, ids known and unique."""
    if not isinstance(gt, dict):
        raise DataError(f"{where}: a COCO instances file holds an object, not a {type(gt).__name__}", hint=_GT_HINT)
    missing = [k for k in ("images", "annotations", "categories") if not isinstance(gt.get(k), list)]
    if missing:
        raise DataError(f"{where}: no {', '.join(repr(k) for k in missing)} list", hint=_GT_HINT)
    _check_records(gt["images"], ("id",), where, "image", _GT_HINT)
    _check_records(gt["categories"], ("id", "name"), where, "category", _GT_HINT)
    _check_records(gt["annotations"], ("image_id", "category_id", "bbox"), where, "annotation", _GT_HINT)
    for kind, items in (("image", gt["images"]), ("category", gt["categories"])):
        ids = [int(x["id"]) for x in items]
        if len(set(ids)) != len(ids):
            twice = sorted({i for i in ids if ids.count(i) > 1})
            raise DataError(f"{where}: {kind} ids are repeated: {_examples(twice)}", hint=_GT_HINT)
    if not gt["categories"]:
        raise DataError(f"{where}: the 'categories' list is empty", hint=_GT_HINT)
    _known_ids(gt["annotations"], gt, where, "annotation")
    return gt


def _known_ids(records: list[dict], gt: dict, where: str, what: str) -> None:
    images = {int(im["id"]) for im in gt["images"]}
    cats = {int(c["id"]): str(c["name"]) for c in gt["categories"]}
    for key, known, kind in (("image_id", images, "image"), ("category_id", cats, "category")):
        unknown = sorted({int(r[key]) for r in records} - set(known))
        if unknown:
            bad = set(unknown)
            count = sum(int(r[key]) in bad for r in records)
            listed = (f"; its categories are {_examples([f'{i} {n}' for i, n in sorted(cats.items())])}"
                      if kind == "category" else "")
            raise DataError(f"{where}: {count} {what}(s) name {kind} ids the ground truth does not have: "
                            f"{_examples(unknown)}{listed}",
                            hint="score the results against the ground truth file they were made for")


def check_results(results: Any, gt: dict, where: str = "results") -> list[dict]:
    """A COCO results list, checked against ``gt``: records complete, image and category ids known."""
    if isinstance(results, dict) and isinstance(results.get("annotations"), list):
        raise DataError(f"{where}: this looks like a ground-truth file (it has 'annotations'), not results",
                        hint=f"give the ground truth first, then the results; {_RES_HINT}")
    if not isinstance(results, list):
        raise DataError(f"{where}: a results file holds a list, not a {type(results).__name__}", hint=_RES_HINT)
    _check_records(results, ("image_id", "category_id", "bbox", "score"), where, "result", _RES_HINT)
    _known_ids(results, gt, where, "result")
    return results


def _as_boxed(gt: dict, results: list[dict], origin: str):
    """The ground truth as :class:`BoxedImages` and the results as one ImageDetections per image."""
    from foveal.data.boxes import BoxedImages
    from foveal.detection.scoring import ImageDetections
    from foveal.ops.boxes import xywh_to_corners

    cats = sorted((int(c["id"]), str(c["name"])) for c in gt["categories"])
    index = {cid: k for k, (cid, _) in enumerate(cats)}
    names = [name for _, name in cats]
    names = [n if names.count(n) == 1 else f"{n} (id {cid})" for (cid, _), n in zip(cats, names)]
    order = {int(im["id"]): i for i, im in enumerate(gt["images"])}

    def corners(records: list[dict]) -> np.ndarray:
        return xywh_to_corners(np.asarray([r["bbox"] for r in records], np.float64).reshape(-1, 4)).astype(np.float32)

    truth: list[list[dict]] = [[] for _ in order]
    for ann in gt["annotations"]:
        truth[order[int(ann["image_id"])]].append(ann)
    found: list[list[dict]] = [[] for _ in order]
    for res in results:
        found[order[int(res["image_id"])]].append(res)
    data = BoxedImages(
        paths=np.asarray([str(im.get("file_name", im["id"])) for im in gt["images"]]),
        boxes=[corners(anns) for anns in truth],
        labels=[np.asarray([index[int(a["category_id"])] for a in anns], np.int32) for anns in truth],
        class_names=names,
        image_sizes=np.asarray([(int(im.get("width", 0)), int(im.get("height", 0))) for im in gt["images"]],
                               np.int64).reshape(-1, 2),
        difficult=[np.asarray([bool(a.get("iscrowd", 0) or a.get("ignore", 0)) for a in anns], bool)
                   for anns in truth],
        origin=origin, info={"category_ids": [cid for cid, _ in cats]})
    detections = [ImageDetections(corners(rs), np.asarray([float(r["score"]) for r in rs], np.float64),
                                  np.asarray([index[int(r["category_id"])] for r in rs], np.int64)) for rs in found]
    return data, detections


def score_results(ground_truth: str | Path | dict, results: str | Path | list, *,
                  score_threshold: float = 0.25) -> dict[str, Any]:
    """COCO and VOC metrics of a COCO results file (path or list) against a COCO instances file
    (path or dict): those of :func:`foveal.detection.scoring.score_detections`, AP on every
    result, precision and recall at ``score_threshold``.

    Raises:
        DataError: an unreadable file, a malformed record, or ids the ground truth lacks.
    """
    from foveal.detection.scoring import score_detections
    from foveal.evaluation.detection import coco_evaluate

    gt_where = str(ground_truth) if isinstance(ground_truth, (str, Path)) else "ground truth"
    res_where = str(results) if isinstance(results, (str, Path)) else "results"
    gt = check_ground_truth(_read_json(ground_truth, "ground truth", _GT_HINT), gt_where)
    res = check_results(_read_json(results, "results", _RES_HINT), gt, res_where)
    if not gt["images"]:
        raise DataError(f"{gt_where}: the 'images' list is empty", hint=_GT_HINT)
    data, detections = _as_boxed(gt, res, gt_where)
    lowest = min((float(r["score"]) for r in res), default=score_threshold)
    for d in detections:
        d.threshold = lowest
    coco = coco_evaluate(gt, res).stats
    metrics, _ = score_detections(data, detections, score_threshold=score_threshold, coco=coco)
    return {"ground_truth": gt_where, "results": res_where} | metrics
