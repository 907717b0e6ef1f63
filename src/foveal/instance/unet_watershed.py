"""A trained U-Net + marker watershed as an instance segmenter: predict, evaluate, targets.

The U-Net is any model written by ``foveal segment train`` on 3-class watershed targets
(classes ``background``, ``interior``, ``boundary``; :mod:`.watershed`), or on ``K + 2`` targets
of ``K`` object classes (``background``, ``interior:NAME`` for each class, ``boundary``;
:func:`~foveal.instance.watershed.target_layout`). This module turns its
class probabilities (:func:`foveal.segmentation.predict.predict_probabilities`: whole images
of any size, tiles, optional test-time flips) into instances with
:func:`~foveal.instance.watershed.watershed_instances`, and scores them with COCO mask AP
(:func:`foveal.evaluation.detection.coco_evaluate` with ``iou_type="segm"``, equal to
pycocotools), next to the baseline without watershed (connected components of the foreground).
With several classes the watershed floods the summed interiors and each region takes the class
with the most interior probability over its pixels, its score times that class's share
(:func:`~foveal.instance.watershed_family.class_instances`, as ``foveal instance train --model
unet-watershed`` does), and the mask AP is COCO's mean over the classes.

Ground truth for :func:`evaluate_watershed` is an instance folder (``images/`` +
``instances/``, see :mod:`.label_maps`; with ``split`` ``train``/``val``/``test`` the training
run's split of the same folder is rebuilt from the ``config.yaml`` beside the model; one class)
or a COCO instances JSON (one category, or the model's classes: each ``interior:NAME`` is the
category named NAME).

Example:
    >>> write_targets("my_instances/", boundary_width=2)                     # doctest: +SKIP
    >>> # foveal segment train --data my_instances/ ... then:
    >>> metrics = evaluate_watershed("runs/RUN/best.keras", "my_instances/", split="test")  # doctest: +SKIP
    >>> metrics["mask_ap"], metrics["mask_ap50"]                              # doctest: +SKIP
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from foveal.errors import ConfigError, DataError
from foveal.utils_io import atomic_write_text, ensure_output_dir, printable_path, write_metrics

#: The post-processing options and their defaults (see :func:`~.watershed.watershed_instances`).
POST_DEFAULTS: dict[str, Any] = {"interior_threshold": 0.5, "foreground_threshold": 0.5, "elevation": "interior",
                                 "min_marker_area": 4, "min_area": 8, "score": "interior"}


def post_options(**given: Any) -> dict[str, Any]:
    """The post-processing options: defaults updated with ``given`` (None means default); checked."""
    from foveal.instance.watershed import ELEVATIONS, SCORES

    unknown = sorted(set(given) - set(POST_DEFAULTS))
    if unknown:
        raise ConfigError(f"unknown watershed option(s) {unknown}", hint=f"use {', '.join(POST_DEFAULTS)}")
    out = POST_DEFAULTS | {k: v for k, v in given.items() if v is not None}
    if not (0 < out["interior_threshold"] < 1 and 0 < out["foreground_threshold"] <= 1):
        raise ConfigError("--interior-threshold must be in (0, 1) and --foreground-threshold in (0, 1]")
    if out["min_area"] < 0 or out["min_marker_area"] < 0:
        raise ConfigError("--min-area and --min-marker-area must not be negative")
    if out["elevation"] not in ELEVATIONS or out["score"] not in SCORES:
        raise ConfigError(f"--elevation must be one of {', '.join(ELEVATIONS)}, --score one of {', '.join(SCORES)}")
    return out


def load_segmenter(model_path: str | Path):
    """A segmenter trained on watershed targets, with its card and its channel layout
    (:func:`~foveal.instance.watershed.target_layout`: background, the interior of each object
    class, boundary, the class names); refuses other models in one line."""
    from foveal.instance.watershed import target_layout
    from foveal.models import load_model
    from foveal.segmentation.predict import check_card

    model, card = load_model(model_path)
    check_card(card)
    return model, card, target_layout(card.class_names)


def classify_instances(probabilities: np.ndarray, layout: tuple, *, baseline: bool = False,
                       **post: Any) -> dict[str, np.ndarray]:
    """Instances of one image's class probabilities: ``labels`` (HxW int32, 0 = background),
    ``scores`` and ``classes`` (indices into the layout's class names); with ``baseline`` also
    ``baseline_labels``, ``baseline_scores`` and ``baseline_classes`` (connected components).

    Args:
        probabilities: HxWxC, the model's classes.
        layout: :func:`~foveal.instance.watershed.target_layout` of the model's classes.
        **post: post-processing options (:data:`POST_DEFAULTS`).

    Example:
        >>> layout = (0, [1, 2], 3, ["disc", "square"])
        >>> p = np.zeros((8, 8, 4), np.float32); p[..., 0] = 1; p[2:6, 2:6] = (0, 0, 1, 0)
        >>> found = classify_instances(p, layout, min_area=1, min_marker_area=1)
        >>> found["classes"].tolist(), int((found["labels"] == 1).sum())
        ([1], 16)
    """
    from foveal.instance.watershed import connected_instances, watershed_instances
    from foveal.instance.watershed_family import class_instances

    options = post_options(**post)
    background, interiors, boundary, _ = layout
    ordered = np.asarray(probabilities, np.float32)[..., [background, *interiors, boundary]]
    merged = ordered if len(interiors) == 1 else np.stack(
        [ordered[..., 0], ordered[..., 1:-1].sum(axis=-1), ordered[..., -1]], axis=-1)
    labels, scores = watershed_instances(merged, **options)
    found = {"labels": labels}
    found["classes"], found["scores"] = class_instances(ordered, labels, scores)
    if baseline:
        base_labels, base_scores = connected_instances(merged, foreground_threshold=options["foreground_threshold"],
                                                       min_area=options["min_area"], score=options["score"])
        found["baseline_labels"] = base_labels
        found["baseline_classes"], found["baseline_scores"] = class_instances(ordered, base_labels, base_scores)
    return found


def predict_instances(model, card, image: np.ndarray, *, tta: str = "none", baseline: bool = False,
                      **post: Any) -> tuple[np.ndarray, np.ndarray] | tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Instances of one decoded image: an HxW int32 label map (0 = background) and the scores.

    With ``baseline`` the connected-component instances of the same probabilities follow. The
    classes of a several-class model: :func:`classify_instances` on
    :func:`foveal.segmentation.predict.predict_probabilities`.

    Example:
        >>> model, card, _ = load_segmenter("runs/RUN/best.keras")            # doctest: +SKIP
        >>> labels, scores = predict_instances(model, card, image, min_area=20)  # doctest: +SKIP
    """
    from foveal.instance.watershed import target_layout
    from foveal.segmentation.predict import predict_probabilities

    probs = predict_probabilities(model, card, image, tta=tta)
    found = classify_instances(probs, target_layout(card.class_names), baseline=baseline, **post)
    if not baseline:
        return found["labels"], found["scores"]
    return found["labels"], found["scores"], found["baseline_labels"], found["baseline_scores"]


def target_colours(names: Sequence[str]) -> np.ndarray:
    """Display colours of watershed target classes (:func:`~.watershed_family.target_names`):
    the three of :data:`~.watershed.TARGET_COLOURS` for one object class; with several,
    background black, the interiors in the PASCAL VOC colour map's order, boundary yellow."""
    from foveal.instance.watershed import TARGET_COLOURS
    from foveal.visualize.draw import default_palette

    if len(names) == 3:
        return TARGET_COLOURS
    interiors = default_palette(len(names) - 1)[1:]
    return np.concatenate([TARGET_COLOURS[:1], interiors, TARGET_COLOURS[2:]]).astype(np.uint8)


def write_targets(root: str | Path, *, output: str | Path | None = None, boundary_width: int = 2,
                  images: str | Path | None = None, instances: str = "instances", class_encoding: str = "single",
                  class_names: Sequence[str] | dict[int, str] | None = None, skip_invalid: bool = False,
                  overwrite: bool = False) -> dict[str, Any]:
    """Write the watershed targets of instance data as index PNGs ``masks/NAME.png`` (palette
    mode, the pixel value is the class) and ``palette.txt`` (``R G B name``), so ``foveal segment
    train --data FOLDER`` trains on them.

    One object class gives the 3 classes background (0), interior (1), boundary (2). ``K > 1``
    classes give ``K + 2``: background (0), ``interior:NAME`` (``1 + c`` for the ``c``-th class),
    boundary (``K + 1``), the names ``foveal segment instances evaluate|predict`` match to the
    COCO categories (:func:`~.watershed_family.target_names`). Boundary pixels carry no class.
    Crowd regions (``iscrowd: 1``) are "don't care", as in the instance task's own targets:
    index 255 coloured PASCAL VOC's void (224 224 192), which segmentation's reader takes as its
    ignore label (:data:`foveal.segmentation.data.VOID_COLOUR`) by colour or by index, so
    ``foveal segment train`` leaves them out of the loss and the metrics.

    Args:
        root: an instance folder (``images/`` + ``instances/`` label maps; the targets are written
            into it), or a COCO instances JSON (polygons or RLE; ``output`` required: its images are
            copied to ``output/images/``, ``masks/`` and ``palette.txt`` written beside them).
        output: the folder to write for a COCO file (new or empty unless ``overwrite``).
        boundary_width: width in pixels of the boundary class (:func:`~.watershed.instance_targets`).
        images: a folder's image folder name (default ``images``), or a COCO file's image folder
            (default: found beside it).
        instances: a folder's label-map folder name.
        class_encoding, class_names: how a folder's label maps name classes
            (:func:`~.label_maps.label_maps_to_coco`): ``single`` (one class, 3 targets) or
            ``cityscapes`` (``class id * 1000 + instance``; its class-only values of instance
            classes are crowd regions).
        skip_invalid: skip (and list) unpaired, mis-sized or invalid files instead of raising.

    Returns:
        The manifest: root, masks written, boundary_width, classes (the target names), object
        classes, ``crowd_as_ignore`` (crowd regions written as "don't care"), skipped files.

    Example:
        >>> write_targets("shapes/annotations/instances_train.json", output="shapes-targets/")  # doctest: +SKIP
        >>> # foveal segment train --data shapes-targets/ ...
    """
    source = Path(root)
    if output is not None and source.suffix.lower() != ".json":
        raise ConfigError(f"--output {output}: an instance folder's targets are written into it ({source})",
                          hint="leave out --output, or give a COCO .json file")
    if source.suffix.lower() == ".json" or class_encoding != "single":
        return _class_targets(source, output=output, boundary_width=boundary_width, images=images,
                              instances=instances, class_encoding=class_encoding, class_names=class_names,
                              skip_invalid=skip_invalid, overwrite=overwrite)
    return _folder_targets(source, boundary_width=boundary_width, images=str(images or "images"),
                           instances=instances, skip_invalid=skip_invalid)


def _folder_targets(root: Path, *, boundary_width: int, images: str, instances: str,
                    skip_invalid: bool) -> dict[str, Any]:
    """One class: each label map's 3-class targets, as ever."""
    from foveal.data.files import image_size, write_png
    from foveal.instance.label_maps import find_label_map_pairs, read_label_map
    from foveal.instance.watershed import TARGET_CLASSES, TARGET_COLOURS, instance_targets

    pairs, skipped = find_label_map_pairs(root, images=images, instances=instances, skip_invalid=skip_invalid)
    ensure_output_dir(root / "masks")
    written = 0
    for image, label_path in pairs:
        labels = read_label_map(label_path)
        if labels.shape != image_size(image):
            problem = (f"{label_path}: size {labels.shape[1]}x{labels.shape[0]} differs from its image {image} "
                       f"({image_size(image)[1]}x{image_size(image)[0]})")
            if not skip_invalid:
                raise DataError(problem)
            skipped.append(problem)
            continue
        write_png(root / "masks" / f"{image.stem}.png", instance_targets(labels, boundary_width), TARGET_COLOURS)
        written += 1
    _write_palette(root, list(TARGET_CLASSES), TARGET_COLOURS)
    return {"root": str(root), "masks": written, "boundary_width": boundary_width, "skipped": skipped,
            "classes": list(TARGET_CLASSES), "object_classes": ["object"], "crowd_as_ignore": 0}


def _write_palette(root: Path, names: Sequence[str], colours: np.ndarray, note: str = "") -> None:
    atomic_write_text(root / "palette.txt", note + "".join(f"{r} {g} {b} {name}\n" for (r, g, b), name
                                                            in zip(np.asarray(colours).tolist(), names)))


def _class_targets(source: Path, *, output: str | Path | None, boundary_width: int, images: str | Path | None,
                   instances: str, class_encoding: str, class_names: Sequence[str] | dict[int, str] | None,
                   skip_invalid: bool, overwrite: bool) -> dict[str, Any]:
    """A COCO file's (or a Cityscapes-encoded folder's) targets by class, through the instance
    task's own targets (:class:`~.watershed_family.TargetImages`), so both routes learn the same."""
    import shutil

    from foveal.data.files import write_png
    from foveal.errors import OutputError
    from foveal.instance.data import read_instances
    from foveal.instance.label_maps import label_maps_to_coco
    from foveal.instance.watershed_family import IGNORE, TargetImages, target_names
    from foveal.segmentation.data import VOID_COLOUR

    if source.suffix.lower() == ".json":
        if output is None:
            raise ConfigError(f"{source}: a COCO file's targets need --output DIR (its images are copied there)")
        out = Path(output)
        if out.exists() and any(out.iterdir()) and not overwrite:
            raise OutputError(f"--output {out}: not empty", hint="choose a new folder, or pass --overwrite")
        data = read_instances(source, images=images, skip_invalid=skip_invalid)
        skipped = [": ".join(map(str, s)) if isinstance(s, (tuple, list)) else str(s)
                   for s in data.info.get("skipped", []) or []]
    else:  # a folder's targets go into it (write_targets refused --output)
        out = source
        folder = source / str(images or "images")
        coco = label_maps_to_coco(source, class_encoding=class_encoding, class_names=class_names,
                                  images=str(images or "images"), instances=instances, skip_invalid=skip_invalid)
        for im in coco["images"]:
            im["file_name"] = str(folder / im["file_name"])
        data = read_instances(coco, skip_invalid=skip_invalid)
        skipped = list(coco["info"]["skipped"])
    names = target_names(data.class_names)
    colours = target_colours(names)
    entries = np.zeros((256, 3), np.uint8)  # the PNGs' palette: the classes' colours, VOC's void at 255
    entries[: len(colours)], entries[IGNORE] = colours, VOID_COLOUR
    ensure_output_dir(out / "masks")
    if out != source:
        (out / "images").mkdir(exist_ok=True)
    crowd = 0
    for index, path in enumerate(data.paths):
        path = Path(str(path))
        if out != source:
            shutil.copyfile(path, out / "images" / path.name)
        target = TargetImages(data, boundary_width).targets(index)  # crowd regions: IGNORE (255)
        crowd += int(np.asarray(data.difficult[index], bool).sum())
        write_png(out / "masks" / f"{path.stem}.png", target, entries)
    _write_palette(out, names, colours, note=f"# {' '.join(map(str, VOID_COLOUR))} (index {IGNORE}, not a class): "
                   "crowd regions, no loss and no metric\n")
    return {"root": str(out), "masks": len(data), "boundary_width": boundary_width, "skipped": skipped,
            "classes": names, "object_classes": list(data.class_names), "crowd_as_ignore": crowd}


def load_ground_truth(data: str | Path, *, split: str = "all", model_path: str | Path | None = None,
                      images: str | Path | None = None) -> tuple[list[Path], dict[str, Any]]:
    """The image files and their COCO ground truth (image ids 1..N in file order).

    Args:
        data: an instance folder (``images/`` + ``instances/``) or a COCO instances JSON.
        split: ``all``, or the training run's ``train``/``val``/``test`` split of an instance
            folder that also holds the run's ``masks/`` (rebuilt from the ``config.yaml``
            beside ``model_path``).
        model_path: the model, for ``split``.
        images: the image folder of a COCO file (default: found beside it).
    """
    from foveal.instance.label_maps import find_label_map_pairs, label_map_annotations, read_label_map

    data = Path(data)
    if data.suffix.lower() == ".json":
        if split != "all":
            raise ConfigError(f"--split {split} needs an instance folder, not a COCO file; give --split all")
        return _coco_ground_truth(data, images)
    pairs, _ = find_label_map_pairs(data)
    if split != "all":
        wanted = {Path(p).stem for p in _split_images(data, split, model_path)}
        pairs = [(i, m) for i, m in pairs if i.stem in wanted]
    coco_images, annotations = [], []
    for image_id, (image, label_path) in enumerate(pairs, start=1):
        labels = read_label_map(label_path)
        coco_images.append({"id": image_id, "file_name": image.name, "width": int(labels.shape[1]),
                            "height": int(labels.shape[0])})
        annotations += label_map_annotations(labels, image_id=image_id, first_id=len(annotations) + 1)
    gt = {"images": coco_images, "annotations": annotations,
          "categories": [{"id": 1, "name": "object", "supercategory": ""}]}
    return [i for i, _ in pairs], gt


def _split_images(data: Path, split: str, model_path: str | Path | None) -> list[str]:
    from foveal.data.splits import training_run_splits
    from foveal.segmentation.train import SegmentConfig, load_splits

    parts = training_run_splits(model_path, split, SegmentConfig, load_splits, {"data": str(data)})
    return [str(p) for p in parts[split].image_paths]


def _coco_ground_truth(path: Path, images: str | Path | None) -> tuple[list[Path], dict[str, Any]]:
    from foveal.data.boxes.coco import _file_names, _image_folder

    try:
        gt = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read the COCO JSON ({exc})") from None
    if not isinstance(gt, dict) or not all(isinstance(gt.get(k), list) for k in ("images", "annotations", "categories")):
        raise DataError(f"{path}: not a COCO instances file (images, annotations, categories)")
    folder = _image_folder(path, images, _file_names(gt))
    files = [Path(str(im["file_name"])) if Path(str(im["file_name"])).is_absolute()
             else folder / Path(str(im["file_name"])).name for im in gt["images"]]
    missing = [f for f in files if not f.is_file()]
    if missing:
        raise DataError(f"{path}: image {missing[0].name} not found in {folder}", hint="give the folder with --images")
    return files, gt


def match_categories(names: Sequence[str], categories: Sequence[dict[str, Any]], where: Any = "the data") -> np.ndarray:
    """The COCO category id of each of a model's object classes (:func:`~.watershed.target_layout`'s
    names): a one-class model scores a one-category ground truth whatever the names; with
    several classes each ``interior:NAME`` is the category named NAME (or with id NAME), and the
    ground truth may have no category the model lacks."""
    if len(names) == 1 and len(categories) == 1:
        return np.array([int(categories[0]["id"])], np.int64)
    if len(names) == 1:
        raise DataError(f"{where}: {len(categories)} categories, but the model finds objects of one class",
                        hint="train it on targets with an interior:NAME class per category, or give one category")
    by_name = {str(c.get("name")): int(c["id"]) for c in categories} | {str(c["id"]): int(c["id"]) for c in categories}
    missing = [n for n in names if n not in by_name]
    ids = [by_name[n] for n in names if n in by_name]
    extra = sorted({int(c["id"]) for c in categories} - set(ids))
    if missing or extra:
        known = ", ".join(str(c.get("name")) for c in categories)
        raise DataError(f"{where}: the model's classes ({', '.join(names)}) are not the categories ({known})",
                        hint="name the model's interior classes interior:CATEGORY, one per category")
    return np.array(ids, np.int64)


def evaluate_watershed(
    model_path: str | Path,
    data: str | Path,
    *,
    split: str = "all",
    images: str | Path | None = None,
    output: str | Path | None = None,
    tta: str = "none",
    max_dets: Sequence[int] = (1, 10, 100),
    baseline: bool = True,
    report_images: int = 12,
    **post: Any,
) -> dict[str, Any]:
    """COCO mask AP of a U-Net + watershed on instance ground truth, with the baseline.

    Args:
        model_path: a ``.keras`` segmenter trained on watershed targets.
        data, split, images: the ground truth (see :func:`load_ground_truth`).
        output: folder for ``metrics.json``, ``results.json`` (COCO results, compressed RLE),
            ``instances/NAME.png`` (label maps), ``overlays/NAME.png`` and ``report.html`` (the
            instance task's report: box and mask AP, the baseline, drawn examples).
        report_images: images drawn in the report.
        tta: ``none``, ``flips`` or ``d4`` (averaged class probabilities).
        max_dets: COCO's detections-per-image limits; AP and AP50 are taken at the last.
        baseline: also score connected components of the foreground (no watershed).
        **post: post-processing options (:data:`POST_DEFAULTS`).

    Returns:
        ``mask_ap``, ``mask_ap50``, ``mask_ap75`` (COCO's mean over the classes), all twelve
        COCO ``stats``, counts, timing, the options and ``baseline`` (the same numbers without
        watershed).
    """
    from foveal.data.files import decode_file
    from foveal.segmentation.predict import predict_probabilities

    options = post_options(**post)
    model, card, layout = load_segmenter(model_path)
    files, gt = load_ground_truth(data, split=split, model_path=model_path, images=images)
    categories = match_categories(layout[3], gt["categories"], data)
    out = ensure_output_dir(output) if output is not None else None
    results, base_results, seconds = [], [], 0.0
    for im, path in zip(gt["images"], files):
        image = decode_file(path, card.input_shape[-1])
        started = time.perf_counter()
        found = classify_instances(predict_probabilities(model, card, image, tta=tta), layout, baseline=baseline,
                                   **options)
        seconds += time.perf_counter() - started
        results += _results(found["labels"], found["scores"], im["id"], categories[found["classes"]])
        if baseline:
            base_results += _results(found["baseline_labels"], found["baseline_scores"], im["id"],
                                     categories[found["baseline_classes"]])
        if out is not None:
            _write_instances(out, path, image, found["labels"])
    metrics = {"model": str(model_path), "data": str(data), "split": split, "images": len(files),
               "ground_truth_instances": len(gt["annotations"]), "classes": len(categories),
               **_ap(gt, results, max_dets),
               "seconds_per_image": round(seconds / max(len(files), 1), 3), "post_processing": options,
               "tta": tta, "max_dets": list(max_dets)}
    if baseline:
        metrics["baseline"] = {"method": "connected components of the foreground", **_ap(gt, base_results, max_dets)}
    if out is not None:
        atomic_write_text(out / "results.json", json.dumps(results))
        write_metrics(out, metrics)
        write_watershed_report(out / "report.html", model_path, files, gt, results, metrics, count=report_images)
    return metrics


class _ReportImages:
    """The ground truth of :func:`evaluate_watershed` as the instance report draws it (files,
    the class names in category order, each image's true boxes in pixel corners)."""

    def __init__(self, files: Sequence[Path], gt: dict[str, Any]) -> None:
        self.paths = [Path(f) for f in files]
        self.class_names = [str(c.get("name", c["id"])) for c in gt["categories"]]
        by_image: dict[int, list[list[float]]] = {int(im["id"]): [] for im in gt["images"]}
        for a in gt["annotations"]:
            if not a.get("iscrowd"):
                x, y, w, h = (float(v) for v in a["bbox"])
                by_image.setdefault(int(a["image_id"]), []).append([x, y, x + w, y + h])
        self.boxes = [np.asarray(by_image[int(im["id"])], np.float32).reshape(-1, 4) for im in gt["images"]]

    def __len__(self) -> int:
        return len(self.paths)


def write_watershed_report(path: Path, model_path: str | Path, files: Sequence[Path], gt: dict[str, Any],
                           results: list[dict[str, Any]], metrics: dict[str, Any], *, count: int = 12) -> Path:
    """The instance task's HTML report (:func:`foveal.instance.report.write_instance_report`) of a
    U-Net + watershed evaluation: COCO box and mask AP side by side, the baseline's mask AP in
    the summary, and the first images with their instances drawn over the true boxes."""
    from foveal.evaluation.detection import coco_evaluate
    from foveal.instance.report import write_instance_report
    from foveal.instance.scoring import ImageInstances, segm_evaluate

    box_results = [{k: v for k, v in r.items() if k != "segmentation"} for r in results]
    mask = segm_evaluate(gt, results)
    box = coco_evaluate(gt, box_results).stats if box_results else dict.fromkeys(mask, 0.0)
    report_metrics = {"box": {k: round(float(v), 6) for k, v in box.items()},
                      "mask": {k: round(float(v), 6) for k, v in mask.items()}, "num_images": len(files),
                      "num_instances": sum(1 for a in gt["annotations"] if not a.get("iscrowd")),
                      "score_threshold": 0.0}
    index = {int(c["id"]): k for k, c in enumerate(gt["categories"])}
    found = []
    for im in gt["images"]:
        mine = [r for r in results if r["image_id"] == im["id"]]
        boxes = np.array([[x, y, x + w, y + h] for x, y, w, h in (r["bbox"] for r in mine)], np.float32).reshape(-1, 4)
        found.append(ImageInstances(boxes, np.array([r["score"] for r in mine], np.float64),
                                    np.array([index[int(r["category_id"])] for r in mine], np.int64), 0.0,
                                    [r["segmentation"] for r in mine]))
    summary = {"model": str(model_path), "data": metrics["data"], "split": metrics["split"],
               "mask AP": metrics["mask_ap"], "mask AP50": metrics["mask_ap50"], "mask AP75": metrics["mask_ap75"],
               "box AP": report_metrics["box"]["AP"], "instances found": metrics["predicted_instances"],
               "seconds per image": metrics["seconds_per_image"], "test-time augmentation": metrics["tta"],
               **{f"watershed {k}": v for k, v in metrics["post_processing"].items()}}
    if "baseline" in metrics:
        summary |= {"baseline (connected components) mask AP": metrics["baseline"]["mask_ap"],
                    "baseline mask AP50": metrics["baseline"]["mask_ap50"]}
    return write_instance_report(path, title=f"foveal U-Net + watershed evaluation of {Path(model_path).name}",
                                 summary=summary, config={}, history=None, data=_ReportImages(files, gt),
                                 instances=found, metrics=report_metrics, count=count)


def _results(labels: np.ndarray, scores: np.ndarray, image_id: int, category: int) -> list[dict[str, Any]]:
    from foveal.instance.watershed import instances_to_results

    return instances_to_results(labels, scores, image_id, category)


def _ap(gt: dict[str, Any], results: list[dict[str, Any]], max_dets: Sequence[int]) -> dict[str, Any]:
    from foveal.evaluation.detection import coco_evaluate

    ev = coco_evaluate(gt, results, iou_type="segm", max_dets=max_dets)
    # AP at the largest limit, as pycocotools' summary takes maxDets[-1] (stats name the limit 100)
    ap = {name: _mean_valid(ev.precision[sel, :, :, 0, -1])
          for name, sel in (("mask_ap", slice(None)), ("mask_ap50", _at(0.5)), ("mask_ap75", _at(0.75)))}
    return {**ap, "predicted_instances": len(results), "stats": ev.stats}


def _at(iou: float) -> np.ndarray:
    from foveal.evaluation.detection import IOU_THRESHOLDS

    return np.flatnonzero(np.isclose(IOU_THRESHOLDS, iou))


def _mean_valid(values: np.ndarray) -> float:
    valid = values[values > -1]
    return float(np.mean(valid)) if valid.size else -1.0


def _write_instances(out: Path, path: Path, image: np.ndarray, labels: np.ndarray) -> dict[str, str]:
    from foveal.data.files import write_png
    from foveal.instance.label_maps import write_label_map
    from foveal.visualize.draw import overlay_classes

    name = f"{Path(path).stem}.png"
    rng = np.random.default_rng(0)  # the same colour for the same id in every image
    colours = rng.integers(40, 256, size=(int(labels.max()) + 1, 3)).astype(np.uint8)
    painted = overlay_classes(image, labels, colours, skip=(0,))
    from skimage.segmentation import find_boundaries

    painted[find_boundaries(labels, mode="inner") & (labels > 0)] = (255, 255, 255)
    return {"instances": str(write_label_map(out / "instances" / name, labels)),
            "overlay": str(write_png(out / "overlays" / name, painted))}


def predict_watershed(model_path: str | Path, images: Iterable[str | Path], *, output: str | Path | None = None,
                      tta: str = "none", skip_invalid: bool = False, **post: Any) -> list[dict[str, Any]]:
    """Instances for image files (folders searched recursively); with ``output``, writes
    ``instances/NAME.png`` (label maps), ``overlays/NAME.png`` and ``predictions.json`` (per
    file: size and instances with class, score, box and compressed RLE mask; the class is
    ``object`` for a one-class model).

    Example:
        >>> rows = predict_watershed("runs/RUN/best.keras", ["slices/"], output="cells/")  # doctest: +SKIP
    """
    from foveal.prediction import predict_files
    from foveal.segmentation.predict import predict_probabilities

    options = post_options(**post)
    model, card, layout = load_segmenter(model_path)
    out = ensure_output_dir(output) if output is not None else None

    def rows_for(batch: list[tuple[Path, np.ndarray]]) -> list[dict[str, Any]]:
        (path, image), = batch  # each image at its own size
        instances = classify_instances(predict_probabilities(model, card, image, tta=tta), layout, **options)
        labels, scores = instances["labels"], instances["scores"]
        found = _results(labels, scores, 0, 1)
        names = [layout[3][int(c)] for c in instances["classes"]]
        row: dict[str, Any] = {"file": printable_path(path), "size": [int(labels.shape[1]), int(labels.shape[0])],
                               "count": len(found), "mean_score": round(float(np.mean(scores)), 4) if len(scores) else None,
                               "instances": [{"class": name, **{k: r[k] for k in ("score", "bbox", "segmentation")}}
                                             for name, r in zip(names, found)]}
        if out is not None:
            row |= _write_instances(out, path, image, labels)
        return [row]

    return predict_files(images, card.input_shape[-1], rows_for, batch_size=1, skip_invalid=skip_invalid,
                         output=out, tables={"predictions.json": json.dumps})


def format_rows(rows: list[dict[str, Any]]) -> str:
    """One line per file: its instance count and mean score."""
    lines = []
    for r in rows:
        lines.append(f"{r['file']}: " + (r["error"] if "error" in r else
                                          f"{r['count']} instance(s), mean score {r['mean_score']}"))
    return "\n".join(lines)


def format_metrics(metrics: dict[str, Any]) -> str:
    """The headline lines of :func:`evaluate_watershed`'s metrics."""
    def line(name: str, m: dict[str, Any]) -> str:
        return (f"{name}: mask AP {m['mask_ap']:.4f}, AP50 {m['mask_ap50']:.4f}, AP75 {m['mask_ap75']:.4f} "
                f"({m['predicted_instances']} instances)")

    text = [f"{metrics['images']} image(s), {metrics['ground_truth_instances']} ground-truth instances "
            f"(split {metrics['split']}, max {metrics['max_dets'][-1]} detections per image)",
            line("U-Net + watershed", metrics)]
    if "baseline" in metrics:
        text.append(line("baseline (connected components)", metrics["baseline"]))
    return "\n".join(text)


__all__ = ["POST_DEFAULTS", "classify_instances", "evaluate_watershed", "match_categories", "write_watershed_report", "format_metrics", "format_rows", "load_ground_truth",
           "load_segmenter", "post_options", "predict_instances", "predict_watershed", "target_colours", "write_targets"]
