"""``foveal scratch``: train a from-scratch NumPy network beside its Keras twin, and compare."""

from __future__ import annotations

import argparse
import functools
from typing import Any

EPILOG = """examples:
  foveal scratch train                               # the texts' sigmoid MLP on scikit-learn's digits
  foveal scratch train --network cnn --epochs 5      # the NumPy CNN (im2col) on the digits
  foveal scratch train --data ../shared/datasets/mnist --epochs 30      # the texts' MNIST network
  foveal scratch train --data ../shared/datasets/mnist --network cnn --batch-size 64 --dtype float32 --epochs 3

Both networks start from the same weights and see the same batches; report.html overlays their
curves and gives the largest difference per curve (about 1e-12 in float64).
"""


def _train(args: argparse.Namespace, _: dict[str, Any]) -> int:
    from foveal import configtools
    from foveal.scratch.config import ScratchConfig
    from foveal.scratch.run import train

    known = configtools.fields_of(ScratchConfig)
    overrides = {k: v for k, v in vars(args).items() if k in known}  # options given (defaults are suppressed)
    train(configtools.resolve(ScratchConfig, args.config, overrides))
    return 0


def add_scratch_command(sub: Any) -> None:
    """Add ``scratch train`` to the ``foveal`` subcommands."""
    from foveal import configtools
    from foveal.scratch.config import ScratchConfig

    s = sub.add_parser("scratch", help="networks written in NumPy (the texts' ch. 1 and 3), checked against Keras",
                       description="Neural networks from scratch in NumPy (dense, convolution, pooling, "
                       "backpropagation, SGD), trained beside their Keras twins.")
    ssub = s.add_subparsers(dest="action", metavar="ACTION", required=True)
    ssub.add_parser = functools.partial(ssub.add_parser, allow_abbrev=False)  # type: ignore[method-assign]
    t = ssub.add_parser("train", help="train a NumPy network and its Keras twin; write a run folder and report",
                        description="Train a NumPy network and, from the same initial weights on the same "
                        "batches, its Keras twin; write config.yaml, history.csv, metrics.json, weights.npz and "
                        "report.html (both networks' curves in one report).",
                        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    t.add_argument("--config", metavar="FILE.yaml", help="YAML file with any of the options below")
    configtools.add_arguments(t, ScratchConfig)
    t.set_defaults(func=_train)
