"""Video clip classification: frames sampled from clips (OpenCV), per-frame CNN features cached
as ``.npy``, masked LSTM/GRU/bidirectional heads and the temporal-average baseline, end-to-end
models on raw frames (TimeDistributed CNN + LSTM, ConvLSTM2D, (2+1)D), k-fold cross-validation,
a sliding-window timeline with an annotated MP4, and tracking scored by MOTA/IDF1 (``foveal video``).

Modules: :mod:`~foveal.video.decode` (reading clips), :mod:`~foveal.video.sampling` (which
frames), :mod:`~foveal.video.features` (backbone + cache), :mod:`~foveal.video.models`,
:mod:`~foveal.video.task` (engine plugin, cross-validation), :mod:`~foveal.video.predict`,
:mod:`~foveal.video.inspect` (``foveal datasets inspect`` on a clip folder),
:mod:`~foveal.video.track` (SORT-style tracking of detections), :mod:`~foveal.video.endtoend`
(models on raw frames), :mod:`~foveal.video.mot` (MOTA, IDF1), :mod:`~foveal.video.synth`
(moving shapes with ground-truth tracks).

Example:
    >>> from foveal.tasks import run_train  # doctest: +SKIP
    >>> run_train("video", VideoConfig(data="clips/", backbone="runs/cifar/best.keras", folds=5))  # doctest: +SKIP
"""

from foveal.video.config import VideoConfig

__all__ = ["VideoConfig"]
