"""Run-folder helpers of the run engine and the tasks: result, names, status, resume."""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from foveal.errors import ConfigError
from foveal.utils_io import atomic_write_text, ensure_output_dir


@dataclass
class TrainResult:
    """What a training run produced."""

    run_dir: Path
    history: dict[str, list[float]]
    metrics: dict[str, Any] | None
    interrupted: bool = False

    @property
    def best_model(self) -> Path:
        best = self.run_dir / "best.keras"
        return best if best.exists() else self.run_dir / "last.keras"


#: words of metric names whose lower values are better (the rest, e.g. accuracy, IoU, mAP: higher)
LOWER_IS_BETTER = frozenset({"loss", "frechet", "distance", "elbo", "kl", "nll", "reconstruction", "fid", "kid",
                             "error"})


def lower_is_better(metric: str) -> bool:
    """Whether smaller values of ``metric`` are better: a loss, a distance, a negative ELBO, ... (by the
    words of its name, e.g. ``val_loss``, ``frechet``, ``val_neg_elbo``)."""
    return "loss" in metric or not LOWER_IS_BETTER.isdisjoint(re.split(r"[^a-z0-9]+", metric.lower()))


def say(message: str) -> None:
    print(message, flush=True)


def set_determinism(seed: int, deterministic: bool) -> None:
    """Seed Python, NumPy, TensorFlow and Keras; make TensorFlow's ops deterministic if asked."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()


def run_name(model: str, data: str, prefix: str = "") -> str:
    """``[PREFIX-]MODEL-DATA-YYYYmmdd-HHMMSS`` with the data's last path part, made filename-safe."""
    tag = re.sub(r"[^A-Za-z0-9]+", "-", Path(data.rstrip("/")).name or data).strip("-") or "data"
    return f"{prefix + '-' if prefix else ''}{model}-{tag}-{time.strftime('%Y%m%d-%H%M%S')}"


def mark(run_dir: Path, status: str | None = None, **extra: Any) -> None:
    """Set the run's ``status`` (None: keep it) and any ``extra`` facts in its ``state.json``."""
    from foveal.training import callbacks as cb

    state = cb.read_state(run_dir)
    if state is not None:
        state.update(extra, **({"status": status} if status else {}))
        atomic_write_text(run_dir / cb.STATE_FILE, json.dumps(state, indent=1))


def saved_model(path: Path):
    """The model stored at ``path`` or None (a fresh load, not ``clone_model``, which would
    drop training-only parts such as GoogLeNet's auxiliary heads)."""
    if not path.is_file():
        return None
    from foveal.models.io import load_model

    return load_model(path)[0]


def weights_of(path: Path) -> list[np.ndarray] | None:
    """All weights of the model saved at ``path`` (for restoring the best epoch)."""
    saved = saved_model(path)
    return None if saved is None else saved.get_weights()


def remove_temporary_files(run_dir: Path) -> list[Path]:
    """Delete (and return) the half-written temporary files of :func:`foveal.utils_io.atomic_path`
    (``.NAME.RANDOM.tmpSUFFIX``) a killed run left in ``run_dir``."""
    removed = []
    for path in sorted(run_dir.rglob(".*.tmp*")):
        if path.is_file() and not path.is_symlink():
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def checked_run_name(name: str) -> str:
    """``name`` if it names a folder inside ``--output``; else a :class:`ConfigError`."""
    parts = Path(name).parts  # "." and "./" have none
    if not name.strip() or Path(name).is_absolute() or not parts or ".." in parts:
        raise ConfigError(f"--name {name!r} must name a folder inside --output (no absolute path, no '..')",
                          hint="use --output to choose where runs go, and a plain --name such as 'run1'")
    return name


def resolve_run(config_class: type, config: Any | None, resume: str | Path | None,
                overrides: dict[str, Any], name_prefix: str = "") -> tuple[Any, Path, dict[str, Any] | None]:
    """(options, run folder, saved state or None) for a new run (refusing a folder that holds a
    run) or a ``--resume`` (its ``config.yaml`` with ``overrides`` on top)."""
    from foveal import configtools
    from foveal.training import callbacks as cb

    if resume is not None:
        run_dir = Path(resume)
        state = cb.read_state(run_dir)
        if state is None or not (run_dir / "last.keras").is_file() or not (run_dir / "config.yaml").is_file():
            raise ConfigError(f"{run_dir}: nothing to resume (no finished epoch saved there)",
                              hint="pass the folder of a run that finished at least one epoch")
        ensure_output_dir(run_dir, "--resume")
        for path in remove_temporary_files(run_dir):
            say(f"removed {path} (a temporary file left by an interrupted write)")
        base = configtools.load_yaml(run_dir / "config.yaml")
        return configtools.from_mapping(config_class, base | overrides, source=str(run_dir / "config.yaml")), \
            run_dir, state
    cfg = config or config_class()
    if overrides:
        cfg = configtools.from_mapping(config_class, {**asdict(cfg), **overrides})
    else:
        cfg.validate()
    if cfg.name is not None:
        checked_run_name(cfg.name)
    ensure_output_dir(cfg.output, "--output", create=False)  # the trainer decides who creates it
    run_dir = Path(cfg.output) / (cfg.name or run_name(cfg.model, cfg.data, prefix=name_prefix))
    if (run_dir / "state.json").exists():
        raise ConfigError(f"run folder {run_dir} already holds a run",
                          hint=f"continue it with --resume {run_dir}, or choose another --name")
    return cfg, run_dir, None
