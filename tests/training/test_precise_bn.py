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
