"""``foveal datasets synth KIND``: write generated datasets (see :mod:`foveal.data.synth`)."""

from __future__ import annotations

import argparse
import functools
import json
import sys
from typing import Any

EPILOG_MNIST_M = """examples:
  # MNIST-M-style: the 70,000 MNIST digits over patches of the coco-mini photos
  foveal datasets synth mnist-m --digits ../shared/datasets/mnist \\
      --backgrounds ../shared/datasets/coco-mini --output data/mnist-m --seed 0
  foveal datasets synth mnist-m --data mnist --backgrounds photos/ --output mnist-m --limit 5000
  foveal train --data data/mnist-m --model lenet5 --channels 3      # read like any image folder
"""


def _mnist_m(args: argparse.Namespace, _: dict[str, Any]) -> int:
    from foveal.data.synth.mnist_m import make_mnist_m

    manifest = make_mnist_m(args.digits, args.backgrounds, args.output, seed=args.seed, limit=args.limit,
                            binarize=args.binarize, overwrite=args.overwrite,
                            progress=lambda line: print(line, file=sys.stderr))
    print(json.dumps(manifest, indent=1) if args.json else
          f"wrote {sum(manifest['counts'].values())} images ({', '.join(f'{k} {v}' for k, v in manifest['counts'].items())}) "
          f"to {args.output} from {manifest['photos']} background photo(s), seed {args.seed}")
    return 0


def add_synth_command(actions: argparse._SubParsersAction) -> None:
    """Add ``synth`` with its kinds to the ``foveal datasets`` actions."""
    s = actions.add_parser("synth", help="generate a dataset (MNIST-M-style digits over photos)",
                           description="Generate datasets, deterministic for a seed, in layouts foveal reads.")
    kinds = s.add_subparsers(dest="kind", metavar="KIND", required=True)
    kinds.add_parser = functools.partial(kinds.add_parser, allow_abbrev=False)  # type: ignore[method-assign]
    m = kinds.add_parser("mnist-m", help="digits blended with random photo patches, |patch - digit| (Ganin et al.)",
                         description="MNIST-M-style digits: each digit blended with a random patch of a random "
                         "photo, |patch - digit| per channel (Ganin et al., JMLR 2016). Writes OUTPUT/<split>/<class>/"
                         "NNNNNN.png and OUTPUT/mnist-m.json.", epilog=EPILOG_MNIST_M,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    m.add_argument("--digits", "--data", dest="digits", required=True, metavar="SPEC",
                   help="the digits: an MNIST IDX folder, 'mnist' (keras.datasets), an .npz or a class folder")
    m.add_argument("--backgrounds", required=True, metavar="DIR",
                   help="folder of photos (searched recursively) the patches are cut from")
    m.add_argument("--output", required=True, metavar="DIR", help="folder to write (new or empty)")
    m.add_argument("--seed", type=int, default=0, help="random seed: photo and place of every patch (default: 0)")
    m.add_argument("--limit", type=int, metavar="N", help="at most N digits per split (the first ones)")
    m.add_argument("--binarize", action="store_true", help="blend the digit as 0/255 (strokes invert the photo "
                   "fully) instead of its gray levels")
    m.add_argument("--overwrite", action="store_true", help="replace an existing --output folder")
    m.add_argument("--json", action="store_true", help="print the manifest as JSON")
    m.set_defaults(func=_mnist_m)


__all__ = ["add_synth_command"]
