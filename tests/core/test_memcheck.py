"""A batch that cannot fit is refused with numbers before TensorFlow allocates it (issue #20)."""

from __future__ import annotations

import pytest

from foveal.config import TrainConfig
from foveal.errors import ConfigError
from foveal.memcheck import check_input_batch, check_training_memory


def test_huge_image_size_is_refused_by_config_validation():
    with pytest.raises(ConfigError, match=r"needs about \d+\.\d GB.* is available"):
        TrainConfig(data="digits", image_size=[20000], batch_size=32).validate()


def test_ordinary_sizes_pass():
    TrainConfig(data="digits", image_size=[224], batch_size=64).validate()
    check_input_batch(64, (224, 224), 3, available=2 * 10**9)


def test_input_batch_arithmetic():
    check_input_batch(10, (100, 100), 3, available=1_200_000)  # exactly 1.2 MB
    with pytest.raises(ConfigError, match=r"1\.3 MB.*1\.2 MB is available"):
        check_input_batch(11, (100, 100), 3, available=1_200_000)


def test_training_estimate_uses_the_model():
    import keras

    x = keras.Input((150, 100, 3))
    model = keras.Model(x, keras.layers.Conv2D(200, 5, padding="same")(x))
    budget = check_training_memory(model, 100, available=10**10)
    assert budget["activations_mb"] == 1200.0
    with pytest.raises(ConfigError, match="batches of 100 at 150x100"):
        check_training_memory(model, 100, available=10**9)


def test_train_refuses_before_fit(tmp_path, monkeypatch):
    import foveal.memcheck
    from foveal.training.trainer import train

    monkeypatch.setattr(foveal.memcheck, "available_memory_bytes", lambda: 1_000_000)
    with pytest.raises(ConfigError, match="training .* on batches of 32"):
        train(TrainConfig(data="digits", model="lenet5", epochs=1, batch_size=32, output=str(tmp_path),
                          name="m", tensorboard=False))
    assert not (tmp_path / "m" / "last.keras").exists()


def test_task_configs_refuse_a_huge_image_size():
    from foveal.detection.config import DetectConfig

    DetectConfig(data="x.json", image_size=[320]).validate()
    with pytest.raises(ConfigError, match=r"20000x20000x3 \(float32\) needs about"):
        DetectConfig(data="x.json", image_size=[20000], batch_size=16).validate()
