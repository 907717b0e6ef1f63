"""Training pipelines whose epoch ``e`` depends only on ``(seed, e)``, so a resumed run replays it.

``Dataset.shuffle(seed=S, reshuffle_each_iteration=True)`` gives a new order each time the
dataset is iterated, drawn from a stream that starts at ``S``: a run resumed at epoch 5 starts
that stream again and sees epoch 0's order in its epoch 5. :func:`shuffled_epochs` instead
builds every epoch from a seed of its own, :func:`epoch_seed` of ``(seed, epoch)``, as an
endless dataset of epochs from ``start_epoch`` on (``Dataset.counter(start).flat_map(...)``):
the batches of epoch 7 are the same whether the run started at 0 or was resumed at 7. A cached
dataset upstream of the shuffle is shared by every epoch (decoded once). ``fit`` then needs
``steps_per_epoch`` (one iterator spans the epochs), which the run engine gives.

Per-epoch randomness after the shuffle (random augmentation drawn from ``Dataset.random``,
multi-scale sizes, airbench's alternating flip) goes into the ``then`` function, which gets the
epoch's seed and its number. Keras augmentation layers (``--augment flip,rotate=15`` of
classification) keep a random state of their own that a resume restarts: the order of the
images is replayed, their random flips and rotations are not.

Example:
    >>> import tensorflow as tf
    >>> ds = tf.data.Dataset.range(4)
    >>> whole = shuffled_epochs(ds, 4, seed=1, start_epoch=0, then=lambda d, s, e: d.batch(4))
    >>> resumed = shuffled_epochs(ds, 4, seed=1, start_epoch=2, then=lambda d, s, e: d.batch(4))
    >>> [b.tolist() for b in whole.take(3)][2] == next(iter(resumed)).numpy().tolist()
    True
"""

from __future__ import annotations

from typing import Any, Callable

import tensorflow as tf

#: what the per-epoch part of a pipeline gets: (shuffled dataset, the epoch's seed, the epoch)
Then = Callable[[tf.data.Dataset, Any, Any], tf.data.Dataset]
#: one epoch of a pipeline from (the epoch's seed, the epoch: an int64 tensor, or None for one
#: pass that is reshuffled each time it is iterated)
OneEpoch = Callable[[Any, Any], tf.data.Dataset]


def epoch_seed(seed: int, epoch: Any) -> tf.Tensor:
    """The int64 seed of ``epoch`` (an int or an int64 tensor) of a run seeded ``seed``, in [0, 2**31 - 1)."""
    mixed = tf.constant(int(seed) % 2_147_483_647, tf.int64) * 1_000_003 + tf.cast(epoch, tf.int64) * 7_919 + 1
    return tf.math.floormod(mixed, 2_147_483_647)


def epoch_stream(one_epoch: OneEpoch, *, seed: int, start_epoch: int | None) -> tf.data.Dataset:
    """The epochs ``start_epoch``, ``start_epoch + 1``, ... of ``one_epoch``, endlessly, epoch ``e``
    built by ``one_epoch(epoch_seed(seed, e), e)``; without ``start_epoch``, ``one_epoch(seed, None)``.

    ``one_epoch`` shuffles with ``reshuffle_each_iteration=epoch is None`` and draws its random
    numbers from the seed it is given; datasets it uses that were made outside it (a cache) are
    shared by every epoch.
    """
    if start_epoch is None:
        return one_epoch(seed, None)

    def epoch(e):
        graph = tf.compat.v1.get_default_graph()
        if graph.seed is not None and graph.seed % 2_147_483_647 == 0:
            # TensorFlow's get_seed compares (global seed, op seed) with (0, 0) as a tuple: under a
            # global seed of 0 the op seed, a tensor here, becomes a Python bool and tracing fails.
            # A function graph's own seed only names the stream its explicitly seeded ops draw from.
            graph.seed = 2_147_483_646
        return one_epoch(epoch_seed(seed, e), e)

    return tf.data.Dataset.counter(int(start_epoch)).flat_map(epoch)


def shuffled_epochs(ds: tf.data.Dataset, buffer: int, *, seed: int, start_epoch: int | None,
                    then: Then | None = None) -> tf.data.Dataset:
    """``ds`` shuffled (buffer ``buffer``) then passed through ``then(ds, seed, epoch)``, epoch by epoch.

    Args:
        ds: the examples of one epoch (cache it before, not after, this call).
        buffer: the shuffle buffer (``len(ds)`` for a full shuffle).
        seed: the run's seed.
        start_epoch: the first epoch of an endless dataset of epochs (the run engine passes the
            epoch a run starts or resumes at; ``fit`` needs ``steps_per_epoch``); None: one pass,
            reshuffled with a new order each time it is iterated (not replayed by a resume).
        then: what follows the shuffle within an epoch (batching, random augmentation drawn
            from the seed it is given); the epoch is an int64 tensor, or None without ``start_epoch``.
    """
    then = then or (lambda d, s, e: d)
    buffer = max(int(buffer), 1)
    return epoch_stream(lambda s, e: then(ds.shuffle(buffer, seed=s, reshuffle_each_iteration=e is None), s, e),
                        seed=seed, start_epoch=start_epoch)


__all__ = ["epoch_seed", "epoch_stream", "shuffled_epochs"]
