"""``foveal generate train|evaluate|predict``: the command line of the generative models.

:func:`add_generate_command` adds the ``generate`` command to the ``foveal`` parser; each
action calls one public function of :mod:`foveal.generative`.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from foveal.cli.task_commands import add_mode, add_task_command, print_result

EPILOG_TRAIN = """examples:
  # a VAE on MNIST with a 2-D latent space (the report shows the latent manifold)
  foveal generate train --data mnist --model vae --latent-dim 2 --epochs 10 --kl-warmup-epochs 1
  # a class-conditional GAN on Fashion-MNIST, judged each epoch by a classifier trained first
  foveal generate train --data fashion_mnist --model cgan --epochs 10 --time-budget 1200
  # DCGAN on your own photos, resized to 64x64 colour
  foveal generate train --data photos/ --model dcgan --image-size 64 --channels 3 --classifier none
  foveal generate train --resume runs/generate-cgan-fashion_mnist-20261206-210000

--data mnist / fashion_mnist are keras.datasets names (downloaded when online); offline, pass
the folder of the IDX files (e.g. ../shared/datasets/mnist).
"""

EPILOG_EVALUATE = """examples:
  foveal generate evaluate runs/RUN/best.keras --data ../shared/datasets/mnist
  foveal generate evaluate runs/RUN/best.keras --data mnist --classifier my_mnist_cnn.keras --count 5000
  foveal generate evaluate runs/RUN/best.keras --data mnist --inception-weights inception_v3_notop.h5
  foveal generate evaluate runs/RUN/best.keras --data mnist --inception-weights imagenet   # online
"""

EPILOG_PREDICT = """examples:
  foveal generate predict runs/RUN/best.keras --count 64 --output samples/
  foveal generate predict runs/RUN/best.keras --class 7 --count 16 --output sevens/   # a cgan model
  foveal generate predict runs/RUN/best.keras --class Sneaker --seed 3 --output sneakers/
"""


def _evaluate(args: argparse.Namespace, _: dict[str, Any]) -> int:
    from foveal.generative.scoring import evaluate_generator, format_metrics

    metrics = evaluate_generator(args.model, args.data, split=args.split, classifier=args.classifier, count=args.count,
                                 inception_weights=args.inception_weights, output=args.output, seed=args.seed,
                                 batch_size=args.batch_size, skip_invalid=args.skip_invalid)
    return print_result(args, metrics, format_metrics,
                        wrote=lambda out: f"{out / 'report.html'}, metrics.json and the figures")


def _predict(args: argparse.Namespace, _: dict[str, Any]) -> int:
    from foveal.errors import ConfigError
    from foveal.generative.sampling import write_samples
    from foveal.models import load_model

    model, card = load_model(args.model)
    if card.task != "generate":
        raise ConfigError(f"{args.model} is a {card.task} model, not a generative one",
                          hint="use `foveal predict MODEL IMAGES...` for it")
    summary = write_samples(model, card, args.output, count=args.count, requested=args.class_, seed=args.seed,
                            cols=args.cols)
    print(json.dumps(summary, indent=1) if args.json else
          f"{args.count} image(s) in {args.output} (sample_NNNN.png), grid {summary['grid']}")
    return 0


def add_generate_command(subparsers: argparse._SubParsersAction) -> None:
    """Add ``generate`` with its ``train``, ``evaluate`` and ``predict`` actions to ``subparsers``."""
    actions = add_task_command(
        subparsers, "generate", help="generative models: VAE, DCGAN and conditional GAN; sample images",
        description="Train, score and sample generative models of images (VAE, DCGAN, conditional GAN).",
        train_help="train a generative model and write a run folder with sample grids and a report",
        train_description="Train a VAE, DCGAN or class-conditional GAN on images.", train_epilog=EPILOG_TRAIN)

    e = add_mode(actions, "evaluate", "generate", help="negative ELBO (VAE), classifier-space Frechet/kernel "
                 "distances, requested-class accuracy, Inception FID", epilog=EPILOG_EVALUATE, batch_size=256)
    e.add_argument("--data", required=True, help="the real images (the dataset the model learnt from)")
    e.add_argument("--split", default="test", help="dataset part: test (default), val, train or all")
    e.add_argument("--classifier", metavar="FILE.keras", help="judge classifier (default: classifier.keras beside "
                   "the model, when there is one; 'none' for no classifier-space scores)")
    e.add_argument("--count", type=int, default=1000, help="generated and real images compared (default: 1000)")
    e.add_argument("--inception-weights", metavar="FILE.h5", help="InceptionV3 weights for the standard FID: a "
                   "keras.applications .h5 file, or imagenet (downloaded once by Keras into ~/.keras/models)")
    e.add_argument("--seed", type=int, default=0, help="noise and image-choice seed (default: 0)")
    e.add_argument("--output", metavar="DIR", help="write metrics.json, the figures and report.html here")
    e.add_argument("--json", action="store_true", help="print the metrics as JSON")
    e.add_argument("--skip-invalid", action="store_true", help="skip unreadable images")
    e.set_defaults(func=_evaluate)

    p = actions.add_parser("predict", help="sample images: PNG files and a grid", allow_abbrev=False,
                           epilog=EPILOG_PREDICT, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="a .keras model file written by `foveal generate train`")
    p.add_argument("--count", type=int, default=64, help="images to draw (default: 64)")
    p.add_argument("--class", dest="class_", metavar="CLASS", help="conditional models: the class to draw, by name "
                   "or index (default: every class in turn, one grid row each)")
    p.add_argument("--seed", type=int, default=0, help="noise seed: the same seed gives the same images (default: 0)")
    p.add_argument("--cols", type=int, default=0, help="images per grid row (0: square, or one row per class)")
    p.add_argument("--output", metavar="DIR", default="samples", help="folder for sample_NNNN.png, grid.png and "
                   "samples.json (default: samples)")
    p.add_argument("--json", action="store_true", help="print what was written as JSON")
    p.set_defaults(func=_predict)


__all__ = ["add_generate_command"]
