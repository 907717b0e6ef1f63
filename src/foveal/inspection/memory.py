"""How much memory a model needs: parameters, activations, inference and training totals.

The estimate follows the reasoning of Géron, *Hands-On Machine Learning with Scikit-Learn,
Keras and TensorFlow* (2nd ed., O'Reilly 2019), ch. 14 ("Memory Requirements"): a layer's
output must be held in memory, per instance, and during training every output is kept for the
backward pass. It is an upper bound for inference (a runtime may free a tensor once its last
consumer ran) and a good estimate for training.

* parameters: every weight (trainable and not).
* activations per instance: the sum of all layer outputs (the model input is reported apart).
* inference: parameters + batch x (input + activations).
* training: parameters + gradients (one per trainable weight) + optimizer slots (Adam keeps
  two per trainable weight; SGD with momentum one) + batch x (input + activations).

**1 MB = 1,000,000 bytes** (and 1 GB = 1,000 MB), the decimal units the texts use: a
200-filter 150x100 float32 feature map is 12 MB, and 1.2 GB for a batch of 100.

Example:
    >>> import keras
    >>> x = keras.Input((150, 100, 3))
    >>> model = keras.Model(x, keras.layers.Conv2D(200, 5, padding="same")(x))
    >>> budget = memory_budget(model, batch_size=100)
    >>> budget["activations_mb_per_instance"], budget["activations_mb"]
    (12.0, 1200.0)
"""

from __future__ import annotations

from typing import Any, Sequence

import keras

from foveal.inspection.summary import iter_leaves, summarize, totals

BYTES_PER_MB = 1_000_000


def _mb(n_bytes: float) -> float:
    return round(n_bytes / BYTES_PER_MB, 6)


def memory_budget(
    model: keras.Model,
    batch_size: int = 1,
    dtype_bytes: int = 4,
    training: bool = False,
    optimizer_slots: int = 2,
    input_shape: Sequence[int] | None = None,
) -> dict[str, Any]:
    """Memory needed to run (or train) ``model`` on batches of ``batch_size``, in MB.

    Args:
        model: a functional or built Sequential Keras model with a fixed input size (or pass
            ``input_shape``).
        batch_size: instances per batch.
        dtype_bytes: bytes per number (4 for float32, 2 for float16/bfloat16).
        training: which total ``total_mb`` reports (both are always in the result).
        optimizer_slots: optimizer values per trainable weight (Adam 2, momentum 1, SGD 0).
        input_shape: (H, W, C) for models that accept any size.

    Returns:
        A dict with ``parameters`` (count), ``parameters_mb``, ``input_mb_per_instance``,
        ``activations_mb_per_instance``, ``activations_mb`` (x batch), ``gradients_mb``,
        ``optimizer_mb``, ``inference_mb``, ``training_mb``, ``total_mb``, and the settings.
    """
    if batch_size < 1 or dtype_bytes < 1 or optimizer_slots < 0:
        raise ValueError("batch_size and dtype_bytes must be >= 1 and optimizer_slots >= 0")
    rows = summarize(model, input_shape)
    t = totals(rows)
    input_elements = sum(r.output_elements for r in iter_leaves(rows) if r.class_name == "InputLayer")
    activation_elements = sum(r.output_elements for r in iter_leaves(rows) if r.class_name != "InputLayer")
    params = t["parameters"] * dtype_bytes
    trainable = t["trainable_parameters"] * dtype_bytes
    per_instance = (input_elements + activation_elements) * dtype_bytes
    inference = params + batch_size * per_instance
    train = params + trainable + optimizer_slots * trainable + batch_size * per_instance
    return {
        "batch_size": batch_size,
        "dtype_bytes": dtype_bytes,
        "optimizer_slots": optimizer_slots,
        "mb": "1 MB = 1,000,000 bytes",
        "parameters": t["parameters"],
        "trainable_parameters": t["trainable_parameters"],
        "parameters_mb": _mb(params),
        "input_mb_per_instance": _mb(input_elements * dtype_bytes),
        "activations_mb_per_instance": _mb(activation_elements * dtype_bytes),
        "activations_mb": _mb(batch_size * activation_elements * dtype_bytes),
        "gradients_mb": _mb(trainable),
        "optimizer_mb": _mb(optimizer_slots * trainable),
        "inference_mb": _mb(inference),
        "training_mb": _mb(train),
        "training": training,
        "total_mb": _mb(train if training else inference),
    }


def format_memory(inference: dict[str, Any], training: dict[str, Any] | None = None) -> str:
    """A few lines for the terminal from one or two :func:`memory_budget` results."""
    lines = [
        f"parameters: {inference['parameters_mb']:,.2f} MB; activations per instance: "
        f"{inference['activations_mb_per_instance']:,.2f} MB (+ input {inference['input_mb_per_instance']:,.2f} MB)",
        f"inference at batch {inference['batch_size']}: {inference['inference_mb']:,.2f} MB",
    ]
    if training is not None:
        lines.append(
            f"training at batch {training['batch_size']}: {training['training_mb']:,.2f} MB "
            f"(gradients {training['gradients_mb']:,.2f} + optimizer {training['optimizer_mb']:,.2f} "
            f"+ activations {training['activations_mb']:,.2f} MB)"
        )
    lines.append(f"({inference['dtype_bytes']} bytes per number; {inference['mb']})")
    return "\n".join(lines)


__all__ = ["BYTES_PER_MB", "format_memory", "memory_budget"]
