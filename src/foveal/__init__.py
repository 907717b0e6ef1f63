"""foveal: deep computer vision with convolutional networks on Keras 3.

The Python API mirrors the command line::

    import foveal
    result = foveal.train(foveal.TrainConfig(data="digits", model="lenet5", epochs=5))
    model, card = foveal.load_model(result.run_dir / "best.keras")
    foveal.predict(model, card, ["photo.png"])
"""

from __future__ import annotations

import os

from foveal._lazy import lazy_getattr

# Quiet TensorFlow's C++ chatter unless the user asked for it (TF_CPP_MIN_LOG_LEVEL=0 shows all).
# Level 3, not 2: its ERROR lines seen here are advice, not failures (oneDNN's "supports DT_UINT8
# only on platforms with AVX-512", printed at a graph's first uint8 transpose, in evaluate and
# train of several tasks); a failing op raises a Python exception carrying its message anyway.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

__version__ = "0.1.0"

_LAZY = {
    "TrainConfig": "foveal.config",
    "train": "foveal.training.trainer",
    "evaluate": "foveal.evaluation.run",
    "predict": "foveal.predict",
    "build_model": "foveal.models",
    "load_model": "foveal.models",
    "save_model": "foveal.models",
    "MODELS": "foveal.models",
    "load_dataset": "foveal.data.readers",
    "inspect_dataset": "foveal.data.inspect",
    "train_localizer": "foveal.localization",
    "GenerateConfig": "foveal.generative",
    "train_generator": "foveal.generative",
    "export_model": "foveal.export",
}


__getattr__ = lazy_getattr("foveal", _LAZY)


__all__ = ["__version__", *_LAZY]
