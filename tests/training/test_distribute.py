"""Distributed training: cluster specs, the learning-rate rule, the batch plan, and real
multi-worker runs of two processes on 127.0.0.1 (MultiWorkerMirroredStrategy on CPU)."""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import SHARED_DATASETS
from foveal import configtools
from foveal.config import TrainConfig
from foveal.errors import ConfigError
from foveal.training import distribute as d

SHARED = SHARED_DATASETS / "mnist"  # read when present; scikit-learn's digits otherwise (see mnist_npz)


def free_ports(n: int) -> list[str]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [f"127.0.0.1:{s.getsockname()[1]}" for s in sockets]
    for s in sockets:
        s.close()
    return ports


# ----------------------------------------------------------------------------- cluster specs


@pytest.mark.parametrize("text", ["host", "host:", ":2222", "host:0", "host:70000", "host:22x", "a b:1",
                                  "-bad:1", "[::1:1"])
def test_malformed_addresses_are_refused(text):
    with pytest.raises(ConfigError, match="is not HOST:PORT"):
        d.parse_address(text)


@pytest.mark.parametrize("text, expected", [("10.0.0.1:2222", ("10.0.0.1", 2222)),
                                            ("worker-0.example.org:80", ("worker-0.example.org", 80)),
                                            ("[::1]:2222", ("::1", 2222))])
def test_addresses(text, expected):
    assert d.parse_address(text) == expected


def test_workers_and_index():
    cluster = d.parse_workers(["a:1,b:2", "c:3"], 2)
    assert cluster.addresses == ("a:1", "b:2", "c:3") and cluster.address == "c:3" and not cluster.is_chief
    assert cluster.peers == [(0, "a:1"), (1, "b:2")]
    assert cluster.tf_config == {"cluster": {"worker": ["a:1", "b:2", "c:3"]}, "task": {"type": "worker", "index": 2}}
    assert d.parse_workers(["a:1", "b:2"], 0).is_chief


@pytest.mark.parametrize("workers, index, message", [
    (["a:1", "b:2"], 2, "out of range"),
    (["a:1", "b:2"], -1, "out of range"),
    (["a:1", "b:2"], None, "needs --worker-index"),
    (["a:1", "a:1"], 0, "listed twice"),
    (["a:1", "b"], 0, "is not HOST:PORT"),
    ([], 0, "no worker addresses"),
])
def test_inconsistent_worker_lists(workers, index, message):
    with pytest.raises(ConfigError, match=message):
        d.parse_workers(workers, index)


def test_tf_config():
    spec = {"cluster": {"chief": ["c:1"], "worker": ["w:1", "w:2"]}, "task": {"type": "worker", "index": 1}}
    cluster = d.parse_tf_config(json.dumps(spec))
    assert cluster.addresses == ("c:1", "w:1", "w:2") and cluster.index == 2 and not cluster.is_chief
    spec["task"] = {"type": "chief", "index": 0}
    assert d.parse_tf_config(json.dumps(spec)).is_chief


@pytest.mark.parametrize("text, message", [
    ("{cluster: ", "not valid JSON"),
    ("[1, 2]", "JSON object"),
    ('{"cluster": {"worker": ["a:1"]}}', "JSON object"),
    ('{"cluster": {"ps": ["a:1"], "worker": ["b:1"]}, "task": {"type": "worker", "index": 0}}', "not supported"),
    ('{"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 2}}', "out of range"),
    ('{"cluster": {"worker": ["a:1", "a:1"]}, "task": {"type": "worker", "index": 0}}', "listed twice"),
    ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "chief", "index": 0}}', "not a job"),
    ('{"cluster": {"worker": "a:1"}, "task": {"type": "worker", "index": 0}}', "must be a list"),
])
def test_bad_tf_config(text, message):
    with pytest.raises(ConfigError, match=message):
        d.parse_tf_config(text)


def test_cluster_from_options_or_environment():
    tf_config = json.dumps({"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 1}})
    assert d.resolve_cluster(None, None, {}) is None
    assert d.resolve_cluster(None, None, {"TF_CONFIG": tf_config}).index == 1
    assert d.resolve_cluster(["a:1", "b:1"], 1, {"TF_CONFIG": tf_config}).index == 1
    with pytest.raises(ConfigError, match="disagree"):
        d.resolve_cluster(["a:1", "c:1"], 1, {"TF_CONFIG": tf_config})
    with pytest.raises(ConfigError, match="needs --workers"):
        d.resolve_cluster(None, 1, {})


def test_train_options_are_checked_before_anything_runs():
    def resolve(**options):
        return configtools.resolve(TrainConfig, None, options)

    assert resolve(distribute="multi-worker", workers="127.0.0.1:5000,127.0.0.1:5001", worker_index=1).workers
    for options, message in [
        (dict(workers=["a:1", "b:1"], worker_index=0), "for --distribute multi-worker"),
        (dict(distribute="multi-worker", workers=["a:1", "b:1"], worker_index=3), "out of range"),
        (dict(distribute="multi-worker", workers=["a:1", "b"], worker_index=0), "HOST:PORT"),
        (dict(distribute="mirrored", bottleneck=True, weights="imagenet", model="mobilenetv2"), "bottleneck"),
        (dict(distribute="mirrored", distill_from="teacher.keras"), "distill"),
        (dict(distribute="multi-worker", devices=["GPU:0"]), "devices is for"),
        (dict(distribute="mirroed"), "did you mean 'mirrored'"),
        (dict(lr_scaling="cubic"), "not one of"),
        (dict(worker_timeout=-1), "worker_timeout"),
    ]:
        with pytest.raises(ConfigError, match=message):
            resolve(**options)


def test_unreachable_worker_fails_in_bounded_time():
    ports = free_ports(2)
    started = time.monotonic()
    with pytest.raises(ConfigError, match=re.escape(f"worker 1 at {ports[1]} cannot be reached")):
        d.wait_for_peers(d.parse_workers(ports, 0), timeout=1.5)
    assert time.monotonic() - started < 10


def test_reachable_worker_and_busy_own_port():
    peer = socket.socket()
    peer.bind(("127.0.0.1", 0))
    peer.listen(1)
    mine = free_ports(1)[0]
    try:
        cluster = d.parse_workers([mine, f"127.0.0.1:{peer.getsockname()[1]}"], 0)
        assert d.wait_for_peers(cluster, timeout=5) < 5
        busy = d.parse_workers([f"127.0.0.1:{peer.getsockname()[1]}", mine], 0)
        with pytest.raises(ConfigError, match="cannot listen"):
            d.wait_for_peers(busy, timeout=1)
    finally:
        peer.close()


def test_train_stops_when_a_worker_never_comes(tmp_path, monkeypatch):
    from foveal.training.trainer import train

    monkeypatch.setenv("TF_CONFIG", "")  # restored afterwards: train() sets it from --workers
    started = time.monotonic()
    with pytest.raises(ConfigError, match="worker 1 at .* cannot be reached"):
        train(TrainConfig(data="digits", output=str(tmp_path), distribute="multi-worker", workers=free_ports(2),
                          worker_index=0, worker_timeout=1))
    assert time.monotonic() - started < 15
    assert not any(tmp_path.iterdir())


# ----------------------------------------------------------------------------- learning rate


def test_learning_rate_rules():
    assert d.scale_learning_rate(0.1, 512, 256, "none")[0] == 0.1
    assert d.scale_learning_rate(0.1, 512, 256, "linear")[0] == pytest.approx(0.2)
    lr, message = d.scale_learning_rate(0.1, 1024, 256, "sqrt")
    assert lr == pytest.approx(0.2) and "sqrt(1024/256)" in message and "= 0.2" in message
    assert d.scale_learning_rate(0.1, 32, 64, "linear")[0] == pytest.approx(0.05)


# ----------------------------------------------------------------------------- the batch plan


@pytest.mark.parametrize("n, batch, replicas, pipelines", [(461, 64, 2, 2), (461, 64, 4, 2), (100, 32, 3, 3),
                                                           (65, 32, 2, 1), (64, 64, 8, 4)])
def test_every_global_batch_is_split_over_the_replicas(n, batch, replicas, pipelines):
    whole = d.batch_layout(n, batch, replicas)
    layouts = [d.batch_layout(n, batch, replicas, pipelines, p) for p in range(pipelines)]
    local = replicas // pipelines
    seen = []
    for step in range(whole.steps):
        positions, sizes = [], []
        for layout in layouts:
            assert layout.steps == whole.steps
            for r in range(step * local, (step + 1) * local):
                positions += range(layout.starts[r], layout.starts[r] + layout.sizes[r])
                sizes.append(layout.sizes[r])
                # The weights make sum over replicas of (mean per replica) / replicas the global mean.
                global_size = min(batch, n - step * batch)
                assert layout.weights[r] / (replicas * layout.sizes[r]) == pytest.approx(1 / global_size)
        assert positions == list(range(step * batch, min((step + 1) * batch, n)))
        assert max(sizes) - min(sizes) <= 1 and min(sizes) >= 1
        seen += positions
    assert len(seen) + whole.dropped == n


def test_a_last_batch_smaller_than_the_replicas_is_dropped():
    layout = d.batch_layout(65, 32, 4)
    assert layout.steps == 2 and layout.dropped == 1 and layout.sizes.tolist() == [8] * 8


def test_epoch_order_depends_on_seed_and_epoch_only():
    a, b, c = (d.epoch_order(50, s, e).numpy() for s, e in [(1, 3), (1, 3), (1, 4)])
    assert sorted(a.tolist()) == list(range(50))
    assert (a == b).all() and not (a == c).all()
    assert not (d.epoch_order(50, 2, 3).numpy() == a).all()


def _indexed_images(n: int):
    """n 8x8 gray images whose first two pixels spell their index."""
    from foveal.data.source import LabeledImages

    images = np.zeros((n, 8, 8, 1), np.uint8)
    images[:, 0, 0, 0], images[:, 0, 1, 0] = np.arange(n) // 256, np.arange(n) % 256
    return LabeledImages(class_names=["a", "b"], labels=(np.arange(n) % 2).astype(np.int32), images=images)


def test_two_pipelines_load_disjoint_halves_of_each_global_batch():
    data = _indexed_images(300)
    loaders = [d._IndexedImages(data, image_size=(8, 8), channels=1, keep_aspect=False, cache="auto")
               for _ in range(3)]
    whole = [list(d._plan_dataset(loaders[0], d.batch_layout(300, 64, 2), seed=5, epochs=(1, 3), log=None,
                                  pipeline=0))]
    halves = [list(d._plan_dataset(loaders[p + 1], d.batch_layout(300, 64, 2, 2, p), seed=5, epochs=(1, 3),
                                   log=None, pipeline=p)) for p in range(2)]

    def ids(batch):
        x = batch[0].numpy().astype(int)
        return (x[:, 0, 0, 0] * 256 + x[:, 0, 1, 0]).tolist()

    single = whole[0]  # one pipeline feeding two replicas: slices alternate
    assert len(single) == 2 * len(halves[0]) == 2 * len(halves[1]) == 2 * 2 * 5
    for step in range(len(halves[0])):
        a, b = ids(halves[0][step]), ids(halves[1][step])
        assert not set(a) & set(b)
        assert a + b == ids(single[2 * step]) + ids(single[2 * step + 1])
        assert halves[0][step][1].numpy().tolist() == [i % 2 for i in a]  # labels follow their images
    epoch = [i for step in range(5) for p in range(2) for i in ids(halves[p][step])]
    assert sorted(epoch) == list(range(300))


def test_image_files_are_decoded_per_batch_only_by_their_worker(digits_folder):
    from foveal.data.readers import load_dataset

    data = load_dataset(str(digits_folder))["train"]
    layout = d.batch_layout(len(data), 32, 2, 2, 1)
    streamed = d._IndexedImages(data, image_size=(12, 12), channels=1, keep_aspect=False, cache="auto")
    cached = d._IndexedImages(data, image_size=(12, 12), channels=1, keep_aspect=False, cache="memory")
    assert streamed.pixels is None and cached.pixels is not None
    a = list(d._plan_dataset(streamed, layout, seed=0, epochs=(0, 1), log=None, pipeline=1))
    b = list(d._plan_dataset(cached, layout, seed=0, epochs=(0, 1), log=None, pipeline=1))
    assert len(a) == len(b) == layout.steps
    for (xa, ya, _), (xb, yb, _) in zip(a, b):
        assert (xa.numpy() == xb.numpy()).all() and (ya.numpy() == yb.numpy()).all()


def test_tfrecord_files_are_sharded_by_file(tmp_path):
    from foveal.data.readers import load_dataset
    from foveal.data.readers.tfrecord import write_tfrecord

    write_tfrecord(_indexed_images(40), tmp_path / "train.tfrecord", shards=5)
    data = load_dataset(str(tmp_path))["train"]
    shards = [d.tfrecord_shard(data, 2, p) for p in range(2)]
    assert [len(s.tfrecord.files) for s in shards] == [3, 2]
    assert not set(shards[0].tfrecord.files) & set(shards[1].tfrecord.files)
    assert sum(len(s) for s in shards) == 40
    for shard in shards:  # the labels are those of the records read
        read = [int(y) for _, y in shard.to_tf_dataset(1)]
        assert read == shard.labels.tolist()
    assert d.tfrecord_shard(data, 6, 0) is None  # fewer files than workers: records instead
    assert d.tfrecord_shard(data.subset(np.arange(10)), 2, 0) is None


# ----------------------------------------------------------------------------- runs


FAST = dict(data="digits", model="lenet5", tensorboard=False, progress=False, report_misclassified=0)


def test_mirrored_with_default_options_writes_tensorboard_logs(tmp_path):
    """The default path (TensorBoard on): distributed steps log shape-(1,) values, which the scalar
    summary refused with a traceback before."""
    from foveal.training.trainer import train

    # batch 128 (12 distributed steps, not 45): the options under test are TensorBoard's and the strategy's
    result = train(TrainConfig(data="digits", model="lenet5", epochs=1, batch_size=128, distribute="mirrored",
                               progress=False, report_misclassified=0, output=str(tmp_path), name="tb"))
    assert TrainConfig().tensorboard  # the default this test relies on
    assert list((result.run_dir / "tensorboard" / "train").glob("events.out.tfevents.*"))
    assert result.metrics is not None


@pytest.mark.slow  # the default tier runs a mirrored run with the default options
def test_mirrored_resume_continues_the_same_epochs(tmp_path, mnist_npz, capsys):
    from foveal.models.io import load_model
    from foveal.training.trainer import train

    kw = dict(FAST, data=str(mnist_npz), distribute="mirrored", batch_size=128, lr_scaling="linear",
              output=str(tmp_path))
    whole = train(TrainConfig(**kw, epochs=2, name="whole"))
    out = capsys.readouterr().out
    assert "learning rate 0.001 x 128/64 = 0.002 (linear scaling" in out
    assert "distribution: mirrored, 1 replica(s)" in out and "data sharding: examples" in out
    for name in ("config.yaml", "state.json", "last.keras", "best.keras", "metrics.json", "report.html"):
        assert (whole.run_dir / name).is_file(), name
    _, card = load_model(whole.run_dir / "last.keras")
    assert card.training["learning_rate"] == pytest.approx(0.002)
    assert card.training["distribute"] == {"strategy": "mirrored", "replicas": 1, "workers": 1, "global_batch": 128}

    train(TrainConfig(**kw, epochs=1, name="split"))
    resumed = train(resume=tmp_path / "split", epochs=2)
    assert resumed.history["val_loss"] == pytest.approx(whole.history["val_loss"], rel=1e-5)
    a = load_model(whole.run_dir / "last.keras")[0].get_weights()
    b = load_model(resumed.run_dir / "last.keras")[0].get_weights()
    assert max(float(np.abs(x - y).max()) for x, y in zip(a, b)) < 1e-5


@pytest.fixture(scope="module")
def mnist_npz(tmp_path_factory) -> Path:
    """576 real MNIST digits (512 train, 64 test) as an .npz, else scikit-learn's digits."""
    path = tmp_path_factory.mktemp("mnist") / "mnist-576.npz"
    images_file, labels_file = SHARED / "train-images-idx3-ubyte.gz", SHARED / "train-labels-idx1-ubyte.gz"
    if images_file.is_file() and labels_file.is_file():
        with gzip.open(images_file) as f:
            images = np.frombuffer(f.read(16 + 576 * 784)[16:], np.uint8).reshape(576, 28, 28)
        with gzip.open(labels_file) as f:
            labels = np.frombuffer(f.read(8 + 576)[8:], np.uint8).astype(np.int64)
    else:
        from sklearn.datasets import load_digits

        digits = load_digits()
        images, labels = np.round(digits.images[:576] * 255 / 16).astype(np.uint8), digits.target[:576]
    np.savez(path, x_train=images[:512], y_train=labels[:512], x_test=images[512:], y_test=labels[512:])
    return path


@pytest.mark.slow  # the default tier runs a mirrored run with the default options
def test_mirrored_runs_the_other_training_options(tmp_path, mnist_npz):
    from foveal.training.trainer import train

    kw = dict(FAST, data=str(mnist_npz), distribute="mirrored", batch_size=128, output=str(tmp_path), epochs=1)
    first = train(TrainConfig(**kw, name="a", augment="digits", class_weight="balanced", oversample=True))
    second = train(TrainConfig(**kw, name="b", weights=str(first.run_dir / "best.keras"), freeze="base",
                               fine_tune_epochs=1, mixed_precision="bfloat16"))
    assert second.history["phase"] == [1.0, 2.0] and second.metrics["accuracy"] > 0.3


RUNNER = textwrap.dedent("""
    import json, sys
    import keras, numpy as np
    from foveal.config import TrainConfig
    from foveal.training.trainer import train

    class Dump(keras.callbacks.Callback):
        def on_train_end(self, logs=None):
            np.save(sys.argv[2], np.concatenate([w.ravel() for w in self.model.get_weights()]))

    train(TrainConfig(**json.loads(sys.argv[1])), callbacks=[Dump()])
""")


def _worker_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    return {**env, "TF_CPP_MIN_LOG_LEVEL": "2", **extra}


def _shards(path: Path) -> dict[int, list[list[int]]]:
    """epoch -> the id lists of each step, in order."""
    out: dict[int, list[list[int]]] = {}
    for line in path.read_text().splitlines():
        entry = json.loads(line)
        out.setdefault(entry["epoch"], []).append(entry["ids"])
    return out


def _wait(procs: list[subprocess.Popen], timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    try:
        return [p.wait(timeout=max(deadline - time.monotonic(), 1)) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()  # SIGKILL: a worker blocked in a collective ignores SIGTERM


@pytest.mark.slow  # three trainings, two in new processes; multi-worker start-up stays fast: ..._different_options_...
def test_two_workers_train_the_model_of_one_process(tmp_path, mnist_npz, monkeypatch):
    """Two worker processes see disjoint halves of every global batch, end with identical
    weights, and match one process training with the same global batch; only the chief
    writes a run folder."""
    from foveal.training.trainer import train

    ports = free_ports(2)
    options = dict(FAST, data=str(mnist_npz), epochs=2, batch_size=64, val_split=0.1, test_split=0.0,
                   distribute="multi-worker", workers=ports, worker_timeout=60)
    procs = []
    for i in range(2):
        out = str(tmp_path / ("runs" if i == 0 else "worker1-output"))
        cfg = dict(options, worker_index=i, output=out, name="run")
        procs.append(subprocess.Popen(
            [sys.executable, "-c", RUNNER, json.dumps(cfg), str(tmp_path / f"weights{i}.npy")],
            stdout=open(tmp_path / f"worker{i}.log", "w"), stderr=subprocess.STDOUT,
            env=_worker_env(FOVEAL_SHARD_LOG=str(tmp_path / f"shards{i}.jsonl"))))
    # Meanwhile, the same global batch plan on one process (one replica).
    monkeypatch.setenv(d.SHARD_LOG_ENV, str(tmp_path / "shards-one.jsonl"))
    import keras

    class Dump(keras.callbacks.Callback):
        def on_train_end(self, logs=None):
            np.save(tmp_path / "weights-one.npy", np.concatenate([w.ravel() for w in self.model.get_weights()]))

    one = train(TrainConfig(**{**options, "distribute": "mirrored", "workers": None}, output=str(tmp_path / "one"),
                            name="run"), callbacks=[Dump()])
    codes = _wait(procs, timeout=240)
    logs = [(tmp_path / f"worker{i}.log").read_text() for i in range(2)]
    assert codes == [0, 0], logs

    shards = [_shards(tmp_path / f"shards{i}.jsonl") for i in range(2)]
    single = _shards(tmp_path / "shards-one.jsonl")
    for epoch in (0, 1):
        w0, w1 = shards[0][epoch], shards[1][epoch]
        assert len(w0) == len(w1) == len(single[epoch]) == 8  # 461 images, batch 64: 7 full steps + 13
        assert not {i for s in w0 for i in s} & {i for s in w1 for i in s}
        for a, b, both in zip(w0, w1, single[epoch]):
            assert sorted(a + b) == sorted(both) and abs(len(a) - len(b)) <= 1
        assert sorted(i for s in w0 + w1 for i in s) == list(range(461))
    assert shards[0][0] != shards[0][1]  # a new order each epoch

    w0, w1, w_one = (np.load(tmp_path / f"weights{n}.npy") for n in ("0", "1", "-one"))
    assert np.array_equal(w0, w1)
    assert np.abs(w0 - w_one).max() < 1e-4
    state = json.loads((tmp_path / "runs" / "run" / "state.json").read_text())
    assert state["status"] == "done"
    assert state["history"]["val_loss"] == pytest.approx(one.history["val_loss"], rel=1e-4)
    run = tmp_path / "runs" / "run"
    for name in ("config.yaml", "last.keras", "best.keras", "metrics.json", "report.html"):
        assert (run / name).is_file(), name
    assert "workers: null" in (run / "config.yaml").read_text()
    assert not (tmp_path / "worker1-output").exists()
    private = re.search(r"private copy in (\S+)", logs[1]).group(1)
    assert not Path(private).exists()
    assert "data sharding: examples" in logs[0] and "(the chief: it writes the run folder)" in logs[0]


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "foveal.cli.main", "train", *args]


@pytest.mark.slow
def test_killed_worker_stops_the_other_and_a_restart_resumes(tmp_path, mnist_npz):
    run = tmp_path / "runs" / "run"
    common = ["--data", str(mnist_npz), "--model", "lenet5", "--batch-size", "64", "--no-tensorboard",
              "--no-progress", "--report-misclassified", "0", "--distribute", "multi-worker",
              "--worker-timeout", "20"]
    ports = ",".join(free_ports(2))
    procs = [subprocess.Popen(_cli(*common, "--epochs", "60", "--output", str(tmp_path / "runs"), "--name", "run",
                                   "--workers", ports, "--worker-index", str(i)),
                              stdout=open(tmp_path / f"first{i}.log", "w"), stderr=subprocess.STDOUT,
                              env=_worker_env()) for i in range(2)]
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            state = json.loads((run / "state.json").read_text()) if (run / "state.json").is_file() else {}
            if state.get("epoch", 0) >= 1:
                break
            assert all(p.poll() is None for p in procs), "a worker ended early"
            time.sleep(0.2)
        procs[1].send_signal(signal.SIGKILL)
        killed = time.monotonic()
        assert procs[0].wait(timeout=90) == 2
        assert time.monotonic() - killed < 60
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    log = (tmp_path / "first0.log").read_text()
    assert "worker 0 lost contact with worker 1" in log and "--resume" in log
    killed_copy = re.search(r"private copy in (\S+)", (tmp_path / "first1.log").read_text())
    if killed_copy:  # a killed worker cannot remove its own temporary copy
        shutil.rmtree(Path(killed_copy.group(1)).parent, ignore_errors=True)
    done = json.loads((run / "state.json").read_text())["epoch"]

    ports = ",".join(free_ports(2))
    procs = [subprocess.Popen(_cli(*common, "--resume", str(run), "--epochs", str(done + 1), "--workers", ports,
                                   "--worker-index", str(i)),
                              stdout=open(tmp_path / f"again{i}.log", "w"), stderr=subprocess.STDOUT,
                              env=_worker_env()) for i in range(2)]
    assert _wait(procs, timeout=240) == [0, 0]
    state = json.loads((run / "state.json").read_text())
    assert state["status"] == "done" and state["epoch"] == done + 1 == len(state["history"]["loss"])
    assert f"resuming {run} after epoch {done}" in (tmp_path / "again0.log").read_text()


@pytest.mark.slow  # two worker processes
def test_workers_started_with_different_options_refuse_to_train(tmp_path):
    ports = ",".join(free_ports(2))
    procs = [subprocess.Popen(_cli("--data", "digits", "--epochs", "1", "--batch-size", str(64 * (i + 1)),
                                   "--output", str(tmp_path), "--distribute", "multi-worker", "--workers", ports,
                                   "--worker-index", str(i), "--worker-timeout", "30"),
                              stdout=open(tmp_path / f"w{i}.log", "w"), stderr=subprocess.STDOUT, env=_worker_env())
             for i in range(2)]
    assert _wait(procs, timeout=180) == [2, 2]
    for i in range(2):
        assert "the workers were started with different options" in (tmp_path / f"w{i}.log").read_text()
