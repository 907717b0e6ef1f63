"""Receptive fields: hand-computed small stacks, a VGG stack and ResNet-18, each checked
against an independent loop over (kernel, stride) pairs."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from keras import layers

from foveal.inspection import receptive_fields, summarize


def reference(stack: list[tuple[int, int]]) -> tuple[int, int]:
    """R and J after a chain of (kernel, stride) layers: R += (k - 1) * J; J *= s."""
    r, j = 1, 1
    for k, s in stack:
        r += (k - 1) * j
        j *= s
    return r, j


def last(model):
    return receptive_fields(model)[-1]


def chain(shape, *blocks):
    inputs = keras.Input(shape)
    x = inputs
    for block in blocks:
        x = block(x)
    return keras.Model(inputs, x)


def test_two_3x3_convolutions_see_5x5():
    rf = last(chain((32, 32, 1), layers.Conv2D(2, 3), layers.Conv2D(2, 3)))
    assert rf.receptive_field == (5, 5) and rf.jump == (1, 1)
    assert rf.start == (2, 2)  # valid padding: the first output is centred on pixel 2


def test_strided_stem_7x7_then_pool_3x3():
    rf = last(chain((224, 224, 3), layers.Conv2D(4, 7, strides=2, padding="same"),
                    layers.MaxPooling2D(3, strides=2, padding="same")))
    assert rf.receptive_field == (11, 11) and rf.jump == (4, 4)
    assert reference([(7, 2), (3, 2)]) == (11, 4)


def test_dilation_padding_and_nonsquare_kernels():
    rf = last(chain((20, 20, 1), layers.Conv2D(1, 3, dilation_rate=2)))
    assert rf.receptive_field == (5, 5)
    rf = last(chain((20, 20, 1), layers.Conv2D(1, (1, 7), padding="same")))
    assert rf.receptive_field == (1, 7) and rf.start == (0, 0)
    rf = last(chain((20, 20, 1), layers.ZeroPadding2D(2), layers.Conv2D(1, 3)))
    assert rf.receptive_field == (3, 3) and rf.start == (-1, -1)


def test_vgg_style_stack():
    blocks, stack = [], []
    for convs in (2, 2, 3, 3, 3):
        for _ in range(convs):
            blocks.append(layers.Conv2D(4, 3, padding="same"))
            stack.append((3, 1))
        blocks.append(layers.MaxPooling2D(2))
        stack.append((2, 2))
    rf = last(chain((224, 224, 3), *blocks))
    assert (rf.receptive_field[0], rf.jump[0]) == reference(stack) == (212, 32)


def test_resnet18_final_receptive_field(resnet18_imagenet):
    model = resnet18_imagenet
    # The longest path: 7x7/2 stem, 3x3/2 pool, then two 3x3 convolutions per unit, two
    # units per stage, the first unit of stages 2-4 with stride 2 (its 1x1 shortcut is shorter).
    stack = [(7, 2), (3, 2)]
    for stage in range(4):
        for unit in range(2):
            stack += [(3, 2 if stage > 0 and unit == 0 else 1), (3, 1)]
    expected = reference(stack)
    fields = {rf.layer_name: rf for rf in receptive_fields(model)}
    out = fields["stage4_unit2_out"]
    assert (out.receptive_field[0], out.jump[0]) == expected == (435, 32)
    assert fields["stage4_unit1_proj_bn"].receptive_field[0] < fields["stage4_unit1_b_bn"].receptive_field[0]
    assert fields["gap"].whole_input and fields["probabilities"].receptive_field is None


def test_same_order_as_summary_and_nested_models():
    inner_in = keras.Input((16, 16, 2))
    inner = keras.Model(inner_in, layers.Conv2D(2, 3, name="c")(inner_in), name="inner")
    model = chain((16, 16, 2), layers.Conv2D(2, 3, padding="same"), inner, layers.Flatten(), layers.Dense(3))
    fields = receptive_fields(model)
    assert [f.layer_name for f in fields] == [r.name for r in summarize(model)]
    by_name = {f.layer_name: f for f in fields}
    assert by_name["inner"].receptive_field == by_name["inner/c"].receptive_field == (5, 5)
    assert fields[-1].whole_input and fields[-1].to_dict()["receptive_field"] == "whole input"


def test_squeeze_excitation_gate_is_ignored_by_merge():
    inputs = keras.Input((16, 16, 4))
    x = layers.Conv2D(4, 3, padding="same")(inputs)
    gate = layers.Reshape((1, 1, 4))(layers.Dense(4, activation="sigmoid")(layers.GlobalAveragePooling2D()(x)))
    x = layers.Multiply()([x, gate])
    rf = last(keras.Model(inputs, x))
    assert rf.receptive_field == (3, 3)


@pytest.mark.parametrize("interpolation, expected", [("nearest", 3), ("bilinear", 4)])
def test_upsampling_halves_the_jump(interpolation, expected):
    up = layers.UpSampling2D(2, interpolation=interpolation)
    rf = last(chain((8, 8, 1), layers.Conv2D(1, 3, padding="same"), up))
    assert rf.jump == (0.5, 0.5) and rf.receptive_field == (expected, expected)


@pytest.mark.slow
def test_time_distributed_and_convlstm_against_the_input_gradient():
    """A video stack (frames -> per-frame strided conv -> ConvLSTM): the rows' window is the input
    region that moves one output unit, measured by its gradient (every frame, both spatial axes)."""
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    inputs = keras.Input((4, 48, 48, 1))
    x = layers.TimeDistributed(layers.Conv2D(2, 3, strides=2, padding="same"), name="stem")(inputs)
    x = layers.ConvLSTM2D(2, 3, padding="same", name="convlstm")(x)
    model = keras.Model(inputs, x)
    by_name = {f.layer_name: f for f in receptive_fields(model)}
    assert by_name["stem"].receptive_field == (1, 3, 3) and by_name["stem"].jump == (1, 2, 2)
    # the input convolution (3 + 2 * 2), then 3 state convolutions of 3x3 at jump 2
    assert by_name["convlstm"].receptive_field == (7 + 3 * 2 * 2,) * 2 == (19, 19)
    frames = tf.random.normal((1, 4, 48, 48, 1))
    with tf.GradientTape() as tape:
        tape.watch(frames)
        unit = model(frames)[0, 12, 12, 0]
    seen = np.abs(tape.gradient(unit, frames).numpy()[0, ..., 0]).max(axis=0) > 0  # any frame
    rows, cols = np.nonzero(seen.any(axis=1))[0], np.nonzero(seen.any(axis=0))[0]
    assert (rows.max() - rows.min() + 1, cols.max() - cols.min() + 1) == (19, 19)
