"""Per-layer FLOPs and parameters: hand computations, the texts' exercise, TensorFlow's own
profiler, keras.applications and nested models."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from keras import layers

from foveal.errors import ModelError
from foveal.inspection import format_summary, summarize, totals


def by_name(rows):
    return {r.name: r for r in rows}


def test_texts_exercise_200_filters_on_150x100_rgb():
    """Géron ch. 14: 200 5x5 filters, stride 1, "same", on 150x100x3."""
    inputs = keras.Input((150, 100, 3))
    model = keras.Model(inputs, layers.Conv2D(200, 5, padding="same", name="conv")(inputs))
    conv = by_name(summarize(model))["conv"]
    assert conv.params == (5 * 5 * 3 + 1) * 200 == 15_200
    assert conv.multiplications == 150 * 100 * 200 * 5 * 5 * 3 == 225_000_000
    assert conv.flops == 2 * 225_000_000 + 150 * 100 * 200  # multiply-add = 2, + bias
    assert conv.output_shape == (150, 100, 200)


def test_small_conv_net_by_hand():
    inputs = keras.Input((10, 12, 3))
    x = layers.Conv2D(4, 3, name="conv")(inputs)  # valid -> 8x10x4
    x = layers.BatchNormalization(name="bn")(x)
    x = layers.ReLU(name="relu")(x)
    x = layers.MaxPooling2D(2, name="pool")(x)  # 4x5x4
    y = layers.DepthwiseConv2D(3, padding="same", use_bias=False, name="dw")(x)
    x = layers.Add(name="add")([x, y])
    x = layers.SeparableConv2D(6, 3, name="sep")(x)  # 2x3x6
    x = layers.Conv2D(4, 1, groups=2, name="grouped")(x)
    x = layers.Concatenate(name="cat")([x, x])
    x = layers.Multiply(name="mul")([x, x])
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Dense(5, name="dense")(x)
    rows = by_name(summarize(keras.Model(inputs, x)))
    assert rows["conv"].flops == 2 * (8 * 10 * 4 * 3 * 3 * 3) + 8 * 10 * 4
    assert rows["bn"].flops == 2 * 8 * 10 * 4 and rows["bn"].non_trainable_params == 8
    assert rows["relu"].flops == 0
    assert rows["pool"].flops == 4 * 5 * 4 * 2 * 2
    assert rows["dw"].multiplications == 4 * 5 * 4 * 3 * 3
    assert rows["add"].flops == 4 * 5 * 4
    sep_macs = 2 * 3 * 4 * 3 * 3 + 2 * 3 * 4 * 6
    assert rows["sep"].flops == 2 * sep_macs + 2 * 3 * 6
    assert rows["grouped"].multiplications == 2 * 3 * 1 * (6 // 2) * 4
    assert rows["cat"].flops == 0 and rows["cat"].output_shape == (2, 3, 8)
    assert rows["mul"].flops == rows["mul"].multiplications == 2 * 3 * 8
    assert rows["gap"].flops == 2 * 3 * 8
    assert rows["dense"].flops == 2 * 8 * 5 + 5 and rows["dense"].params == 45


def test_conv_transpose_and_dilation():
    inputs = keras.Input((4, 4, 2))
    x = layers.Conv2DTranspose(3, 3, strides=2, padding="same", name="up")(inputs)
    x = layers.Conv2D(2, 3, dilation_rate=2, use_bias=False, name="dil")(x)
    rows = by_name(summarize(keras.Model(inputs, x)))
    assert rows["up"].multiplications == 4 * 4 * 2 * 3 * 3 * 3  # each input scattered to k*k*C_out
    assert rows["up"].flops == 2 * rows["up"].multiplications + 8 * 8 * 3
    assert rows["dil"].output_shape == (4, 4, 2)  # 8 - (2*(3-1)+1) + 1
    assert rows["dil"].multiplications == 4 * 4 * 2 * 3 * 3 * 3


def test_matches_tensorflow_profiler():
    """Same count as ``tf.compat.v1.profiler`` on the frozen concrete function, apart from
    the per-channel batch-norm constants (folded at deployment) and the softmax, which
    foveal counts as 0 like every activation."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    inputs = keras.Input((16, 16, 3))
    x = layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    x = layers.BatchNormalization()(x)
    a = layers.MaxPooling2D(2)(x)
    b = layers.AveragePooling2D(2)(x)
    x = layers.Add()([a, b])
    y = layers.DepthwiseConv2D(3, padding="same", depth_multiplier=2)(x)
    x = layers.Multiply()([layers.Concatenate()([x, x]), y])
    x = layers.SeparableConv2D(16, 3, strides=2)(x)
    x = layers.Conv2DTranspose(4, 3, strides=2, padding="same")(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Activation("softmax")(layers.Dense(10)(x))
    model = keras.Model(inputs, x)

    spec = tf.TensorSpec([1, 16, 16, 3], tf.float32)
    graph = convert_variables_to_constants_v2(
        tf.function(lambda t: model(t, training=False)).get_concrete_function(spec)).graph
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    profile = tf.compat.v1.profiler.profile(graph=graph, options=options)
    depends_on_input: set[str] = set()
    for op in graph.get_operations():  # topological order
        if op.type == "Placeholder" or any(t.op.name in depends_on_input for t in op.inputs):
            depends_on_input.add(op.name)
    ops = {op.name: op for op in graph.get_operations()}

    def walk(node):  # the profile is a tree of name scopes
        for child in node.children:
            yield child
            yield from walk(child)

    counted = sum(node.float_ops for node in walk(profile)
                  if node.name in depends_on_input and ops[node.name].type != "Softmax")
    assert counted > 100_000
    assert totals(summarize(model))["flops"] == counted


def test_foveal_models_total_params_and_no_unknown_layers(resnet18_imagenet):
    model = resnet18_imagenet
    t = totals(summarize(model))
    assert t["parameters"] == model.count_params() == 11_699_112
    assert t["trainable_parameters"] == 11_689_512
    assert t["layers_without_flop_rule"] == []
    assert 3.6e9 < t["flops"] < 3.7e9  # ~1.8 G multiply-adds, as usually quoted for ResNet-18


def test_keras_applications_model():
    model = keras.applications.MobileNetV2(weights=None, input_shape=(96, 96, 3), alpha=0.35, classes=7)
    rows = summarize(model)
    t = totals(rows)
    assert t["parameters"] == model.count_params()
    assert t["layers_without_flop_rule"] == []
    assert by_name(rows)["Conv1"].output_shape == (48, 48, 16)


def test_variable_input_size_needs_a_shape():
    inputs = keras.Input((None, None, 3))
    x = layers.Conv2D(4, 3, strides=2, padding="same", name="conv")(inputs)
    model = keras.Model(inputs, layers.DepthwiseConv2D(3, name="dw")(x))
    with pytest.raises(ModelError, match="input_shape"):
        summarize(model)
    rows = by_name(summarize(model, input_shape=(64, 48, 3)))
    assert rows["conv"].output_shape == (32, 24, 4) and rows["dw"].output_shape == (30, 22, 4)
    assert rows["conv"].multiplications == 32 * 24 * 4 * 27


class Block(layers.Layer):
    """A custom layer with sublayers (counted through the shapes Keras built them with)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.conv = layers.Conv2D(4, 3, padding="same")
        self.dense = layers.Dense(2)

    def call(self, x):
        return self.dense(self.conv(x))


def test_nested_models_shared_layers_and_custom_blocks():
    inner_in = keras.Input((8, 8, 3))
    inner = keras.Model(inner_in, layers.Conv2D(5, 3, padding="same", name="inner_conv")(inner_in), name="inner")
    seq = keras.Sequential([keras.Input((8, 8, 5)), layers.Conv2D(3, 1, name="seq_conv")], name="seq")
    shared = layers.Conv2D(3, 1, name="shared")
    inputs = keras.Input((8, 8, 3))
    x = shared(shared(inputs))
    x = seq(inner(x))
    x = Block(name="block")(x)
    model = keras.Model(inputs, x)
    rows = summarize(model)
    names = [r.name for r in rows]
    assert rows[0].class_name == "InputLayer"
    assert names[1:] == ["shared", "shared", "inner", "inner/inner_conv", "seq", "seq/seq_conv", "block"]
    r = by_name(rows)
    assert [row.call for row in rows if row.name == "shared"] == [0, 1]
    assert sum(row.params for row in rows if row.name == "shared") == 3 * 3 + 3  # counted once
    assert r["inner"].is_container and r["inner"].flops == r["inner/inner_conv"].flops
    assert r["inner/inner_conv"].depth == 1
    assert r["block"].flops == (2 * 8 * 8 * 4 * 27 + 8 * 8 * 4) + (2 * 8 * 8 * 4 * 2 + 8 * 8 * 2)
    assert r["block"].flops_counted
    t = totals(rows)
    assert t["parameters"] == model.count_params()
    assert t["flops"] == sum(row.flops for row in rows if not row.is_container)


def test_format_summary_has_totals_and_marks_unknown_layers():
    inputs = keras.Input((4, 4, 1))
    x = layers.Lambda(lambda t: t * 2, name="double")(inputs)
    model = keras.Model(inputs, layers.Conv2D(2, 3, name="conv")(x))
    text = format_summary(summarize(model))
    assert "parameters: 20 (trainable 20" in text
    assert "Lambda" in text and "?" in text and "not counted" in text
    assert "multiply-add = 2 FLOPs" in text
    np.testing.assert_equal(totals(summarize(model))["layers_without_flop_rule"], ["Lambda"])


def test_foveal_custom_layers_have_flop_rules():
    from foveal.inspection import receptive_fields
    from foveal.layers import DepthwiseMaxPool, InceptionModule, LocalResponseNormalization, SqueezeExcite

    inputs = keras.Input((8, 8, 16))
    x = InceptionModule(4, 4, 6, 2, 3, 5, name="inc")(inputs)  # 18 channels out
    x = SqueezeExcite(4, name="se")(x)  # 4 hidden units
    x = DepthwiseMaxPool(2, name="dmp")(x)
    x = LocalResponseNormalization(name="lrn")(x)
    rows = by_name(summarize(keras.Model(inputs, x)))
    assert all(row.flops_counted for row in rows.values())
    convs = [(16, 1, 4), (16, 1, 4), (4, 3, 6), (16, 1, 2), (2, 5, 3), (16, 1, 5)]  # (C_in, k, C_out)
    expected = sum(2 * 64 * c * k * k * f + 64 * f for c, k, f in convs) + 64 * 16 * 9  # + the 3x3 pool
    assert rows["inc"].flops == expected
    n = 8 * 8 * 18
    assert rows["se"].flops == n + 2 * (2 * 18 * 4) + 4 + 18 + n
    assert rows["dmp"].flops == n and rows["dmp"].output_shape == (8, 8, 9)
    fields = {f.layer_name: f for f in receptive_fields(keras.Model(inputs, x))}
    assert fields["inc"].receptive_field == (5, 5)  # its widest branch, the 5x5 convolution
    assert fields["lrn"].receptive_field == (5, 5)


@pytest.mark.slow
def test_recurrent_layers_match_the_profiler():
    """LSTM, GRU (both reset modes) and SimpleRNN against ``tf.compat.v1.profiler`` on the unrolled
    graph, every operation of it counted (the first step's product with the zero initial state too,
    as the loop of a layer that is not unrolled runs it)."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    steps, dim = 3, 5
    inputs = keras.Input((steps, dim))
    recurrent = [layers.LSTM(4, unroll=True, return_sequences=True, name="lstm"),
                 layers.GRU(3, unroll=True, return_sequences=True, name="gru"),
                 layers.GRU(2, unroll=True, reset_after=False, return_sequences=True, name="gru_v1"),
                 layers.SimpleRNN(3, unroll=True, name="rnn")]
    x = inputs
    for layer in recurrent:
        x = layer(x)
    model = keras.Model(inputs, x)
    spec = tf.TensorSpec([1, steps, dim], tf.float32)
    graph = convert_variables_to_constants_v2(
        tf.function(lambda t: model(t, training=False)).get_concrete_function(spec)).graph
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    profile = tf.compat.v1.profiler.profile(graph=graph, options=options)

    def walk(node):
        for child in node.children:
            yield child
            yield from walk(child)

    counted = sum(node.float_ops for node in walk(profile))
    rows = summarize(model)
    assert counted > 1000 and totals(rows)["flops"] == counted
    rows = by_name(rows)
    lstm = rows["lstm"]
    assert lstm.flops == steps * (8 * 4 * (dim + 4) + 12 * 4) and lstm.params == 4 * 4 * (dim + 4 + 1)


@pytest.mark.slow
def test_video_models_every_layer_counted():
    """The end-to-end video models (masks, TimeDistributed, ConvLSTM, (2+1)D) and a feature-route
    head (a Masking layer's bare mask operations, Standardize, TemporalDeltas, a bidirectional GRU):
    every layer has a FLOP rule and the parameters are Keras' count."""
    from foveal.models import build_model
    from foveal.video.endtoend import build_end_to_end
    from foveal.video.models import build_sequence_model

    cnn = build_model("dann_mnist", num_classes=2, input_shape=(16, 16, 3))
    cnn = keras.Model(cnn.inputs, cnn.get_layer(index=-2).output)
    for name in ("cnn-lstm", "convlstm", "r2plus1d"):
        model = build_end_to_end(name, steps=3, frame_hw=(16, 16), num_classes=2, backbone=cnn, units=4, filters=4)
        rows = summarize(model)
        t = totals(rows)
        assert t["layers_without_flop_rule"] == [] and t["parameters"] == model.count_params(), name
        if name == "cnn-lstm":  # the CNN once per frame
            assert by_name(rows)["frame_cnn"].flops == 3 * totals(summarize(cnn))["flops"]
    head = build_sequence_model("bigru", steps=3, dim=6, num_classes=2, units=4, dense=4, deltas=True,
                                stats=([0.0] * 6, [1.0] * 6))
    t = totals(summarize(head))
    assert t["layers_without_flop_rule"] == [] and t["parameters"] == head.count_params()
