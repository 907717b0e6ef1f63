"""Video clip classification: frames sampled from clips (OpenCV), per-frame CNN features cached
as ``.npy``, masked LSTM/GRU/bidirectional heads and the temporal-average baseline, k-fold
cross-validation, and a sliding-window timeline with an annotated MP4 (``foveal video``).

Modules: :mod:`~foveal.video.decode` (reading clips), :mod:`~foveal.video.sampling` (which
frames), :mod:`~foveal.video.features` (backbone + cache), :mod:`~foveal.video.models`,
:mod:`~foveal.video.task` (engine plugin, cross-validation), :mod:`~foveal.video.predict`,
:mod:`~foveal.video.inspect` (``foveal datasets inspect`` on a clip folder),
:mod:`~foveal.video.track` (SORT-style tracking of detections).

Example:
    >>> from foveal.tasks import run_train  # doctest: +SKIP
    >>> run_train("video", VideoConfig(data="clips/", backbone="runs/cifar/best.keras", folds=5))  # doctest: +SKIP
"""

from foveal.video.config import VideoConfig

__all__ = ["VideoConfig"]
