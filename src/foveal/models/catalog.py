"""The table behind ``foveal models``: each architecture with its parameters and input size."""

from __future__ import annotations

from typing import Any

from foveal.models.build import build_model
from foveal.models.registry import MODELS


def describe_models(num_classes: int = 10) -> list[dict[str, Any]]:
    """One row per registered architecture, built at its default input size to count parameters."""
    import keras

    rows = []
    for entry in MODELS:
        model = build_model(entry.name, num_classes=num_classes)
        rows.append({
            "name": entry.name,
            "input_shape": list(entry.meta["input_shape"]),
            "parameters": int(model.count_params()),
            "trainable_parameters": int(sum(keras.ops.size(w) for w in model.trainable_weights)),
            "preprocessing": entry.meta.get("preprocessing", "rescale"),
            "description": entry.meta.get("description", ""),
            "paper": entry.meta.get("paper", ""),
        })
        keras.backend.clear_session()
    return rows


def format_models(rows: list[dict[str, Any]]) -> str:
    """A terminal table of :func:`describe_models` rows."""
    header = f"{'name':<12} {'input':<12} {'parameters':>12}  description"
    lines = [header, "-" * len(header)]
    for r in rows:
        shape = "x".join(map(str, r["input_shape"]))
        lines.append(f"{r['name']:<12} {shape:<12} {r['parameters']:>12,}  {r['description']}")
    return "\n".join(lines)
