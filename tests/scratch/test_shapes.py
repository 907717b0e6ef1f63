"""Output-size and parameter-count formulas against Keras layers, and the one-line shape errors."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from foveal.errors import FovealError
from foveal.scratch import AvgPool2D, Conv2D, Dense, MaxPool2D, Network, ReLU, SoftmaxCrossEntropy
from foveal.scratch.shapes import ShapeError, conv_param_count, output_size

GRID = list(itertools.product([7, 8, 28], [1, 2, 3, 5], [1, 2, 3], ["valid", "same"]))


def test_output_size_formula_matches_keras_conv_and_pool():
    import keras

    checked = refused = 0
    for size, k, s, padding in GRID:
        conv = keras.layers.Conv2D(2, k, strides=s, padding=padding)
        expected = conv.compute_output_shape((None, size, size + 1, 3))[1:3]
        pool = keras.layers.MaxPooling2D(k, strides=s, padding=padding)
        assert pool.compute_output_shape((None, size, size + 1, 3))[1:3] == expected
        try:
            ours = (output_size(size, k, s, padding), output_size(size + 1, k, s, padding))
        except ShapeError as exc:
            # Keras floors a non-integer (H - k + 2p)/s + 1; foveal.scratch refuses it.
            assert padding == "valid" and ((size - k) % s or (size + 1 - k) % s)
            assert f"/{s} + 1" in exc.message and "\n" not in exc.message
            refused += 1
            continue
        assert ours == expected, (size, k, s, padding)
        assert Conv2D(3, 2, k, stride=s, padding=padding).output_shape((size, size + 1, 3))[:2] == expected
        checked += 1
    assert checked > 30 and refused > 10


@pytest.mark.parametrize("p", [0, 1, 2])
def test_integer_padding_is_zero_padding_then_valid(p):
    import keras

    for size, k, s in itertools.product([9, 12], [1, 3, 5], [1, 2, 3]):
        if (size - k + 2 * p) % s:
            continue
        model = keras.Sequential([keras.Input((size, size, 1)), keras.layers.ZeroPadding2D(p),
                                  keras.layers.Conv2D(1, k, strides=s)])
        assert output_size(size, k, s, p) == model.output_shape[1] == (size - k + 2 * p) // s + 1


def test_dilation_output_size_matches_keras():
    import keras

    for size, k, d, padding in itertools.product([9, 16], [2, 3], [1, 2, 3], ["valid", "same"]):
        conv = keras.layers.Conv2D(1, k, dilation_rate=d, padding=padding)
        assert output_size(size, k, 1, padding, d) == conv.compute_output_shape((None, size, size, 1))[1]


@pytest.mark.parametrize("channels,filters,k", list(itertools.product([1, 3, 16], [1, 8, 32], [1, 3, 5, (3, 5)])))
def test_parameter_count_n_dk2_plus_1(channels, filters, k):
    import keras

    layer = keras.layers.Conv2D(filters, k)
    layer.build((None, 12, 12, channels))
    assert conv_param_count(filters, channels, k) == layer.count_params()
    ours = Conv2D(channels, filters, k)
    assert sum(v.size for v in ours.params.values()) == layer.count_params()


def one_line(exc: FovealError) -> str:
    assert isinstance(exc, FovealError) and "\n" not in exc.message
    return exc.message


def test_dense_refuses_wrong_feature_count():
    with pytest.raises(ShapeError) as info:
        Dense(784, 10).forward(np.zeros((2, 100)))
    assert "(100,)" in one_line(info.value) and "(784,)" in info.value.message


def test_conv_refuses_wrong_channels_and_rank():
    conv = Conv2D(3, 4, 3)
    with pytest.raises(ShapeError) as info:
        conv.forward(np.zeros((1, 8, 8, 1)))
    assert "1 channels" in one_line(info.value) and "D = 3" in info.value.message
    with pytest.raises(ShapeError) as info:
        conv.forward(np.zeros((8, 8, 3)))
    assert "(8, 8, 3)" in one_line(info.value)


def test_kernel_larger_than_padded_input():
    with pytest.raises(ShapeError) as info:
        Conv2D(1, 1, 7, padding=1).forward(np.zeros((1, 4, 4, 1)))
    assert "kernel 7 is larger than the padded input height 4 + 2*1 = 6" in one_line(info.value)
    with pytest.raises(ShapeError) as info:
        Conv2D(1, 1, 3, dilation=3).output_shape((6, 6, 1))
    assert "kernel 7 (dilation 3)" in one_line(info.value)
    with pytest.raises(ShapeError):
        MaxPool2D(5).output_shape((4, 4, 2))


def test_non_integer_output_size_under_valid_padding():
    with pytest.raises(ShapeError) as info:
        Conv2D(1, 1, 3, stride=2).output_shape((28, 28, 1))
    assert "(28 - 3 + 2*0)/2 + 1 = 13.5 is not an integer" in one_line(info.value)
    with pytest.raises(ShapeError) as info:
        AvgPool2D(2).output_shape((7, 8, 1))
    assert "(7 - 2 + 2*0)/2 + 1 = 3.5" in one_line(info.value)
    assert AvgPool2D(2, padding="same").output_shape((7, 8, 1)) == (4, 4, 1)


def test_network_names_the_layer_that_does_not_fit():
    with pytest.raises(ShapeError) as info:
        Network([Conv2D(1, 4, 5), ReLU(), Dense(10, 2)], (8, 8, 1), SoftmaxCrossEntropy())
    assert one_line(info.value).startswith("layer 2 (dense):")


def test_bad_padding_and_options():
    with pytest.raises(ShapeError):
        Conv2D(1, 1, 3, padding="full")
    with pytest.raises(ShapeError):
        Conv2D(1, 1, 3, stride=2, dilation=2)
    with pytest.raises(ShapeError):
        Conv2D(1, 1, 0)
