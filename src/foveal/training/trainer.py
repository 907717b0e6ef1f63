"""``foveal train``: from a :class:`TrainConfig` to a run folder with models and a report.

Classification is a plugin of the run engine (:class:`~foveal.classification.task.ClassifyTask`
on :func:`foveal.engine.run.train_task`), which owns the run folder, resume, checkpoints, phases,
mixed precision, distribution and the time budget, the same for every task.

Transfer learning (``--weights``, ``--freeze``, ``--fine-tune``): phase 1 trains ``epochs``
epochs with the ``freeze`` layers frozen (on cached bottleneck features of the frozen base with
``--bottleneck``); phase 2 unfreezes the ``fine_tune`` layers, recompiles with the lower
learning rate and trains ``fine_tune_epochs`` more. ``--recipe`` fills the options not given
explicitly before anything else, so ``config.yaml`` holds the final values.

Example:
    >>> from foveal.config import TrainConfig
    >>> result = train(TrainConfig(data="digits", model="lenet5", epochs=2, output="/tmp/runs"))  # doctest: +SKIP
    >>> result.metrics["accuracy"] > 0.5  # doctest: +SKIP
    True
"""

from foveal.classification.task import prepare_data  # noqa: F401  (re-exported for the benchmarks)
from foveal.tasks import trainer

train = trainer("classify", "train", "a classifier")
