"""``--distribute mirrored`` and ``multi-worker`` for detect, localize and segment (issue #13): on
two logical CPU devices (or two worker processes on 127.0.0.1), with TensorBoard on, each task
trains one epoch and saves a model that loads and predicts; the detector's own loss is scaled per
replica as Keras scales its losses."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from foveal.errors import ConfigError

SCRIPT = Path(__file__).with_name("mirrored_tasks.py")


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    return {**env, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[2] / "src"),
                                                  os.environ.get("PYTHONPATH", "")])}


def _mirrored(root: Path, task: str) -> dict:
    done = subprocess.run([sys.executable, str(SCRIPT), str(root), task], capture_output=True, text=True,
                          timeout=600, env=_env())
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULTS ")]
    assert done.returncode == 0 and lines, done.stdout[-3000:] + done.stderr[-3000:]
    return {"out": done.stdout + done.stderr, **json.loads(lines[-1][len("RESULTS "):])}


@pytest.fixture(scope="module")
def detect_run(tmp_path_factory) -> dict:
    return _mirrored(tmp_path_factory.mktemp("mirrored_detect"), "detect")


@pytest.mark.slow  # a mirrored run in a fresh process each (~30 s on an idle machine)
@pytest.mark.parametrize("task", ["detect", "localize", "segment"])
def test_mirrored_run_trains_and_saves_a_model_that_loads(task, detect_run, tmp_path):
    from foveal.models import load_model

    runs = detect_run if task == "detect" else _mirrored(tmp_path, task)
    run = Path(runs[task]["run_dir"])
    assert np.isfinite(runs[task]["loss"]).all() and runs[task]["metrics"]
    assert list((run / "tensorboard" / "train").glob("events.out.tfevents.*"))
    for name in ("best.keras", "last.keras", "state.json", "metrics.json", "report.html"):
        assert (run / name).is_file(), name
    model, card = load_model(run / "best.keras")
    assert card.training["distribute"]["strategy"] == "mirrored" and card.training["distribute"]["replicas"] == 2
    h, w, c = card.input_shape
    assert model.predict(np.zeros((1, h or 32, w or 32, c), np.float32), verbose=0) is not None
    assert "distribution: mirrored, 2 replica(s)" in runs["out"] and "data sharding: batches" in runs["out"]
    assert "ran out of data" not in runs["out"]  # every dataset fed to fit lasts its steps


@pytest.mark.slow
def test_detector_loss_is_scaled_per_replica(detect_run):
    loss = detect_run["detect_loss"]
    assert loss["replicas"] == pytest.approx([loss["alone"] / 2] * 2, rel=1e-4)


@pytest.mark.parametrize("task", ["detect", "localize", "segment"])
def test_distribution_options_are_every_tasks(task):
    from foveal.tasks import TASKS

    cfg = TASKS[task].config_class()(distribute="mirrored", devices=["CPU:0", "CPU:1"])
    cfg.validate()
    with pytest.raises(ConfigError, match="devices is for --distribute mirrored"):
        TASKS[task].config_class()(devices=["CPU:0"]).validate()


def _free_ports(n: int) -> str:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = ",".join(f"127.0.0.1:{s.getsockname()[1]}" for s in sockets)
    for s in sockets:
        s.close()
    return ports


@pytest.mark.slow  # two worker processes per task (TensorFlow imported in each)
@pytest.mark.parametrize("task", ["detect", "localize", "segment"])
def test_two_workers_train_every_task_and_only_the_chief_keeps_a_run(task, tmp_path):
    from foveal.models import load_model

    ports = _free_ports(2)
    procs = [subprocess.Popen([sys.executable, str(SCRIPT), str(tmp_path), task, ports, str(i)],
                              stdout=open(tmp_path / f"worker{i}.log", "w"), stderr=subprocess.STDOUT, env=_env())
             for i in range(2)]
    try:
        codes = [p.wait(timeout=540) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()  # a worker blocked in a collective ignores SIGTERM
    logs = [(tmp_path / f"worker{i}.log").read_text() for i in range(2)]
    assert codes == [0, 0], logs[0][-3000:] + logs[1][-3000:]
    chief = json.loads(next(line for line in logs[0].splitlines() if line.startswith("RESULTS "))[8:])[task]
    run = Path(chief["run_dir"])
    assert run == tmp_path / "worker0" / "runs" / task and np.isfinite(chief["loss"]).all() and chief["metrics"]
    for name in ("best.keras", "last.keras", "state.json", "metrics.json", "report.html"):
        assert (run / name).is_file(), name
    assert list((run / "tensorboard" / "train").glob("events.out.tfevents.*"))
    assert not (tmp_path / "worker1" / "runs").exists()  # the other worker trained in a private copy
    model, card = load_model(run / "best.keras")
    assert card.training["distribute"]["strategy"] == "multi-worker"
    assert "(the chief: it writes the run folder)" in logs[0] and "ran out of data" not in logs[0] + logs[1]
    h, w, c = card.input_shape
    assert model.predict(np.zeros((1, h or 32, w or 32, c), np.float32), verbose=0) is not None
