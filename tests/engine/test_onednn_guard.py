"""The run engine's guard against oneDNN's strided 1x1 filter-gradient crash (TensorFlow 2.21,
docs/fpn-onednn-crash.md): which layers trip it, when the plan applies, that an epoch keeps only
its full batches whatever their structure, and a whole run through the engine in graph mode
(7 images, batch 4) that trains on constant batches and records it. The slow test shows the
crash itself: the same run without the guard dies, with it completes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from engine.onednn_tiny import tiny_model, train
from foveal.engine.onednn_guard import constant_batch_plan, full_batches_only, onednn_enabled, strided_narrow_1x1


def _conv(filters, kernel, strides, **kw):
    return keras.layers.Conv2D(filters, kernel, strides=strides, padding="same", **kw)


def test_only_strided_1x1_convolutions_on_fewer_than_16_channels_are_found():
    inner_in = keras.Input((8, 8, 8))
    inner = keras.Model(inner_in, _conv(16, 1, 2, name="nested_shortcut")(inner_in), name="block")
    inputs = keras.Input((16, 16, 3))
    x = _conv(8, 3, 2, name="stem")(inputs)                               # 3x3, stride 2: not the kernel
    a = _conv(4, 1, 1, name="pointwise")(x)                               # 1x1, stride 1
    b = _conv(4, 1, (1, 2), name="wide_stride")(x)                        # a stride above 1 on one axis
    c = keras.layers.DepthwiseConv2D(1, strides=2, name="depthwise")(x)   # another kernel
    d = _conv(8, 1, 2, name="sixteen")(keras.layers.Concatenate()([x, x]))  # 16 channels: safe
    model = keras.Model(inputs, [a, b, c, d, inner(x)])
    assert strided_narrow_1x1(model) == ["wide_stride", "nested_shortcut"]
    assert strided_narrow_1x1(tiny_model()) == ["shortcut"]


def test_the_plan_applies_only_when_an_epoch_ends_in_a_smaller_batch(monkeypatch):
    model = tiny_model()
    plan = constant_batch_plan(model, examples=7, batch_size=4, onednn=True)
    assert (plan.steps, plan.dropped, plan.layers) == (1, 3, ("shortcut",))
    assert plan.record()["dropped_per_epoch"] == 3 and "TF_ENABLE_ONEDNN_OPTS=0" in plan.message()
    for examples in (8, 4, 3, None):  # a multiple of the batch, one batch or fewer, an endless stream
        assert constant_batch_plan(model, examples=examples, batch_size=4, onednn=True) is None
    assert constant_batch_plan(model, examples=7, batch_size=4, onednn=False) is None
    inputs = keras.Input((16, 16, 16))
    safe = keras.Model(inputs, _conv(16, 1, 2)(inputs))
    assert constant_batch_plan(safe, examples=7, batch_size=4, onednn=True) is None
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "0")
    assert not onednn_enabled() and constant_batch_plan(model, examples=7, batch_size=4) is None
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "1")
    assert onednn_enabled()
    monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS")
    assert onednn_enabled()


def test_full_batches_only_keeps_the_epochs_full_batches_of_any_structure():
    from foveal.data.epochs import shuffled_epochs

    ds = tf.data.Dataset.range(7)
    tuples = shuffled_epochs(ds, 7, seed=3, start_epoch=0, then=lambda d, s, e: d.batch(4))
    kept = [b.numpy().tolist() for b in full_batches_only(tuples, 4).take(3)]
    full = [b.numpy().tolist() for b in tuples.take(6)]
    assert kept == [full[0], full[2], full[4]]  # each epoch's first batch; the 3 left over differ by epoch
    assert len({tuple(sorted(set(range(7)) - set(b))) for b in kept}) > 1
    dicts = ds.map(lambda i: ({"image": tf.fill([2], i)}, tf.RaggedTensor.from_row_lengths(tf.range(i), [i])))
    shapes = [x["image"].shape[0] for x, _ in full_batches_only(dicts.batch(3), 3)]
    assert shapes == [3, 3]
    ragged = ds.map(lambda i: tf.range(i)).ragged_batch(2)
    assert [r.nrows().numpy() for r in full_batches_only(ragged, 2)] == [2, 2, 2]


@pytest.fixture(scope="module")
def guarded_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("onednn_guard")
    import contextlib
    import io

    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        result, seen = train(str(out), images=7, batch_size=4, epochs=2)
    return result, seen.seen, printed.getvalue()


@pytest.mark.skipif(not onednn_enabled(), reason="oneDNN is off (TF_ENABLE_ONEDNN_OPTS=0): no guard")
def test_engine_trains_constant_batches_in_graph_mode_and_records_it(guarded_run):
    """7 images, batch 4: each epoch trains one batch of 4 (3 images left out), in graph mode."""
    result, (smallest, largest, steps), printed = guarded_run
    assert (smallest, largest, steps) == (4, 4, 2) and len(result.history["loss"]) == 2
    assert np.isfinite(result.history["loss"]).all()
    lines = [line for line in printed.splitlines() if line.startswith("constant batches:")]
    assert len(lines) == 1 and "3 image(s) of each reshuffled epoch left out" in lines[0] and "shortcut" in lines[0]
    expected = {"batch_size": 4, "steps_per_epoch": 1, "dropped_per_epoch": 3, "layers": ["shortcut"]}
    run = Path(result.run_dir)
    from foveal.models import load_model

    for record in (json.loads((run / "metrics.json").read_text())["constant_batches"],
                   json.loads((run / "state.json").read_text())["constant_batches"],
                   result.metrics["constant_batches"], load_model(run / "best.keras")[1].training["constant_batches"]):
        assert {k: record[k] for k in expected} == expected and "oneDNN" in record["reason"]


@pytest.mark.slow  # two runs of 150 epochs in fresh processes (~1 min on a quiet machine)
@pytest.mark.skipif(not onednn_enabled(), reason="oneDNN is off (TF_ENABLE_ONEDNN_OPTS=0): nothing to guard")
def test_without_the_guard_the_run_crashes_and_with_it_completes(tmp_path):
    """7 images, batch 4, 150 epochs: unguarded, the steps alternate 4 and 3 images (the crash of
    docs/fpn-onednn-crash.md); guarded, every step has 4. Skipped where the unguarded run
    survives (a CPU or TensorFlow without the bug): the guard then cannot be shown to matter."""
    script = Path(__file__).with_name("onednn_tiny.py")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[2] / "src"),
                                                        os.environ.get("PYTHONPATH", "")])}

    def run(*flags):
        return subprocess.run([sys.executable, str(script), str(tmp_path / "-".join(["run", *flags])), *flags],
                              capture_output=True, text=True, timeout=600, env=env)

    unguarded = run("--unguarded")
    if unguarded.returncode == 0:
        pytest.skip("the unguarded run did not crash here (TensorFlow or CPU without the oneDNN bug)")
    guarded = run()
    assert guarded.returncode == 0, guarded.stdout[-2000:] + guarded.stderr[-2000:]
    assert "TRAINED 4 4 150" in guarded.stdout and "constant batches:" in guarded.stdout
