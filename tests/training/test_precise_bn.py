"""recalibrate_batchnorm: moving statistics become the plain average of the batch statistics of
the final weights (NumPy reference); frozen batch norms, momentum and dropout are left as found."""

from __future__ import annotations

import keras
import numpy as np

from foveal.training.precise_bn import recalibrate_batchnorm


def test_moving_statistics_are_the_average_batch_statistics():
    inputs = keras.Input((5, 5, 3))
    x = keras.layers.Conv2D(4, 3, name="conv")(inputs)
    x = keras.layers.BatchNormalization(momentum=0.999, name="bn")(x)
    x = keras.layers.Dropout(0.5, name="drop")(keras.layers.Flatten()(x))
    frozen = keras.layers.BatchNormalization(name="frozen")
    frozen.trainable = False
    model = keras.Model(inputs, frozen(keras.layers.Dense(2, name="dense")(x)))
    rng = np.random.default_rng(0)
    batches = [rng.normal(k, 1 + k, (6, 5, 5, 3)).astype("float32") for k in range(3)]

    conv = keras.Model(inputs, model.get_layer("conv").output)
    outs = [np.asarray(conv(b)).reshape(-1, 4) for b in batches]
    assert recalibrate_batchnorm(model, ((b, None) for b in batches + batches), max_batches=3) == 3
    bn = model.get_layer("bn")
    np.testing.assert_allclose(bn.moving_mean.numpy(), np.mean([o.mean(0) for o in outs], 0), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(bn.moving_variance.numpy(), np.mean([o.var(0) for o in outs], 0), rtol=1e-4)
    assert bn.momentum == 0.999 and model.get_layer("drop").rate == 0.5
    np.testing.assert_array_equal(frozen.moving_mean.numpy(), 0.0)
    np.testing.assert_array_equal(frozen.moving_variance.numpy(), 1.0)


def test_train_recalibrates_best_keras(tmp_path, capsys):
    import pytest

    from foveal.config import TrainConfig
    from foveal.errors import ConfigError
    from foveal.models.io import load_model
    from foveal.training.trainer import train

    options = dict(data="digits", model="lenet5", model_options={"batch_norm": True}, batch_size=128, epochs=1,
                   tensorboard=False, progress=False, report_misclassified=0, output=str(tmp_path))
    with pytest.raises(ConfigError, match="recalibrate_bn"):
        TrainConfig(**options, recalibrate_bn=-1).validate()
    result = train(TrainConfig(**options, name="run", recalibrate_bn=3))
    assert "batch-norm statistics recomputed over 3 training batches" in capsys.readouterr().out
    best, last = load_model(result.run_dir / "best.keras")[0], load_model(result.run_dir / "last.keras")[0]
    for a, b in zip(best.layers, last.layers):
        if isinstance(a, keras.layers.BatchNormalization):
            assert a.momentum == 0.99 and not np.allclose(a.moving_variance.numpy(), b.moving_variance.numpy())
            np.testing.assert_array_equal(a.gamma.numpy(), b.gamma.numpy())
    assert result.metrics["accuracy"] > 0.5
