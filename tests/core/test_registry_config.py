"""The strict registry and the typed option sets (YAML + command line)."""

from __future__ import annotations

import argparse

import pytest

from foveal import configtools
from foveal.config import TrainConfig
from foveal.errors import ConfigError, FovealError
from foveal.registry import Registry


def test_registry_refuses_duplicates_and_suggests_names():
    reg = Registry("widget")
    reg.register("alpha", size=1)(lambda: 1)
    with pytest.raises(ValueError, match="already registered"):
        reg.register("ALPHA")(lambda: 2)
    assert reg.get("Alpha").meta == {"size": 1}
    with pytest.raises(FovealError, match="unknown widget 'alpah'") as info:
        reg.get("alpah")
    assert "alpha" in str(info.value)


def test_model_registry_lists_the_first_set():
    from foveal.models import MODELS

    assert {"lenet5", "geron_cnn", "resnet18", "resnet34"} <= set(MODELS.names())


def test_yaml_then_command_line_precedence(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("epochs: 7\nbatch_size: 16\noptimizer: sgd\nmodel_options: {stem: cifar}\n")
    cfg = configtools.resolve(TrainConfig, path, {"batch_size": "32"})
    assert (cfg.epochs, cfg.batch_size, cfg.optimizer, cfg.model_options) == (7, 32, "sgd", {"stem": "cifar"})


@pytest.mark.parametrize(
    "values, message",
    [
        ({"epoch": 3}, "unknown option 'epoch'"),
        ({"epochs": "many"}, "option 'epochs': expected int"),
        ({"epochs": 2.5}, "option 'epochs': expected int"),
        ({"nesterov": "maybe"}, "option 'nesterov': expected bool"),
        ({"optimizer": "adamm"}, "'adamm' is not one of"),
        ({"image_size": ["a"]}, "option 'image_size"),
        ({"val_split": 1.5}, "val_split must be in"),
        ({"epochs": 0}, "epochs must be at least 1"),
    ],
)
def test_bad_options_name_the_key(values, message):
    with pytest.raises(ConfigError, match=message):
        configtools.from_mapping(TrainConfig, values)


def test_config_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        configtools.load_yaml(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        configtools.load_yaml(bad)
    bad.write_text("epochs: [1\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        configtools.load_yaml(bad)


def test_resolved_config_round_trips_through_yaml(tmp_path):
    cfg = TrainConfig(epochs=3, image_size=[32, 32], model_options={"width": 8})
    path = tmp_path / "config.yaml"
    path.write_text(configtools.to_yaml(cfg))
    assert configtools.resolve(TrainConfig, path, {}) == cfg


def test_argparse_options_cover_every_field():
    parser = argparse.ArgumentParser()
    configtools.add_arguments(parser, TrainConfig)
    args = parser.parse_args(["--epochs", "4", "--no-deterministic", "--image-size", "28", "28",
                              "--model-options", "stem=cifar,width=16"])
    given = vars(args)
    assert given == {"epochs": "4", "deterministic": False, "image_size": ["28", "28"],
                     "model_options": "stem=cifar,width=16"}
    cfg = configtools.from_mapping(TrainConfig, given)
    assert cfg.epochs == 4 and cfg.image_size == [28, 28] and cfg.model_options == {"stem": "cifar", "width": 16}
    help_text = parser.format_help()
    for name in configtools.fields_of(TrainConfig):
        assert "--" + name.replace("_", "-") in help_text
