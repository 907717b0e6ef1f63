"""``foveal train``: from a :class:`TrainConfig` to a run folder with models and a report, through
:class:`~foveal.classification.task.ClassifyTask` on the run engine.

Example:
    >>> from foveal.config import TrainConfig
    >>> result = train(TrainConfig(data="digits", model="lenet5", epochs=2, output="/tmp/runs"))  # doctest: +SKIP
    >>> result.metrics["accuracy"] > 0.5  # doctest: +SKIP
    True
"""

from foveal.classification.task import prepare_data  # noqa: F401  (re-exported for the benchmarks)
from foveal.tasks import trainer

train = trainer("classify", "train", "a classifier")
