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


def mixed_counts(real: int, ratio: float) -> tuple[int, int]:
    """Images per epoch from each source when a second one is mixed in at ``ratio``
    (``--extra-data DIR --extra-ratio R`` of ``foveal train`` and ``foveal detect train``).

    Every real training image once, plus ``round(real * ratio / (1 - ratio))`` images of the
    extra source (at least 1), drawn in a seeded order that interleaves both
    (:func:`interleave_sources`): the epoch's share of extra images is ``ratio`` up to rounding.
    The extra images are a fresh shuffle of that source each epoch, repeated when it has fewer
    images than that.

    Example:
        >>> mixed_counts(160, 0.5), mixed_counts(160, 0.2)
        ((160, 160), (160, 40))
    """
    from foveal.errors import ConfigError

    if not 0.0 < ratio < 1.0:
        raise ConfigError(f"extra_ratio must be in (0, 1), not {ratio}", hint="the fraction of each epoch's "
                          "images drawn from the extra source (e.g. 0.5: as many as the real ones)")
    return real, max(1, int(round(real * ratio / (1.0 - ratio))))


def interleave_sources(real: tf.data.Dataset, extra: tf.data.Dataset, counts: tuple[int, int], *, seed: Any,
                       reshuffle: bool) -> tf.data.Dataset:
    """One epoch of ``counts[0]`` elements of ``real`` and ``counts[1]`` of ``extra`` (both
    repeated as needed), in an order drawn from ``seed`` (anew on every iteration when
    ``reshuffle``): ``tf.data.Dataset.choose_from_datasets`` over a shuffled 0/1 pattern, so
    the epoch's length and share are exact, unlike ``sample_from_datasets``' random weights."""
    import numpy as np

    pattern = np.repeat(np.array([0, 1], np.int64), list(counts))
    choices = tf.data.Dataset.from_tensor_slices(pattern).shuffle(len(pattern), seed=seed,
                                                                  reshuffle_each_iteration=reshuffle)
    return tf.data.Dataset.choose_from_datasets([real.repeat(), extra.repeat()], choices)


__all__ = ["epoch_seed", "epoch_stream", "interleave_sources", "mixed_counts", "shuffled_epochs"]
