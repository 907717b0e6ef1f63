"""Describe a dataset before training on it: sizes, class balance, and what is broken.

:func:`inspect_dataset` reads any spec :func:`~foveal.data.readers.load_dataset` accepts and
returns a JSON-serialisable report; :func:`format_inspection` renders it for the terminal.
Bad image files do not stop an inspection, they are what it reports; only a spec that cannot
be read at all raises a :class:`~foveal.errors.DataError`.

Example:
    >>> report = inspect_dataset("data/pets")                        # doctest: +SKIP
    >>> print(format_inspection(report))                              # doctest: +SKIP
    dataset: data/pets (folder), 2 classes
    ...
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from foveal.data.imagecheck import DEFAULT_MAX_PIXELS, ImageProbe, probe_bytes, probe_files
from foveal.data.readers import detect_format, load_dataset
from foveal.data.source import LabeledImages
from foveal.utils_io import printable_path

MAX_LISTED_PROBLEMS = 1000  # per split, in the report (the count is always exact)
_ARRAY_MODES = {1: "L", 3: "RGB", 4: "RGBA"}


def _imbalance(counts: dict[str, int]) -> float | None:
    values = list(counts.values())
    if not values or min(values) == 0:
        return None
    return round(max(values) / min(values), 3)


def _size_stats(sizes: list[tuple[int, int]]) -> dict[str, Any] | None:
    """Height/width range and the most common ``HxW`` of ``(height, width)`` pairs."""
    if not sizes:
        return None
    heights = [h for h, _ in sizes]
    widths = [w for _, w in sizes]
    (common_h, common_w), common_n = Counter(sizes).most_common(1)[0]
    return {
        "min_height": min(heights),
        "max_height": max(heights),
        "min_width": min(widths),
        "max_width": max(widths),
        "most_common": f"{common_h}x{common_w}",
        "most_common_count": common_n,
        "distinct_sizes": len(set(sizes)),
    }


def _split_report(
    counts: dict[str, int], problems: list[dict[str, str]], **extra: Any
) -> dict[str, Any]:
    report: dict[str, Any] = {
        "num_images": int(sum(counts.values())),
        "class_counts": counts,
        "imbalance_ratio": _imbalance(counts),
        "empty_classes": [name for name, n in counts.items() if n == 0],
    }
    report.update(extra)
    report["num_problems"] = len(problems)
    report["problems"] = problems[:MAX_LISTED_PROBLEMS]
    return report


def _probe_summary(probes: Iterable[ImageProbe]) -> dict[str, Any]:
    good = [p for p in probes if p.problem is None]
    return {
        "image_size": _size_stats([(p.height, p.width) for p in good]),
        "channel_modes": dict(Counter(p.mode for p in good).most_common()),
        "file_formats": dict(Counter(p.format for p in good).most_common()),
        "exif_turned": sum(p.orientation != 1 for p in good),
    }


# ---------------------------------------------------------------------------- folders


def _inspect_folder(root: Path, full: bool, max_pixels: int) -> dict[str, Any]:
    from foveal.data.readers.folder import scan_layout, structure_problems

    layout = scan_layout(root)
    non_images = layout.non_images()
    all_images = [p for fs in layout.splits.values() for f in fs for p in f.images]
    probes = dict(
        zip(all_images, probe_files(all_images, full=full, max_pixels=max_pixels))
    )
    names = layout.class_names
    splits = {}
    valid: dict[str, set[str]] = {}
    for split, folders in layout.splits.items():
        counts = {name: 0 for name in names}
        problems = []
        split_probes = []
        for folder in folders:
            ok = {p for p in folder.images if probes[p].problem is None}
            valid[str(folder.path)] = ok
            counts[folder.name] = len(ok)
            split_probes.extend(probes[p] for p in folder.images)
            problems.extend({"file": p, "problem": probes[p].problem} for p in folder.images
                            if probes[p].problem is not None)
            problems.extend({"file": p, "problem": non_images[p]} for p in folder.others)
        splits[split] = _split_report(
            counts, problems, path=str(layout.split_dirs[split]), **_probe_summary(split_probes)
        )
    dataset_problems = [
        {"file": path, "problem": problem} for path, problem in structure_problems(layout, valid)
    ]
    dataset_problems += [
        {"file": path, "problem": "ignored (not a train/val/test folder)"}
        for path in layout.ignored
    ]
    return {"class_names": names, "splits": splits, "problems": dataset_problems}


# ---------------------------------------------------------------------------- arrays, records


def _inspect_arrays(data: LabeledImages) -> dict[str, Any]:
    images = data.images
    assert images is not None
    n, h, w = images.shape[:3]
    channels = images.shape[3] if images.ndim == 4 else 1
    return _split_report(
        data.counts(),
        [],
        path=data.origin,
        array_shape=[int(d) for d in images.shape],
        dtype=str(images.dtype),
        image_size=_size_stats([(int(h), int(w))] * int(n)) if n else None,
        channel_modes={_ARRAY_MODES.get(channels, f"{channels} channels"): int(n)},
    )


def record_probes(data: LabeledImages, full: bool, max_pixels: int) -> list[ImageProbe]:
    """Probe the image bytes of every record, file by file (records named ``FILE#N``)."""
    import tensorflow as tf

    spec = data.tfrecord
    assert spec is not None
    features = {spec.image_key: tf.io.FixedLenFeature([], tf.string, default_value="")}
    probes = []
    for path in spec.files:
        ds = tf.data.TFRecordDataset(path).batch(256)
        ds = ds.map(lambda s: tf.io.parse_example(s, features))
        index = 0
        try:
            for batch in ds.as_numpy_iterator():
                for encoded in batch[spec.image_key]:
                    name = f"{path}#{index}"
                    probes.append(probe_bytes(encoded, name, full=full, max_pixels=max_pixels))
                    index += 1
        except tf.errors.OpError as exc:
            detail = str(exc).strip().splitlines()[0][:200]
            probes.append(ImageProbe(f"{path}#{index}", f"unreadable record: {detail}"))
    return probes


def _inspect_records(data: LabeledImages, full: bool, max_pixels: int) -> dict[str, Any]:
    probes = record_probes(data, full, max_pixels)
    problems = [{"file": p.path, "problem": p.problem} for p in probes if p.problem is not None]
    return _split_report(
        data.counts(),
        problems,
        path=data.origin,
        files=list(data.tfrecord.files) if data.tfrecord else [],
        **_probe_summary(probes),  # records' JPEGs are turned by their EXIF orientation too
    )


# ---------------------------------------------------------------------------- public


def inspect_dataset(
    spec: str, *, full: bool = True, max_image_pixels: int = DEFAULT_MAX_PIXELS
) -> dict[str, Any]:
    """Report on a dataset: per split, image count, class counts, sizes and problems.

    Args:
        spec: any dataset spec :func:`~foveal.data.readers.load_dataset` accepts.
        full: decode every image (finds truncated files); otherwise read headers only.
        max_image_pixels: images above this are reported as decompression bombs.

    Returns:
        A JSON-serialisable dict with ``spec``, ``format``, ``class_names``, ``num_classes``,
        ``splits`` (``{split: {num_images, class_counts, imbalance_ratio, empty_classes,
        image_size, ..., num_problems, problems}}``), dataset-level ``problems`` (such as an
        empty class folder) and ``num_problems`` (all of them).

    Raises:
        DataError: the spec cannot be read at all.
    """
    kind, target = detect_format(spec)
    if kind == "folder":
        body = _inspect_folder(Path(target), full, max_image_pixels)
    else:
        splits = load_dataset(spec, verify="none")
        body = {
            "class_names": next(iter(splits.values())).class_names,
            "splits": {
                name: _inspect_arrays(data)
                if data.images is not None
                else _inspect_records(data, full, max_image_pixels)
                for name, data in splits.items()
            },
            "problems": [],
        }
    total = len(body["problems"]) + sum(s["num_problems"] for s in body["splits"].values())
    return _jsonable({
        "spec": printable_path(spec),
        "format": kind,
        "num_classes": len(body["class_names"]),
        "class_names": list(body["class_names"]),
        "splits": body["splits"],
        "problems": body["problems"],
        "num_problems": total,
    })


def _format_size(stats: dict[str, Any] | None) -> str:
    if not stats:
        return "image size: unknown"
    h = f"{stats['min_height']}" + (
        f"..{stats['max_height']}" if stats["max_height"] != stats["min_height"] else ""
    )
    w = f"{stats['min_width']}" + (
        f"..{stats['max_width']}" if stats["max_width"] != stats["min_width"] else ""
    )
    return (
        f"image size: height {h}, width {w}; most common {stats['most_common']} "
        f"({stats['most_common_count']} images, {stats['distinct_sizes']} distinct sizes)"
    )


def _format_counter(title: str, counts: dict[str, int]) -> str:
    return f"{title}: " + ", ".join(f"{k} {v}" for k, v in counts.items())


def _format_split(name: str, split: dict[str, Any]) -> list[str]:
    lines = [f"{name}: {split['num_images']} images, {split['num_problems']} problems"
             + (f"  ({split['path']})" if split.get("path") else "")]
    counts = split["class_counts"]
    width = max([len("class"), *(len(c) for c in counts)])
    lines.append(f"  {'class'.ljust(width)}  {'images':>8}")
    lines += [f"  {c.ljust(width)}  {n:>8}" for c, n in counts.items()]
    ratio = split["imbalance_ratio"]
    lines.append(
        "  imbalance (max/min): "
        + (f"{ratio:g}" if ratio is not None else "n/a (classes without images: "
           + ", ".join(split["empty_classes"]) + ")")
    )
    lines.append("  " + _format_size(split.get("image_size")))
    if "array_shape" in split:
        lines.append(f"  array: {split['dtype']} {tuple(split['array_shape'])}")
    for key, title in (("channel_modes", "modes"), ("file_formats", "formats")):
        if split.get(key):
            lines.append("  " + _format_counter(title, split[key]))
    if split.get("exif_turned"):
        lines.append(f"  EXIF orientation: {split['exif_turned']} images are turned upright when read")
    lines += _format_problems(split["problems"], split["num_problems"])
    return lines


def _format_problems(problems: list[dict[str, str]], total: int, shown: int = 20) -> list[str]:
    if not problems:
        return []
    lines = ["  problems:"]
    lines += [f"    {p['file']}: {p['problem']}" for p in problems[:shown]]
    if total > shown:
        lines.append(f"    ... and {total - shown} more (see the JSON report)")
    return lines


def format_inspection(report: dict[str, Any]) -> str:
    """A readable text summary of :func:`inspect_dataset`'s report."""
    lines = [
        f"dataset: {report['spec']} ({report['format']}), {report['num_classes']} classes, "
        f"{report['num_problems']} problems"
    ]
    if report["problems"]:
        lines.append("dataset problems:")
        lines += [f"  {p['file']}: {p['problem']}" for p in report["problems"]]
    for name, split in report["splits"].items():
        lines += _format_split(name, split)
    return "\n".join(lines)


def _jsonable(value: Any) -> Any:
    """The report with numpy scalars turned into plain Python values."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value
