"""Refuse a batch that cannot fit in memory before TensorFlow tries to allocate it.

Without this, ``--image-size 20000`` ends in a ``ResourceExhaustedError`` traceback (or the
kernel's OOM killer) minutes into a run. Two estimates, both cheap:

* :func:`check_input_batch`: one float32 batch of input pixels, from the options alone (no
  model, no TensorFlow import), for config validation;
* :func:`check_training_memory`: the model's parameters, gradients, optimizer slots and every
  layer output for one batch (:func:`foveal.inspection.memory.memory_budget`, Géron's
  accounting), once the model is built.

Both compare with the memory the system reports as available (``MemAvailable``). On a GPU the
device has less memory than that, so these checks are a floor, not a guarantee.
"""

from __future__ import annotations

import os
from typing import Any

from foveal.errors import ConfigError

GB = 1_000_000_000


def available_memory_bytes() -> int | None:
    """Memory available to new allocations (``MemAvailable``), or None when unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def size_text(n_bytes: float) -> str:
    """``"12.3 GB"`` or ``"450.0 MB"`` (decimal units, as :mod:`foveal.inspection.memory`)."""
    return f"{n_bytes / GB:.1f} GB" if n_bytes >= GB else f"{n_bytes / 1_000_000:.1f} MB"


def _refuse_if_over(need: float, what: str, available: int | None) -> None:
    available = available_memory_bytes() if available is None else available
    if available is not None and need > available:
        raise ConfigError(
            f"{what} needs about {size_text(need)} of memory, but {size_text(available)} is available",
            hint="lower --batch-size or --image-size",
        )


def check_input_batch(batch_size: int, image_hw: tuple[int, int], channels: int = 3,
                      available: int | None = None) -> None:
    """Refuse when one float32 batch of input images alone exceeds the available memory.

    Args:
        batch_size: images per batch.
        image_hw: (height, width) of the model input.
        channels: input channels (3 when not known yet).
        available: bytes to compare with (default: what the system reports).

    Raises:
        ConfigError: with the batch's size and the memory available.
    """
    height, width = image_hw
    need = float(batch_size) * height * width * channels * 4
    _refuse_if_over(need, f"one batch of {batch_size} images of {height}x{width}x{channels} (float32)",
                    available)


def check_training_memory(model: Any, batch_size: int, available: int | None = None,
                          optimizer_slots: int = 2) -> dict[str, Any]:
    """Refuse to train ``model`` when one batch's estimated memory exceeds what is available.

    Returns:
        The estimate of :func:`foveal.inspection.memory.memory_budget` (training totals).

    Raises:
        ConfigError: with the estimate, its largest part and the memory available.
    """
    from foveal.inspection.memory import memory_budget

    try:
        shape = model.input_shape
        height, width = (int(v) for v in shape[1:3])
        budget = memory_budget(model, batch_size=batch_size, training=True, optimizer_slots=optimizer_slots)
    except Exception:  # noqa: BLE001  a free input size or an odd model: no estimate, no refusal
        return {}
    _refuse_if_over(budget["training_mb"] * 1_000_000,
                    f"training {model.name} on batches of {batch_size} at {height}x{width} "
                    f"(layer outputs {size_text(budget['activations_mb'] * 1e6)}, parameters and optimizer "
                    f"{size_text((budget['parameters_mb'] + budget['gradients_mb'] + budget['optimizer_mb']) * 1e6)})",
                    available)
    return budget
