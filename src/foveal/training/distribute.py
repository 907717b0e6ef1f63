"""Data-parallel training with ``tf.distribute`` (``--distribute mirrored`` or ``multi-worker``):
the cluster, the batch plan, the learning-rate rule (linear: Goyal et al., "Accurate, Large
Minibatch SGD", 2017; square root: Krizhevsky, "One weird trick...", 2014); docs/distributed.md.

Example:
    >>> cluster = parse_workers(["10.0.0.1:2222", "10.0.0.2:2222"], 1)
    >>> cluster.is_chief, cluster.address
    (False, '10.0.0.2:2222')
    >>> scale_learning_rate(0.1, 512, 256, "linear")[0]
    0.2
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import math
import os
import re
import shutil
import socket
import tempfile
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from foveal.errors import ConfigError, FovealError

#: a file path: one JSON line per per-replica batch with the example ids trained on (debugging)
SHARD_LOG_ENV = "FOVEAL_SHARD_LOG"

# Options that may differ between the workers of one run (everything else must agree).
_PER_WORKER_OPTIONS = frozenset({"worker_index", "workers", "name", "output", "progress", "tensorboard"})

_HOST = re.compile(r"^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?)$")


# ----------------------------------------------------------------------------- cluster


def parse_address(text: str, what: str = "worker address") -> tuple[str, int]:
    """``"host:port"`` (or ``"[v6]:port"``) -> (host, port); a :class:`ConfigError` if malformed."""
    host, sep, port = str(text).strip().rpartition(":")
    if not sep or not host or not _HOST.match(host) or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"{what} {text!r} is not HOST:PORT",
                          hint="e.g. 10.0.0.1:2222 or worker-0.example.org:2222 (port 1-65535)")
    return host.strip("[]"), int(port)


@dataclass(frozen=True)
class Cluster:
    """The processes of a multi-worker run (``addresses``, the chief first), this one's ``index``
    in them and the ``TF_CONFIG`` mapping TensorFlow reads."""

    addresses: tuple[str, ...]
    index: int
    tf_config: dict[str, Any] = field(compare=False)

    @property
    def size(self) -> int:
        return len(self.addresses)

    @property
    def is_chief(self) -> bool:
        return self.index == 0

    @property
    def address(self) -> str:
        return self.addresses[self.index]

    @property
    def peers(self) -> list[tuple[int, str]]:
        return [(i, a) for i, a in enumerate(self.addresses) if i != self.index]


def _check_addresses(addresses: list[str], what: str) -> None:
    if not addresses:
        raise ConfigError(f"{what}: no worker addresses given")
    seen: set[tuple[str, int]] = set()
    for text in addresses:
        key = parse_address(text, what=f"{what}: address")
        if key in seen:
            raise ConfigError(f"{what}: {text!r} is listed twice",
                              hint="every worker needs its own HOST:PORT (two on one machine: two ports)")
        seen.add(key)


def parse_workers(workers: list[str], worker_index: int | None) -> Cluster:
    """The cluster of ``--workers`` (``["a:1,b:2", "c:3"]``) and ``--worker-index`` (0: the chief)."""
    addresses = [a.strip() for item in workers for a in str(item).split(",") if a.strip()]
    _check_addresses(addresses, "--workers")
    if worker_index is None:
        raise ConfigError("--workers needs --worker-index: which of the listed workers this process is",
                          hint=f"0 on the first machine (the chief), ... {len(addresses) - 1} on the last")
    if not 0 <= worker_index < len(addresses):
        raise ConfigError(f"--worker-index {worker_index} is out of range for {len(addresses)} worker(s)",
                          hint=f"use 0 to {len(addresses) - 1}, in the order of --workers")
    tf_config = {"cluster": {"worker": addresses}, "task": {"type": "worker", "index": worker_index}}
    return Cluster(tuple(addresses), worker_index, tf_config)


def parse_tf_config(text: str) -> Cluster:
    """The cluster described by a ``TF_CONFIG`` JSON text (jobs ``chief`` and ``worker``)."""
    try:
        spec = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"TF_CONFIG is not valid JSON: {exc}",
                          hint='e.g. {"cluster": {"worker": ["a:2222", "b:2222"]}, '
                               '"task": {"type": "worker", "index": 0}}') from None
    if not (isinstance(spec, dict) and isinstance(spec.get("cluster"), dict) and isinstance(spec.get("task"), dict)):
        raise ConfigError("TF_CONFIG must be a JSON object with a 'cluster' and a 'task' object")
    cluster, task = spec["cluster"], spec["task"]
    unknown = sorted(set(cluster) - {"chief", "worker"})
    if unknown:
        raise ConfigError(f"TF_CONFIG: job(s) {', '.join(unknown)} are not supported",
                          hint="multi-worker training uses 'worker' (and optionally one 'chief') tasks")
    jobs = {job: cluster[job] for job in ("chief", "worker") if job in cluster}  # the chief first
    for job, members in jobs.items():
        if not isinstance(members, list) or not all(isinstance(a, str) for a in members):
            raise ConfigError(f"TF_CONFIG: cluster.{job} must be a list of \"HOST:PORT\" strings")
        if job == "chief" and len(members) != 1:
            raise ConfigError("TF_CONFIG: there must be exactly one chief")
    addresses = [a for members in jobs.values() for a in members]
    _check_addresses(addresses, "TF_CONFIG")
    kind, index = task.get("type"), task.get("index", 0)
    if kind not in jobs:
        raise ConfigError(f"TF_CONFIG: task type {kind!r} is not a job of the cluster ({', '.join(jobs)})")
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(jobs[kind]):
        raise ConfigError(f"TF_CONFIG: task index {index!r} is out of range for the {len(jobs[kind])} {kind} task(s)")
    offset = 1 if kind == "worker" and "chief" in cluster else 0
    return Cluster(tuple(addresses), offset + index, spec)


def resolve_cluster(workers: list[str] | None, worker_index: int | None,
                    environ: dict[str, str] | None = None) -> Cluster | None:
    """The cluster from the options, else from ``TF_CONFIG``; None for a single process."""
    environ = os.environ if environ is None else environ
    tf_config = environ.get("TF_CONFIG", "").strip()
    if workers:
        given = parse_workers(workers, worker_index)
        if tf_config and parse_tf_config(tf_config).addresses != given.addresses:
            raise ConfigError("both --workers and TF_CONFIG are set, and they disagree",
                              hint="give the cluster once: unset TF_CONFIG or drop --workers")
        return given
    if worker_index is not None:
        raise ConfigError("--worker-index needs --workers (the address of every worker)")
    return parse_tf_config(tf_config) if tf_config else None


def wait_for_peers(cluster: Cluster, timeout: float, *, interval: float = 0.5) -> float:
    """Listen on this worker's port, wait until every other worker accepts a connection and return
    the seconds waited; a :class:`ConfigError` names the first worker not reachable in time."""
    host, port = parse_address(cluster.address)
    listener = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        try:
            listener.bind((host, port))
        except OSError as exc:
            # An address that is not one of this machine's interfaces (NAT, a service name):
            # listen on every interface, as TensorFlow's server does.
            if exc.errno not in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT) and not isinstance(exc, socket.gaierror):
                raise
            listener.bind(("", port))
        listener.listen(64)
    except OSError as exc:
        listener.close()
        raise ConfigError(f"worker {cluster.index} cannot listen on {cluster.address}: {exc.strerror or exc}",
                          hint="the port may be in use (by another program or another worker on this machine): "
                               "check --worker-index and the address list") from None
    started = time.monotonic()
    try:
        for index, address in cluster.peers:
            peer = parse_address(address)
            last_error = "no answer"
            while True:
                try:
                    with socket.create_connection(peer, timeout=min(2.0, max(timeout, 0.1))):
                        break
                except OSError as exc:
                    last_error = exc.strerror or str(exc)
                waited = time.monotonic() - started
                if waited >= timeout:
                    raise ConfigError(
                        f"worker {index} at {address} cannot be reached ({last_error}; waited {waited:.0f} s)",
                        hint="start the same command on every worker, each with its own --worker-index; "
                             "check the address and that the port is open (--worker-timeout waits longer)")
                time.sleep(interval)
    finally:
        listener.close()
    return time.monotonic() - started


# ----------------------------------------------------------------------------- learning rate


def scale_learning_rate(learning_rate: float, batch_size: int, reference_batch: int,
                        rule: str) -> tuple[float, str]:
    """The learning rate for global batch ``batch_size`` by ``rule`` (``none``, ``linear``: times
    ``batch_size / reference_batch``, ``sqrt``: its square root) and a sentence saying so."""
    ratio = batch_size / reference_batch
    factors = {"none": 1.0, "linear": ratio, "sqrt": math.sqrt(ratio)}
    if rule not in factors:
        raise ConfigError(f"unknown learning-rate scaling {rule!r}", hint="none, linear or sqrt")
    scaled = learning_rate * factors[rule]
    if rule == "none":
        return scaled, f"learning rate {learning_rate:g} (no scaling for the global batch of {batch_size})"
    how = f"{batch_size}/{reference_batch}" if rule == "linear" else f"sqrt({batch_size}/{reference_batch})"
    return scaled, (f"learning rate {learning_rate:g} x {how} = {scaled:g} ({rule} scaling for the global batch "
                    f"of {batch_size}, reference batch {reference_batch})")


# ----------------------------------------------------------------------------- batch plan


@dataclass(frozen=True)
class BatchLayout:
    """Where one input pipeline's per-replica batches lie in an epoch's order of examples (step by
    step, then replica), their loss weights, the global steps and the examples ``dropped``."""

    starts: np.ndarray
    sizes: np.ndarray
    weights: np.ndarray
    steps: int
    dropped: int


def batch_layout(num_examples: int, global_batch: int, num_replicas: int, num_pipelines: int = 1,
                 pipeline: int = 0) -> BatchLayout:
    """Cut an epoch into global batches and each into one slice per replica (sizes differing by
    at most one); ``pipeline`` of ``num_pipelines`` feeds its ``num_replicas / num_pipelines``
    local replicas. A last batch with fewer examples than replicas is dropped."""
    if num_replicas % num_pipelines:
        raise ValueError(f"{num_replicas} replicas cannot be spread over {num_pipelines} pipelines")
    local = num_replicas // num_pipelines
    full, tail = divmod(num_examples, global_batch)
    sizes_of = [global_batch] * full + ([tail] if tail >= num_replicas else [])
    starts, sizes, weights = [], [], []
    for b, n in enumerate(sizes_of):
        base, extra = divmod(n, num_replicas)
        part = np.array([base + (r < extra) for r in range(num_replicas)], dtype=np.int64)
        offsets = b * global_batch + np.concatenate([[0], np.cumsum(part)[:-1]])
        mine = slice(pipeline * local, (pipeline + 1) * local)
        starts.extend(offsets[mine])
        sizes.extend(part[mine])
        weights.extend(num_replicas * part[mine] / n)
    dropped = tail if 0 < tail < num_replicas else 0
    return BatchLayout(np.asarray(starts, np.int64), np.asarray(sizes, np.int64),
                       np.asarray(weights, np.float32), len(sizes_of), dropped)


def epoch_order(num_examples: int, seed: int, epoch):
    """The order of the examples in ``epoch``: a permutation that depends only on (seed, epoch)."""
    import tensorflow as tf

    seeds = tf.stack([tf.constant(seed, tf.int64), tf.cast(epoch, tf.int64)])
    return tf.random.experimental.stateless_shuffle(tf.range(num_examples, dtype=tf.int64), seed=seeds)


class _ShardLog:
    """Appends the example ids of each per-replica batch to ``$FOVEAL_SHARD_LOG`` (debugging)."""

    def __init__(self, path: str, pipeline: int):
        self.path, self.pipeline, self.lock = path, pipeline, threading.Lock()

    def __call__(self, epoch, ids):
        line = json.dumps({"pipeline": self.pipeline, "epoch": int(epoch), "ids": ids.numpy().tolist()})
        with self.lock, open(self.path, "a", encoding="utf-8") as f:
            f.write(line + "\n")
        return np.int64(0)


@dataclass
class Batches:
    """How the training or validation data reaches the replicas."""

    dataset: Any  # a tf.distribute DistributedDataset
    steps: int
    element_spec: Any
    sharding: str
    dropped: int = 0


# ----------------------------------------------------------------------------- the strategy


@dataclass
class Distribution:
    """The strategy of a run (None for ``none``) and this process's place in its ``cluster``."""

    kind: str = "none"
    strategy: Any = None
    cluster: Cluster | None = None
    _private: Path | None = None

    @property
    def active(self) -> bool:
        return self.strategy is not None

    @property
    def num_replicas(self) -> int:
        return int(self.strategy.num_replicas_in_sync) if self.active else 1

    @property
    def num_workers(self) -> int:
        return self.cluster.size if self.cluster is not None else 1

    @property
    def worker_index(self) -> int:
        return self.cluster.index if self.cluster is not None else 0

    @property
    def is_chief(self) -> bool:
        return self.cluster is None or self.cluster.is_chief

    def scope(self):
        """The strategy's scope (a no-op without one): build and compile models inside it."""
        return self.strategy.scope() if self.active else contextlib.nullcontext()

    def describe(self, batch_size: int) -> str:
        if not self.active:
            return "distribution: none (one process, default device)"
        per = batch_size / self.num_replicas
        per_text = f"{per:g}" if per == int(per) else f"about {per:.1f}"
        devices = ", ".join(sorted({d.split("/")[-1] for d in self.strategy.extended.worker_devices}))
        where = (f"{self.num_workers} worker(s); this is worker {self.worker_index}"
                 f"{' (the chief: it writes the run folder)' if self.is_chief else ''}, on {devices}"
                 if self.kind == "multi-worker" else f"devices {devices}")
        return (f"distribution: {self.kind}, {self.num_replicas} replica(s), {where}; global batch "
                f"{batch_size} = {per_text} per replica")

    # -- run folder

    def private_run_dir(self, run_dir: Path) -> Path:
        """Where this process writes: the run folder on the chief, a temporary copy elsewhere."""
        if self.is_chief:
            return run_dir
        root = Path(tempfile.mkdtemp(prefix=f"foveal-worker{self.worker_index}-"))
        private = root / run_dir.name
        private.mkdir()
        for name in ("config.yaml", "state.json", "history.csv", "last.keras", "best.keras"):
            if (run_dir / name).is_file():
                shutil.copy2(run_dir / name, private / name)
        self._private = root
        return private

    def cleanup(self) -> None:
        if self._private is not None:
            shutil.rmtree(self._private, ignore_errors=True)
            self._private = None

    # -- agreement between workers

    def check_same_options(self, options: dict[str, Any]) -> None:
        """Refuse to train when the workers were started with different options (by digest)."""
        if self.kind != "multi-worker" or self.num_workers < 2:
            return
        import tensorflow as tf

        shared = {k: v for k, v in sorted(options.items()) if k not in _PER_WORKER_OPTIONS}
        digest = int.from_bytes(hashlib.sha256(repr(shared).encode()).digest()[:3], "big")
        value = tf.constant([digest], tf.int32)

        @tf.function
        def gather():
            return self.strategy.gather(self.strategy.run(lambda: tf.identity(value)), axis=0)

        with self.failures("comparing the options of the workers"):
            gathered = gather()
        if len(set(np.asarray(gathered).tolist())) > 1:
            raise ConfigError("the workers were started with different options",
                              hint="start every worker with the same command; only --worker-index "
                                   "(and --name/--output/--progress/--tensorboard) may differ")

    # -- errors

    @contextlib.contextmanager
    def failures(self, doing: str = "training") -> Iterator[None]:
        """Turn the errors of a lost worker into a :class:`FovealError` that says what to do."""
        if self.kind != "multi-worker":
            yield
            return
        import tensorflow as tf

        lost = (tf.errors.UnavailableError, tf.errors.DeadlineExceededError, tf.errors.CancelledError,
                tf.errors.AbortedError, tf.errors.FailedPreconditionError)
        try:
            yield
        except lost as exc:
            raise FovealError(self._lost_message(exc, doing),
                              hint="every worker must be restarted: run the same command again on all of them "
                                   "with --resume RUN_FOLDER (the last finished epoch is saved)") from None

    def _lost_message(self, exc: Exception, doing: str) -> str:
        """The workers TensorFlow's error names, with their addresses, and its first line."""
        text = re.sub(r"\{\{function_node [^}]*\}\}\s*", "", str(exc))
        first = next((line.strip() for line in text.splitlines() if line.strip()), "")
        cluster = self.cluster
        named: dict[str, None] = {}  # in order, once each
        if cluster is not None:
            offset = 1 if "chief" in cluster.tf_config.get("cluster", {}) else 0
            for job, task in re.findall(r"/job:(chief|worker)/replica:\d+/task:(\d+)", text):
                index = 0 if job == "chief" else int(task) + offset
                if index != cluster.index and 0 <= index < cluster.size:
                    named[f"worker {index} ({cluster.addresses[index]})"] = None
        who = ", ".join(named) if named else "another worker"
        return (f"worker {self.worker_index} lost contact with {who} while {doing}: it stopped or cannot be "
                f"reached ({type(exc).__name__}: {first[:200]})")

    # -- data

    def batches(self, data, *, image_size: tuple[int, int], channels: int, batch_size: int, training: bool,
                seed: int, epochs: tuple[int, int] | None = None, augment: str = "none", keep_aspect: bool = False,
                cache: str = "auto", shuffle_buffer: int = 10_000,
                class_weight: dict[int, float] | None = None) -> Batches:
        """Per-replica batches of ``data``: for training, :func:`batch_layout` over
        :func:`epoch_order` for the epochs ``(first, end)``; for validation in order, repeated."""
        import tensorflow as tf

        geometry = dict(image_size=tuple(image_size), channels=channels, keep_aspect=keep_aspect)
        indexed = data.tfrecord is None or cache == "memory"
        # Every pipeline gives its elements the same structure: whether there are example
        # weights follows from the whole epoch's layout, not from one pipeline's part of it.
        uneven = indexed and training and bool(np.any(batch_layout(len(data), batch_size, self.num_replicas)
                                                      .weights != 1))
        # Built here, outside any strategy scope: augmentation layers hold plain variables.
        finish = _finisher(data.num_classes, image_size, channels, augment if training else "none", seed,
                           class_weight if training else None, uneven)
        state: dict[str, Any] = {}

        def dataset_fn(ctx):
            pipelines, pipeline = ctx.num_input_pipelines, ctx.input_pipeline_id
            if indexed:
                layout = batch_layout(len(data), batch_size, self.num_replicas, pipelines, pipeline)
                loader = _IndexedImages(data, cache=cache, **geometry)
                ds = _plan_dataset(loader, layout, seed=seed, epochs=epochs if training else None,
                                   log=os.environ.get(SHARD_LOG_ENV) if training else None, pipeline=pipeline)
                state.update(steps=layout.steps, dropped=layout.dropped,
                             sharding="examples" if loader.pixels is not None else "files")
            else:
                ds, sharding = _streamed(data, pipelines, pipeline, per_replica=max(batch_size // self.num_replicas, 1),
                                         training=training, seed=seed, shuffle_buffer=shuffle_buffer, **geometry)
                state.update(steps=math.ceil(len(data) / batch_size), dropped=0, sharding=sharding)
            ds = finish(ds).prefetch(tf.data.AUTOTUNE)
            options = tf.data.Options()
            options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
            ds = ds.with_options(options)
            state["spec"] = ds.element_spec
            return ds

        distributed = self.strategy.distribute_datasets_from_function(dataset_fn)
        return Batches(distributed, state["steps"], state["spec"], state["sharding"], state["dropped"])

    def pipeline_batches(self, ds, *, count: int, batch_size: int, steps: int | None = None) -> Batches:
        """Per-replica batches of a task's own pipeline of global batches, split by ``tf.distribute``,
        repeated (``steps`` per epoch); a batch with fewer examples than replicas is left out."""
        import tensorflow as tf

        replicas = self.num_replicas
        full, tail = divmod(count, batch_size)
        dropped = tail if 0 < tail < replicas else 0
        if replicas > 1:
            ds = ds.filter(lambda *element: tf.shape(tf.nest.flatten(element)[0])[0] >= replicas)
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
        ds = ds.repeat().with_options(options)
        return Batches(self.strategy.experimental_distribute_dataset(ds), steps or max(1, full + (tail >= replicas)),
                       ds.element_spec, "batches" if self.num_workers == 1 else "records", dropped)

    # -- fitting

    @contextlib.contextmanager
    def fitting(self, model, element_spec) -> Iterator[None]:
        """Run ``model.fit``/``evaluate`` inside this block, around two limits of Keras 3.15 with
        ``MultiWorkerMirroredStrategy`` (docs/distributed.md, "How it works")."""
        if not self.active:
            yield
            return
        with self.strategy.scope():
            model._symbolic_build(data_batch=element_spec)
        saved = model._distribute_strategy
        cls = type(model)
        model._distribute_strategy = None
        model.train_step = _with_batch_axis(cls.train_step.__get__(model, cls))
        model.test_step = _with_batch_axis(cls.test_step.__get__(model, cls))
        try:
            with self.strategy.scope(), self.failures():
                yield
        finally:
            for name in ("train_step", "test_step"):
                model.__dict__.pop(name, None)
            model._distribute_strategy = saved


def predict_here(model, ds):
    """``model.predict(ds)``, but on this device alone inside a strategy's scope (a callback's
    validation): Keras would split each batch between the replicas and fail on one smaller than
    them."""
    import tensorflow as tf

    if not tf.distribute.has_strategy():
        return model.predict(ds, verbose=0)
    step = tf.function(model.predict_step)
    parts = [tf.nest.map_structure(np.asarray, step(batch)) for batch in ds]
    return tf.nest.map_structure(lambda *xs: np.concatenate(xs, axis=0), *parts)


def per_replica_loss(value):
    """A model's own ``compute_loss`` result divided by the replicas in sync, as Keras scales its
    built-in losses (the replicas' gradients are summed); models overriding it must return this."""
    import tensorflow as tf

    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    return value if replicas == 1 else value * tf.cast(1.0 / replicas, value.dtype)


def _with_batch_axis(step: Callable) -> Callable:
    import tensorflow as tf

    def step_with_axis(data):
        return {k: tf.reshape(v, [1]) for k, v in step(data).items()}

    return step_with_axis


class _IndexedImages:
    """Images of a :class:`LabeledImages` loaded by index, from a decoded uint8 array or their files."""

    def __init__(self, data, *, image_size: tuple[int, int], channels: int, keep_aspect: bool, cache: str):
        self.data, self.size, self.channels, self.keep_aspect = data, tuple(image_size), channels, keep_aspect
        self.pixels = self._decoded() if data.images is not None or cache == "memory" else None

    def _decoded(self) -> np.ndarray:
        """Every image decoded and resized once, with the pipeline's own functions."""
        import tensorflow as tf

        from foveal.data.pipeline import resize_image

        images = self.data.images
        if images is not None:
            if images.ndim == 3:
                images = images[..., None]
            if images.shape[1:] == (*self.size, self.channels):
                return images
        ds = self.data.to_tf_dataset(self.channels).map(
            lambda x, y: resize_image(x, self.size, self.keep_aspect), num_parallel_calls=tf.data.AUTOTUNE)
        chunks = [b.numpy() for b in ds.batch(1024)]
        return np.concatenate(chunks) if chunks else np.zeros((0, *self.size, self.channels), np.uint8)

    def load(self, ids):
        import tensorflow as tf

        from foveal.data.decode import decode_path
        from foveal.data.pipeline import resize_image

        if self.pixels is not None:
            return tf.gather(self._pixels_tensor, ids)
        paths = tf.gather(self._paths_tensor, ids)
        return tf.map_fn(
            lambda p: resize_image(decode_path(p, self.channels), self.size, self.keep_aspect),
            paths, fn_output_signature=tf.TensorSpec((*self.size, self.channels), tf.uint8))

    def build(self) -> None:
        import tensorflow as tf

        if self.pixels is not None:
            self._pixels_tensor = tf.constant(self.pixels)
        else:
            self._paths_tensor = tf.constant(self.data.paths.astype(str))


def _plan_dataset(loader: _IndexedImages, layout: BatchLayout, *, seed: int, epochs: tuple[int, int] | None,
                  log: str | None, pipeline: int):
    """(uint8 images, int32 labels, float32 example weights) batches following ``layout``."""
    import tensorflow as tf

    loader.build()
    n = len(loader.data)
    labels = tf.constant(loader.data.labels.astype(np.int32))
    parts = tf.data.Dataset.from_tensor_slices((layout.starts, layout.sizes, layout.weights))
    recorder = _ShardLog(log, pipeline) if log else None

    def epoch_parts(epoch):
        order = epoch_order(n, seed, epoch) if epochs is not None else tf.range(n, dtype=tf.int64)
        return parts.map(lambda start, size, weight: (epoch, order[start:start + size], weight))

    if epochs is None:
        ds = epoch_parts(tf.constant(0, tf.int64)).repeat()
    else:
        ds = tf.data.Dataset.range(epochs[0], epochs[1]).flat_map(epoch_parts)

    def load(epoch, ids, weight):
        if recorder is not None:
            done = tf.py_function(recorder, [epoch, ids], tf.int64)
            with tf.control_dependencies([done]):
                ids = tf.identity(ids)
        return loader.load(ids), tf.gather(labels, ids), tf.fill(tf.shape(ids), weight)

    return ds.map(load, num_parallel_calls=tf.data.AUTOTUNE)


def tfrecord_shard(data, pipelines: int, pipeline: int):
    """Every ``pipelines``-th TFRecord file of ``data`` from ``pipeline`` on, with their labels;
    None for a selection of records or fewer files than pipelines (then records are sharded)."""
    spec = data.tfrecord
    counts = data.info.get("records_per_file") or {}
    if spec is None or spec.record_indices is not None or len(spec.files) < pipelines:
        return None
    if set(counts) != set(spec.files) or sum(counts.values()) != len(data):
        return None
    ends = np.cumsum([counts[f] for f in spec.files])
    bounds = list(zip(ends - np.asarray([counts[f] for f in spec.files]), ends))
    mine = range(pipeline, len(spec.files), pipelines)
    labels = np.concatenate([data.labels[bounds[i][0]:bounds[i][1]] for i in mine])
    files = tuple(spec.files[i] for i in mine)
    return replace(data, labels=labels, tfrecord=replace(spec, files=files),
                   info={**data.info, "records_per_file": {f: counts[f] for f in files}})


def _streamed(data, pipelines: int, pipeline: int, *, per_replica: int, training: bool, seed: int,
              shuffle_buffer: int, image_size, channels, keep_aspect):
    """Batches of uint8 pairs of a TFRecord stream: this worker's files, else every n-th record."""
    import tensorflow as tf

    from foveal.data.pipeline import resize_image

    own = tfrecord_shard(data, pipelines, pipeline)
    if own is not None:
        ds, sharding, count = own.to_tf_dataset(channels), "files", len(own)
    else:
        ds, sharding = data.to_tf_dataset(channels).shard(pipelines, pipeline), "records"
        count = len(data) // pipelines
    ds = ds.map(lambda x, y: (resize_image(x, image_size, keep_aspect), y), num_parallel_calls=tf.data.AUTOTUNE)
    if training:
        ds = ds.shuffle(min(shuffle_buffer, max(count, 1)), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(per_replica).map(lambda x, y: (x, y, tf.ones(tf.shape(y), tf.float32)))
    return ds.repeat(), sharding


def _finisher(num_classes: int, image_size, channels: int, augment: str, seed: int,
              class_weight: dict[int, float] | None, example_weights: bool):
    """(uint8 images, labels, example weights) -> float32 pixels, augmented, one-hot labels and
    the sample weights when class or example weights are not all one."""
    import tensorflow as tf

    from foveal.data.augment import build_augmenter, parse_spec

    if any(op == "altflip" for op, _ in parse_spec(augment)):
        raise ConfigError("--augment altflip (alternating flips) needs the single-device pipeline",
                          hint="use 'flip' with --distribute, or train on one device")
    augmenter = build_augmenter(augment, tuple(image_size), seed)
    classes = None
    if class_weight:
        classes = tf.constant([class_weight.get(c, 1.0) for c in range(num_classes)], tf.float32)

    def to_model_input(x, y, w):
        x = tf.cast(x, tf.float32)
        x.set_shape([None, image_size[0], image_size[1], channels])
        if augmenter is not None:
            x = augmenter(x, training=True)
        if classes is not None:
            w = w * tf.gather(classes, y)
        if classes is None and not example_weights:
            return x, tf.one_hot(y, num_classes)
        return x, tf.one_hot(y, num_classes), w

    return lambda ds: ds.map(to_model_input, num_parallel_calls=tf.data.AUTOTUNE)


def start(kind: str, *, workers: list[str] | None = None, worker_index: int | None = None,
          timeout: float = 120.0, collective_timeout: float = 0.0, devices: list[str] | None = None,
          say: Callable[[str], None] = print) -> Distribution:
    """Create the strategy of ``--distribute kind``: call this before any other TensorFlow work."""
    if kind == "none":
        return Distribution()
    import tensorflow as tf

    if kind == "mirrored":
        try:
            return Distribution("mirrored", tf.distribute.MirroredStrategy(devices or None))
        except (ValueError, RuntimeError) as exc:
            raise ConfigError(f"cannot mirror over the devices {devices}: {exc}",
                              hint="name devices like GPU:0 GPU:1 (see tf.config.list_logical_devices())") from None
    if kind != "multi-worker":
        raise ConfigError(f"unknown distribution {kind!r}", hint="none, mirrored or multi-worker")
    cluster = resolve_cluster(workers, worker_index)
    if cluster is not None:
        os.environ["TF_CONFIG"] = json.dumps(cluster.tf_config)
        if cluster.size > 1:
            say(f"worker {cluster.index} of {cluster.size} at {cluster.address}: waiting for the other workers "
                f"(at most {timeout:g} s)")
            waited = wait_for_peers(cluster, timeout if timeout > 0 else float("inf"))
            say(f"all {cluster.size} workers reachable after {waited:.1f} s")
    options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=collective_timeout or None)
    from tensorflow.python.distribute import collective_all_reduce_strategy as car

    extended = car.CollectiveAllReduceExtended
    previous = extended._check_health_initial_timeout
    extended._check_health_initial_timeout = int(math.ceil(timeout)) if timeout > 0 else 0
    try:
        strategy = tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    except RuntimeError as exc:
        if "Collective ops must be configured at program startup" in str(exc):
            raise ConfigError("multi-worker training must start before any other TensorFlow work in the "
                              "process", hint="run it as its own `foveal train` command (or a fresh Python "
                              "process calling foveal.training.trainer.train first)") from None
        if "Timeout waiting for the cluster" in str(exc):
            raise ConfigError(f"the workers did not all join within {timeout:g} s",
                              hint="start the same command on every worker; --worker-timeout waits longer") from None
        raise
    finally:
        extended._check_health_initial_timeout = previous
    return Distribution("multi-worker", strategy, cluster if cluster is not None and cluster.size > 1 else None)
