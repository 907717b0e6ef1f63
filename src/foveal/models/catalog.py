"""The table behind ``foveal models``: each architecture with its parameters and input size.

Building every architecture at full size to count its parameters takes about half a minute
(VGG-19 alone allocates 143 million weights), so the counts at each architecture's reference
setting are kept in :data:`REFERENCE_COUNTS`; the model tests check each entry against a real
build and against the published figure. Other class counts are built on demand.
"""

from __future__ import annotations

from typing import Any

from foveal.models.registry import MODELS

# name -> (classes, total parameters, trainable parameters) at the default input shape.
REFERENCE_COUNTS: dict[str, tuple[int, int, int]] = {
    "airbench": (10, 1_973_944, 1_971_640),
    "airbench28": (10, 295_520, 294_576),
    "alexnet": (1000, 62_378_344, 62_378_344),
    "dann_mnist": (10, 128_890, 128_890),
    "geron_cnn": (10, 1_413_834, 1_413_834),
    "googlenet": (1000, 13_378_280, 13_378_280),
    "lenet5": (10, 61_706, 61_706),
    "lenet5_classic": (10, 60_840, 60_000),
    "mobilenet": (1000, 4_253_864, 4_231_976),
    "mobilenetv2": (1000, 3_538_984, 3_504_872),
    "resnet18": (1000, 11_699_112, 11_689_512),
    "resnet18v2": (1000, 11_698_408, 11_690_600),
    "resnet34": (1000, 21_814_696, 21_797_672),
    "resnet34v2": (1000, 21_815_848, 21_800_616),
    "resnet50": (1000, 25_636_712, 25_583_592),
    "resnet50v2": (1000, 25_613_800, 25_568_360),
    "resnet101": (1000, 44_707_176, 44_601_832),
    "resnet101v2": (1000, 44_675_560, 44_577_896),
    "resnet152": (1000, 60_419_944, 60_268_520),
    "resnet152v2": (1000, 60_380_648, 60_236_904),
    "se_resnet50": (1000, 28_141_144, 28_088_024),
    "vgg11": (1000, 132_863_336, 132_863_336),
    "vgg13": (1000, 133_047_848, 133_047_848),
    "vgg16": (1000, 138_357_544, 138_357_544),
    "vgg19": (1000, 143_667_240, 143_667_240),
    "xception": (1000, 22_910_480, 22_855_952),
}


def count_parameters(name: str, num_classes: int) -> tuple[int, int]:
    """(total, trainable) parameters of ``name`` built at its default input shape."""
    import keras
    import numpy as np

    from foveal.models.build import build_model

    model = build_model(name, num_classes=num_classes)
    counts = int(model.count_params()), int(sum(np.prod(w.shape) for w in model.trainable_weights))
    keras.backend.clear_session()
    return counts


def describe_models(num_classes: int | None = None, build: bool = False) -> list[dict[str, Any]]:
    """One row per registered architecture.

    Args:
        num_classes: classes to count parameters for (default: each model's reference,
            1000 for ImageNet-sized inputs, 10 for the small ones).
        build: build every model to count, instead of reading :data:`REFERENCE_COUNTS`.
    """
    rows = []
    for entry in MODELS:
        reference = REFERENCE_COUNTS.get(entry.name)
        classes = num_classes or (reference[0] if reference else 10)
        if reference and classes == reference[0] and not build:
            total, trainable = reference[1], reference[2]
        else:
            total, trainable = count_parameters(entry.name, classes)
        rows.append({
            "name": entry.name,
            "input_shape": list(entry.meta["input_shape"]),
            "classes": classes,
            "parameters": total,
            "trainable_parameters": trainable,
            "preprocessing": entry.meta.get("preprocessing", "rescale"),
            "description": entry.meta.get("description", ""),
            "paper": entry.meta.get("paper", ""),
        })
    return rows


def format_models(rows: list[dict[str, Any]]) -> str:
    """A terminal table of :func:`describe_models` rows."""
    width = max(len(r["name"]) for r in rows)
    header = f"{'name':<{width}}  {'input':<11} {'classes':>7} {'parameters':>13}  description"
    lines = [header, "-" * len(header)]
    for r in rows:
        shape = "x".join(map(str, r["input_shape"]))
        lines.append(f"{r['name']:<{width}}  {shape:<11} {r['classes']:>7} {r['parameters']:>13,}  {r['description']}")
    return "\n".join(lines)
