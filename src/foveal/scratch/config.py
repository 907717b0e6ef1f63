"""ScratchConfig: every option of ``foveal scratch train`` (command line, YAML and Python API)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from foveal.configtools import option
from foveal.errors import require_all

# Per-network defaults where the texts fix them: ch. 1 trains with plain SGD at 5e-3 on
# batches taken in the data's order; the CNN uses momentum and shuffled batches.
NETWORK_DEFAULTS = {
    "simple": {"learning_rate": 5e-3, "momentum": 0.0, "shuffle": False},
    "cnn": {"learning_rate": 0.05, "momentum": 0.9, "shuffle": True},
}


@dataclass
class ScratchConfig:
    """Options of a from-scratch run: the NumPy network and its Keras twin on the same data."""

    data: str = option("digits", "dataset spec read by foveal's readers: digits, an MNIST IDX folder, .npz, ...")
    network: Literal["simple", "cnn"] = option(
        "simple", "simple: the texts' sigmoid MLP [inputs, *hidden, classes] with L2 loss (Planche & Andres ch. 1); "
        "cnn: small_cnn (conv-ReLU-maxpool stages, softmax cross-entropy)")
    hidden: list[int] = option([64, 32], "hidden layer sizes of the simple network")
    filters: list[int] = option([8, 16], "filters of each conv stage of the cnn")
    kernel_size: int = option(5, "kernel size of the cnn's convolutions ('same' padding)")
    conv_method: Literal["im2col", "loops"] = option("im2col", "cnn convolution: im2col (fast) or the texts' loops")
    epochs: int = option(20, "training epochs")
    batch_size: int = option(30, "samples per step (the last incomplete batch is dropped, as in the texts)")
    learning_rate: float | None = option(None, "SGD step (default: 5e-3 for simple, as in the texts; 0.05 for cnn)")
    momentum: float | None = option(None, "SGD momentum (default: 0 for simple, 0.9 for cnn)")
    shuffle: bool | None = option(None, "reshuffle every epoch (default: no for simple, as in the texts; yes for cnn)")
    val_split: float = option(0.2, "fraction of train scored after each epoch when the data has no test part")
    limit: int = option(0, "use only the first N training samples (0: all)")
    dtype: Literal["float64", "float32"] = option("float64", "float type of both networks (float64: agree to ~1e-12)")
    keras_twin: bool = option(True, "also train the Keras twin from the same initial weights and compare")
    threads: int = option(1, "BLAS threads for NumPy (1 is fastest for small matrices on a shared machine)")
    seed: int = option(42, "initial weights and batch order")
    output: str = option("runs", "folder for run folders")
    name: str = option("", "run folder name (default: scratch-NETWORK-DATA-TIME)")

    def validate(self) -> None:
        """Check ranges that the types alone cannot express."""
        checks = [
            (self.epochs >= 1, "epochs must be at least 1"),
            (self.batch_size >= 1, "batch_size must be at least 1"),
            (self.kernel_size >= 1, "kernel_size must be at least 1"),
            (0.0 <= self.val_split < 1.0, "val_split must be in [0, 1)"),
            (self.limit >= 0, "limit must be 0 or more"),
            (self.threads >= 1, "threads must be at least 1"),
            (self.learning_rate is None or self.learning_rate > 0, "learning_rate must be positive"),
            (self.momentum is None or 0.0 <= self.momentum < 1.0, "momentum must be in [0, 1)"),
            (all(h >= 1 for h in self.hidden), "hidden sizes must be positive"),
            (len(self.filters) >= 1 and all(f >= 1 for f in self.filters), "filters must list positive counts"),
        ]
        require_all(checks)

    def resolved(self, key: str) -> float | bool:
        """``learning_rate``, ``momentum`` or ``shuffle``: the given value, else the network's default."""
        value = getattr(self, key)
        return NETWORK_DEFAULTS[self.network][key] if value is None else value
