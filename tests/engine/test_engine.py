"""The run engine's features, the same for every task plugin: mixed precision with float32
checkpoints, the time budget, early stopping, the frozen-backbone phase, a missing --data,
and the task table that every command reads."""

from __future__ import annotations

import json

import numpy as np
import pytest
from localization.conftest import write_rectangles
from segmentation.conftest import write_squares

from foveal.errors import ConfigError

TINY_LOCALIZE = dict(image_size=[32], model_options={"width": 16}, batch_size=8, epochs=2, progress=False,
                     report_images=0, val_split=0.2, test_split=0.2)


@pytest.fixture(scope="module")
def rectangles(tmp_path_factory):
    return write_rectangles(tmp_path_factory.mktemp("engine_rects"), 20, size=32)


@pytest.mark.slow
def test_mixed_precision_frozen_phase_and_resume(rectangles, tmp_path, capsys):
    """bfloat16 and a frozen first phase for a task that had neither: the first epoch leaves the
    backbone untouched, the model computes in bfloat16, the files hold float32, and it resumes."""
    import keras

    from foveal.localization.train import LocalizeConfig
    from foveal.models.io import load_model
    from foveal.tasks import run_train
    from foveal.training.precision import is_mixed

    seen = {}

    class Snapshot(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            seen.setdefault("start", [w.copy() for w in self.model.get_layer("stem_conv").get_weights()])
            seen["mixed"] = is_mixed(self.model)

        def on_epoch_end(self, epoch, logs=None):
            seen.setdefault(epoch, [w.copy() for w in self.model.get_layer("stem_conv").get_weights()])

    cfg = LocalizeConfig(data=str(rectangles), output=str(tmp_path), name="bf16", mixed_precision="bfloat16",
                         freeze_backbone_epochs=1, **TINY_LOCALIZE)
    result = run_train("localize", cfg, callbacks=[Snapshot()])
    assert "phase 1: backbone frozen" in capsys.readouterr().out and seen["mixed"]
    for before, after in zip(seen["start"], seen[0]):
        np.testing.assert_array_equal(before, after)
    assert any(np.abs(a - b).max() > 0 for a, b in zip(seen[0], seen[1]))  # phase 2 trains it
    assert np.isfinite(result.history["loss"]).all() and result.metrics is not None
    saved, card = load_model(result.run_dir / "last.keras")
    assert not is_mixed(saved) and card.task == "localize"
    resumed = run_train("localize", resume=result.run_dir, epochs=3)
    assert len(resumed.history["loss"]) == 3


@pytest.mark.slow  # one short run per task; TimeBudget itself is in tests/training/test_budget.py (default tier)
def test_time_budget_for_every_task(rectangles, tmp_path, capsys):
    from foveal.localization.train import LocalizeConfig
    from foveal.tasks import run_train

    cfg = LocalizeConfig(data=str(rectangles), output=str(tmp_path), name="budget", time_budget=0.001,
                         **{**TINY_LOCALIZE, "epochs": 50})
    result = run_train("localize", cfg)
    assert len(result.history["loss"]) == 1  # stopped in the first epoch, then scored
    assert "time budget of 0 s reached" in capsys.readouterr().out
    state = json.loads((result.run_dir / "state.json").read_text())
    assert state["time_budget_reached"] is True and state["status"] == "done"


@pytest.mark.slow
def test_early_stopping_for_every_task(rectangles, tmp_path):
    from foveal.localization.train import LocalizeConfig
    from foveal.tasks import run_train

    stop = run_train("localize", LocalizeConfig(data=str(rectangles), output=str(tmp_path), name="stop",
                                                early_stopping=1, monitor="val_loss", learning_rate=0.5,
                                                **{**TINY_LOCALIZE, "epochs": 12}))
    assert 2 <= len(stop.history["loss"]) < 12  # a learning rate that diverges stops early


@pytest.mark.parametrize("task", ["detect", "segment", "localize", "generate"])
def test_missing_data_is_one_clear_error(task, tmp_path):
    from foveal.tasks import TASKS, run_train

    cfg = TASKS[task].config_class()(output=str(tmp_path))
    with pytest.raises(ConfigError, match=f"foveal {task} train needs --data"):
        run_train(task, cfg)
    assert not any(tmp_path.iterdir())


def test_segmenter_built_under_bfloat16_ends_in_float32():
    """The default-tier check of segmentation under bfloat16 (the whole run is in the slow tier;
    the engine's bfloat16 run itself is tested on a classifier, tests/training/test_fast.py)."""
    from foveal.segmentation.train import build_segmenter
    from foveal.training.precision import dtype_policy, is_mixed

    with dtype_policy("bfloat16"):
        model = build_segmenter("unet", num_classes=2, channels=3, options={"depth": 2, "width": 8})
    assert is_mixed(model) and model.output.dtype == "float32"


@pytest.mark.slow  # a whole run (~8 s idle); the default tier: the bfloat16 segmenter above and test_fast's bfloat16 run
def test_segmentation_through_the_engine_with_bfloat16(tmp_path):
    from foveal.segmentation.train import SegmentConfig
    from foveal.tasks import run_train

    data = write_squares(tmp_path / "squares", 6, 32, 32)
    cfg = SegmentConfig(data=str(data), model_options={"depth": 2, "width": 8}, crop_size=[32], epochs=1,
                        batch_size=2, progress=False, report_images=0, mixed_precision="bfloat16",
                        output=str(tmp_path), name="seg", val_split=0.2, test_split=0.2)
    result = run_train("segment", cfg)
    assert result.metrics is not None and np.isfinite(result.history["loss"]).all()


def test_the_table_lists_every_task_with_importable_parts():
    from foveal.engine.plugin import TaskPlugin
    from foveal.tasks import TASKS

    assert set(TASKS) >= {"classify", "localize", "detect", "segment"}
    for task in TASKS.values():
        task.config_class()
        task.register_objects()
        if task.plugin is not None:
            plugin = task.load(task.plugin)()
            assert isinstance(plugin, TaskPlugin) and plugin.name == task.name
            assert plugin.config_class is task.config_class()


@pytest.mark.slow
def test_fit_on_the_tasks_pipelines_warns_nothing(rectangles, tmp_path):
    """The engine's fit takes the task's own shuffled pipelines: no Keras "`shuffle=True` was
    passed, but will be ignored" warning reaches the user (the localize plugin passes no
    fit arguments of its own, as detect, segment and instance do not)."""
    import warnings

    from foveal.localization.train import LocalizeConfig
    from foveal.tasks import run_train

    cfg = LocalizeConfig(data=str(rectangles), output=str(tmp_path), name="quiet", **{**TINY_LOCALIZE, "epochs": 1})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run_train("localize", cfg)
    assert not [w for w in caught if "shuffle" in str(w.message)], [str(w.message) for w in caught]
