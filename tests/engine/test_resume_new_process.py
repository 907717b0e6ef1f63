"""``foveal TASK train --resume`` in a new process: the saved optimizer's schedule (Warmup) and the
task's layers must load where nothing imported them before (a resume once failed there with
"Warmup not registered" while the same resume in the training process worked)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from detection.test_detect_run import make_shapes
from video.conftest import write_clip_folder

SRC = str(Path(__file__).resolve().parents[2] / "src")


def _foveal(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = subprocess.run([sys.executable, "-m", "foveal.cli.main", *args], capture_output=True, text=True,
                         timeout=1200, env=env)
    assert out.returncode == 0, (out.stdout[-1500:], out.stderr[-3000:])
    return out


def _train_then_resume(train: list[str], run: Path) -> None:
    """One epoch in a process, then one more in another through ``--resume``."""
    _foveal(*train, "--epochs", "1", "--output", str(run.parent), "--name", run.name, "--no-progress")
    assert json.loads((run / "state.json").read_text())["epoch"] == 1
    out = _foveal(train[0], "train", "--resume", str(run), "--epochs", "2")
    assert f"resuming {run} after epoch 1 of 2" in out.stdout
    state = json.loads((run / "state.json").read_text())
    assert state["epoch"] == 2 and state["status"] == "done" and len(state["history"]["loss"]) == 2


@pytest.mark.slow  # two CLI processes per task (TensorFlow imported each time)
def test_detect_resumes_its_warmup_schedule_in_a_new_process(tmp_path):
    voc = make_shapes(tmp_path / "voc", count=8)
    _train_then_resume(["detect", "train", "--data", str(voc), "--image-size", "64", "--backbone-options", "width=16",
                        "--batch-size", "4", "--anchors", "2", "--warmup-epochs", "0.5", "--report-images", "0"],
                       tmp_path / "runs" / "det")


@pytest.mark.slow
def test_video_resumes_in_a_new_process(tmp_path):
    clips = write_clip_folder(tmp_path / "clips", per_class=3)
    _train_then_resume(["video", "train", "--data", str(clips), "--backbone", "airbench", "--backbone-options",
                        "width=4,wide=8", "--frame-size", "16", "--sampling", "even:6", "--units", "8", "--dense", "8",
                        "--warmup-epochs", "0.5"], tmp_path / "runs" / "vid")
