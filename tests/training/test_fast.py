"""Fast training: mixed precision, XLA flag, named recipes (precedence and errors)."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import yaml

from foveal import configtools
from foveal.classification.task import compile_classifier
from foveal.config import TrainConfig
from foveal.errors import ConfigError
from foveal.models import build_model
from foveal.models.io import load_model
from foveal.models.registry import MODELS
from foveal.training import trainer
from foveal.training.precision import as_float32, dtype_policy, is_mixed, with_policy
from foveal.training.recipes import RECIPES, resolve_recipe
from foveal.training.schedules import OneCycle, make_schedule

FAST = dict(data="digits", model="lenet5", batch_size=128, tensorboard=False, progress=False,
            image_size=[16, 16], report_misclassified=0)


@pytest.fixture(autouse=True)
def no_policy_leak():
    before = keras.mixed_precision.dtype_policy().name
    yield
    assert keras.mixed_precision.dtype_policy().name == before == "float32"


def test_policy_set_inside_and_restored_after():
    with dtype_policy("bfloat16") as name:
        assert name == "mixed_bfloat16" == keras.mixed_precision.dtype_policy().name
    assert keras.mixed_precision.dtype_policy().name == "float32"
    with pytest.raises(RuntimeError), dtype_policy("float16"):
        raise RuntimeError("restored even on errors")
    assert keras.mixed_precision.dtype_policy().name == "float32"


SMALL_INPUT = {"alexnet": (67, 67, 3), "googlenet": (64, 64, 3), "vgg": (32, 32, 3), "xception": (71, 71, 3),
               "mobilenet": (32, 32, 3), "mobilenetv2": (32, 32, 3)}


@pytest.mark.parametrize("name", ["geron_cnn", "resnet18", "mobilenetv2", "xception"])
def test_outputs_stay_float32_under_bfloat16(name):
    if name not in MODELS:
        pytest.skip(f"{name} not registered")
    small = {"input_shape": SMALL_INPUT[name]} if name in SMALL_INPUT else {}
    with dtype_policy("bfloat16"):
        model = build_model(name, num_classes=3, **small)
    assert is_mixed(model)
    assert model.output.dtype == "float32"
    assert not is_mixed(as_float32(model))


def test_every_registered_model_ends_in_float32():
    """Built from the softmax helper: the head keeps float32 whatever the policy."""
    for entry in MODELS:
        if not getattr(entry, "meta", {}).get("input_shape"):
            continue
        shape = entry.meta["input_shape"]
        # Only small inputs here; the big ones are covered by the parametrised test above.
        if shape[0] * shape[1] > 64 * 64:
            continue
        with dtype_policy("bfloat16"):
            model = build_model(entry.name, num_classes=3)
        assert model.output.dtype == "float32", entry.name


def test_policy_round_trip_keeps_predictions_close():
    with dtype_policy("bfloat16"):
        mixed = build_model("lenet5", num_classes=4, input_shape=(16, 16, 1))
    plain = as_float32(mixed)
    back = with_policy(plain, "bfloat16")
    assert is_mixed(back) and back.output.dtype == "float32"
    x = np.random.default_rng(0).uniform(0, 255, (4, 16, 16, 1)).astype("float32")
    p = plain.predict(x, verbose=0)
    assert np.allclose(p, mixed.predict(x, verbose=0), atol=0.05)
    assert np.allclose(back.predict(x, verbose=0), mixed.predict(x, verbose=0), atol=1e-6)


# a bfloat16 engine run (6.5 CPU-s); the default tier checks the policy, float32 outputs and the round trip
# above
@pytest.mark.slow
def test_bfloat16_run_trains_and_saves_a_float32_model(tmp_path):
    result = trainer.train(TrainConfig(**FAST, epochs=1, mixed_precision="bfloat16", output=str(tmp_path),
                                       name="bf16"))
    assert result.metrics["accuracy"] > 0.0
    model, card = load_model(result.run_dir / "best.keras")
    assert card.training["mixed_precision"] == "bfloat16"
    assert not is_mixed(model)
    probs = model.predict(np.zeros((2, 16, 16, 1), "float32"), verbose=0)
    assert probs.dtype == np.float32 and np.allclose(probs.sum(-1), 1.0, atol=1e-5)
    # Resuming rebuilds the float32 checkpoint under the policy, with the optimizer's state.
    resumed = trainer.train(resume=result.run_dir, epochs=2)
    assert len(resumed.history["loss"]) == 2 and resumed.metrics is not None
    last, _ = load_model(result.run_dir / "last.keras", compile=True)
    assert int(last.optimizer.iterations.numpy()) == 2 * 12  # 1437 images / 128 per step, twice


def test_float16_wraps_the_optimizer_in_loss_scaling():
    with dtype_policy("float16"):
        model = build_model("lenet5", num_classes=3, input_shape=(16, 16, 1))
    compile_classifier(model, TrainConfig(mixed_precision="float16"), steps_per_epoch=2, num_classes=3)
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)


@pytest.mark.parametrize("flag, expected", [("on", True), ("off", False), ("auto", False)])
def test_jit_compile_reaches_compile(flag, expected, monkeypatch):
    model = build_model("lenet5", num_classes=3, input_shape=(16, 16, 1))
    seen = {}
    compile_ = model.compile
    monkeypatch.setattr(model, "compile", lambda **kw: seen.update(kw) or compile_(**kw))
    compile_classifier(model, TrainConfig(jit_compile=flag), steps_per_epoch=2, num_classes=3)
    assert seen["jit_compile"] == {"on": True, "off": False, "auto": "auto"}[flag]
    if flag != "on":  # "auto" is off on a CPU-only machine (Keras' rule); "on" is too under op determinism
        assert model.jit_compile is expected


def test_recipe_fills_only_what_was_not_given():
    cfg = resolve_recipe(TrainConfig(recipe="fast", batch_size=64, optimizer="adam"))
    assert cfg.batch_size == 64 and cfg.optimizer == "adam"  # explicit wins
    assert cfg.schedule == "one-cycle" and cfg.label_smoothing == 0.1  # from the recipe
    # A value equal to the default still counts as explicit.
    assert resolve_recipe(TrainConfig(recipe="fast", augment="none")).augment == "none"
    texts = resolve_recipe(TrainConfig(recipe="texts"))
    assert (texts.optimizer, texts.batch_size, texts.augment) == ("nadam", 32, "none")


def test_recipe_precedence_from_yaml_and_cli(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("recipe: fast\nbatch_size: 32\n")
    cfg = resolve_recipe(configtools.resolve(TrainConfig, path, {"learning_rate": "0.01"}))
    assert (cfg.batch_size, cfg.learning_rate, cfg.optimizer) == (32, 0.01, "adamw")
    # The resolved config is final: reading its YAML back applies nothing more.
    again = configtools.from_mapping(TrainConfig, yaml.safe_load(configtools.to_yaml(cfg)))
    assert resolve_recipe(again) == cfg


def test_train_resolves_the_recipe_and_writes_final_values(tmp_path):
    cfg = TrainConfig(**FAST, recipe="texts", epochs=1, output=str(tmp_path), name="r")
    result = trainer.train(cfg, batch_size=64)
    text = (result.run_dir / "config.yaml").read_text()
    assert "recipe: texts" in text and "optimizer: nadam" in text and "batch_size: 64" in text


def test_unknown_recipe_suggests_the_closest():
    with pytest.raises(ConfigError) as info:
        TrainConfig(recipe="fats").validate()
    assert "fast" in (info.value.hint or "")
    with pytest.raises(ConfigError):
        configtools.from_mapping(TrainConfig, {"recipe": "nope"})


def test_recipes_table_is_documented_and_valid():
    for name, recipe in RECIPES.items():
        assert recipe.description
        configtools.from_mapping(TrainConfig, dict(recipe.options))  # every option exists and type-checks
    help_text = TrainConfig.__dataclass_fields__["recipe"].metadata["help"]
    assert all(name in help_text for name in RECIPES)


def test_schedules_still_work():
    s = make_schedule("one-cycle", learning_rate=0.01, steps_per_epoch=10, epochs=2)
    assert isinstance(s, OneCycle) and float(s(6)) == pytest.approx(0.01)
    assert make_schedule("constant", learning_rate=0.1, steps_per_epoch=1, epochs=1) == 0.1


def test_airbench_whitening_is_set_from_the_data_and_stays_frozen(tmp_path):
    """`--model airbench --model-options whiten=true`: the trainer sets the 2x2 whitening layer
    from the training images before fit, training leaves it alone, and it survives the save."""
    rng = np.random.default_rng(0)
    path = tmp_path / "tiny.npz"
    np.savez(path, x=rng.integers(0, 256, (64, 32, 32, 3), dtype=np.uint8), y=np.arange(64) % 4)
    result = trainer.train(TrainConfig(data=str(path), model="airbench", model_options={"width": 8, "wide": 16,
                                                                                        "whiten": True},
                                       epochs=1, batch_size=32, val_split=0.0, test_split=0.0, tensorboard=False,
                                       progress=False, report_misclassified=0, output=str(tmp_path)))
    model, _ = load_model(result.run_dir / "last.keras")
    layer = model.get_layer("whiten")
    init = build_model("airbench", num_classes=4, width=8, wide=16, whiten=True).get_layer("whiten")
    assert not layer.kernel.trainable and layer.bias.trainable  # the bias trains for its first 3 epochs
    assert not np.allclose(layer.get_weights()[0], init.get_weights()[0])
    # The filters are orthogonal eigenvectors scaled by 1/sqrt(eigenvalue): a diagonal Gram
    # matrix; uniform noise has a near-isotropic second moment (the uncentred mean adds one
    # larger direction), so the eigenvalues are within a small factor of each other.
    kernel = layer.get_weights()[0].reshape(12, 24)[:, :12]
    gram = kernel.T @ kernel
    diagonal = np.diag(gram)
    np.testing.assert_allclose(gram - np.diag(diagonal), 0.0, atol=1e-4 * diagonal.max())
    assert diagonal.max() < 2 * diagonal.min()


def test_airbench_recipe_runs_end_to_end_with_its_building_blocks(tmp_path):
    """`--recipe airbench` wires the BN-shift rate, Lookahead and test-time views through the
    trainer: the saved optimizer is the scaled SGD and the test metrics say which views were used."""
    import json

    from foveal.training.schedules import BiasScaledSGD

    rng = np.random.default_rng(0)
    path = tmp_path / "tiny.npz"
    np.savez(path, x=rng.integers(0, 256, (96, 32, 32, 3), dtype=np.uint8), y=np.arange(96) % 4)
    result = trainer.train(TrainConfig(data=str(path), recipe="airbench", model_options={"width": 8, "wide": 16,
                                                                                         "whiten": True},
                                       epochs=1, batch_size=32, mixed_precision="none", test_split=0.25,
                                       val_split=0.0, monitor="loss", progress=False, report_misclassified=0,
                                       output=str(tmp_path)))
    resolved = yaml.safe_load((result.run_dir / "config.yaml").read_text())
    assert resolved["lookahead"] is True and resolved["bias_lr_scale"] == 64.0
    model, _ = load_model(result.run_dir / "last.keras", compile=True)
    assert isinstance(model.optimizer, BiasScaledSGD) and model.optimizer.bias_lr_scale == 64.0
    metrics = json.loads((result.run_dir / "metrics.json").read_text())
    assert metrics["tta"] == "flip-shift" and metrics["num_examples"] == 24
